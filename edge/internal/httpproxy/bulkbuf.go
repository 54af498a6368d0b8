package httpproxy

import (
	"sync"
	"time"
)

// Response bodies move through a buffer that grows only while the client
// keeps up, as the tunnel's send window does (tunnel/sendwindow.go).
//
// Large buffers make bulk copies cheap (fewer stream reads, window updates
// and client writes per byte), but whatever sits in the buffer when the
// client stops reading stays there until it reads again: a fixed 256 KiB
// per response parked by each slow client. So a copy starts with the
// Config.BufferPool buffer and takes the next of bulkSizes only after the
// client took keepUpFactor times that size since the buffer last changed,
// with no write blocked (taking blockedWrite or longer) in between; a
// blocked write, or the end of the body, returns it to the pool buffer.
// Hence the invariant the tests check: the bulk buffer a response holds is
// at most 1/keepUpFactor of what its client took since it last stalled.
//
// The client's kernel takes bytes at memory speed until its socket buffer
// is full (on Linux up to tcp_wmem's 4 MiB): the edge caps that with
// TCP_NOTSENT_LOWAT (limitUnsent), so a client that does not read shows
// up as one after little more than its receive window.
const (
	// keepUpFactor is how many times the next bulk size a client must
	// take, without a blocked write, before the buffer grows to it:
	// 32 KiB after 512 KiB, 256 KiB after 7.5 MiB.
	keepUpFactor = 16
	// blockedWrite is how long a write to the client takes when the
	// client (or its network) did not keep up: 256 KiB in 20 ms is
	// 12.5 MiB/s.
	blockedWrite = 20 * time.Millisecond
)

// An HTTP/2 response copy cannot wait for its client without a buffer, as
// an HTTP/1.1 one does (unsent.go): its writes wait inside net/http's
// server for the client's flow-control window, which the handler cannot
// see, holding the bytes they were given. So once a write blocked, the
// copy reads at most slowBufferSize at a time, into a buffer of that size
// (the pool buffer goes back), until the client has taken slowKeepUp
// without a blocked write again. A client that reads 1 KiB a second then
// pins 2 KiB of the edge's buffers instead of 16.
//
// The first flight: the one part of a response whose writes cannot wait
// for flow control is the client's initial stream window
// (SETTINGS_INITIAL_WINDOW_SIZE, which the connection's h2wire reads from
// the client's SETTINGS). Past it every write depends on the client
// reading, so the copy reads no more than what is left of that window,
// and goes on in slowBufferSize pieces from there until the client has
// taken flightKeepUp (slowKeepUp once a write blocked): a client that
// stops at its first window holds 2 KiB, not a full pool buffer, and one
// that keeps up is back to full buffers after 16 KiB.
const (
	slowBufferSize = 2 << 10
	slowKeepUp     = 64 << 10
	// flightKeepUp is what a client must take past its first flight,
	// with no write blocked, for the copy to leave its small pieces: a
	// client that keeps up proves it within a few writes.
	flightKeepUp = 16 << 10
)

// Small first. Until an HTTP/2 connection has carried smallFrameSpan of
// response bodies, and so shown that its client reads, its responses are
// copied through a slowBufferSize buffer instead of a pool buffer, and in
// writes of at most smallFrame:
//
//   - A client that opens a connection, takes its first window (HTTP/2's
//     default is 65,535 bytes, RFC 9113 §6.5.2) and stops holds 2 KiB of
//     response buffer from the start, not a 16 KiB pool buffer through
//     its first flight. Many such clients arriving at once no longer
//     raise the heap by 16 KiB each, which the collector's goal (twice
//     the live heap) then doubles.
//   - net/http's HTTP/2 server writes each frame through one buffer per
//     connection that keeps the size of the largest frame it ever held,
//     for the connection's life: one 16 KiB DATA frame, and the
//     connection holds 18 KiB until it closes. Each handler write of n
//     bytes goes out in frames of at most n bytes, so such a client
//     leaves a 5 KiB buffer behind, not an 18 KiB one.
//
// A connection that carries more has shown it reads: its copies take the
// pool buffer, then larger ones, and its frames the client's full frame
// size. The cost is a few dozen more reads and writes per connection.
const (
	smallFrame     = 4 << 10
	smallFrameSpan = 64 << 10
)

// slowPool holds *[slowBufferSize]byte.
var slowPool = sync.Pool{New: func() any { return new([slowBufferSize]byte) }}

// bulkSizes are the buffer sizes a body copy grows through, after the
// pool buffer; the last is bulkBufferSize.
var bulkSizes = [...]int{32 << 10, 64 << 10, 128 << 10, bulkBufferSize}

// bulkPools holds one pool per bulkSizes entry, of *bulkBuf.
var bulkPools [len(bulkSizes)]sync.Pool

// bulkBuf carries a pooled buffer (a pointer, so a Put allocates nothing).
type bulkBuf struct{ b []byte }

func getBulk(class int) *bulkBuf {
	if bb, ok := bulkPools[class].Get().(*bulkBuf); ok {
		return bb
	}
	return &bulkBuf{b: make([]byte, bulkSizes[class])}
}

// bodyBuffer picks the buffer one response's bytes are read into (see
// above). Its owner reads into buf(), reports each client write with
// wrote, calls next whenever buf() is empty to get the buffer for the
// next read, and release at the end; park gives every buffer back while
// the copy waits for its client (unsent.go), unpark takes the pool buffer
// again; slowDown trades every buffer for a slowBufferSize one after a
// blocked HTTP/2 write, and next trades it back once the client keeps up.
// The zero value is unusable; start with start.
type bodyBuffer struct {
	p       *Proxy
	base    []byte   // from the Proxy's BufferPool; nil while parked
	bulk    *bulkBuf // nil at base
	class   int      // bulkSizes index of bulk
	taken   int64    // bytes the client took since the buffer last changed
	blocked bool     // a write blocked since the last next

	parkedBulk bool // park gave back a bulk buffer (of class)

	slow   *[slowBufferSize]byte // in use instead of base after slowDown; nil else
	keepUp int64                 // what the client must take to leave slow (slowKeepUp or flightKeepUp)
}

// start sets b to base, a buffer from p's BufferPool that b now owns.
func (b *bodyBuffer) start(p *Proxy, base []byte) {
	*b = bodyBuffer{p: p, base: base}
}

// park gives back the buffers b holds, empty, while the copy waits.
func (b *bodyBuffer) park() {
	b.parkedBulk = b.bulk != nil
	b.release()
}

// unpark takes buffers again after park, having waited d, and returns
// the one to read into: the bulk buffer of the size given back when the
// wait was shorter than a blocked write, else the pool buffer, the
// client having stalled.
func (b *bodyBuffer) unpark(d time.Duration) []byte {
	b.base = b.p.getBuf()
	b.blocked = false
	if d >= blockedWrite {
		b.taken = 0
		return b.base
	}
	if b.parkedBulk {
		b.bulk = getBulk(b.class)
		b.p.bulkHeld.Add(int64(bulkSizes[b.class]))
	}
	return b.buf()
}

// release gives back the buffers b holds.
func (b *bodyBuffer) release() {
	b.drop()
	if b.base != nil {
		b.p.pool.Put(b.base)
		b.base = nil
	}
	b.speedUp()
}

// slowDown gives back the buffers b holds, empty, for a small one (see
// slowBufferSize), which it returns: the client's last write blocked, or
// (flight) the body went past the client's first flight.
func (b *bodyBuffer) slowDown(flight bool) []byte {
	b.blocked, b.taken = false, 0
	b.keepUp = slowKeepUp
	if flight {
		b.keepUp = flightKeepUp
	}
	if b.slow == nil {
		b.release()
		b.slow = slowPool.Get().(*[slowBufferSize]byte)
		b.p.slowCopies.Add(1)
	}
	return b.slow[:]
}

// startSmall starts b with a small buffer, as slowDown does, which it
// returns; b keeps it until the client has taken keepUp bytes with no
// write blocked (small first, above).
func (b *bodyBuffer) startSmall(p *Proxy, keepUp int64) []byte {
	*b = bodyBuffer{p: p}
	buf := b.slowDown(true)
	b.keepUp = keepUp
	return buf
}

// speedUp gives back the small buffer of slowDown, if b holds it.
func (b *bodyBuffer) speedUp() {
	if b.slow != nil {
		slowPool.Put(b.slow)
		b.slow = nil
		b.p.slowCopies.Add(-1)
	}
}

// buf returns the buffer in use.
func (b *bodyBuffer) buf() []byte {
	switch {
	case b.slow != nil:
		return b.slow[:]
	case b.bulk != nil:
		return b.bulk.b
	}
	return b.base
}

// wrote records a write of n bytes to the client that took d.
func (b *bodyBuffer) wrote(n int, d time.Duration) {
	if d >= blockedWrite {
		b.blocked, b.taken = true, 0
		return
	}
	b.taken += int64(n)
}

// next returns the buffer for the next read, which may differ from buf()
// only because that is empty now. bulk says the copy is in a body whose
// last read filled the buffer (the upstream has more at hand); outside a
// body the pool buffer is used.
func (b *bodyBuffer) next(inBody, filled bool) []byte {
	if b.slow != nil {
		if b.blocked {
			b.blocked, b.keepUp = false, slowKeepUp
			return b.slow[:]
		}
		if b.taken < b.keepUp {
			return b.slow[:]
		}
		b.speedUp()
		b.base, b.taken = b.p.getBuf(), 0
		return b.base
	}
	switch {
	case !inBody || b.blocked:
		b.blocked, b.taken = false, 0
		b.drop()
	case filled:
		c := 0
		if b.bulk != nil {
			c = b.class + 1
		}
		if c < len(bulkSizes) && b.taken >= keepUpFactor*int64(bulkSizes[c]) {
			b.drop()
			b.bulk, b.class, b.taken = getBulk(c), c, 0
			b.p.bulkHeld.Add(int64(bulkSizes[c]))
		}
	}
	return b.buf()
}

// drop returns a bulk buffer to its pool; buf() is the base one after.
func (b *bodyBuffer) drop() {
	if b.bulk == nil {
		return
	}
	b.p.bulkHeld.Add(-int64(bulkSizes[b.class]))
	bulkPools[b.class].Put(b.bulk)
	b.bulk = nil
}
