package tunnel

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// TestFrameSizer: DATA frames start at minDataFrame, grow with the rate
// the connection takes bytes at (what it moves in frameAirtime, in 16 KiB
// steps) up to maxDataFrame, are not re-measured within sizerInterval, and
// shrink again when the rate falls (a slow link's 64 KB/s keeps them at
// the floor).
func TestFrameSizer(t *testing.T) {
	var written atomic.Uint64
	clock := time.Unix(1_800_000_000, 0)
	f := newFrameSizer(&written, func() time.Time { return clock })
	step := func(bytes uint64, d time.Duration) int {
		written.Add(bytes)
		clock = clock.Add(d)
		return f.limit()
	}
	if got := f.limit(); got != minDataFrame {
		t.Fatalf("first limit %d, want %d", got, minDataFrame)
	}
	for _, c := range []struct {
		name  string
		bytes uint64
		d     time.Duration
		want  int
	}{
		{"a burst within the interval is not measured yet", 50 << 20, 100 * time.Millisecond, minDataFrame},
		{"400 MiB/s", 60 << 20, 200 * time.Millisecond, maxDataFrame}, // 110 MiB in 300 ms
		{"a slow link, 64 KB/s", 16_000, 250 * time.Millisecond, minDataFrame},
		{"6.4 MB/s: 128,000 bytes in 20 ms, in 16 KiB steps", 1_600_000, 250 * time.Millisecond, 112 << 10},
		{"idle for a minute", 0, time.Minute, minDataFrame},
		{"a socket buffer's worth at once, then a slow link", 512 << 10, 250 * time.Millisecond, minDataFrame},
	} {
		if got := step(c.bytes, c.d); got != c.want {
			t.Errorf("%s: limit %d, want %d", c.name, got, c.want)
		}
	}
}

// rawWriteLog is a rawStream that records the size of each raw Write.
type rawWriteLog struct {
	rawStream
	sizes []int
}

func (w *rawWriteLog) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return len(p), nil
}

// TestStreamWritesFollowSizer: a stream's Write goes out in raw writes of
// its sizer's limit: 64 KiB ones at first, 256 KiB ones once the
// connection has taken bytes at a fast link's rate.
func TestStreamWritesFollowSizer(t *testing.T) {
	var written atomic.Uint64
	clock := time.Unix(1_800_000_000, 0)
	raw := &rawWriteLog{}
	st := newTypedStream(raw, nil, nil, nil)
	st.sizer = newFrameSizer(&written, func() time.Time { return clock })
	p := make([]byte, 1<<20)
	if n, err := st.Write(p); n != len(p) || err != nil {
		t.Fatal(n, err)
	}
	written.Add(100 << 20)
	clock = clock.Add(time.Second)
	if n, err := st.Write(p); n != len(p) || err != nil {
		t.Fatal(n, err)
	}
	if len(raw.sizes) != 16+4 || raw.sizes[0] != 64<<10 || raw.sizes[15] != 64<<10 || raw.sizes[16] != 256<<10 || raw.sizes[19] != 256<<10 {
		t.Fatalf("raw writes %v, want 16 of 64 KiB then 4 of 256 KiB", raw.sizes)
	}
}

// TestFramesGrowOnAFastLink: over a real TLS+muxado session on loopback,
// after a few hundred milliseconds of bulk writes the session's frames
// are larger than the slow-link floor.
func TestFramesGrowOnAFastLink(t *testing.T) {
	cm, sm := muxPair(t, "tcp", MuxConfig{})
	ctx := testCtx(t, 20*time.Second)
	go func() {
		_, st, err := sm.AcceptStream(context.WithoutCancel(ctx))
		if err == nil {
			_, _ = io.Copy(io.Discard, st)
		}
	}()
	st, err := cm.OpenStream(ctx, StreamProxy)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := make([]byte, 256<<10)
	sizer := cm.(*muxadoMux).sizer
	for start := time.Now(); time.Since(start) < 5*time.Second && sizer.limit() == minDataFrame; {
		if _, err := st.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if got := sizer.limit(); got <= minDataFrame {
		t.Fatalf("frames stayed at %d bytes after 5 s of bulk writes on loopback", got)
	}
}
