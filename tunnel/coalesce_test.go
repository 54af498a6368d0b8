package tunnel

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
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

// writeLog is a net.Conn that records each Write as one entry.
type writeLog struct {
	net.Conn // nil: only Write, Close and SetWriteDeadline are used
	mu       sync.Mutex
	writes   [][]byte
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func (w *writeLog) Close() error                     { return nil }
func (w *writeLog) SetWriteDeadline(time.Time) error { return nil }

func (w *writeLog) log() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes)
}

func wndIncFrame(id, inc uint32) []byte {
	b := []byte{0, 0, 4, muxadoTypeWndInc << 4}
	b = binary.BigEndian.AppendUint32(b, id)
	return binary.BigEndian.AppendUint32(b, inc)
}

func dataHeader(id uint32, n int) []byte {
	b := []byte{byte(n >> 16), byte(n >> 8), byte(n), 0x1 << 4}
	return binary.BigEndian.AppendUint32(b, id)
}

// TestBatchConnDefersWindowUpdates checks that small window updates wait
// for the next other frame and go in the same write, that Close sends
// ones still waiting, and that large ones go at once.
func TestBatchConnDefersWindowUpdates(t *testing.T) {
	t.Run("ride with the next frame", func(t *testing.T) {
		w := &writeLog{}
		bc := newBatchConn(w, 64<<10, nil)
		bc.wndIncDelay = time.Hour // only the rules below may flush
		var want []byte
		for _, f := range [][]byte{wndIncFrame(1, 100), wndIncFrame(3, 12)} {
			want = append(want, f...)
			if _, err := bc.Write(f); err != nil {
				t.Fatal(err)
			}
		}
		if got := w.log(); len(got) != 0 {
			t.Fatalf("window updates alone were written: %q", got)
		}
		// A data frame whose header arrives in pieces, then its payload.
		hdr := dataHeader(5, 5)
		for _, piece := range [][]byte{hdr[:3], hdr[3:], []byte("hello")} {
			want = append(want, piece...)
			if _, err := bc.Write(piece); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 5*time.Second, "the data frame to be written", func() bool {
			return bytes.Equal(bytes.Join(w.log(), nil), want)
		})
		if got := w.log(); !bytes.HasPrefix(got[0], want[:24]) {
			t.Fatalf("first write %q does not carry both window updates", got[0])
		}
	})
	t.Run("close sends them", func(t *testing.T) {
		w := &writeLog{}
		bc := newBatchConn(w, 64<<10, nil)
		bc.wndIncDelay = time.Hour
		f := wndIncFrame(7, 1)
		if _, err := bc.Write(f); err != nil {
			t.Fatal(err)
		}
		if err := bc.Close(); err != nil {
			t.Fatal(err)
		}
		if got := bytes.Join(w.log(), nil); !bytes.Equal(got, f) {
			t.Fatalf("after Close the peer got %q, want %q", got, f)
		}
	})
	t.Run("large credit goes at once", func(t *testing.T) {
		w := &writeLog{}
		bc := newBatchConn(w, 64<<10, nil)
		bc.wndIncDelay = time.Hour
		t.Cleanup(func() { _ = bc.Close() })
		f := wndIncFrame(9, wndIncMaxCredit)
		if _, err := bc.Write(f); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the window update to be written", func() bool {
			return bytes.Equal(bytes.Join(w.log(), nil), f)
		})
	})
	t.Run("the delay ends the wait", func(t *testing.T) {
		w := &writeLog{}
		bc := newBatchConn(w, 64<<10, nil)
		bc.wndIncDelay = time.Millisecond
		t.Cleanup(func() { _ = bc.Close() })
		f := wndIncFrame(11, 10)
		if _, err := bc.Write(f); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the window update to be written", func() bool {
			return bytes.Equal(bytes.Join(w.log(), nil), f)
		})
	})
}

// TestBatchConnTrackFrames feeds frames split at every byte: the tracker
// adds up WNDINC increments and marks every other frame urgent.
func TestBatchConnTrackFrames(t *testing.T) {
	var stream []byte
	stream = append(stream, wndIncFrame(1, 0x01020304)...)
	stream = append(stream, dataHeader(1, 0)...) // empty frame (a FIN)
	stream = append(stream, wndIncFrame(3, 5)...)
	stream = append(stream, dataHeader(3, 14)...)
	stream = append(stream, wndIncFrame(1, 1)...) // payload that looks like a WNDINC
	stream = append(stream, "ab"...)
	stream = append(stream, wndIncFrame(5, 7)...)
	bc := &batchConn{}
	var urgentAt []int
	for i := range stream {
		bc.track(stream[i : i+1])
		if bc.urgent {
			urgentAt = append(urgentAt, i)
			bc.urgent = false
		}
	}
	if want := uint32(0x01020304 + 5 + 7); bc.credit != want {
		t.Fatalf("credit %#x, want %#x", bc.credit, want)
	}
	if bc.hdrN != 0 || bc.remain != 0 || bc.wndInc {
		t.Fatalf("tracker not at a frame boundary: %+v", bc)
	}
	// Urgent from the empty data frame's last header byte, then from the
	// second data frame's header through its payload.
	if len(urgentAt) != 1+1+14 || urgentAt[0] != 19 {
		t.Fatalf("urgent at %v", urgentAt)
	}
}

// sliceLog is a net.Conn that records the slices Write is given (not
// copies), to check which bytes batchConn copied.
type sliceLog struct {
	net.Conn // nil: only Write, Close and SetWriteDeadline are used
	mu       sync.Mutex
	writes   [][]byte
	data     []byte
}

func (w *sliceLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, p)
	w.data = append(w.data, p...)
	return len(p), nil
}

func (w *sliceLog) Close() error                     { return nil }
func (w *sliceLog) SetWriteDeadline(time.Time) error { return nil }

// TestBatchConnLargeWriteNotCopied: a Write of directWriteMin bytes or more
// reaches the connection as the caller's own slice, after the bytes queued
// before it, and Write returns only once it is written.
func TestBatchConnLargeWriteNotCopied(t *testing.T) {
	w := &sliceLog{}
	bc := newBatchConn(w, 256<<10, nil)
	t.Cleanup(func() { _ = bc.Close() })
	var want []byte
	small := dataHeader(1, directWriteMin)
	big := bytes.Repeat([]byte{7}, directWriteMin)
	for _, p := range [][]byte{small, big, []byte("tail")} {
		want = append(want, p...)
		if _, err := bc.Write(p); err != nil {
			t.Fatal(err)
		}
		if len(p) == len(big) {
			w.mu.Lock()
			var found bool
			for _, s := range w.writes {
				found = found || (len(s) == len(big) && &s[0] == &big[0])
			}
			w.mu.Unlock()
			if !found {
				t.Fatal("the large Write returned before the connection got the caller's slice")
			}
		}
	}
	waitFor(t, 5*time.Second, "every byte written", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.data) == len(want)
	})
	if !bytes.Equal(w.data, want) {
		t.Fatal("bytes reordered or changed")
	}
}
