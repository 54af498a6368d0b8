package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/certs"
	"github.com/tollgate/tollgate/tunnel"
)

// liveHeap returns the live heap after a full collection, in bytes.
func liveHeap(t *testing.T) uint64 {
	t.Helper()
	runtime.GC()
	s := []metrics.Sample{{Name: liveHeapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatalf("%s is not supported by this runtime", liveHeapMetric)
	}
	return s[0].Value.Uint64()
}

// TestMemGuardFollowsLiveHeap drives the guard with the real heap: 64 MiB
// held live takes it over its threshold (it refuses and counts), and
// releasing them brings it back under (it admits).
func TestMemGuardFollowsLiveHeap(t *testing.T) {
	base := liveHeap(t)
	// The threshold (80% of the limit) sits 32 MiB above today's live heap.
	limit := int64(float64(base+32<<20) / guardHigh)
	g := newMemGuard(limit, zap.NewNop())
	g.check()
	if g.refuse() {
		t.Fatalf("refusing at a live heap of %d bytes, limit %d", base, limit)
	}
	hold := make([][]byte, 64)
	for i := range hold {
		hold[i] = make([]byte, 1<<20)
		hold[i][0] = byte(i)
	}
	runtime.GC()
	g.check()
	first, second := g.refuse(), g.refuse()
	if !first || !second {
		t.Fatalf("admitting at a live heap of %d bytes, limit %d", g.live.Load(), limit)
	}
	if g.refused.Load() != 2 {
		t.Fatalf("refused = %d, want 2", g.refused.Load())
	}
	runtime.KeepAlive(hold)
	hold = nil
	runtime.GC()
	g.check()
	if g.refuse() {
		t.Fatalf("still refusing at a live heap of %d bytes, limit %d", g.live.Load(), limit)
	}
}

// TestMemGuardRefusesConnectionsAndSessions: an edge whose memory limit
// is far below its live heap resets new public HTTPS connections and
// closes new agent sessions with the retryable TG_2741, counting both.
func TestMemGuardRefusesConnectionsAndSessions(t *testing.T) {
	ca, err := certs.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	agentCert, err := ca.IssueServerCert([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{BaseDomain: "tollgate.localhost", DisableQUIC: true, HTTPAddr: "off", MemoryLimit: 64 << 10,
		AgentAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"},
		Deps{AgentTLS: &tls.Config{Certificates: []tls.Certificate{agentCert}}, Certs: noCerts{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-served })
	deadline := time.Now().Add(5 * time.Second)
	for !e.Metrics().MemoryGuard().Refusing {
		if time.Now().After(deadline) {
			t.Fatalf("guard not refusing: %+v", e.Metrics().MemoryGuard())
		}
		time.Sleep(10 * time.Millisecond) // the guard samples every guardInterval
	}

	// The edge resets the connection at once: the reset may even beat the
	// end of the handshake to the dialer.
	if c, err := net.Dial("tcp", e.Addrs().HTTPS); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("public connection not refused: %v", err)
		}
		c.Close()
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}

	mux, err := tunnel.DialTCP(context.Background(), e.Addrs().Agent, &tls.Config{InsecureSkipVerify: true}, tunnel.MuxConfig{})
	if err == nil {
		cs := tunnel.NewClientSession(mux, tunnel.ClientConfig{})
		ended := make(chan error, 1)
		_ = cs.Start(context.Background(), func(err error) { ended <- err })
		_, aerr := cs.Auth(context.Background(), &tunnel.Auth{Version: []string{"3"}})
		var endErr error
		select {
		case endErr = <-ended:
		case <-time.After(5 * time.Second):
			t.Fatalf("agent session not closed by the memory guard (auth: %v)", aerr)
		}
		msg := endErr.Error()
		if aerr != nil {
			msg += " " + aerr.Error()
		}
		if !strings.Contains(msg, string(codes.EdgeOverloaded)) {
			t.Errorf("agent session ended with %q, want %s", msg, codes.EdgeOverloaded)
		}
		if tunnel.IsPermanent(endErr) || tunnel.IsPermanent(aerr) {
			t.Errorf("%s is permanent: agents would not retry", codes.EdgeOverloaded)
		}
	} else {
		t.Fatalf("agent dial: %v", err)
	}
	if n := e.Metrics().MemoryGuard().Refused; n < 2 {
		t.Errorf("refused = %d, want at least 2 (a connection and a session)", n)
	}
}

// TestMemGuardRefusesRequestsOnOpenConnections: while the memory guard
// refuses, a new request on a kept-alive HTTP/1.1 connection and a new
// HTTP/2 stream on an open connection get 503, Retry-After and TG_2741,
// and never reach the upstream; once it admits again, the HTTP/2
// connection serves the next request.
func TestMemGuardRefusesRequestsOnOpenConnections(t *testing.T) {
	h := startHTTPEdge(t, `{}`)
	for _, h2 := range []bool{false, true} {
		c := h.client(t, h2)
		h.e.mem.over.Store(false)
		if resp, _ := get(t, c, h.url+"/"); resp.StatusCode != 200 {
			t.Fatalf("before: %d", resp.StatusCode)
		}
		served, refused := h.upstream.Load(), h.e.Metrics().MemoryGuard().Refused
		h.e.mem.over.Store(true) // the guard's state, as its sampler sets it above the threshold
		resp, body := get(t, c, h.url+"/")
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
			resp.Header.Get("Tollgate-Error-Code") != string(codes.EdgeOverloaded) || !strings.Contains(body, string(codes.EdgeOverloaded)) {
			t.Fatalf("%s while short of memory: %d %v %q", resp.Proto, resp.StatusCode, resp.Header, body)
		}
		if h.upstream.Load() != served {
			t.Errorf("%s: the refused request reached the upstream", resp.Proto)
		}
		if n := h.e.Metrics().MemoryGuard().Refused; n != refused+1 {
			t.Errorf("%s: refused counter %d, want %d", resp.Proto, n, refused+1)
		}
		h.e.mem.over.Store(false)
		if resp, _ := get(t, c, h.url+"/"); resp.StatusCode != 200 {
			t.Fatalf("%s after: %d", resp.Proto, resp.StatusCode)
		}
	}
}
