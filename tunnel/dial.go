package tunnel

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
)

// DialTCP connects to an edge over TLS on TCP and returns the client side
// of a muxado Mux. The TLS configuration is copied and given at least TLS
// 1.2, a ServerName from addr's host when empty, and TCPALPN in front of
// its NextProtos; the handshake completes (bounded by ctx) before the Mux
// starts, so the window size rule of MuxConfig applies.
func DialTCP(ctx context.Context, addr string, tlsConf *tls.Config, cfg MuxConfig) (Mux, error) {
	tc := clientTLSConfig(tlsConf, addr)
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dialing edge %s: %w", addr, err)
	}
	conn := tls.Client(BatchRecords(raw), tc)
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("tls handshake with edge %s: %w", addr, err)
	}
	return NewMuxadoMux(conn, false, cfg), nil
}

func clientTLSConfig(base *tls.Config, addr string) *tls.Config {
	var c *tls.Config
	if base == nil {
		c = &tls.Config{}
	} else {
		c = base.Clone()
	}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = host
	}
	if !slices.Contains(c.NextProtos, TCPALPN) {
		c.NextProtos = append([]string{TCPALPN}, c.NextProtos...)
	}
	return c
}
