package agent

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/tunnel"
)

// Region choice without --region: the first edge the agent reaches lists
// every region's connect address in its Auth response (ConnectAddresses,
// reference/agent-protocol.md); the agent measures the time of a TCP
// connect and TLS handshake with each and moves to the lowest, once per Run.
// The TLS handshake makes the edge's own process answer: a TCP connect alone
// is completed by the kernel (or a load balancer) in front of it.

// probeRounds is how many handshakes each region's edge gets; the
// fastest counts, so one slow SYN does not decide.
const probeRounds = 3

// probeTimeout bounds one region's measurement.
const probeTimeout = 2 * time.Second

// switchMargin is how much faster another region must be before the agent
// leaves the edge it reached: small differences are noise.
const switchMargin = 2 * time.Millisecond

// regionProbe measures how long reaching the edge at addr takes.
type regionProbe func(ctx context.Context, addr string) (time.Duration, error)

// tlsHandshakeTime is the default regionProbe: a TCP connect and a TLS
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

// fastestRegion returns the connect address of the region with the lowest
// connect time when it beats the current edge (addr) by switchMargin; else
// "". Regions that cannot be reached are skipped.
func (a *Agent) fastestRegion(ctx context.Context, resp *tunnel.AuthResp, addr string, probe regionProbe) string {
	cands := map[string]string{} // server addr -> region
	for _, ca := range resp.Extra.ConnectAddresses {
		if ca.ServerAddr != "" {
			cands[ca.ServerAddr] = ca.Region
		}
	}
	if len(cands) < 2 {
		return ""
	}
	if _, ok := cands[addr]; !ok {
		cands[addr] = resp.Extra.Region
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var mu sync.Mutex
	best := map[string]time.Duration{}
	var wg sync.WaitGroup
	for sa := range cands {
		wg.Go(func() {
			for range probeRounds {
				rtt, err := probe(ctx, sa)
				if err != nil {
					return
				}
				mu.Lock()
				if cur, ok := best[sa]; !ok || rtt < cur {
					best[sa] = rtt
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	here, ok := best[addr]
	pick, pickRTT := "", time.Duration(0)
	for sa, rtt := range best {
		if pick == "" || rtt < pickRTT || (rtt == pickRTT && sa < pick) {
			pick, pickRTT = sa, rtt
		}
	}
	fields := make([]zap.Field, 0, len(best))
	for sa, rtt := range best {
		fields = append(fields, zap.Duration(cands[sa]+" "+sa, rtt))
	}
	a.log.Debug("measured the regions' edges", fields...)
	if pick == "" || pick == addr || (ok && here-pickRTT < switchMargin) {
		return ""
	}
	a.log.Info("moving to the fastest region", zap.String("region", cands[pick]), zap.String("server_addr", pick),
		zap.Duration("connect_time", pickRTT), zap.Duration("current_connect_time", here))
	return pick
}
