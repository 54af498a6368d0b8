package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testcert"
)

var transports = []string{"tcp", "quic"}

var (
	certOnce sync.Once
	certTLS  tls.Certificate
	certPool *x509.CertPool
)

// testCert returns a self-signed certificate for 127.0.0.1 and localhost,
// and a pool that trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	certOnce.Do(func() {
		p := testcert.New("127.0.0.1", "localhost")
		certTLS, certPool = p.Cert, p.Pool
	})
	return certTLS, certPool
}

func serverTLS(t testing.TB) *tls.Config {
	cert, _ := testCert(t)
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

func clientTLS(t testing.TB) *tls.Config {
	_, pool := testCert(t)
	return &tls.Config{RootCAs: pool}
}

// testListener accepts agent connections on 127.0.0.1:0 over one
// transport and hands them out as server Muxes.
type testListener struct {
	addr   string
	accept func(ctx context.Context) (Mux, error)
	close  func()
}

func newTestListener(t testing.TB, transport string, cfg MuxConfig) *testListener {
	t.Helper()
	switch transport {
	case "tcp":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tc := TCPServerTLSConfig(serverTLS(t))
		tl := &testListener{addr: ln.Addr().String(), close: func() { _ = ln.Close() }}
		tl.accept = func(ctx context.Context) (Mux, error) {
			c, err := ln.Accept()
			if err != nil {
				return nil, err
			}
			tconn := tls.Server(c, tc)
			if err := tconn.HandshakeContext(ctx); err != nil {
				_ = c.Close()
				return nil, err
			}
			return NewMuxadoMux(tconn, true, cfg), nil
		}
		t.Cleanup(tl.close)
		return tl
	case "quic":
		ln, err := ListenQUICAddr("127.0.0.1:0", serverTLS(t), QUICListenerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		tl := &testListener{addr: ln.Addr().String(), accept: ln.Accept, close: func() { _ = ln.Close() }}
		t.Cleanup(tl.close)
		return tl
	}
	t.Fatalf("unknown transport %q", transport)
	return nil
}

// dialTest connects an agent Mux to addr over transport.
func dialTest(ctx context.Context, t testing.TB, transport, addr string, cfg MuxConfig) Mux {
	t.Helper()
	var m Mux
	var err error
	if transport == "tcp" {
		m, err = DialTCP(ctx, addr, clientTLS(t), cfg)
	} else {
		m, err = DialQUIC(ctx, addr, clientTLS(t))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// muxPair returns a connected agent (client) and edge (server) Mux.
func muxPair(t testing.TB, transport string, cfg MuxConfig) (client, server Mux) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln := newTestListener(t, transport, cfg)
	type res struct {
		m   Mux
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := ln.accept(ctx)
		ch <- res{m, err}
	}()
	client = dialTest(ctx, t, transport, ln.addr, cfg)
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { _ = r.m.Close() })
	return client, r.m
}

// testCtx returns a context that ends with the test or after d.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// goroutineBaseline records the goroutine count; the returned func waits
// (polling, bounded) until the count is back to it, and fails with the
// stacks of what is left otherwise.
func goroutineBaseline(t testing.TB) func() {
	t.Helper()
	base := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("%d goroutines left (baseline %d):\n%s", runtime.NumGoroutine(), base, ownStacks(string(buf)))
			}
			time.Sleep(10 * time.Millisecond) // polling, not waiting for an event
		}
	}
}

// ownStacks keeps the stacks that mention this package or its libraries.
func ownStacks(all string) string {
	var out []string
	for _, g := range strings.Split(all, "\n\n") {
		if strings.Contains(g, "tunnel") || strings.Contains(g, "muxado") || strings.Contains(g, "quic") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// beatIdle reports whether the session is between heartbeats: its own
// beat has been answered at least once and, when it opens a stream per
// beat, that stream is closed, no echo of the peer's beats runs, and (over
// muxado) no accept goroutine lingers.
func (c *core) beatIdle() bool {
	if c.hb.latency.Load() == 0 {
		return false
	}
	c.hb.mu.Lock()
	ownIdle := !c.hb.perBeat || c.hb.st == nil
	c.hb.mu.Unlock()
	if !ownIdle || (c.hb.perBeat && c.echoes.Load() != 0) {
		return false
	}
	if mm, ok := c.mux.(*muxadoMux); ok {
		mm.streams.mu.Lock()
		defer mm.streams.mu.Unlock()
		return !mm.streams.accepting
	}
	return true
}
