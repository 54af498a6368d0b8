package tunnel

import (
	"net"
	"sync"
	"time"
)

// closeFlushTimeout bounds how long closing a batchConn waits for queued
// bytes (muxado's GOAWAY, a last response) to reach a stalled peer.
const closeFlushTimeout = time.Second

// batchConn sits between muxado and the TLS connection. muxado's single
// writer goroutine writes every frame as two Writes (header, payload) and a
// window update per Read; written straight to TLS that is two records and
// two syscalls per frame. batchConn's Write only copies into a buffer; a
// flusher goroutine writes whatever accumulated while its previous write
// was in flight, so many frames share a TLS record and a syscall, and an
// idle connection adds no latency (the first byte starts a flush at once).
//
// The flusher runs only while there is something to write: Write starts it
// and it ends when the buffer is drained, so an idle session costs no
// goroutine and no buffer. The buffer is bounded (Write blocks when limit
// bytes are queued), a write error is returned by later Writes and closes
// the connection so muxado's reader ends too, and Close flushes what is
// queued (bounded by closeFlushTimeout) before closing.
type batchConn struct {
	net.Conn
	limit   int
	onClose func()

	mu       sync.Mutex
	cond     sync.Cond // signalled when the flusher frees room or ends
	buf      []byte    // queued bytes
	spare    []byte    // the flusher's other buffer
	err      error     // first write error
	flushing bool      // a flusher goroutine is running
	closing  bool

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
	c := &batchConn{Conn: conn, limit: limit, onClose: onClose}
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
	n := 0
	for len(p) > 0 {
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
			c.cond.Wait()
			continue
		}
		k := min(room, len(p))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		n += k
		if !c.flushing {
			c.flushing = true
			go c.flush()
		}
	}
	return n, nil
}

// flush is the flusher goroutine ("tunnel batchConn flush"): it writes
// until nothing is queued, then hands the buffers back and ends.
func (c *batchConn) flush() {
	c.mu.Lock()
	var werr error
	for len(c.buf) > 0 {
		data := c.buf
		c.buf, c.spare = c.spare, nil
		c.mu.Unlock()
		_, werr = c.Conn.Write(data)
		c.mu.Lock()
		c.spare = data[:0]
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

// Close waits for queued bytes to be written (for at most
// closeFlushTimeout), closes the connection and runs onClose. It is
// idempotent.
func (c *batchConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		c.mu.Lock()
		c.closing = true
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
	onClose  func()
	once     sync.Once
	closeErr error
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
