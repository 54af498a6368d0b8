package tunnel

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Heartbeat defaults (docs/agent-protocol.md; the SDKs' muxado
// heartbeat uses the same).
const (
	DefaultHeartbeatInterval  = 10 * time.Second
	DefaultHeartbeatTolerance = 15 * time.Second
)

// maxEchoStreams bounds the heartbeat streams a peer may have us echo at
// once; an SDK opens one per session, our own peer one per beat (closed
// once echoed, so rarely two at once).
const maxEchoStreams = 4

// heartbeater sends our beats on a heartbeat stream and measures the
// round trip. If no echo arrives within interval + tolerance of the last
// one (or of the start) and nothing at all arrived from the peer in that
// time either, it calls dead; bytes from the peer prove it alive, so a
// slow link whose echoes wait behind bulk data (muxado queues frames in
// order, and the kernel's buffers hold seconds of data on a slow link) is
// not taken for a dead one; the session then closes the Mux,
// which also unblocks a beat stuck in Write or Read. Beats run on timer
// goroutines that exist only while a beat is in flight, so an idle session
// keeps no goroutine for them.
//
// When the peer is ours (perBeat), each beat opens a stream and closes it
// once echoed: between beats neither side holds a heartbeat stream, its
// buffers, or (at the peer) an echo goroutine. SDK peers answer beats with
// muxado's heartbeat responder, which never closes its side of a stream, so
// they get one stream for the whole session, as the SDKs use themselves.
type heartbeater struct {
	mux       Mux
	interval  time.Duration
	tolerance time.Duration
	perBeat   bool          // a stream per beat (see above)
	lastRecv  atomic.Uint64 // the peer's receiveCounter at the last watchdog check
	dead      func(error)   // closes the session with the given reason
	latency   atomic.Int64

	mu       sync.Mutex  // held by the beat in flight
	pokeDue  atomic.Bool // poke found a beat in flight: the next goes at once
	st       Stream
	next     *time.Timer // the next beat
	watchdog *time.Timer
	stopped  bool
}

// start sends the first beat at once (so Latency has a value early) and
// arms the watchdog.
func (h *heartbeater) start() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if rc, ok := h.mux.(receiveCounter); ok {
		h.lastRecv.Store(rc.received())
	}
	h.watchdog = time.AfterFunc(h.interval+h.tolerance, h.expired)
	h.next = time.AfterFunc(0, h.beat)
}

// receiveCounter is implemented by a Mux that counts what it receives
// from the peer: muxado frames, QUIC packets.
type receiveCounter interface {
	received() uint64
}

// expired runs when no echo arrived within interval + tolerance: the
// session is dead unless the peer sent anything meanwhile, in which case
// the watchdog waits another interval + tolerance.
func (h *heartbeater) expired() {
	if rc, ok := h.mux.(receiveCounter); ok {
		if n := rc.received(); n != h.lastRecv.Swap(n) {
			h.watchdog.Reset(h.interval + h.tolerance)
			return
		}
	}
	h.dead(ErrHeartbeatTimeout)
}

// stop ends the beats; it waits for a beat in flight, so call it after
// the Mux is closed (which unblocks that beat).
func (h *heartbeater) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	if h.next != nil {
		h.next.Stop()
		h.watchdog.Stop()
	}
	if h.st != nil {
		_ = h.st.Close()
	}
}

// beat sends one beat and waits for its echo ("tunnel heartbeat beat").
func (h *heartbeater) beat() {
	h.mu.Lock()
	defer h.endBeat()
	if h.stopped {
		return
	}
	if h.st == nil {
		ctx, cancel := context.WithTimeout(context.Background(), h.tolerance)
		st, err := h.mux.OpenStream(ctx, StreamHeartbeat)
		cancel()
		if err != nil {
			h.failed(err)
			return
		}
		h.st = st
	}
	var b [4]byte
	id := rand.Uint32()
	binary.BigEndian.PutUint32(b[:], id)
	start := time.Now()
	if _, err := h.st.Write(b[:]); err != nil {
		h.failed(err)
		return
	}
	if _, err := io.ReadFull(h.st, b[:]); err != nil {
		h.failed(err)
		return
	}
	if got := binary.BigEndian.Uint32(b[:]); got != id {
		h.dead(fmt.Errorf("%w: echo %#x for beat %#x", ErrHeartbeatTimeout, got, id))
		return
	}
	h.latency.Store(int64(time.Since(start)))
	if h.perBeat {
		_ = h.st.Close()
		h.st = nil
	}
	h.watchdog.Reset(h.interval + h.tolerance)
	h.rearmLocked()
}

// endBeat lets go of the heartbeater at the end of a beat and then
// serves a poke that came after the beat rearmed (rearmLocked saw none)
// but before it let go (poke found the lock held).
func (h *heartbeater) endBeat() {
	h.mu.Unlock()
	h.servePoke()
}

// rearmLocked schedules the next beat after a completed one: in an
// interval, or at once when poke asked for one meanwhile (its caller
// may have started waiting after this beat's echo arrived, and would
// otherwise wait for the beat after the interval).
func (h *heartbeater) rearmLocked() {
	if h.pokeDue.Swap(false) {
		h.next.Reset(0)
		return
	}
	h.next.Reset(h.interval)
}

// failed reports a broken heartbeat stream as the session's end, unless
// the Mux dies within a second (then that is the reason, found elsewhere:
// a muxado GOAWAY breaks the stream a moment before the connection ends).
func (h *heartbeater) failed(err error) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-h.mux.Done():
	case <-t.C:
		h.dead(fmt.Errorf("%w: heartbeat stream: %w", ErrHeartbeatTimeout, err))
	}
}

// echoHeartbeats answers the peer's beats on st until it ends; closing st
// then lets a peer that opens a stream per beat forget it.
func echoHeartbeats(st Stream) {
	defer st.Close()
	var b [4]byte
	for {
		if _, err := io.ReadFull(st, b[:]); err != nil {
			return
		}
		if _, err := st.Write(b[:]); err != nil {
			return
		}
	}
}

// shortBeatStreamer is implemented by a Mux that knows whether its peer
// runs this package (so closes a heartbeat stream when the beater closes
// it): then each beat uses a stream of its own.
type shortBeatStreamer interface {
	peerIsOurs() bool
}

// streamPerBeat reports whether beats on mux each open their own stream.
func streamPerBeat(mux Mux) bool {
	sb, ok := mux.(shortBeatStreamer)
	return ok && sb.peerIsOurs()
}
