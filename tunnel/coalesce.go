package tunnel

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// closeFlushTimeout bounds how long closing a batchConn waits for queued
// bytes (muxado's GOAWAY, a last response) to reach a stalled peer.
const closeFlushTimeout = time.Second

// Window update deferral (NewMuxadoMux sets batchConn.wndIncDelay).
// muxado sends a WNDINC frame after every stream Read; for a small request
// or response that is a TLS record, a write and a wake-up of the peer's
// reader of its own, each way. Queued WNDINC frames alone wait (at most
// wndIncDelay) for the next frame that must go now, and go with it.
const (
	// defaultWndIncDelay bounds how long a window update waits.
	defaultWndIncDelay = 2 * time.Millisecond
	// wndIncMaxCredit: window updates that add up to this much go at once,
	// so a sender never waits on a deferred one: it is at most the
	// smallest window a sender keeps (initialSendWindow, sendwindow.go),
	// and the peer's view of a window is never short by more than this.
	// (Above it, a response longer than the first window waited
	// defaultWndIncDelay for its second.)
	wndIncMaxCredit = initialSendWindow
	// wndIncMaxQueued bounds the bytes of deferred window updates.
	wndIncMaxQueued = 1 << 10
)

// directWriteMin is the smallest Write a batchConn does not copy: the
// flusher writes it from the caller's slice (after what was queued before
// it) while the caller waits. muxado writes a DATA frame's payload with a
// Write of its own, and bulk streams write 256 KiB at a time: a copy of
// those is about 5% of the agent's CPU on a download, while a wait costs
// the same two wake-ups a full buffer does.
const directWriteMin = 64 << 10

// muxado frame header: 24-bit length, 4-bit type and 4-bit flags, 32-bit
// stream ID (golang.ngrok.com/muxado/v2/frame).
const (
	muxadoHeaderSize = 8
	muxadoTypeWndInc = 0x2
)

// batchConn sits between muxado and the TLS connection. muxado's single
// writer goroutine writes every frame as two Writes (header, payload) and a
// window update per Read; written straight to TLS that is two records and
// two syscalls per frame. batchConn's Write only copies into a buffer; a
// flusher goroutine writes whatever accumulated while its previous write
// was in flight, so many frames share a TLS record and a syscall, and an
// idle connection adds no latency (the first byte starts a flush at once).
//
// The flusher runs only while there is something to write: Write starts it
// (a little later when only window updates wait, see wndIncDelay) and it
// ends when the buffer is drained, so an idle session costs no goroutine
// and no buffer. The buffer is bounded (Write blocks when limit
// bytes are queued), a write error is returned by later Writes and closes
// the connection so muxado's reader ends too, and Close flushes what is
// queued (bounded by closeFlushTimeout) before closing. A Write of
// directWriteMin bytes or more is not copied: it returns once the flusher
// has written it.
type batchConn struct {
	net.Conn
	limit   int
	onClose func()
	records *recordConn    // under conn when it is a tls.Conn over BatchRecords
	written *atomic.Uint64 // bytes written to conn (liveness, heartbeat.go)

	mu       sync.Mutex
	cond     sync.Cond // signalled when the flusher frees room or ends
	buf      []byte    // queued bytes
	spare    []byte    // the flusher's other buffer
	direct   []byte    // a large Write's bytes, written after buf; nil once written
	err      error     // first write error
	flushing bool      // a flusher goroutine is running
	closing  bool

	// Window update deferral, only when wndIncDelay > 0 (the bytes
	// written are muxado frames, the first written from its first byte).
	wndIncDelay time.Duration
	urgent      bool        // something other than window updates is queued
	credit      uint32      // window increments queued
	timer       *time.Timer // starts a flush of deferred window updates
	timerArmed  bool
	hdr         [muxadoHeaderSize + 4]byte // the frame header (and WNDINC body) being written
	hdrN        int                        // bytes of hdr seen
	remain      int                        // bytes left of the current frame after its header
	wndInc      bool                       // the current frame is a WNDINC

	// writeShut: CloseWrite closed the sending half; later Writes are
	// discarded (the session is going away and nothing more may go out).
	writeShut bool

	closeOnce sync.Once
	closeErr  error
}

// batchBufPools holds buffers by capacity (one pool per configured limit).
var batchBufPools sync.Map // int → *sync.Pool

func batchPool(limit int) *sync.Pool {
	if p, ok := batchBufPools.Load(limit); ok {
		return p.(*sync.Pool)
	}
	p, _ := batchBufPools.LoadOrStore(limit, &sync.Pool{New: func() any { b := make([]byte, 0, limit); return &b }})
	return p.(*sync.Pool)
}

// newBatchConn wraps conn. onClose (may be nil) runs once, after the
// connection is closed.
func newBatchConn(conn net.Conn, limit int, onClose func()) *batchConn {
	c := &batchConn{Conn: conn, limit: limit, onClose: onClose, records: recordConnOf(conn), written: new(atomic.Uint64)}
	c.cond.L = &c.mu
	return c
}

func (c *batchConn) getBuf() []byte {
	return (*batchPool(c.limit).Get().(*[]byte))[:0]
}

func (c *batchConn) putBuf(b []byte) {
	if cap(b) != c.limit {
		return
	}
	b = b[:0]
	batchPool(c.limit).Put(&b)
}

// Write queues p and makes sure a flusher runs. It blocks only while
// limit bytes are queued; it fails with the first write error or
// net.ErrClosed.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writeShut {
		return len(p), nil
	}
	if len(p) >= directWriteMin {
		return c.writeDirectLocked(p)
	}
	n := 0
	for len(p) > 0 {
		if c.writeShut {
			return n + len(p), nil
		}
		if c.err != nil {
			return n, c.err
		}
		if c.closing {
			return n, net.ErrClosed
		}
		if c.buf == nil {
			c.buf = c.getBuf()
		}
		room := c.limit - len(c.buf)
		if room <= 0 {
			if !c.flushing { // deferred window updates fill it
				c.flushing = true
				go c.flush()
			}
			c.cond.Wait()
			continue
		}
		k := min(room, len(p))
		c.buf = append(c.buf, p[:k]...)
		if c.wndIncDelay > 0 {
			c.track(p[:k])
		}
		p = p[k:]
		n += k
		if !c.flushing {
			if c.wndIncDelay > 0 && !c.urgent && c.credit < wndIncMaxCredit && len(c.buf) < wndIncMaxQueued {
				c.armLocked()
				continue
			}
			c.flushing = true
			go c.flush()
		}
	}
	return n, nil
}

// writeDirectLocked has the flusher write p after what is queued, without
// copying it, and waits until it is written.
func (c *batchConn) writeDirectLocked(p []byte) (int, error) {
	for c.direct != nil && c.err == nil && !c.closing { // one at a time (muxado has one writer)
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.closing {
		return 0, net.ErrClosed
	}
	if c.wndIncDelay > 0 {
		c.track(p)
	}
	c.direct = p
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	for c.direct != nil && c.err == nil {
		c.cond.Wait()
	}
	if c.direct != nil { // the flusher failed before it got to p
		c.direct = nil
		c.cond.Broadcast()
		return 0, c.err
	}
	return len(p), nil
}

// track follows muxado's frame boundaries through the bytes queued: it
// adds up the increments of WNDINC frames and sets urgent for any other
// frame.
func (c *batchConn) track(p []byte) {
	for len(p) > 0 {
		switch {
		case c.hdrN < muxadoHeaderSize: // a frame header
			k := min(muxadoHeaderSize-c.hdrN, len(p))
			copy(c.hdr[c.hdrN:], p[:k])
			c.hdrN += k
			p = p[k:]
			if c.hdrN < muxadoHeaderSize {
				continue
			}
			c.remain = int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
			c.wndInc = c.hdr[3]>>4 == muxadoTypeWndInc && c.remain == 4
			if !c.wndInc {
				c.urgent = true
			}
			if c.remain == 0 {
				c.hdrN = 0
			}
		case c.wndInc: // a WNDINC's increment
			k := min(c.remain, len(p))
			copy(c.hdr[c.hdrN:], p[:k])
			c.hdrN += k
			c.remain -= k
			p = p[k:]
			if c.remain == 0 {
				b := c.hdr[muxadoHeaderSize:]
				c.credit += uint32(b[0]&0x7f)<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
				c.wndInc, c.hdrN = false, 0
			}
		default: // another frame's body (it may go on after a flush took its start)
			c.urgent = true
			k := min(c.remain, len(p))
			c.remain -= k
			p = p[k:]
			if c.remain == 0 {
				c.hdrN = 0
			}
		}
	}
}

// armLocked makes sure deferred window updates are flushed within
// c.wndIncDelay.
func (c *batchConn) armLocked() {
	if c.timerArmed {
		return
	}
	c.timerArmed = true
	if c.timer == nil {
		c.timer = time.AfterFunc(c.wndIncDelay, c.flushDeferred)
	} else {
		c.timer.Reset(c.wndIncDelay)
	}
}

// flushDeferred runs on the timer: it flushes what waits, unless a flusher
// already runs.
func (c *batchConn) flushDeferred() {
	c.mu.Lock()
	c.timerArmed = false
	if c.flushing || len(c.buf) == 0 || c.err != nil {
		c.mu.Unlock()
		return
	}
	c.flushing = true
	c.mu.Unlock()
	c.flush()
}

// flush is the flusher goroutine ("tunnel batchConn flush"): it writes
// until nothing is queued, then hands the buffers back and ends.
func (c *batchConn) flush() {
	c.mu.Lock()
	var werr error
	for len(c.buf) > 0 || c.direct != nil {
		data, direct := c.buf, c.direct
		c.buf, c.spare = c.spare, nil
		c.urgent, c.credit = false, 0
		c.mu.Unlock()
		gather := c.records != nil && len(data)+len(direct) > maxRecordPayload
		if gather {
			c.records.HoldRecords()
		}
		if len(data) > 0 {
			var n int
			n, werr = c.Conn.Write(data)
			c.written.Add(uint64(n))
		}
		if werr == nil && direct != nil {
			var n int
			n, werr = c.Conn.Write(direct)
			c.written.Add(uint64(n))
		}
		if gather {
			if err := c.records.ReleaseRecords(); werr == nil {
				werr = err
			}
		}
		c.mu.Lock()
		c.spare = data[:0]
		if werr == nil && direct != nil {
			c.direct = nil
		}
		c.cond.Broadcast()
		if werr != nil {
			c.err = werr
			break
		}
	}
	if c.buf != nil {
		c.putBuf(c.buf)
		c.buf = nil
	}
	c.putBuf(c.spare)
	c.spare = nil
	c.flushing = false
	c.cond.Broadcast()
	c.mu.Unlock()
	if werr != nil {
		// The connection is broken: make muxado's reader notice too.
		_ = c.Conn.Close()
	}
}

// CloseWrite writes what is queued (for at most closeFlushTimeout) and
// closes the sending half of the connection (for TLS a close_notify alert),
// so the peer reads everything sent so far and then the end, while our
// reading half stays open: a peer that still writes meets no reset. Later
// Writes are discarded. It fails with errors.ErrUnsupported when the
// connection has no sending half to close.
func (c *batchConn) CloseWrite() error {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return errors.ErrUnsupported
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if !c.flushing && len(c.buf) > 0 && c.err == nil {
		c.flushing = true
		go c.flush()
	}
	for c.flushing {
		c.cond.Wait()
	}
	c.writeShut = true
	c.cond.Broadcast()
	c.mu.Unlock()
	return cw.CloseWrite()
}

// Close waits for queued bytes to be written (for at most
// closeFlushTimeout), closes the connection and runs onClose. It is
// idempotent.
func (c *batchConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		c.mu.Lock()
		c.closing = true
		if c.timer != nil {
			c.timer.Stop()
		}
		if !c.flushing && len(c.buf) > 0 && c.err == nil {
			// Deferred window updates wait for no timer now.
			c.flushing = true
			go c.flush()
		}
		c.cond.Broadcast()
		for c.flushing {
			c.cond.Wait()
		}
		c.mu.Unlock()
		c.closeErr = c.Conn.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
	return c.closeErr
}

// notifyConn is the unbatched transport: it only reports Close.
type notifyConn struct {
	net.Conn
	written  *atomic.Uint64 // bytes written (liveness, heartbeat.go)
	onClose  func()
	once     sync.Once
	closeErr error
}

// Write writes p and counts what went.
func (c *notifyConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(uint64(n))
	return n, err
}

// CloseWrite closes the sending half of the connection, as
// batchConn.CloseWrite does.
func (c *notifyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Close closes the connection and runs onClose once.
func (c *notifyConn) Close() error {
	c.once.Do(func() {
		c.closeErr = c.Conn.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
	return c.closeErr
}
