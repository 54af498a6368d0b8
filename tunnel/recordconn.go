package tunnel

import (
	"crypto/tls"
	"net"
	"sync"
)

// recordBatchMax bounds the TLS records a recordConn holds back: one
// loopback segment (larger batches stall the peer, which decrypts while
// the next batch is encrypted), that is three full records (16 KiB and
// 22 to 29 bytes each). Four full records (65.6 KiB) halved the system
// calls of a bulk stream but each write then went as a 64 KiB segment and
// a tiny one: about 10 % more CPU per byte in tollgated and tollgate
// (scripts/bench-bulk-ab, HTTP/1.1).
const recordBatchMax = 64 << 10

// maxRecordPayload is the most data one TLS record carries (RFC 8446
// §5.1): a write no larger is one record, with nothing to gather.
const maxRecordPayload = 16 << 10

// recordBufPool holds recordConn buffers.
var recordBufPool = sync.Pool{New: func() any { b := make([]byte, 0, recordBatchMax+(1<<10)); return &b }}

// recordConn is the raw connection under a tls.Conn. crypto/tls writes
// every record (at most 16 KiB of data) with a write call of its own;
// between HoldRecords and ReleaseRecords (around one large tls.Conn
// Write) a recordConn gathers the records and writes up to recordBatchMax
// bytes at a time: a quarter of the system calls and of the peer's
// wake-ups for bulk data. Outside them (handshake, alerts) it writes
// through.
type recordConn struct {
	net.Conn
	mu   sync.Mutex
	held bool
	bp   *[]byte // gathered records while held; nil when empty
	err  error
}

// BatchRecords wraps raw, the TCP connection a tls.Conn is about to run
// over, so that a writer that brackets a large Write with the returned
// connection's HoldRecords and ReleaseRecords sends several TLS records
// per system call: NewMuxadoMux's write batcher does for a tunnel's
// tls.Conn (tls.Conn.NetConn returns the wrapper), the edge's HTTP relay
// for public clients. It changes nothing on the wire.
func BatchRecords(raw net.Conn) net.Conn { return &recordConn{Conn: raw} }

// recordConnOf returns the recordConn under c, a *tls.Conn made over
// BatchRecords; nil when there is none.
func recordConnOf(c net.Conn) *recordConn {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	rc, _ := tc.NetConn().(*recordConn)
	return rc
}

// NetConn returns the connection c wraps.
func (c *recordConn) NetConn() net.Conn { return c.Conn }

// Write writes p, or while held appends it to the batch, writing the
// batch first when p would not fit.
func (c *recordConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.held {
		return c.Conn.Write(p)
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.bp != nil && len(*c.bp)+len(p) > recordBatchMax {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) >= recordBatchMax {
		return c.Conn.Write(p)
	}
	if c.bp == nil {
		c.bp = recordBufPool.Get().(*[]byte)
	}
	*c.bp = append(*c.bp, p...)
	return len(p), nil
}

func (c *recordConn) flushLocked() error {
	if c.bp == nil {
		return nil
	}
	_, err := c.Conn.Write(*c.bp)
	*c.bp = (*c.bp)[:0]
	recordBufPool.Put(c.bp)
	c.bp = nil
	if err != nil {
		c.err = err
	}
	return err
}

// HoldRecords starts gathering the records written.
func (c *recordConn) HoldRecords() {
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
}

// ReleaseRecords writes what was gathered and stops gathering. It returns
// the first write error since HoldRecords.
func (c *recordConn) ReleaseRecords() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = false
	err := c.flushLocked()
	if c.err != nil {
		err, c.err = c.err, nil
	}
	return err
}
