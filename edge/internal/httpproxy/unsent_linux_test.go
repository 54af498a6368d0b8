package httpproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestServeConnLimitsUnsent: the TCP connection under a public client
// connection (here under crypto/tls) queues at most maxUnsent bytes unsent
// once the proxy serves it, so a client that does not read is seen to
// stall after its receive window plus maxUnsent, not after the kernel's
// whole send buffer (bulkbuf.go).
func TestServeConnLimitsUnsent(t *testing.T) {
	h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), harnessOpts{})
	cert, roots := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- c.(*net.TCPConn)
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.HandshakeContext(ctx) == nil {
			h.proxy.ServeConn(ctx, tc, testHost, "")
		}
	}()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", ln.Addr().String())
		},
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + testHost + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c := <-accepted
	got, err := notSentLowat(c)
	if err != nil {
		t.Fatal(err)
	}
	if got != maxUnsent {
		t.Fatalf("TCP_NOTSENT_LOWAT %d on the served connection, want %d", got, maxUnsent)
	}
}

// awaitParked waits up to 10 s for want copies or connections to wait
// for a full client socket (Proxy.parked), failing with what otherwise.
func awaitParked(t *testing.T, p *Proxy, want int64, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.parked.Load() != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if p.parked.Load() != want {
		t.Fatal(what)
	}
}

// servedConns returns how many client connections p serves now.
func servedConns(p *Proxy) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// getBig dials the harness's plain or TLS listener, sends GET /big
// and reads nothing; the connection is closed at cleanup.
func getBig(t *testing.T, h *harness, withTLS bool) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	if withTLS {
		c, err = tls.Dial("tcp", h.tlsAddr, &tls.Config{RootCAs: h.roots, ServerName: testHost, NextProtos: []string{"http/1.1"}})
	} else {
		c, err = net.Dial("tcp", h.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: "+testHost+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStalledClientParksBuffers: an HTTP/1.1 client that stops reading a
// large response, over plain TCP and over TLS, fills its socket
// (maxUnsent unsent); the response copy then waits for room holding no
// pool buffer (and so no TLS record under a blocked write), the request
// side holding none either. When the client reads again it gets every
// byte of the body. A build whose copy writes into the full socket never
// waits, and its blocked write holds the response's pool buffer.
func TestStalledClientParksBuffers(t *testing.T) {
	const bodySize = 8 << 20
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(i % 251)
	}
	pool := &countingPool{bp: newBufferPool(defaultBufferSize)}
	h := newHarness(t, bulkUpstream(bodySize, chunk), harnessOpts{cfg: func(c *Config) { c.BufferPool = pool }})
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[withTLS], func(t *testing.T) {
			c := getBig(t, h, withTLS)
			// The client reads nothing now: the copy fills the socket,
			// then waits.
			awaitParked(t, h.proxy, 1, "the response copy never waited for the client's full socket")
			if n := pool.out.Load(); n != 0 {
				t.Fatalf("%d pool buffers out while the client does not read, want 0", n)
			}
			if n := h.proxy.Counts().WaitingForClient; n != 1 {
				t.Fatalf("Counts().WaitingForClient = %d while the copy waits, want 1", n)
			}
			// Reading again, the client gets the whole body.
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil || n != bodySize {
				t.Fatalf("body: %d bytes, %v; want %d", n, err, bodySize)
			}
			// The next subtest counts buffers afresh: this connection ends first.
			c.Close()
			for deadline := time.Now().Add(10 * time.Second); servedConns(h.proxy) != 0 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// TestStalledClientTimesOut: a response copy waiting for a client that
// never reads again ends with the idle timeout, as a blocked write does,
// and the client never gets the whole body.
func TestStalledClientTimesOut(t *testing.T) {
	const bodySize = 8 << 20
	h := newHarness(t, bulkUpstream(bodySize, make([]byte, 64<<10)), harnessOpts{cfg: func(c *Config) { c.IdleTimeout = 300 * time.Millisecond }})
	c := getBig(t, h, false)
	awaitParked(t, h.proxy, 1, "the response copy never waited for the client's full socket")
	// The edge ends the connection (it is no longer served).
	deadline := time.Now().Add(10 * time.Second)
	for servedConns(h.proxy) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if servedConns(h.proxy) != 0 {
		t.Fatal("a client that stopped reading still held its connection 10 s later (idle timeout 300 ms)")
	}
	if n := h.proxy.parked.Load(); n != 0 {
		t.Fatalf("%d copies still waiting after the connection ended", n)
	}
	n, _ := io.Copy(io.Discard, c)
	if n >= bodySize {
		t.Fatalf("the client got %d bytes, the whole body, from a connection that timed out", n)
	}
}

// TestStalledH2ClientParks: an HTTP/2 client with a large window (as
// browsers announce) whose network stops taking bytes — here it stops
// reading its socket — fills its socket; the connection's writes then
// wait for room (h2wire.roomFor) instead of blocking inside crypto/tls
// with a record in hand, and when the client reads again it gets the
// whole body. A build that writes into the full socket never waits.
func TestStalledH2ClientParks(t *testing.T) {
	const bodySize = 8 << 20
	h := newHarness(t, bulkUpstream(bodySize, make([]byte, 64<<10)), harnessOpts{})
	fr, _, _ := rawH2Conn(t, h)
	const window = 1 << 30
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: window})
	fr.WriteWindowUpdate(0, window-65535)
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2HeaderBlock("/big"), EndStream: true, EndHeaders: true})
	// The client reads nothing now.
	awaitParked(t, h.proxy, 1, "the connection never waited for the client's full socket")
	got := 0
	readH2Data(t, fr, &got, bodySize, bodySize)
}
