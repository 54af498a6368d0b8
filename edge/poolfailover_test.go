package edge

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/tunnel"
)

// stallGate stops a relay both ways without closing anything, as a cut
// network path or a frozen agent process does, until it is opened again.
type stallGate struct {
	mu       sync.Mutex
	open     chan struct{} // closed while bytes pass
	done     chan struct{} // closed at cleanup
	inflight sync.RWMutex  // held for reading by each copy's write in progress

	// The bytes the gate delivered toward the edge and those the edge
	// read (startGatedAgent), so that stall can wait for the edge to
	// have taken every byte that passed before the cut.
	toEdge   atomic.Int64
	edgeRead *atomic.Int64 // nil when not watched
}

func newStallGate(t testing.TB) *stallGate {
	g := &stallGate{open: make(chan struct{}), done: make(chan struct{})}
	close(g.open)
	t.Cleanup(func() { close(g.done) })
	return g
}

// stall cuts the path. It returns once no byte is on its way any more:
// the copies' writes in progress have ended and, when the edge's end is
// watched, the edge has read every byte the gate delivered to it and had
// a moment to act on them. Without that, a frame that passed just before
// the cut (a stream's close, a heartbeat echo) reached the edge just
// after, and counted as a sign of life of a member already cut off.
func (g *stallGate) stall(t testing.TB) {
	t.Helper()
	g.inflight.Lock() // the writes that passed the gate before the cut end first
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
	g.inflight.Unlock()
	if g.edgeRead == nil {
		return
	}
	until := time.Now().Add(10 * time.Second)
	for g.edgeRead.Load() != g.toEdge.Load() {
		if time.Now().After(until) {
			t.Fatalf("the edge read %d of the %d bytes delivered to it before the cut", g.edgeRead.Load(), g.toEdge.Load())
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the edge's reader acts on what it read
}

func (g *stallGate) resume() {
	g.mu.Lock()
	close(g.open)
	g.mu.Unlock()
}

// write writes b to dst once the gate lets bytes pass; false when the
// gate was cleaned up or the write failed. sent counts what was written.
func (g *stallGate) write(dst net.Conn, b []byte, sent *atomic.Int64) bool {
	for {
		g.inflight.RLock()
		g.mu.Lock()
		ch := g.open
		g.mu.Unlock()
		select {
		case <-ch:
			n, err := dst.Write(b)
			if sent != nil {
				sent.Add(int64(n))
			}
			g.inflight.RUnlock()
			return err == nil
		default:
		}
		g.inflight.RUnlock()
		select {
		case <-ch:
		case <-g.done:
			return false
		}
	}
}

// copyThrough copies src to dst while g lets bytes pass; bytes read while
// it is stalled wait, undelivered, until it opens.
func (g *stallGate) copyThrough(dst, src net.Conn) { g.copyCounting(dst, src, nil) }

// copyCounting is copyThrough counting the bytes written in sent.
func (g *stallGate) copyCounting(dst, src net.Conn, sent *atomic.Int64) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !g.write(dst, buf[:n], sent) {
			return
		}
		if err != nil {
			return
		}
	}
}

// readCounter counts the bytes read from a connection.
type readCounter struct {
	net.Conn
	n *atomic.Int64
}

func (c readCounter) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// startGatedAgent is startTestAgent over a TCP relay that g can stall.
func startGatedAgent(t testing.TB, e *Edge, token string, g *stallGate) *testAgent {
	t.Helper()
	agentEnd, relayA := tcpPair(t)
	relayE, edgeEnd := tcpPair(t)
	g.edgeRead = new(atomic.Int64)
	go g.copyCounting(relayE, relayA, &g.toEdge)
	go g.copyThrough(relayA, relayE)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.startAgentSession(ctx, tunnel.NewMuxadoMux(readCounter{edgeEnd, g.edgeRead}, true, tunnel.MuxConfig{}))
	cs := tunnel.NewClientSession(tunnel.NewMuxadoMux(agentEnd, false, tunnel.MuxConfig{}), tunnel.ClientConfig{})
	if err := cs.Start(ctx, func(error) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	resp, err := cs.Auth(ctx, &tunnel.Auth{Version: []string{"3"}, Extra: tunnel.AuthExtra{Authtoken: tunnel.Secret(token)}})
	if err != nil || resp.Error != "" {
		t.Fatalf("auth: %v %s", err, resp.Error)
	}
	a := &testAgent{cs: cs, up: map[string]string{}}
	go a.serve()
	return a
}

// bindPooled binds proto with opts and pooling on a's session, served by
// upstream; it returns the endpoint's URL.
func (a *testAgent) bindPooled(t testing.TB, proto string, opts any, upstream string) string {
	t.Helper()
	raw, err := json.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.cs.Bind(context.Background(), &tunnel.Bind{Proto: proto, Opts: raw, Extra: tunnel.BindExtra{PoolingEnabled: true}})
	if err != nil || resp.Error != "" {
		t.Fatalf("bind %s: %v %s", proto, err, resp.Error)
	}
	a.mu.Lock()
	a.up[resp.ID] = upstream
	a.mu.Unlock()
	return resp.URL
}

// nameUpstream answers every request with name.
func nameUpstream(t testing.TB, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }),
		ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// poolClient sends each request on a new connection (so each is routed
// afresh) to addr, over HTTP/2 when h2.
func (r *testRegion) poolClient(addr string, h2 bool) *http.Client {
	c := r.httpsClient(addr, "127.0.0.1", h2)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	c.Timeout = 20 * time.Second
	return c
}

func poolGet(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	return string(b), nil
}

// TestPoolSurvivesSilentMember: of two agents pooled at one URL, one stops
// answering without closing its connection (its relay stops passing bytes
// both ways, as a cut path or a killed QUIC agent looks to the edge, long
// before the heartbeat gives up on it). Every request still succeeds, over
// HTTP/1.1 and HTTP/2: the silent member fails its proof of life before
// anything is sent to it, the request goes to the other member, and the
// silent one leaves the rotation. When its path comes back, so does it.
func TestPoolSurvivesSilentMember(t *testing.T) {
	r := newTestRegion(t)
	e := r.startEdge("ed_a", "127.0.0.1", peerSecret)
	gate := newStallGate(t)
	silent := startGatedAgent(t, e, r.token, gate)
	steady := startTestAgent(t, e, r.token)
	opts := tunnel.HTTPOptions{URL: "https://pool." + peerBase}
	url := silent.bindPooled(t, "https", opts, nameUpstream(t, "silent"))
	steady.bindPooled(t, "https", opts, nameUpstream(t, "steady"))
	host := strings.TrimPrefix(url, "https://")
	url = "https://" + strings.Split(host, ":")[0] + e.Addrs().HTTPS[strings.LastIndexByte(e.Addrs().HTTPS, ':'):] + "/"

	clients := []*http.Client{r.poolClient(e.Addrs().HTTPS, false), r.poolClient(e.Addrs().HTTPS, true)}
	seen := map[string]int{}
	for i := range 4 {
		who, err := poolGet(clients[i%2], url)
		if err != nil {
			t.Fatalf("request %d before the stall: %v", i, err)
		}
		seen[who]++
	}
	if seen["silent"] != 2 || seen["steady"] != 2 {
		t.Fatalf("before the stall: %v, want 2 each (round-robin)", seen)
	}

	gate.stall(t)
	for i := range 10 {
		who, err := poolGet(clients[i%2], url)
		if err != nil {
			t.Fatalf("request %d with one member silent: %v", i, err)
		}
		if who != "steady" {
			t.Fatalf("request %d served by %q with its path cut", i, who)
		}
	}
	if n := e.Metrics().PoolMembersDown(); n != 1 {
		t.Errorf("members taken out of rotation: %d, want 1", n)
	}

	// The path comes back: what the member's agent sends then puts it
	// back in rotation.
	gate.resume()
	back := false
	// Bounded in time, not in tries: on a loaded machine (CI runs test
	// packages side by side) the first answer may take longer than 50
	// quick tries; at the latest the agent's next heartbeat brings it.
	until := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(until) && !back; i++ {
		who, err := poolGet(clients[i%2], url)
		if err != nil {
			t.Fatalf("request %d after the path came back: %v", i, err)
		}
		back = who == "silent"
		if !back {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !back {
		t.Fatal("the member whose path came back got no request")
	}
}

var _ = tls.VersionTLS12

// TestPoolSurvivesSilentMemberTLS: the same for a TLS passthrough
// endpoint pooled by two agents, whose upstreams hold different
// certificates: every connection gets its handshake and its echo, from the
// member that answers.
func TestPoolSurvivesSilentMemberTLS(t *testing.T) {
	r := newTestRegion(t)
	e := r.startEdge("ed_a", "127.0.0.1", peerSecret)
	gate := newStallGate(t)
	silent := startGatedAgent(t, e, r.token, gate)
	steady := startTestAgent(t, e, r.token)
	name := "poolpass." + peerBase
	upstream := func() (string, string) {
		cert, err := r.ca.IssueServerCert([]string{name}, nil)
		if err != nil {
			t.Fatal(err)
		}
		addr := echoUpstream(t, func(c net.Conn) net.Conn {
			return tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		})
		return addr, cert.Leaf.SerialNumber.String()
	}
	silentUp, silentSerial := upstream()
	steadyUp, steadySerial := upstream()
	silent.bindPooled(t, "tls", tunnel.TLSOptions{URL: "tls://" + name}, silentUp)
	steady.bindPooled(t, "tls", tunnel.TLSOptions{URL: "tls://" + name}, steadyUp)

	connect := func(i int) string {
		d := &net.Dialer{Timeout: 20 * time.Second, Deadline: time.Now().Add(20 * time.Second)}
		tc, err := tls.DialWithDialer(d, "tcp", e.Addrs().HTTPS, &tls.Config{ServerName: name, RootCAs: r.caPool})
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer tc.Close()
		_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
		expectEcho(t, tc, fmt.Sprintf("connection %d", i))
		return tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	seen := map[string]int{}
	for i := range 2 {
		seen[connect(i)]++
	}
	if seen[silentSerial] != 1 || seen[steadySerial] != 1 {
		t.Fatalf("before the stall: %v, want one connection to each member", seen)
	}
	gate.stall(t)
	for i := range 6 {
		if got := connect(i); got != steadySerial {
			t.Fatalf("connection %d reached the member whose path is cut", i)
		}
	}
}
