package tunnel

import (
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// TestQUICStalledStreamsDoNotStarveSession: proxy streams whose edge side
// does not read (public clients that stopped reading their responses) each
// keep only their own receive window; the other streams of the QUIC
// session still get their bytes. With quic-go's defaults (512 KiB per
// stream, a 768 KiB connection window that grows only while data is read)
// the first two stalled streams took the whole connection window and every
// other stream of the agent waited behind them.
func TestQUICStalledStreamsDoNotStarveSession(t *testing.T) {
	const stalled = 64
	agent, edge := muxPair(t, "quic", MuxConfig{})
	ctx := testCtx(t, 30*time.Second)
	chunk := make([]byte, 4<<10)
	var sent [stalled]atomic.Int64 // bytes the agent wrote on each stalled stream
	// The agent answers each proxy stream: stream i < stalled with 1 MiB
	// in 4 KiB writes, the last with "hello".
	go func() {
		for {
			_, st, err := agent.AcceptStream(ctx)
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				var b [1]byte
				if _, err := io.ReadFull(st, b[:]); err != nil {
					return
				}
				if b[0] == 0xff {
					_, _ = st.Write([]byte("hello"))
					return
				}
				for range (1 << 20) / len(chunk) { // blocks on flow control: the edge never reads
					n, err := st.Write(chunk)
					sent[b[0]].Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	for i := range stalled {
		st, err := edge.OpenStream(ctx, StreamProxy)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Every stalled stream gets a window's worth through before it stalls.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < stalled; {
		if sent[i].Load() >= 16<<10 {
			i++
			continue
		}
		if time.Now().After(deadline) {
			var total int64
			for j := range sent {
				total += sent[j].Load()
			}
			t.Fatalf("stalled stream %d got %d bytes through (all %d: %d KiB): starved by the others", i, sent[i].Load(), stalled, total>>10)
		}
		time.Sleep(5 * time.Millisecond) // polling
	}
	st, err := edge.OpenStream(ctx, StreamProxy)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Write([]byte{0xff}); err != nil {
		t.Fatal(err)
	}
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 5)
	if _, err := io.ReadFull(st, got); err != nil || string(got) != "hello" {
		t.Fatalf("the stream after %d stalled ones read %q, %v; want \"hello\"", stalled, got, err)
	}
}
