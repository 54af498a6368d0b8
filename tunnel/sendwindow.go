package tunnel

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Send-window autotuning between our own muxado ends (TLS ALPN TCPALPN).
//
// muxado gives every stream a fixed window that is also the receiver's
// buffer bound (LargeWindowSize, 4 MiB, between our ends), and it does not
// negotiate windows: a sender may always have 4 MiB in flight. When the
// reader stops — a public client that does not read its response — those
// 4 MiB sit in the receiver's stream buffer (the edge's, for a response),
// per stream. Our sender therefore keeps a window of its own below
// muxado's, as HTTP/2 and QUIC stacks autotune theirs: it starts at
// initialSendWindow and doubles, up to muxado's window, only while the
// reader keeps up, that is when the peer consumed a whole window within
// twice the connection's round-trip time while the sender waited for
// credit (a window-limited transfer: quic-go's rule, sender side). A
// reader slower than the link never lets it grow, so what the receiver
// buffers for it stays near initialSendWindow. The peer's window updates
// (muxado sends one per Read, for the bytes read) are the credit; the
// framer hands them to the stream's sendWindow. The receiver's own
// muxado bound stays the hard limit against a peer that ignores this.
//
// A reader slower than its window also gets no dribble: once the window's
// current epoch has lasted slowEpochRTTs round trips, and minSlowEpoch at
// least (the reader takes a window in more than that, so it has more than
// enough at hand), the sender waits until half the window is free before
// it sends again, as TCP senders avoid the silly window syndrome
// (RFC 1122 §4.2.3.4, the half-window rule). Such a reader still never runs dry: half a window
// lasts it over two round trips, and the refill takes one. And the
// receiver's buffer keeps its size: muxado's bytes.Buffer makes room for
// new bytes by sliding the unread ones down when they fill at most half
// of it, and by doubling it otherwise, which it then keeps for the
// stream's life. Refilled byte for byte, a stalled stream's buffer ended
// at twice its window or more.
const (
	// initialSendWindow is a stream's send window before autotuning.
	// The receiver keeps a stream's unread bytes in a bytes.Buffer
	// (muxado's inboundBuffer), which doubles its capacity whenever fewer
	// than 512 bytes (bytes.MinRead) are free: 16 KiB unread sit in a
	// 32 KiB buffer, 15 KiB (plus window probes) in a 16 KiB one. That is
	// what a stalled reader holds at the edge.
	initialSendWindow = 15 << 10
	// A writer that waits this long without credit sends one byte past
	// the window (a window probe, as TCP's zero-window probe), then waits
	// twice as long, up to maxProbeDelay: a peer that closed the stream
	// without reading answers the byte with a reset, which ends the wait.
	firstProbeDelay = 250 * time.Millisecond
	maxProbeDelay   = 8 * time.Second
	// minTuningRTT is the smallest round-trip time autotuning assumes:
	// window updates wait up to defaultWndIncDelay at the peer, so a
	// loopback RTT says little about how fast the reader is.
	minTuningRTT = time.Millisecond
	// slowEpochRTTs is how many round trips a window's epoch may last
	// before its reader counts as slow (the half-window rule above), and
	// minSlowEpoch how long at least: a bulk reader near the loopback's
	// speed takes a full 4 MiB window in a few milliseconds, which is
	// many round trips there, and must not wait for half-windows.
	slowEpochRTTs = 4
	minSlowEpoch  = 50 * time.Millisecond
)

// errStreamReset is what a write blocked on send-window credit returns
// when the peer reset the stream or the session died.
var errStreamReset = errors.New("tunnel: stream reset")

// sendWindow is one stream's send window (see above). The stream's writer
// calls acquire; muxado's reader goroutine (the framer) calls credit.
type sendWindow struct {
	mu       sync.Mutex
	cond     sync.Cond
	limit    int64 // current window, bytes
	max      int64 // muxado's window: the limit's ceiling
	sent     int64 // bytes written on the stream
	acked    int64 // bytes the peer read (window updates received)
	err      error // set when the stream or session ended
	deadline time.Time
	timer    *time.Timer

	// Window probes (firstProbeDelay).
	probeDelay time.Duration
	probeTimer *time.Timer
	probeDue   bool

	// Autotuning epoch: a window's worth of credit since epochAt.
	epochAt    time.Time
	epochAcked int64
	waited     bool // the writer waited for credit during this epoch

	// RTT probe: the credit for byte probeSent arrives one RTT (plus the
	// peer's read and update delay) after probeAt.
	probeSent int64
	probeAt   time.Time
	rtt       *atomic.Int64 // the connection's smallest sample, ns (shared)
}

func newSendWindow(max int64, rtt *atomic.Int64) *sendWindow {
	w := &sendWindow{limit: min(initialSendWindow, max), max: max, rtt: rtt, probeDelay: firstProbeDelay}
	w.cond.L = &w.mu
	return w
}

// acquire waits until some of n bytes may be sent and returns how many
// (at least 1, at most n), counting them as sent. It fails when the
// stream was reset, the session died, or the write deadline passed.
func (w *sendWindow) acquire(n int) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if w.err != nil {
			return 0, w.err
		}
		if !w.deadline.IsZero() && !time.Now().Before(w.deadline) {
			return 0, os.ErrDeadlineExceeded
		}
		if room := w.limit - (w.sent - w.acked); room > 0 && (2*room >= w.limit || !w.slowReader()) {
			k := int(min(int64(n), room))
			now := time.Time{}
			if w.epochAt.IsZero() || w.probeSent == 0 {
				now = time.Now()
			}
			if w.epochAt.IsZero() {
				w.epochAt, w.epochAcked = now, w.acked
			}
			w.sent += int64(k)
			if w.probeSent == 0 {
				w.probeSent, w.probeAt = w.sent, now
			}
			return k, nil
		}
		if w.probeDue {
			w.probeDue, w.probeTimer = false, nil
			w.probeDelay = min(2*w.probeDelay, maxProbeDelay)
			w.sent++
			return 1, nil
		}
		if w.probeTimer == nil {
			w.probeTimer = time.AfterFunc(w.probeDelay, w.probe)
		}
		w.waited = true
		w.cond.Wait()
	}
}

// slowReader reports whether the window's current epoch has lasted
// slowEpochRTTs round trips: the reader is slower than the window. The
// caller holds w.mu.
func (w *sendWindow) slowReader() bool {
	if w.epochAt.IsZero() {
		return false
	}
	rtt := max(time.Duration(w.rtt.Load()), minTuningRTT)
	return time.Since(w.epochAt) >= max(slowEpochRTTs*rtt, minSlowEpoch)
}

// probe lets a writer that waits for credit send a window probe.
func (w *sendWindow) probe() {
	w.mu.Lock()
	w.probeDue = true
	w.mu.Unlock()
	w.cond.Broadcast()
}

// take counts n bytes as sent without waiting (a stream's first write,
// which is at most maxPrefixedChunk plus its header).
func (w *sendWindow) take(n int) {
	w.mu.Lock()
	if w.epochAt.IsZero() {
		w.epochAt, w.epochAcked = time.Now(), w.acked
	}
	w.sent += int64(n)
	w.mu.Unlock()
}

// credit applies a window update of inc bytes from the peer.
func (w *sendWindow) credit(inc int64) {
	w.mu.Lock()
	w.acked += inc
	if w.probeTimer != nil {
		w.probeTimer.Stop()
		w.probeTimer = nil
	}
	w.probeDue, w.probeDelay = false, firstProbeDelay
	now := time.Time{}
	if w.probeSent != 0 && w.acked >= w.probeSent {
		now = time.Now()
		sample := int64(now.Sub(w.probeAt))
		for {
			cur := w.rtt.Load()
			if cur != 0 && cur <= sample || w.rtt.CompareAndSwap(cur, sample) {
				break
			}
		}
		w.probeSent = 0
	}
	if !w.epochAt.IsZero() && w.acked-w.epochAcked >= w.limit {
		if now.IsZero() {
			now = time.Now()
		}
		rtt := max(time.Duration(w.rtt.Load()), minTuningRTT)
		if w.waited && now.Sub(w.epochAt) < 2*rtt && w.limit < w.max {
			w.limit = min(2*w.limit, w.max)
		}
		w.epochAt, w.epochAcked, w.waited = now, w.acked, false
	}
	w.mu.Unlock()
	w.cond.Broadcast()
}

// fail ends the window: blocked and later acquires return err.
func (w *sendWindow) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	if w.timer != nil {
		w.timer.Stop()
	}
	if w.probeTimer != nil {
		w.probeTimer.Stop()
	}
	w.mu.Unlock()
	w.cond.Broadcast()
}

// setDeadline makes acquire fail with os.ErrDeadlineExceeded from t on
// (zero: no deadline), waking a blocked writer then.
func (w *sendWindow) setDeadline(t time.Time) {
	w.mu.Lock()
	w.deadline = t
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if !t.IsZero() {
		w.timer = time.AfterFunc(time.Until(t), func() { w.cond.Broadcast() })
	}
	w.mu.Unlock()
	w.cond.Broadcast()
}

// sendWindows maps a muxadoMux's stream IDs to their send windows.
type sendWindows struct {
	mu   sync.Mutex
	m    map[uint32]*sendWindow
	dead bool
	rtt  atomic.Int64
}

// add registers a window for stream id; on a dead session it fails at once.
func (s *sendWindows) add(id uint32, max int64) *sendWindow {
	w := newSendWindow(max, &s.rtt)
	s.mu.Lock()
	if s.dead {
		w.err = errStreamReset
	} else {
		if s.m == nil {
			s.m = make(map[uint32]*sendWindow)
		}
		s.m[id] = w
	}
	s.mu.Unlock()
	return w
}

// remove forgets stream id's window (the stream will not write again).
func (s *sendWindows) remove(id uint32) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// get returns stream id's window, or nil.
func (s *sendWindows) get(id uint32) *sendWindow {
	s.mu.Lock()
	w := s.m[id]
	s.mu.Unlock()
	return w
}

// reset fails and forgets stream id's window (the peer reset the stream).
func (s *sendWindows) reset(id uint32) {
	s.mu.Lock()
	w := s.m[id]
	delete(s.m, id)
	s.mu.Unlock()
	if w != nil {
		w.fail(errStreamReset)
	}
}

// died fails every window: the session is over.
func (s *sendWindows) died() {
	s.mu.Lock()
	s.dead = true
	m := s.m
	s.m = nil
	s.mu.Unlock()
	for _, w := range m {
		w.fail(errStreamReset)
	}
}
