package agent

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/regions"
	"github.com/tollgate/tollgate/tunnel"
)

// Region choice without --region: regions.Fastest measures every region's
// edge that the first edge's Auth response lists and names the one to move
// to. The agent's measure is tlsHandshakeTime: the TLS handshake makes the
// edge's own process answer, where a TCP connect alone is completed by the
// kernel (or a load balancer) in front of it.

// tlsHandshakeTime is the agent's regions.Measure: a TCP connect and a TLS
// handshake with the edge at addr, verified as a session's would be.
func (a *Agent) tlsHandshakeTime(ctx context.Context, addr string) (time.Duration, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: a.cfg.edgeTLSConfig(addr)}
	start := time.Now()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	rtt := time.Since(start)
	_ = c.Close()
	return rtt, nil
}

// fastestRegion returns the connect address of the region whose edge
// answers fastest when it beats the current edge (addr) by
// regions.SwitchMargin; else "". Regions that cannot be reached are
// skipped.
func (a *Agent) fastestRegion(ctx context.Context, resp *tunnel.AuthResp, addr string, probe regions.Measure) string {
	addrs := make([]regions.Address, 0, len(resp.Extra.ConnectAddresses))
	for _, ca := range resp.Extra.ConnectAddresses {
		addrs = append(addrs, regions.Address{Region: regions.Region(ca.Region), ServerAddr: ca.ServerAddr})
	}
	current := regions.Address{Region: regions.Region(resp.Extra.Region), ServerAddr: addr}
	c := regions.Fastest(ctx, addrs, current, probe)
	if c.Probed == 0 {
		return ""
	}
	fields := make([]zap.Field, 0, len(c.Measured))
	for _, m := range c.Measured {
		fields = append(fields, zap.Duration(string(m.Region)+" "+m.ServerAddr, m.RTT))
	}
	a.log.Debug("measured the regions' edges", fields...)
	if c.Move.ServerAddr == "" {
		return ""
	}
	a.log.Info("moving to the fastest region", zap.String("region", string(c.Move.Region)), zap.String("server_addr", c.Move.ServerAddr),
		zap.Duration("connect_time", c.Move.RTT), zap.Duration("current_connect_time", c.Current.RTT))
	return c.Move.ServerAddr
}
