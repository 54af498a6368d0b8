package tunnel

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAwaitLife: a live agent proves itself on demand even when its
// session is idle and no heartbeat is due (the beat AwaitLife sends is
// echoed); an agent that stopped reading does not, and AwaitLife ends with
// its context; after the session closes it reports ErrClosed.
func TestAwaitLife(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s := startSessions(t, tr, &fakeHandler{},
				ServerConfig{HeartbeatInterval: time.Hour, HeartbeatTolerance: time.Hour},
				ClientConfig{HeartbeatInterval: time.Hour, HeartbeatTolerance: time.Hour})
			// Both first beats are done: nothing more is due for an hour.
			waitFor(t, 10*time.Second, "first beats", func() bool {
				return s.server.Latency() > 0 && s.client.Latency() > 0
			})
			if _, ok := s.server.Heard(); !ok {
				t.Fatal("Heard: transport does not count")
			}
			for i := range 3 {
				before, _ := s.server.Heard()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := s.server.AwaitLife(ctx)
				cancel()
				if err != nil {
					t.Fatalf("AwaitLife %d on a live idle session: %v", i, err)
				}
				if after, _ := s.server.Heard(); after == before {
					t.Fatalf("AwaitLife %d returned but nothing was heard", i)
				}
			}
			_ = s.client.Close()
			s.serverErr <- <-s.serverErr // the end, kept for the cleanup
			if err := s.server.AwaitLife(context.Background()); !errors.Is(err, ErrClosed) {
				t.Fatalf("AwaitLife after the end: %v", err)
			}
		})
	}
}

// TestAwaitLifeFrozenPeer: over TLS+muxado a peer that accepts streams and
// never reads them sends nothing back (muxado acknowledges data only as it
// is read), so AwaitLife waits until its context ends.
func TestAwaitLifeFrozenPeer(t *testing.T) {
	cm, sm := muxPair(t, "tcp", MuxConfig{})
	silentPeer(t, cm)
	s := NewServerSession(sm, &fakeHandler{}, ServerConfig{HeartbeatInterval: time.Hour, HeartbeatTolerance: time.Hour, AuthTimeout: time.Hour})
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()
	t.Cleanup(func() { _ = s.Close(nil); <-errc })
	// What the peer sent while it still read (the first beat's stream
	// type) has arrived once the count stops moving.
	last, _ := s.Heard()
	for range 100 {
		time.Sleep(20 * time.Millisecond)
		n, _ := s.Heard()
		if n == last {
			break
		}
		last = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.AwaitLife(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AwaitLife on a frozen peer: %v, want the context's deadline", err)
	}
}

// TestPokeDuringBeat: a poke while a beat holds the heartbeater (its echo
// may already have arrived, before the poker read the counter) makes the
// next beat go as soon as that one ends, not an interval later: such a
// poke was lost, and a pool member's probe then waited out its timeout
// on a loaded machine (TestPoolSurvivesSilentMember, edge).
func TestPokeDuringBeat(t *testing.T) {
	fired := make(chan struct{}, 1)
	h := &heartbeater{interval: time.Hour}
	h.next = time.AfterFunc(time.Hour, func() { fired <- struct{}{} })
	defer h.next.Stop()
	h.mu.Lock() // a beat in flight
	h.poke()
	h.rearmLocked() // the beat ends
	h.mu.Unlock()
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("a poke during a beat was lost: the next beat waits an interval")
	}
	// A poke after the beat rearmed but before it let go of the
	// heartbeater is served as it lets go.
	h.mu.Lock()
	h.rearmLocked()
	h.poke()
	h.endBeat()
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("a poke between a beat's rearm and its end was lost")
	}
	// Without a poke, the next beat waits its interval.
	h.mu.Lock()
	h.rearmLocked()
	h.endBeat()
	select {
	case <-fired:
		t.Fatal("a beat went at once without a poke")
	case <-time.After(100 * time.Millisecond):
	}
}
