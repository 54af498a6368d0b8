package httpproxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestBodyBufferGrowsWhileClientKeepsUp walks bodyBuffer through its
// sizes: it grows one size at a time after keepUpFactor times that size
// taken without a blocked write, never past bulkBufferSize, and falls back
// to the pool buffer after a blocked write or at the end of the body.
func TestBodyBufferGrowsWhileClientKeepsUp(t *testing.T) {
	p, err := New(Config{}, mapResolver{})
	if err != nil {
		t.Fatal(err)
	}
	base := p.getBuf()
	var b bodyBuffer
	b.start(p, base)
	feed := func(total int) { // a client that keeps up takes total bytes
		for left := total; left > 0; {
			n := min(left, len(b.buf()))
			b.wrote(n, 0)
			left -= n
			b.next(true, true)
		}
	}
	if got := len(b.next(true, true)); got != len(base) {
		t.Fatalf("before any write: %d-byte buffer, want the pool's %d", got, len(base))
	}
	taken := 0
	for _, size := range bulkSizes {
		need := keepUpFactor*size - 1
		feed(need)
		taken += need
		if got := len(b.buf()); got >= size {
			t.Fatalf("after %d bytes: %d-byte buffer, want less than %d", taken, got, size)
		}
		feed(len(b.buf()))
		if got := len(b.buf()); got != size {
			t.Fatalf("after %d more bytes: %d-byte buffer, want %d", keepUpFactor*size, got, size)
		}
		if held := p.bulkHeld.Load(); held != int64(size) {
			t.Fatalf("bulkHeld %d, want %d", held, size)
		}
	}
	feed(64 * bulkBufferSize)
	if got := len(b.buf()); got != bulkBufferSize {
		t.Fatalf("grew past bulkBufferSize: %d", got)
	}
	// A read that does not fill the buffer changes nothing.
	if got := len(b.next(true, false)); got != bulkBufferSize {
		t.Fatalf("a short read shrank the buffer to %d", got)
	}
	// A blocked write: the pool buffer again, and the climb starts over.
	b.wrote(bulkBufferSize, blockedWrite)
	if got := len(b.next(true, true)); got != len(base) || p.bulkHeld.Load() != 0 {
		t.Fatalf("after a blocked write: %d-byte buffer, %d bulk bytes held; want %d and 0", got, p.bulkHeld.Load(), len(base))
	}
	feed(keepUpFactor*bulkSizes[0] - 1)
	if got := len(b.buf()); got != len(base) {
		t.Fatalf("regrew to %d before the client took %d bytes", got, keepUpFactor*bulkSizes[0])
	}
	feed(len(b.buf()))
	// The end of the body returns the bulk buffer.
	if got := len(b.next(false, true)); got != len(base) || p.bulkHeld.Load() != 0 {
		t.Fatalf("after the body: %d-byte buffer, %d bulk bytes held", got, p.bulkHeld.Load())
	}
}

// stallConn is a client connection whose kernel takes budget bytes and
// then no more: the Write that crosses budget writes what fits, closes
// stalled and blocks until release is closed (then fails).
type stallConn struct {
	net.Conn
	budget  int
	stalled chan struct{}
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	written int
}

func (c *stallConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.written+len(p) <= c.budget {
		n, err := c.Conn.Write(p)
		c.written += n
		return n, err
	}
	n, err := c.Conn.Write(p[:c.budget-c.written])
	c.written += n
	if err != nil {
		return n, err
	}
	c.once.Do(func() { close(c.stalled) })
	<-c.release
	return n, net.ErrClosed
}

// bulkUpstream answers every request with bodySize bytes (Content-Length
// set), written len(chunk) at a time from chunk, until a write fails.
func bulkUpstream(bodySize int, chunk []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(bodySize))
		for left := bodySize; left > 0; left -= len(chunk) {
			if _, err := w.Write(chunk[:min(left, len(chunk))]); err != nil {
				return
			}
		}
	})
}

// TestSlowClientParksNoBulkBuffer is the slow-reader class at the proxy:
// a client that stops reading after taking some of a large response
// leaves the response holding a bulk buffer of at most 1/keepUpFactor of
// what it took (plus, on HTTP/2, the server's frame buffer), so 500 slow
// readers cannot park 256 KiB each. It fails on a proxy that moves every
// body that fills its first buffer through a fixed 256 KiB one.
func TestSlowClientParksNoBulkBuffer(t *testing.T) {
	const bodySize = 64 << 20
	chunk := make([]byte, 64<<10)
	h := newHarness(t, bulkUpstream(bodySize, chunk), harnessOpts{})
	cert, roots := testCert(t)
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	for _, proto := range []string{"h1", "h2"} {
		for _, budget := range []int{64 << 10, 1 << 20, 3 << 20} {
			t.Run(fmt.Sprintf("%s/%dKiB", proto, budget>>10), func(t *testing.T) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				sc := &stallConn{budget: budget, stalled: make(chan struct{}), release: make(chan struct{})}
				served := make(chan struct{})
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go func() {
					defer close(served)
					c, err := ln.Accept()
					if err != nil {
						return
					}
					sc.Conn = c
					tc := tls.Server(sc, srvTLS)
					if err := tc.HandshakeContext(ctx); err != nil {
						c.Close()
						return
					}
					h.proxy.ServeConn(ctx, tc, testHost, tc.ConnectionState().NegotiatedProtocol)
				}()
				tr := &http.Transport{
					DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
						var d net.Dialer
						return d.DialContext(ctx, "tcp", ln.Addr().String())
					},
					TLSClientConfig:    &tls.Config{RootCAs: roots},
					DisableCompression: true,
					ForceAttemptHTTP2:  proto == "h2",
				}
				if proto == "h1" {
					tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
				}
				defer tr.CloseIdleConnections()
				read := make(chan error, 1)
				go func() { // a client that reads all it gets
					resp, err := (&http.Client{Transport: tr}).Get("https://" + testHost + "/big")
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					read <- err
				}()
				select {
				case <-sc.stalled:
				case err := <-read:
					t.Fatalf("the response ended before the client stalled: %v", err)
				case <-time.After(30 * time.Second):
					t.Fatal("the proxy wrote less than the budget in 30 s")
				}
				held := h.proxy.bulkHeld.Load()
				slack := 0
				if proto == "h2" {
					slack = 64 << 10 // frames net/http's server buffered before the stall
				}
				if limit := int64((budget + slack) / keepUpFactor); held > limit {
					t.Errorf("the client took %d KiB and stalled: the response holds %d KiB of bulk buffer, want at most %d KiB",
						budget>>10, held>>10, limit>>10)
				}
				close(sc.release)
				cancel()
				<-read
				<-served
			})
		}
	}
}

// countingPool is a BufferPool that counts the buffers out, and all the
// Gets.
type countingPool struct {
	bp   *bufferPool
	out  atomic.Int64
	gets atomic.Int64
}

func (c *countingPool) Get() []byte  { c.out.Add(1); c.gets.Add(1); return c.bp.Get() }
func (c *countingPool) Put(b []byte) { c.out.Add(-1); c.bp.Put(b) }

// TestSlowClientHoldsOnePoolBuffer: while an HTTP/1.1 client reads a
// response slowly, its connection holds one pool buffer, the response's;
// the wait for its next request holds none (idleFill).
func TestSlowClientHoldsOnePoolBuffer(t *testing.T) {
	const bodySize = 16 << 20
	chunk := make([]byte, 64<<10)
	pool := &countingPool{bp: newBufferPool(defaultBufferSize)}
	h := newHarness(t, bulkUpstream(bodySize, chunk), harnessOpts{cfg: func(c *Config) { c.BufferPool = pool }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sc := &stallConn{budget: 64 << 10, stalled: make(chan struct{}), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		sc.Conn = c
		h.proxy.ServeConn(ctx, sc, testHost, "")
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: "+testHost+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, c)
	select {
	case <-sc.stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("the proxy wrote less than 64 KiB in 30 s")
	}
	// The request side is waiting for the next request by now or soon.
	deadline := time.Now().Add(10 * time.Second)
	for pool.out.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := pool.out.Load(); n != 1 {
		t.Errorf("%d pool buffers out while the client stalls, want 1 (the response's)", n)
	}
	close(sc.release)
	cancel()
	<-served
}

// TestSlowH2ClientHoldsSmallBuffer: an HTTP/2 client whose window held a
// write back gets the rest of its response through a slowBufferSize
// buffer, the pool buffer given back, and the whole body in the end. A
// raw client reads its first 64 KiB window, waits, grants 32 KiB and
// stops again: the copy must then wait holding only the small buffer.
func TestSlowH2ClientHoldsSmallBuffer(t *testing.T) {
	const bodySize = 1 << 20
	h := newHarness(t, bulkUpstream(bodySize, make([]byte, 64<<10)), harnessOpts{})
	fr, _, _ := rawH2Conn(t, h) // the default 65,535-byte window
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2HeaderBlock("/big"), EndStream: true, EndHeaders: true})
	got := 0
	grant := func(n uint32) {
		fr.WriteWindowUpdate(0, n)
		fr.WriteWindowUpdate(1, n)
	}
	readH2Data(t, fr, &got, 65535, bodySize)
	time.Sleep(2 * blockedWrite) // the copy's write waits for the window
	grant(32 << 10)
	readH2Data(t, fr, &got, 65535+32<<10, bodySize)
	if n := awaitSlowCopies(h, 1); n != 1 {
		t.Fatalf("%d copies hold only a small buffer, want 1: the copy kept its pool buffer after its write waited for the client's window", n)
	}
	grant(1 << 30)
	readH2Data(t, fr, &got, bodySize, bodySize)
	if n := awaitSlowCopies(h, 0); n != 0 {
		t.Fatalf("%d copies still hold a small buffer after the response", n)
	}
}

// TestH2FirstFlightHoldsSmallBuffer: a client that takes its first stream
// window (here 40 KiB, announced in its SETTINGS) and then stops must find
// the copy waiting with the small buffer only (bulkbuf.go's first flight);
// and the whole body arrives once it reads again.
func TestH2FirstFlightHoldsSmallBuffer(t *testing.T) {
	const bodySize = 1 << 20
	const window = 40 << 10
	h := newHarness(t, bulkUpstream(bodySize, make([]byte, 64<<10)), harnessOpts{})
	fr, _, _ := rawH2Conn(t, h, http2.Setting{ID: http2.SettingInitialWindowSize, Val: window})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2HeaderBlock("/big"), EndStream: true, EndHeaders: true})
	got := 0
	readH2Data(t, fr, &got, window, bodySize)
	if n := awaitSlowCopies(h, 1); n != 1 {
		t.Fatalf("%d copies hold only a small buffer, want 1: past the client's first window the copy still holds a pool buffer", n)
	}
	fr.WriteWindowUpdate(0, 1<<30)
	fr.WriteWindowUpdate(1, 1<<30)
	readH2Data(t, fr, &got, bodySize, bodySize)
	if n := awaitSlowCopies(h, 0); n != 0 {
		t.Fatalf("%d copies still hold a small buffer after the response", n)
	}
}

// awaitSlowCopies waits up to 10 s for h's proxy to count want copies
// holding only a small buffer, and returns the count it last saw.
func awaitSlowCopies(h *harness, want int64) int64 {
	deadline := time.Now().Add(10 * time.Second)
	for h.proxy.slowCopies.Load() != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return h.proxy.slowCopies.Load()
}

// A connection's first smallFrameSpan of response bodies leaves the edge
// in DATA frames of at most smallFrame bytes (net/http keeps the buffer of
// its largest frame for the connection's life); after that, frames take
// the client's full frame size again, so bulk pays nothing past the start.
func TestH2SmallFramesFirst(t *testing.T) {
	const bodySize = 1 << 20
	h := newHarness(t, bulkUpstream(bodySize, make([]byte, 64<<10)), harnessOpts{})
	fr, _, _ := rawH2Conn(t, h, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	fr.WriteWindowUpdate(0, 1<<30)
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2HeaderBlock("/big"), EndStream: true, EndHeaders: true})
	got, largestEarly, largestLate := 0, 0, 0
	for ended := false; !ended; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d bytes of the body: %v", got, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.DataFrame:
			n := len(f.Data())
			if got+n <= smallFrameSpan {
				largestEarly = max(largestEarly, n)
			} else {
				largestLate = max(largestLate, n)
			}
			got += n
			ended = f.StreamEnded()
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("after %d bytes of the body: %v", got, f)
		}
	}
	if got != bodySize {
		t.Fatalf("body: %d bytes, want %d", got, bodySize)
	}
	if largestEarly > smallFrame {
		t.Errorf("the connection's first %d body bytes came in frames of up to %d bytes, want at most %d", smallFrameSpan, largestEarly, smallFrame)
	}
	if largestLate <= smallFrame {
		t.Errorf("past the connection's first %d body bytes the largest frame had %d bytes: bulk is still cut into small frames", smallFrameSpan, largestLate)
	}
}

// A new HTTP/2 connection's first response is copied through the small
// buffer, not a pool buffer, until the connection has carried
// smallFrameSpan: a client that takes its first window and stops never
// held 16 KiB. Past the span the copy takes pool buffers again.
func TestH2NewConnectionStartsSmall(t *testing.T) {
	const bodySize = 1 << 20
	const window = 40 << 10
	pool := &countingPool{bp: newBufferPool(defaultBufferSize)}
	h := newHarness(t, bulkUpstream(bodySize, make([]byte, 64<<10)), harnessOpts{cfg: func(c *Config) { c.BufferPool = pool }})
	fr, _, _ := rawH2Conn(t, h, http2.Setting{ID: http2.SettingInitialWindowSize, Val: window})
	before := pool.gets.Load()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2HeaderBlock("/big"), EndStream: true, EndHeaders: true})
	got := 0
	readH2Data(t, fr, &got, window, bodySize)
	if n := awaitSlowCopies(h, 1); n != 1 {
		t.Fatalf("%d copies hold only a small buffer, want 1", n)
	}
	if n := pool.gets.Load() - before; n != 0 {
		t.Fatalf("the first response of a new connection took %d pool buffers before its client took its first window, want none", n)
	}
	fr.WriteWindowUpdate(0, 1<<30)
	fr.WriteWindowUpdate(1, 1<<30)
	readH2Data(t, fr, &got, bodySize, bodySize)
	if n := pool.gets.Load() - before; n == 0 {
		t.Fatal("the response never took a pool buffer, though its client took 1 MiB without waiting")
	}
}
