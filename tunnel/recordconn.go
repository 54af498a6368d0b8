package tunnel

import (
	"crypto/tls"
	"net"
	"sync"
)

// recordBatchMax bounds the TLS records a recordConn holds back: four
// full records, one loopback segment (larger batches stall the peer,
// which decrypts while the next batch is encrypted). A full record is
// 16 KiB of data plus its header, nonce, content type and tag
// (recordOverheadMax): with a bound of 64 KiB only three fit, and a bulk
// stream went out in writes of 48 KiB and 16 KiB, twice the system calls
// (and the peer's wake-ups) of 64 KiB ones.
const recordBatchMax = 4 * (maxRecordPayload + recordOverheadMax)

// recordOverheadMax is what a full record may add to its 16 KiB, with
// room for one more small record: a TLS record adds 22 bytes in TLS 1.3
// (5-byte header, content type, 16-byte tag; RFC 8446 §5.2) and 29 in
// TLS 1.2 AES-GCM (header, 8-byte explicit nonce, tag; RFC 5288 §3), and
// a full HTTP/2 DATA frame is two records (16 KiB of data, then the
// frame's 9-byte header): four of those fit too.
const recordOverheadMax = 128

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
