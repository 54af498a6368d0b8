package tunnel

import (
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// writeUntilStalled writes 16 KiB pieces on st from a goroutine and
// returns the byte counter and a channel that gets the writer's error.
func writeUntilStalled(st Stream, total int) (*atomic.Int64, chan error) {
	var written atomic.Int64
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 16<<10)
		for written.Load() < int64(total) {
			n, err := st.Write(buf)
			written.Add(int64(n))
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return &written, done
}

// waitStalled polls until n stops growing for 300 ms (or 10 s pass) and
// returns its value.
func waitStalled(t *testing.T, n *atomic.Int64) int64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last, since := n.Load(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if cur := n.Load(); cur != last {
			last, since = cur, time.Now()
		} else if time.Since(since) > 300*time.Millisecond {
			return last
		}
	}
	t.Fatalf("the writer did not stall within 10 s (%d bytes written)", last)
	return 0
}

// TestSlowReaderHoldsLittle is §3 of issue 12 at the layer that broke:
// between our muxado ends (4 MiB muxado window) a stream whose reader
// does not read must not let the peer push more than the initial send
// window into the reader's buffer; once the reader reads fast, the
// window grows and the transfer completes.
func TestSlowReaderHoldsLittle(t *testing.T) {
	client, server := muxPair(t, "tcp", MuxConfig{})
	ctx := testCtx(t, 30*time.Second)
	st, err := client.OpenStream(ctx, StreamProxy)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Without autotuning the writer stays blocked in muxado holding the
	// stream's write lock, and Close would wait for it: end the session.
	defer func() {
		if t.Failed() {
			_ = client.Close()
		}
	}()
	const total = 32 << 20
	written, done := writeUntilStalled(st, total)
	_, sst, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sst.Close()
	// The reader has read nothing: what was written sits in its buffer.
	stalled := waitStalled(t, written)
	t.Logf("the writer stalled after %d KiB with nobody reading", stalled>>10)
	if stalled > 2*initialSendWindow {
		t.Fatalf("%d KiB in flight to a reader that reads nothing; want about the initial window (%d KiB), far below muxado's %d KiB",
			stalled>>10, initialSendWindow>>10, LargeWindowSize>>10)
	}
	// A fast reader: the rest flows and the window grows.
	n, err := io.Copy(io.Discard, io.LimitReader(sst, total))
	if err != nil || n != total {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w := st.(*stream).win
	w.mu.Lock()
	limit := w.limit
	w.mu.Unlock()
	t.Logf("send window after a fast %d MiB: %d KiB", total>>20, limit>>10)
	if limit <= initialSendWindow {
		t.Fatalf("the send window stayed at %d KiB while the reader kept up", limit>>10)
	}
}

// TestSlowReaderGetsNoDribble: a reader slower than its window gets new
// bytes only once half the window is free (the half-window rule), so the
// receiver's buffer slides its unread bytes down instead of doubling.
func TestSlowReaderGetsNoDribble(t *testing.T) {
	client, server := muxPair(t, "tcp", MuxConfig{})
	defer func() { _ = client.Close() }()
	ctx := testCtx(t, 30*time.Second)
	// A prompt exchange first: the session's round-trip time comes from
	// how soon credit follows data, so it must see a reader that reads.
	prompt, err := client.OpenStream(ctx, StreamProxy)
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := prompt.Write(make([]byte, 256<<10))
		wrote <- err
	}()
	_, psst, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, psst) }()
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}

	st, err := client.OpenStream(ctx, StreamProxy)
	if err != nil {
		t.Fatal(err)
	}
	written, _ := writeUntilStalled(st, 1<<30)
	_, sst, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitStalled(t, written)
	w := st.(*stream).win
	sent := func() (sent, limit int64) {
		time.Sleep(300 * time.Millisecond) // credit and any refill arrive
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.sent, w.limit
	}
	stalled, limit := sent()
	if _, err := io.ReadFull(sst, make([]byte, 2<<10)); err != nil {
		t.Fatal(err)
	}
	// The reader took 2 KiB of a window it has held for 300 ms: the
	// writer waits (a window probe is one byte).
	if now, _ := sent(); now-stalled >= 1<<10 {
		t.Fatalf("the writer sent %d bytes after a slow reader freed 2 KiB of its %d KiB window", now-stalled, limit>>10)
	}
	// Half the window free: the writer fills it again.
	if _, err := io.ReadFull(sst, make([]byte, limit/2)); err != nil {
		t.Fatal(err)
	}
	if now, _ := sent(); now-stalled < limit/2 {
		t.Fatalf("the writer sent %d bytes after the reader freed half its %d KiB window, want at least %d", now-stalled, limit>>10, limit/2)
	}
}

// TestSendWindowWaitEnds: a writer waiting for window credit returns when
// its write deadline passes, when the peer resets the stream, and when the
// session dies — never hangs.
func TestSendWindowWaitEnds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		end   func(st, sst Stream, client Mux)
		check func(error) bool
	}{
		{"deadline", func(st, _ Stream, _ Mux) { _ = st.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)) },
			func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }},
		{"peer closes", func(_, sst Stream, _ Mux) { _ = sst.Close() }, func(err error) bool { return err != nil }},
		{"session dies", func(_, _ Stream, client Mux) { _ = client.Close() }, func(err error) bool { return err != nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := muxPair(t, "tcp", MuxConfig{})
			ctx := testCtx(t, 30*time.Second)
			st, err := client.OpenStream(ctx, StreamProxy)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			written, done := writeUntilStalled(st, 1<<30)
			_, sst, err := server.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer sst.Close()
			waitStalled(t, written)
			tc.end(st, sst, client)
			select {
			case err := <-done:
				if !tc.check(err) {
					t.Fatalf("the blocked write returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a write blocked on window credit still waits 10 s later")
			}
		})
	}
}
