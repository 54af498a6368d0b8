package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/certs"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

const (
	peerBase   = "peer.test"
	peerSecret = "0123456789abcdef-region-secret"
)

// testRegion is a region of in-process edges and the route table they
// share: a route is held by the edges whose router binds it, as the
// region's table would say (RouteDirectory).
type testRegion struct {
	t        testing.TB
	ca       *certs.CA
	caPool   *x509.CertPool
	tcpPorts string
	data     snapshot.Data
	token    string

	mu    sync.Mutex
	edges []*Edge
	// lies overrides the table for a key: the holders it names, whatever
	// the routers say (a table that is behind).
	lies map[string][]RemoteRoute
}

func newTestRegion(t testing.TB) *testRegion {
	t.Helper()
	ca, err := certs.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pool := ca.CertPool()
	id, tok, hash := authn.NewCredential(ids.PrefixAuthtoken)
	// One port free on every loopback address the edges use.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return &testRegion{
		t: t, ca: ca, caPool: pool, tcpPorts: strconv.Itoa(port),
		token: tok.Reveal(),
		data: snapshot.Data{Revision: 1,
			Accounts:   []snapshot.Account{{ID: "acct_a", Active: true}},
			Principals: []snapshot.Principal{{ID: "usr_a", Active: true, AccountIDs: []string{"acct_a"}}},
			Authtokens: []snapshot.Authtoken{{ID: id, AccountID: "acct_a", OwnerID: "usr_a", SecretHash: hash}},
		},
		lies: map[string][]RemoteRoute{},
	}
}

// view is the route table as edge self reads it.
type regionView struct {
	r    *testRegion
	self string
}

func (v regionView) RemoteHolders(proto, key string) []RemoteRoute {
	v.r.mu.Lock()
	defer v.r.mu.Unlock()
	if lie, ok := v.r.lies[key]; ok {
		return lie
	}
	var out []RemoteRoute
	for _, e := range v.r.edges {
		if e.cfg.EdgeID == v.self {
			continue
		}
		if ep, ok := e.router.at(key); ok && ep.proto == proto {
			out = append(out, RemoteRoute{EdgeID: e.cfg.EdgeID, PeerAddr: e.Addrs().Peer})
		}
	}
	return out
}

func (v regionView) RemoteTCPKeys() []string {
	v.r.mu.Lock()
	defer v.r.mu.Unlock()
	var out []string
	for _, e := range v.r.edges {
		if e.cfg.EdgeID == v.self {
			continue
		}
		e.router.mu.RLock()
		for k, pool := range e.router.routes {
			if pool.members[0].proto == "tcp" {
				out = append(out, k)
			}
		}
		e.router.mu.RUnlock()
	}
	return out
}

func (r *testRegion) lie(key string, holders ...RemoteRoute) {
	r.mu.Lock()
	r.lies[key] = holders
	r.mu.Unlock()
}

// startEdge runs an edge of the region with ID id on loopback address ip
// (its public, TCP and edge-to-edge listeners), linked with secret.
func (r *testRegion) startEdge(id, ip, secret string) *Edge {
	t := r.t
	t.Helper()
	dir := t.TempDir()
	iss, err := certs.NewLocalIssuer(r.ca, certs.LocalIssuerConfig{BaseDomain: peerBase})
	if err != nil {
		t.Fatal(err)
	}
	var self atomic.Pointer[Edge] // the manager reads the edge's reservations
	mgr, err := certs.New(certs.Config{BaseDomain: peerBase, DataDir: dir, Issuer: iss, Snapshot: func() *snapshot.Snapshot {
		if e := self.Load(); e != nil {
			return e.Snapshot()
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{
		EdgeID: id, BaseDomain: peerBase, AgentAddr: ip + ":0", HTTPSAddr: ip + ":0", HTTPAddr: "off",
		DisableQUIC: true, TCPPorts: r.tcpPorts, TCPListenIP: ip,
		Peer: PeerConfig{Secret: secret, Addr: ip + ":0"},
	}, Deps{AgentTLS: &tls.Config{}, Certs: mgr, Routes: regionView{r, id}})
	if err != nil {
		t.Fatal(err)
	}
	self.Store(e)
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
		mgr.Stop()
	})
	setSnapshot(t, e, r.data)
	r.mu.Lock()
	r.edges = append(r.edges, e)
	r.mu.Unlock()
	return e
}

// testAgent is an agent session on one edge whose endpoints forward to
// upstream addresses, recording the client address of every proxy stream.
type testAgent struct {
	cs      *tunnel.ClientSession
	mu      sync.Mutex
	up      map[string]string // bind ID → upstream address
	clients []string
}

func startTestAgent(t testing.TB, e *Edge, token string) *testAgent {
	t.Helper()
	cs, _ := connectAgent(t, e, token)
	a := &testAgent{cs: cs, up: map[string]string{}}
	go a.serve()
	return a
}

func (a *testAgent) serve() {
	for {
		hdr, st, err := a.cs.AcceptProxy(context.Background())
		if err != nil {
			return
		}
		a.mu.Lock()
		up := a.up[hdr.ID]
		a.clients = append(a.clients, hdr.ClientAddr)
		a.mu.Unlock()
		go func() {
			c, err := net.Dial("tcp", up)
			if err != nil {
				st.Close()
				return
			}
			pipe(c.(*net.TCPConn), st)
		}()
	}
}

// bind binds an endpoint of proto with opts, served by upstream; it
// returns the endpoint's URL.
func (a *testAgent) bind(t testing.TB, proto string, opts any, upstream string) string {
	t.Helper()
	raw, err := json.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.cs.Bind(context.Background(), &tunnel.Bind{Proto: proto, Opts: raw})
	if err != nil || resp.Error != "" {
		t.Fatalf("bind %s: %v %s", proto, err, resp.Error)
	}
	a.mu.Lock()
	a.up[resp.ID] = upstream
	a.mu.Unlock()
	return resp.URL
}

func (a *testAgent) clientAddrs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.clients...)
}

// httpUpstream serves "hello <X-Forwarded-For>" on loopback.
func httpUpstream(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Forwarded-For"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// echoUpstream echoes every line it reads, prefixed with "echo ".
func echoUpstream(t testing.TB, wrap func(net.Conn) net.Conn) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if wrap != nil {
					c = wrap(c)
				}
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, "echo "+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// httpsClient returns a client that reaches every name at addr, from
// local address src, over HTTP/2 when h2.
func (r *testRegion) httpsClient(addr, src string, h2 bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: r.caPool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}
	tr.Protocols = new(http.Protocols)
	if h2 {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	r.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func getBody(t testing.TB, c *http.Client, url string) (int, string, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Proto
}

// TestForwardHTTPS: a request for an HTTPS endpoint whose agent is on
// edge A, sent to edge B, is served through A over HTTP/1.1 and HTTP/2,
// with the client's own address at the agent and in X-Forwarded-For.
// Without forwarding, B answers 404 TG_3200.
func TestForwardHTTPS(t *testing.T) {
	r := newTestRegion(t)
	a := r.startEdge("ed_a", "127.0.0.1", peerSecret)
	b := r.startEdge("ed_b", "127.0.0.2", peerSecret)
	agent := startTestAgent(t, a, r.token)
	url := agent.bind(t, "https", tunnel.HTTPOptions{URL: "https://app." + peerBase}, httpUpstream(t))
	host := strings.TrimPrefix(url, "https://")
	port := b.Addrs().HTTPS[strings.LastIndexByte(b.Addrs().HTTPS, ':'):]
	url = "https://" + strings.Split(host, ":")[0] + port

	for _, h2 := range []bool{false, true} {
		c := r.httpsClient(b.Addrs().HTTPS, "127.0.0.3", h2)
		code, body, proto := getBody(t, c, url+"/x")
		if code != 200 || body != "hello 127.0.0.3" {
			t.Fatalf("through edge B (h2 %v): %d %q, want 200 \"hello 127.0.0.3\"", h2, code, body)
		}
		if want := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]; proto != want {
			t.Errorf("protocol %s, want %s", proto, want)
		}
	}
	for _, ca := range agent.clientAddrs() {
		if !strings.HasPrefix(ca, "127.0.0.3:") {
			t.Errorf("the agent saw client %s, want 127.0.0.3:*", ca)
		}
	}
	if n := b.peers.metrics.forwarded.Load(); n != 2 {
		t.Errorf("B forwarded %d connections, want 2", n)
	}
	if n := a.peers.metrics.received.Load(); n != 2 {
		t.Errorf("A received %d forwarded connections, want 2", n)
	}

	// With curl, the client most people use.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("this test needs curl: apt-get install curl (.ci/run does)")
	}
	{
		caFile := t.TempDir() + "/ca.pem"
		if err := os.WriteFile(caFile, r.ca.CertPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		name := strings.Split(host, ":")[0]
		_, bport, _ := net.SplitHostPort(b.Addrs().HTTPS)
		for _, flag := range []string{"--http1.1", "--http2"} {
			out, err := exec.Command("curl", "-sS", flag, "--cacert", caFile, "--interface", "127.0.0.3",
				"--resolve", name+":"+bport+":127.0.0.2", "https://"+name+":"+bport+"/").CombinedOutput()
			if err != nil || string(out) != "hello 127.0.0.3" {
				t.Errorf("curl %s through B: %v %q", flag, err, out)
			}
		}
	}

	// An unknown name on B is still B's own 404.
	c := r.httpsClient(b.Addrs().HTTPS, "127.0.0.3", false)
	code, body, _ := getBody(t, c, "https://nobody."+peerBase+port+"/")
	if code != 404 || !strings.Contains(body, string(codes.EndpointNotFound)) {
		t.Errorf("unknown name on B: %d %q, want 404 %s", code, body, codes.EndpointNotFound)
	}
}

// TestForwardKeepsIPPolicy: the owning edge decides IP policy on the
// original client address: a client its endpoint denies is refused when
// it comes through the sibling, one it allows is served.
func TestForwardKeepsIPPolicy(t *testing.T) {
	r := newTestRegion(t)
	a := r.startEdge("ed_a", "127.0.0.1", peerSecret)
	b := r.startEdge("ed_b", "127.0.0.2", peerSecret)
	agent := startTestAgent(t, a, r.token)
	agent.bind(t, "https", tunnel.HTTPOptions{URL: "https://guarded." + peerBase,
		IPRestriction: &tunnel.IPRestriction{AllowCIDRs: []string{"0.0.0.0/0"}, DenyCIDRs: []string{"127.0.0.4/32"}}}, httpUpstream(t))
	_, port, _ := net.SplitHostPort(b.Addrs().HTTPS)
	url := "https://guarded." + peerBase + ":" + port + "/"

	code, body, _ := getBody(t, r.httpsClient(b.Addrs().HTTPS, "127.0.0.4", false), url)
	if code != http.StatusForbidden || !strings.Contains(body, string(codes.IPDenied)) {
		t.Fatalf("denied client through B: %d %q, want 403 %s", code, body, codes.IPDenied)
	}
	if code, body, _ := getBody(t, r.httpsClient(b.Addrs().HTTPS, "127.0.0.3", false), url); code != 200 || body != "hello 127.0.0.3" {
		t.Fatalf("allowed client through B: %d %q", code, body)
	}
	if n := a.Metrics().IPPolicyCounts().EndpointRefused; n != 1 {
		t.Errorf("A refused %d connections by the endpoint's policy, want 1", n)
	}
}

// TestForwardTLSAndTCP: a TLS passthrough endpoint and a TCP endpoint
// whose agent is on A are reached through B: the TLS client completes its
// handshake with the upstream's certificate, the TCP client reaches the
// upstream on B's listener of the same port, with its own address.
func TestForwardTLSAndTCP(t *testing.T) {
	r := newTestRegion(t)
	a := r.startEdge("ed_a", "127.0.0.1", peerSecret)
	b := r.startEdge("ed_b", "127.0.0.2", peerSecret)
	agent := startTestAgent(t, a, r.token)

	// TLS passthrough: the upstream holds the certificate.
	name := "pass." + peerBase
	upCert, err := r.ca.IssueServerCert([]string{name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsUp := echoUpstream(t, func(c net.Conn) net.Conn {
		return tls.Server(c, &tls.Config{Certificates: []tls.Certificate{upCert}})
	})
	agent.bind(t, "tls", tunnel.TLSOptions{URL: "tls://" + name}, tlsUp)
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
	tc, err := tls.DialWithDialer(d, "tcp", b.Addrs().HTTPS, &tls.Config{ServerName: name, RootCAs: r.caPool})
	if err != nil {
		t.Fatalf("TLS through B: %v", err)
	}
	if sn := tc.ConnectionState().PeerCertificates[0].SerialNumber; sn.Cmp(upCert.Leaf.SerialNumber) != 0 {
		t.Errorf("the TLS client got a certificate other than the upstream's")
	}
	expectEcho(t, tc, "over tls")

	// TCP: B listens on the port of A's endpoint.
	url := agent.bind(t, "tcp", tunnel.TCPOptions{}, echoUpstream(t, nil))
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "tcp://"))
	var c net.Conn
	waitFor(t, "B listening on the TCP endpoint's port", func() bool {
		c, err = d.Dial("tcp", "127.0.0.2:"+port)
		return err == nil
	})
	expectEcho(t, c, "over tcp")
	for _, ca := range agent.clientAddrs() {
		if !strings.HasPrefix(ca, "127.0.0.3:") {
			t.Errorf("the agent saw client %s, want 127.0.0.3:*", ca)
		}
	}

	// The endpoint goes: B stops listening on its port.
	agent.cs.Close()
	waitFor(t, "B closing the TCP endpoint's port", func() bool {
		c, err := net.Dial("tcp", "127.0.0.2:"+port)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
}

func expectEcho(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "echo "+msg+"\n" {
		t.Fatalf("echo of %q: %q, %v", msg, line, err)
	}
}

// TestForwardNoLoop: when the route table wrongly says each edge holds a
// name on the other, a request to B goes to A once, A says it holds no
// such route and does not forward it back, and B answers its own 404.
func TestForwardNoLoop(t *testing.T) {
	r := newTestRegion(t)
	a := r.startEdge("ed_a", "127.0.0.1", peerSecret)
	b := r.startEdge("ed_b", "127.0.0.2", peerSecret)
	name := "ghost." + peerBase
	r.lie(name, RemoteRoute{EdgeID: "ed_a", PeerAddr: a.Addrs().Peer}, RemoteRoute{EdgeID: "ed_b", PeerAddr: b.Addrs().Peer})
	_, port, _ := net.SplitHostPort(b.Addrs().HTTPS)
	code, body, _ := getBody(t, r.httpsClient(b.Addrs().HTTPS, "127.0.0.3", false), "https://"+name+":"+port+"/")
	if code != 404 || !strings.Contains(body, string(codes.EndpointNotFound)) {
		t.Fatalf("ghost name through B: %d %q, want 404 %s", code, body, codes.EndpointNotFound)
	}
	if n := a.peers.metrics.receivedNoHit.Load(); n != 1 {
		t.Errorf("A answered 'no route' %d times, want 1", n)
	}
	if n := a.peers.metrics.forwarded.Load() + a.peers.metrics.notHere.Load(); n != 0 {
		t.Errorf("A forwarded the forwarded connection (%d attempts)", n)
	}
	if n := b.peers.metrics.received.Load() + b.peers.metrics.receivedNoHit.Load(); n != 0 {
		t.Errorf("B received %d forwarded connections: a loop", n)
	}
}

// TestPeerLinkAuth: the link refuses an edge with another secret and a
// plain TLS client, and throttles an address after repeated failures;
// the right secret from another address still gets in.
func TestPeerLinkAuth(t *testing.T) {
	r := newTestRegion(t)
	a := r.startEdge("ed_a", "127.0.0.1", peerSecret)
	agent := startTestAgent(t, a, r.token)
	agent.bind(t, "https", tunnel.HTTPOptions{URL: "https://app." + peerBase}, httpUpstream(t))

	// An edge of the region with the wrong secret: its forward fails and
	// it answers its own 404.
	wrong := r.startEdge("ed_w", "127.0.0.2", "another-secret-of-16+chars")
	_, port, _ := net.SplitHostPort(wrong.Addrs().HTTPS)
	code, _, _ := getBody(t, r.httpsClient(wrong.Addrs().HTTPS, "127.0.0.3", false), "https://app."+peerBase+":"+port+"/")
	if code != 404 {
		t.Fatalf("through an edge with the wrong secret: %d, want 404", code)
	}
	if n := a.peers.metrics.authFailed.Load(); n != 1 {
		t.Fatalf("A counted %d failed links, want 1", n)
	}
	if n := a.peers.metrics.received.Load(); n != 0 {
		t.Fatalf("A served %d connections from an unauthenticated edge", n)
	}

	// A plain TLS client (ALPN h2) fails the handshake; one that offers
	// the link's ALPN but no proof gets nothing and is cut off.
	_, err := tls.Dial("tcp", a.Addrs().Peer, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err == nil {
		t.Fatal("a TLS client offering h2 completed a handshake with the link")
	}
	tc, err := tls.Dial("tcp", a.Addrs().Peer, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{tunnel.TCPALPN}})
	if err == nil {
		_, _ = io.WriteString(tc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"+strings.Repeat("x", 200))
		_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, rerr := tc.Read(make([]byte, 64))
		if n != 0 || rerr == nil {
			t.Fatalf("a client without the secret read %d bytes (%v)", n, rerr)
		}
		tc.Close()
	}
	// Throttled: past the burst, even the right secret from 127.0.0.2 is
	// closed before it is checked; from 127.0.0.3 it gets in.
	from2 := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	for range peerAuthPolicy.Burst {
		if c, err := tls.DialWithDialer(from2, "tcp", a.Addrs().Peer, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{tunnel.TCPALPN}}); err == nil {
			_, _ = c.Write(append([]byte{1, 'x'}, make([]byte, 32)...))
			_, _ = c.Read(make([]byte, 1))
			c.Close()
		}
	}
	good := r.startEdge("ed_g", "127.0.0.2", peerSecret)
	good.peers.dialFrom = &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}
	if _, _, err := good.peers.dialLink(context.Background(), a.Addrs().Peer); err == nil {
		t.Fatal("a throttled address authenticated")
	}
	if n := a.peers.metrics.authThrottled.Load(); n == 0 {
		t.Fatal("no link was throttled")
	}
	other := r.startEdge("ed_o", "127.0.0.3", peerSecret)
	other.peers.dialFrom = &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}
	mux, id, err := other.peers.dialLink(context.Background(), a.Addrs().Peer)
	if err != nil || id != "ed_a" {
		t.Fatalf("the right secret from another address: %v (edge %q)", err, id)
	}
	mux.Close()
}

// TestPeerHeaderRoundTrip: a header decodes to what was encoded, and
// malformed ones are refused.
func TestPeerHeaderRoundTrip(t *testing.T) {
	h := &peerHeader{listener: listenerTCP, key: "localhost:20001"}
	h.client = netip.MustParseAddrPort("[::ffff:10.1.2.3]:5555")
	h.local = netip.MustParseAddrPort("[2001:db8::1]:443")
	got, err := readPeerHeader(strings.NewReader(string(appendPeerHeader(nil, h))))
	if err != nil {
		t.Fatal(err)
	}
	if got.listener != h.listener || got.key != h.key || got.client.String() != "10.1.2.3:5555" || got.local != h.local {
		t.Fatalf("round trip: %+v, want %+v", got, h)
	}
	for _, bad := range []string{"\x02\x01\x00\x01k", "\x01\x03\x00\x01k", "\x01\x01\x00\x00", "\x01\x01\x00\x01k\x03abc\x01x"} {
		if _, err := readPeerHeader(strings.NewReader(bad + strings.Repeat("\x00", 8))); !errors.Is(err, errPeerHeader) {
			t.Errorf("header %q: %v, want errPeerHeader", bad, err)
		}
	}
}
