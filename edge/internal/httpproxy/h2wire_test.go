package httpproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/tunnel"
	"golang.org/x/net/http2"
)

// deadlineConn counts the write deadlines set on a connection.
type deadlineConn struct {
	net.Conn
	sets atomic.Int64
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.sets.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

// TestH2WriteDeadlinesSparse: an HTTP/2 download sets a handful of write
// deadlines on the client connection, not two per DATA frame (net/http's
// WriteByteTimeout), which cost a tenth of the edge's CPU.
func TestH2WriteDeadlinesSparse(t *testing.T) {
	const bodySize = 8 << 20
	chunk := make([]byte, 64<<10)
	h := newHarness(t, bulkUpstream(bodySize, chunk), harnessOpts{})
	cert, roots := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dc := make(chan *deadlineConn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		d := &deadlineConn{Conn: c}
		dc <- d
		tc := tls.Server(d, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
		if tc.HandshakeContext(ctx) == nil {
			h.proxy.ServeConn(ctx, tc, testHost, tc.ConnectionState().NegotiatedProtocol)
		}
	}()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", ln.Addr().String())
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + testHost + "/big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != bodySize || resp.ProtoMajor != 2 {
		t.Fatalf("HTTP/%d, %d bytes, %v; want HTTP/2 and %d bytes", resp.ProtoMajor, n, err, bodySize)
	}
	if sets := (<-dc).sets.Load(); sets > 16 {
		t.Errorf("%d write deadlines set for one %d MiB HTTP/2 response (%d DATA frames), want a handful", sets, bodySize>>20, bodySize/(16<<10))
	}
}

// TestH2QueuedFramesSmallWindow: full DATA frames the wire holds back
// to write several per system call (over tunnel.BatchRecords, as the
// edge serves public clients) still reach a client whose 32 KiB stream
// window runs out mid-write, which cannot send WINDOW_UPDATE for frames it
// never got: the whole body arrives, three times over.
func TestH2QueuedFramesSmallWindow(t *testing.T) {
	const bodySize = 4 << 20
	chunk := make([]byte, 256<<10)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	h := newHarness(t, bulkUpstream(bodySize, chunk), harnessOpts{})
	cert, roots := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		tc := tls.Server(tunnel.BatchRecords(c), &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
		if tc.HandshakeContext(ctx) == nil {
			if recordBatcherOf(tc) == nil {
				t.Error("no record batcher under the connection: nothing is queued")
			}
			h.proxy.ServeConn(ctx, tc, testHost, tc.ConnectionState().NegotiatedProtocol)
		}
	}()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", ln.Addr().String())
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		HTTP2:             &http.HTTP2Config{MaxReceiveBufferPerStream: 32 << 10, MaxReceiveBufferPerConnection: 64 << 10},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	for range 3 {
		resp, err := c.Get("https://" + testHost + "/big")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.ProtoMajor != 2 || len(got) != bodySize {
			t.Fatalf("HTTP/%d, %d bytes, %v; want HTTP/2 and %d bytes", resp.ProtoMajor, len(got), err, bodySize)
		}
		for off := 0; off < bodySize; off += len(chunk) {
			if string(got[off:off+len(chunk)]) != string(chunk) {
				t.Fatalf("body differs in the chunk at %d", off)
			}
		}
	}
}

// recordScanConn follows the TLS records written to a connection and
// counts the small ones (fewer than 64 bytes of ciphertext).
type recordScanConn struct {
	net.Conn
	mu    sync.Mutex
	hdr   []byte // a record header being collected
	skip  int    // bytes of the current record's body still to pass
	small int
}

func (c *recordScanConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for b := p; len(b) > 0; {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		k := min(5-len(c.hdr), len(b))
		c.hdr = append(c.hdr, b[:k]...)
		b = b[k:]
		if len(c.hdr) == 5 {
			c.skip = int(c.hdr[3])<<8 | int(c.hdr[4])
			if c.skip < 64 {
				c.small++
			}
			c.hdr = c.hdr[:0]
		}
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestH2QueuedFramesFewRecords: the full DATA frames of an HTTP/2
// download are encrypted several at a time (what queued while the last
// write was in flight), so the frame headers that trail each frame's
// 16 KiB of data take a small TLS record per several frames, not one per
// frame (as when each frame was its own TLS write): 88–120 for 512 frames
// here, idle or with both cores busy.
func TestH2QueuedFramesFewRecords(t *testing.T) {
	const bodySize = 8 << 20
	h := newHarness(t, bulkUpstream(bodySize, make([]byte, 256<<10)), harnessOpts{})
	cert, roots := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	rc := make(chan *recordScanConn, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		sc := &recordScanConn{Conn: c}
		rc <- sc
		tc := tls.Server(tunnel.BatchRecords(sc), &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
		if tc.HandshakeContext(ctx) == nil {
			h.proxy.ServeConn(ctx, tc, testHost, tc.ConnectionState().NegotiatedProtocol)
		}
	}()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", ln.Addr().String())
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 60 * time.Second}).Get("https://" + testHost + "/big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != bodySize || resp.ProtoMajor != 2 {
		t.Fatalf("HTTP/%d, %d bytes, %v; want HTTP/2 and %d bytes", resp.ProtoMajor, n, err, bodySize)
	}
	sc := <-rc
	sc.mu.Lock()
	small := sc.small
	sc.mu.Unlock()
	t.Logf("%d small TLS records for %d full DATA frames", small, bodySize/(16<<10))
	if frames := bodySize / (16 << 10); small > frames/2 {
		t.Errorf("%d small TLS records for %d full DATA frames, want about one per three", small, frames)
	}
}

// gateConn records what is written to it; each Write waits for a token
// on gate when gate is not nil, and fails with err when err is set.
type gateConn struct {
	net.Conn
	gate   chan struct{}
	err    error
	mu     sync.Mutex
	got    []byte
	closed atomic.Bool
}

func (c *gateConn) Write(p []byte) (int, error) {
	if c.gate != nil {
		<-c.gate
	}
	if c.err != nil {
		return 0, c.err
	}
	c.mu.Lock()
	c.got = append(c.got, p...)
	c.mu.Unlock()
	return len(p), nil
}

func (c *gateConn) Close() error { c.closed.Store(true); return nil }

type nopBatcher struct{}

func (nopBatcher) HoldRecords()          {}
func (nopBatcher) ReleaseRecords() error { return nil }

// h2frame returns an HTTP/2 frame of type typ on stream 1 with n payload
// bytes of value v.
func h2frame(typ, flags byte, n int, v byte) []byte {
	f := make([]byte, h2FrameHeaderLen+n)
	f[0], f[1], f[2] = byte(n>>16), byte(n>>8), byte(n)
	f[3], f[4], f[8] = typ, flags, 1
	for i := range n {
		f[h2FrameHeaderLen+i] = v
	}
	return f
}

// TestH2WireQueue: for a client that keeps up, full DATA frames are
// queued and written by the flusher while the server goes on; a frame of
// another kind written while the queue is busy goes behind them, in
// order; Close writes what is queued before it closes; a write error of
// the flusher closes the connection and is returned by the next Write.
// A client that has not kept up holds no queue: the server's write waits
// for the connection.
func TestH2WireQueue(t *testing.T) {
	newWire := func(c *gateConn) *h2wire {
		w := &h2wire{Conn: c, batch: nopBatcher{}, closed: make(chan struct{}), qfast: true}
		w.qcond.L = &w.qmu
		return w
	}
	c := &gateConn{gate: make(chan struct{})}
	w := newWire(c)
	data1 := h2frame(h2FrameData, 0, maxRecordPayload, 'a')
	hdrs := h2frame(h2FrameHeaders, 0, 40, 'h')
	data2 := h2frame(h2FrameData, h2FlagEndStream, maxRecordPayload, 'b')
	wrote := make(chan error, 1)
	go func() {
		for _, f := range [][]byte{data1, hdrs, data2} {
			if _, err := w.Write(f); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	// The three writes return while the connection takes nothing (the
	// flusher waits at the gate with the first frame).
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's writes waited for the connection: nothing was queued")
	}
	closed := make(chan struct{})
	go func() { _ = w.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned before the queued frames were written")
	case <-time.After(50 * time.Millisecond):
	}
	close(c.gate) // the client reads again
	<-closed
	want := string(data1) + string(hdrs) + string(data2)
	if c.mu.Lock(); string(c.got) != want {
		t.Errorf("the connection got %d bytes, want the three frames in order (%d bytes)", len(c.got), len(want))
	}
	c.mu.Unlock()
	if !c.closed.Load() {
		t.Error("Close did not close the connection")
	}

	broken := &gateConn{err: errors.New("connection reset")}
	w = newWire(broken)
	if _, err := w.Write(data1); err != nil {
		t.Fatalf("a queued write failed at once: %v", err)
	}
	if err := w.waitQueue(); err == nil {
		t.Fatal("the flusher's write error was lost")
	}
	if !broken.closed.Load() {
		t.Error("a failed flush left the connection open")
	}
	if _, err := w.Write(hdrs); err == nil {
		t.Error("a Write after the flusher failed succeeded")
	}

	slow := &gateConn{gate: make(chan struct{})}
	w = newWire(slow)
	w.qfast = false
	go func() { _, err := w.Write(data1); wrote <- err }()
	select {
	case <-wrote:
		t.Fatal("a DATA frame for a client that has not kept up was queued")
	case <-time.After(50 * time.Millisecond):
	}
	close(slow.gate)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

// TestH2WireKeepUp: queueing starts once the client took h2FastAfter with
// no write blocked, and a blocked write stops it and starts the count
// again.
func TestH2WireKeepUp(t *testing.T) {
	w := &h2wire{}
	for moved := 0; moved < h2FastAfter-maxRecordPayload; moved += maxRecordPayload {
		w.keptUpLocked(maxRecordPayload, time.Millisecond)
	}
	if w.qfast {
		t.Fatalf("queueing after %d bytes, before h2FastAfter (%d)", w.qmoved, h2FastAfter)
	}
	w.keptUpLocked(maxRecordPayload, time.Millisecond)
	if !w.qfast {
		t.Fatalf("no queueing after %d bytes taken promptly", w.qmoved)
	}
	w.keptUpLocked(maxRecordPayload, blockedWrite)
	if w.qfast || w.qmoved != 0 {
		t.Fatalf("a blocked write left queueing %v with %d bytes counted", w.qfast, w.qmoved)
	}
}

// TestH2WireReadsInitialWindow: the wire takes the client's
// SETTINGS_INITIAL_WINDOW_SIZE from SETTINGS frames however the bytes are
// split, the last value winning, and ignores SETTINGS acknowledgements.
func TestH2WireReadsInitialWindow(t *testing.T) {
	var in bytes.Buffer
	in.WriteString(h2ClientPreface)
	fr := http2.NewFramer(&in, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 12345})
	first := in.Len()
	fr.WriteSettingsAck()
	fr.WritePing(false, [8]byte{0, 4, 0, 0, 0, 9}) // looks like a setting: must not count
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 777})
	raw := in.Bytes()
	for _, step := range []int{1, 5, 7, len(raw)} {
		c1, c2 := net.Pipe()
		go func() {
			c2.Write(raw)
			c2.Close()
		}()
		w := newH2Wire(c1, &h2conn{p: &Proxy{}}, -1)
		if v := w.initialWindow.Load(); v != h2DefaultWindow {
			t.Fatalf("before any SETTINGS: %d, want %d", v, h2DefaultWindow)
		}
		buf := make([]byte, step)
		for read := 0; read < len(raw); {
			n, err := w.Read(buf)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			read += n
			if read == first {
				if v := w.initialWindow.Load(); v != 12345 {
					t.Fatalf("step %d: after the first SETTINGS: %d, want 12345", step, v)
				}
			}
		}
		if v := w.initialWindow.Load(); v != 777 {
			t.Fatalf("step %d: %d, want 777", step, v)
		}
		c1.Close()
	}
}

// TestH2ServedOnAcceptingGoroutine: net/http's HTTP/2 connection handler
// runs on the goroutine that took the connection (serveH2), not behind
// http.Server's per-connection goroutine with its HTTP/1.1 buffers.
func TestH2ServedOnAcceptingGoroutine(t *testing.T) {
	const conns = 3
	h := newHarness(t, bulkUpstream(1<<20, make([]byte, 64<<10)), harnessOpts{})
	for i := 0; i < conns; i++ {
		fr, _, _ := rawH2Conn(t, h)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2HeaderBlock("/big"), EndStream: true, EndHeaders: true})
		got := 0
		readH2Data(t, fr, &got, 1, 1<<20) // the request is in flight
	}
	buf := make([]byte, 8<<20)
	stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
	proxied, loops := 0, 0
	for _, g := range stacks {
		serving := strings.Contains(g, "httpproxy.(*Proxy).serveH2(")
		loop := strings.Contains(g, "http2serverConn).serve(")
		if serving {
			proxied++
		}
		if loop {
			loops++
		}
		if serving != loop {
			t.Errorf("a goroutine runs serveH2 without the connection's serve loop or the other way round:\n%s", g)
		}
	}
	// At least: connections of earlier tests may still be closing.
	if proxied < conns || loops < conns {
		t.Fatalf("%d goroutines in serveH2 and %d HTTP/2 serve loops, want at least %d of each", proxied, loops, conns)
	}
}

// TestH2ClientPreface: an "h2" connection that does not start with the
// client preface is closed unanswered, and one that sends nothing is
// closed after the header read timeout.
func TestH2ClientPreface(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{cfg: func(c *Config) { c.HeaderReadTimeout = 200 * time.Millisecond }})
	for _, send := range []string{"GET / HTTP/1.1\r\nHost: " + testHost + "\r\n\r\nPRI * HTTP/2.0", ""} {
		conn, err := tls.Dial("tcp", h.tlsAddr, &tls.Config{RootCAs: h.roots, ServerName: testHost, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, send)
		start := time.Now()
		b, err := io.ReadAll(conn)
		conn.Close()
		if len(b) != 0 || err != nil {
			t.Errorf("after %q: got %q, %v; want the connection closed unanswered", send, b, err)
		}
		if send == "" && time.Since(start) < 150*time.Millisecond {
			t.Errorf("a silent connection was closed after %v, before the 200ms header read timeout", time.Since(start))
		}
	}
}
