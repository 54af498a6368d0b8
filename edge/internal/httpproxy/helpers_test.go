package httpproxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testHost = "app.test"

// fakeAgent plays the agent: it accepts proxy streams (loopback TCP
// connections here) and, like the SDK, dials the upstream and joins the
// bytes raw both ways. handle, when set, replaces the join.
type fakeAgent struct {
	ln       net.Listener
	target   string
	handle   func(c *net.TCPConn)
	record   io.Writer // receives a copy of every byte sent to the upstream
	accepted atomic.Int64
	live     atomic.Int64 // streams being served
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func startAgent(t testing.TB, target string, handle func(c *net.TCPConn), record io.Writer) *fakeAgent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAgent{ln: ln, target: target, handle: handle, record: record, conns: map[net.Conn]struct{}{}}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.accepted.Add(1)
			a.live.Add(1)
			a.track(c, true)
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				defer a.live.Add(-1)
				defer a.track(c, false)
				if a.handle != nil {
					a.handle(c.(*net.TCPConn))
					return
				}
				a.join(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		a.mu.Lock()
		for c := range a.conns {
			c.Close()
		}
		a.mu.Unlock()
		a.wg.Wait()
	})
	return a
}

func (a *fakeAgent) track(c net.Conn, add bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if add {
		a.conns[c] = struct{}{}
	} else {
		delete(a.conns, c)
	}
}

func (a *fakeAgent) join(s *net.TCPConn) {
	defer s.Close()
	u, err := net.Dial("tcp", a.target)
	if err != nil {
		return
	}
	a.track(u, true)
	defer a.track(u, false)
	defer u.Close()
	done := make(chan struct{})
	go func() {
		var src io.Reader = s
		if a.record != nil {
			src = io.TeeReader(s, a.record)
		}
		io.Copy(u, src)
		u.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(s, u)
	s.CloseWrite()
	<-done
}

// testEndpoint is an endpoint whose streams are loopback connections to a
// fakeAgent.
type testEndpoint struct {
	id      string
	agent   *fakeAgent
	openErr error
	mu      sync.Mutex
	addrs   []string // client addresses seen by OpenStream
}

func (u *testEndpoint) ID() string { return u.id }

func (u *testEndpoint) OpenStream(ctx context.Context) (Stream, error) {
	if u.openErr != nil {
		return nil, u.openErr
	}
	if a, ok := ClientAddrFromContext(ctx); ok {
		u.mu.Lock()
		u.addrs = append(u.addrs, a.String())
		u.mu.Unlock()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.agent.ln.Addr().String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

type mapResolver map[string]Endpoint

func (m mapResolver) Resolve(host string) (Endpoint, bool) {
	u, ok := m[host]
	return u, ok
}

// harness is a proxy in front of one upstream net/http server through a
// fake agent, on a plain listener (SNI taken to be testHost) and a TLS one.
type harness struct {
	t        testing.TB
	up       *httptest.Server
	agent    *fakeAgent
	endpoint *testEndpoint
	proxy    *Proxy
	addr     string // plain HTTP; ServeConn gets sni = testHost
	tlsAddr  string
	roots    *x509.CertPool
	infos    chan RequestInfo
}

type harnessOpts struct {
	cfg    func(*Config)
	handle func(c *net.TCPConn) // custom agent
	hook   bool                 // record OnRequest into infos
	server func(*http.Server)   // adjusts the upstream server before it starts
	record io.Writer            // gets a copy of what the agent forwards
}

func newHarness(t testing.TB, handler http.Handler, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t}
	if handler != nil {
		h.up = httptest.NewUnstartedServer(handler)
		if o.server != nil {
			o.server(h.up.Config)
		}
		h.up.Start()
		t.Cleanup(h.up.Close)
	}
	target := ""
	if h.up != nil {
		target = h.up.Listener.Addr().String()
	}
	h.agent = startAgent(t, target, o.handle, o.record)
	h.endpoint = &testEndpoint{id: "ep_test", agent: h.agent}
	cfg := Config{}
	if o.hook {
		h.infos = make(chan RequestInfo, 1024)
		cfg.OnRequest = func(i *RequestInfo) {
			select {
			case h.infos <- *i:
			default:
			}
		}
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	p, err := New(cfg, mapResolver{testHost: h.endpoint})
	if err != nil {
		t.Fatal(err)
	}
	h.proxy = p
	cert, roots := testCert(t)
	h.roots = roots
	h.addr = h.serve(nil)
	h.tlsAddr = h.serve(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	return h
}

func (h *harness) serve(tc *tls.Config) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if tc == nil {
					h.proxy.ServeConn(ctx, c, testHost, "")
					return
				}
				t := tls.Server(c, tc)
				hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
				err := t.HandshakeContext(hctx)
				hcancel()
				if err != nil {
					c.Close()
					return
				}
				st := t.ConnectionState()
				h.proxy.ServeConn(ctx, t, strings.ToLower(st.ServerName), st.NegotiatedProtocol)
			}()
		}
	}()
	h.t.Cleanup(func() {
		ln.Close()
		cancel()
		wg.Wait()
	})
	return ln.Addr().String()
}

// client returns an HTTP/1.1 client whose connections all go to the plain
// listener; URLs use http://app.test.
func (h *harness) client() *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", h.addr)
		},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 64,
	}
	h.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// tlsClient returns a client for https://<name> over the TLS listener,
// speaking HTTP/2 when h2 is set and HTTP/1.1 otherwise.
func (h *harness) tlsClient(h2 bool) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", h.tlsAddr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: h.roots},
		DisableCompression:  true,
		ForceAttemptHTTP2:   h2,
		MaxIdleConnsPerHost: 64,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	h.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

type testClient struct {
	name   string
	client *http.Client
	base   string
}

// clients returns an HTTP/1.1 client over plain TCP, one over TLS and an
// HTTP/2 one, with the base URL each uses.
func (h *harness) clients() []testClient {
	return []testClient{
		{"h1", h.client(), "http://" + testHost},
		{"h1-tls", h.tlsClient(false), "https://" + testHost},
		{"h2", h.tlsClient(true), "https://" + testHost},
	}
}

// dial opens a raw connection to the plain listener.
func (h *harness) dial() net.Conn {
	h.t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	h.t.Cleanup(func() { c.Close() })
	return c
}

// testCert returns a self-signed certificate for app.test, other.test and
// *.test, and a pool that trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: testHost},
		DNSNames:              []string{testHost, "other.test", "*.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// readResponse reads one response from br for a request with method.
func readResponse(t testing.TB, br *bufio.Reader, method string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	resp.Body.Close()
	return resp, body
}

// expectClosed asserts that the server closes c (after what was read).
func expectClosed(t testing.TB, br *bufio.Reader) {
	t.Helper()
	b, err := io.ReadAll(br)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("connection not closed: %v", err)
	}
	if len(b) > 0 {
		t.Fatalf("unexpected bytes after the answer: %q", b)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
