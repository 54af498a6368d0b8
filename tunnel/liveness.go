package tunnel

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Proof of life on demand. A peer that died without closing its
// connection (kill -9 of a QUIC agent, a cut network path) looks alive to
// everything but the heartbeat watchdog until interval + tolerance pass:
// muxado and QUIC open streams without a round trip, so opening one
// succeeds and what is written to it goes nowhere. An edge that can choose
// between several agents (the members of an endpoint pool) asks first:
// ServerSession.AwaitLife returns once something arrives from the peer
// after the call, and sends a heartbeat beat to make a live peer send
// something. A busy session proves itself with the traffic already under
// way (bytes over TLS+muxado, packets over QUIC, acknowledgements
// included); an idle one costs one round trip.

// heardCounter is implemented by a Mux that counts what arrives from the
// peer alone (not what the connection took from us, which a dead peer's
// kernel buffers keep taking for a while).
type heardCounter interface {
	heard() uint64
}

// lifeWaker is implemented by a Mux that can wake waiters as soon as
// something arrives from the peer; a Mux without it is polled.
type lifeWaker interface {
	lifeSignal() *lifeSignal
}

// lifeSignal wakes the goroutines waiting for the peer's next bytes. The
// reader pays one atomic load per read while nobody waits.
type lifeSignal struct {
	waiting atomic.Int32
	mu      sync.Mutex
	ch      chan struct{} // closed at the next arrival; nil when nobody waits
}

// wait registers a waiter and returns the channel closed at the next
// arrival, and the function that unregisters it.
func (l *lifeSignal) wait() (<-chan struct{}, func()) {
	l.mu.Lock()
	if l.ch == nil {
		l.ch = make(chan struct{})
	}
	ch := l.ch
	l.waiting.Add(1)
	l.mu.Unlock()
	return ch, func() { l.waiting.Add(-1) }
}

// notify wakes every waiter; called by the reader after it counted bytes.
func (l *lifeSignal) notify() {
	if l.waiting.Load() == 0 {
		return
	}
	l.mu.Lock()
	if l.ch != nil {
		close(l.ch)
		l.ch = nil
	}
	l.mu.Unlock()
}

// lifePollInterval is how often AwaitLife looks at a Mux that cannot wake
// it (QUIC).
const lifePollInterval = 5 * time.Millisecond

// heard implements heardCounter: the bytes read from the peer.
func (m *muxadoMux) heard() uint64 { return m.bytesRead.Load() }

// lifeSignal implements lifeWaker.
func (m *muxadoMux) lifeSignal() *lifeSignal { return &m.life }

// heard implements heardCounter: the packets received from the peer.
func (m *quicMux) heard() uint64 { return m.conn.ConnectionStats().PacketsReceived }

// Heard returns a count of what has arrived from the agent so far (bytes
// over TLS+muxado, packets over QUIC) and whether the transport counts at
// all. It never decreases: two different values prove the agent alive
// between the two calls.
func (s *ServerSession) Heard() (uint64, bool) {
	hc, ok := s.mux.(heardCounter)
	if !ok {
		return 0, false
	}
	return hc.heard(), true
}

// AwaitLife returns nil once something arrives from the agent after the
// call began, having sent a heartbeat beat to ask for it (after the beat
// in flight, if any, whose echo may serve). It returns ctx's error when nothing
// arrived before ctx ended, and an error wrapping ErrClosed when the
// session ends first. On a transport that does not count what arrives it
// returns nil at once: such a session is taken for alive.
func (s *ServerSession) AwaitLife(ctx context.Context) error {
	hc, ok := s.mux.(heardCounter)
	if !ok {
		return nil
	}
	h0 := hc.heard()
	var sig *lifeSignal
	if lw, ok := s.mux.(lifeWaker); ok {
		sig = lw.lifeSignal()
	}
	poked := false
	var tick *time.Ticker
	for {
		var woke <-chan struct{}
		var done func()
		if sig != nil {
			woke, done = sig.wait()
		}
		// Registered before looking: an arrival after this check wakes us.
		if hc.heard() != h0 {
			if done != nil {
				done()
			}
			return nil
		}
		if !poked {
			s.hb.poke()
			poked = true
		}
		var tc <-chan time.Time
		if sig == nil {
			if tick == nil {
				tick = time.NewTicker(lifePollInterval)
				defer tick.Stop()
			}
			tc = tick.C
		}
		select {
		case <-woke:
		case <-tc:
		case <-s.mux.Done():
			if done != nil {
				done()
			}
			return fmt.Errorf("%w: %w", ErrClosed, s.err())
		case <-ctx.Done():
			if done != nil {
				done()
			}
			return ctx.Err()
		}
		if done != nil {
			done()
		}
	}
}

// poke sends a beat now, or, when one is in flight, right after it (its
// echo may already have arrived: AwaitLife reads the counter before it
// pokes), unless the beats have stopped. A beat that never completes (a
// silent peer) sends no more.
func (h *heartbeater) poke() {
	h.pokeDue.Store(true)
	h.servePoke()
}

// servePoke schedules the beat a poke asked for, unless a beat holds the
// lock: that one sees pokeDue when it rearms (rearmLocked) or, if the
// poke came after that, here again once it has let go of the lock (beat
// calls servePoke after unlocking), so no poke is left waiting for the
// interval.
func (h *heartbeater) servePoke() {
	for h.pokeDue.Load() {
		if !h.mu.TryLock() {
			return
		}
		if h.pokeDue.Swap(false) && !h.stopped && h.next != nil {
			h.next.Reset(0)
		}
		h.mu.Unlock()
	}
}
