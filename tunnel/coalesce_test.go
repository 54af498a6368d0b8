package tunnel

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestBatchConnOrderAndBackpressure writes many chunks, some larger than
// the buffer bound, through a small batchConn: every byte arrives in order
// and Close flushes the tail.
func TestBatchConnOrderAndBackpressure(t *testing.T) {
	check := goroutineBaseline(t)
	c1, c2 := net.Pipe()
	closed := make(chan struct{})
	bc := newBatchConn(c1, 1024, func() { close(closed) })
	var want bytes.Buffer
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c2)
		got <- b
	}()
	for i := 0; i < 200; i++ {
		chunk := make([]byte, 1+i*37%3000) // up to ~3× the bound
		_, _ = rand.Read(chunk)
		want.Write(chunk)
		if n, err := bc.Write(chunk); err != nil || n != len(chunk) {
			t.Fatalf("write %d: %d %v", i, n, err)
		}
	}
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}
	<-closed
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("got %d bytes, want %d (or reordered)", len(b), want.Len())
	}
	if _, err := bc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := bc.Close(); err != nil {
		t.Fatal("second close:", err)
	}
	check()
}

// TestBatchConnStickyError checks that a failed flush surfaces on later
// writes and closes the connection (so muxado's reader ends too).
func TestBatchConnStickyError(t *testing.T) {
	c1, c2 := net.Pipe()
	bc := newBatchConn(c1, 1024, nil)
	t.Cleanup(func() { _ = bc.Close() })
	_ = c2.Close() // the peer is gone: the flusher's write fails
	if _, err := bc.Write([]byte("first")); err != nil {
		t.Fatalf("the first write only queues: %v", err)
	}
	waitFor(t, 5*time.Second, "the write error to surface", func() bool {
		_, err := bc.Write([]byte("again"))
		return err != nil
	})
	if _, err := c1.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection should be closed after a write error")
	}
}

// TestBatchConnCloseStalledPeer checks that Close returns although the
// peer never reads (the flush is bounded).
func TestBatchConnCloseStalledPeer(t *testing.T) {
	c1, c2 := net.Pipe()
	t.Cleanup(func() { _ = c2.Close() })
	bc := newBatchConn(c1, 1024, nil)
	_, _ = bc.Write(make([]byte, 100))
	done := make(chan struct{})
	go func() {
		_ = bc.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * closeFlushTimeout):
		t.Fatal("Close hung on a stalled peer")
	}
}

// TestBatchConnIdleReleasesBuffers checks that an idle connection holds
// no buffers and no goroutine (memory per idle session).
func TestBatchConnIdleReleasesBuffers(t *testing.T) {
	c1, c2 := net.Pipe()
	go func() { _, _ = io.Copy(io.Discard, c2) }()
	bc := newBatchConn(c1, 4096, nil)
	t.Cleanup(func() { _ = bc.Close(); _ = c2.Close() })
	for i := 0; i < 10; i++ {
		_, _ = bc.Write(make([]byte, 3000))
	}
	waitFor(t, 5*time.Second, "buffers released and flusher gone", func() bool {
		bc.mu.Lock()
		defer bc.mu.Unlock()
		return bc.buf == nil && bc.spare == nil && !bc.flushing
	})
}

// TestOpenProxyOneFrame reads the raw muxado frames of a proxy stream: the
// stream type, the header and the first bytes share one SYN DATA frame.
func TestOpenProxyOneFrame(t *testing.T) {
	c1, c2 := net.Pipe()
	m := NewMuxadoMux(c1, true, MuxConfig{})
	t.Cleanup(func() { _ = m.Close() })
	t.Cleanup(func() { _ = c2.Close() })
	s := NewServerSession(m, &fakeHandler{}, ServerConfig{})
	s.authed.Store(true)
	hdr := &ProxyHeader{ID: "bind_1", ClientAddr: "203.0.113.7:5000", Proto: "https", EdgeType: "3"}
	st, err := s.OpenProxy(testCtx(t, 10*time.Second), hdr)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := st.Write([]byte("GET / HTTP/1.1\r\n\r\n")); errc <- err }()
	payload := readFirstFrame(t, c2)
	want := AppendStreamType(nil, StreamProxy)
	want, _ = AppendProxyHeader(want, hdr)
	want = append(want, "GET / HTTP/1.1\r\n\r\n"...)
	if !bytes.Equal(payload, want) {
		t.Fatalf("first frame payload %q, want %q", payload, want)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
