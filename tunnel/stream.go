package tunnel

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// rawStream is a transport's stream: muxado's, or a QUIC stream adapted by
// quicStream.
type rawStream interface {
	io.ReadWriter
	CloseWrite() error // half-close: FIN, reads go on
	Close() error      // both directions
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// maxPrefixedChunk bounds how much of the first Write is copied behind the
// prefix into one buffer; the rest is written as is.
const maxPrefixedChunk = 16 << 10

// prefixBufPool holds buffers for the first Write of a stream.
var prefixBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// stream is the Stream of both transports: a raw stream plus a pending
// prefix (the 4-byte type, and for proxy streams the header) that goes out
// in front of the first Write, in the same frame.
type stream struct {
	raw     rawStream
	local   net.Addr
	remote  net.Addr
	pending atomic.Bool // prefix not sent yet
	mu      sync.Mutex  // guards prefix and orders the first write
	prefix  []byte
	typ     [4]byte // storage for a type-only prefix
	// sizer, when set, splits Writes into raw writes of at most its
	// limit (muxado streams; see frameSizer).
	sizer *frameSizer
	// win, when set, is the stream's autotuned send window (sendwindow.go)
	// and release forgets it once the stream writes no more.
	win     *sendWindow
	release func()
}

// The DATA frames our muxado streams send are sized to the session's
// recent write rate, between minDataFrame and maxDataFrame (frameSizer).
// muxado sends a Write as one frame as large as the window allows (4 MiB
// between our ends), and a frame holds the link until its last byte: on a
// 64 KB/s link a 1 MiB frame holds every frame behind it (heartbeat
// echoes, window updates) for 16 s. (muxado's own receiver also hands a
// frame to the stream only once the whole body has arrived; ours hands
// over frames above dataChunk in pieces, serve_muxado.go.) So a frame is at most
// what the session wrote in frameAirtime at its recent rate, and never
// below minDataFrame: a second at 64 KB/s, 8 header bytes in 64 KiB, and
// directWriteMin so the write batcher does not copy it. On a fast link the
// frames grow to maxDataFrame, each a hand-off to muxado's writer and a
// wake-up of the batcher's flusher fewer (the agent's CPU per GiB of a
// download: -12 % at 256 KiB, bench-bulk-ab).
const (
	minDataFrame  = directWriteMin
	maxDataFrame  = 256 << 10
	frameAirtime  = 20 * time.Millisecond
	sizerInterval = 250 * time.Millisecond
)

// frameSizer sizes a muxado session's DATA frames: every sizerInterval (at
// most) it takes the bytes the connection took from the session since the
// last measure, as a rate, and the frame limit becomes what that rate moves
// in frameAirtime, in 16 KiB steps between minDataFrame and maxDataFrame.
// A rate needs at least sizerInterval of writes, which a slow link's
// socket buffer alone cannot fake: 256 KiB frames need 3.2 MB taken in
// 250 ms. It is safe for concurrent use.
type frameSizer struct {
	written *atomic.Uint64   // bytes the connection took (muxadoMux.bytesWritten)
	now     func() time.Time // time.Now, but in tests
	limitB  atomic.Int64     // the current limit
	mu      sync.Mutex       // guards at and base; held by one measurer at a time
	at      time.Time
	base    uint64
}

func newFrameSizer(written *atomic.Uint64, now func() time.Time) *frameSizer {
	f := &frameSizer{written: written, now: now, at: now(), base: written.Load()}
	f.limitB.Store(minDataFrame)
	return f
}

// limit returns the largest DATA frame to send now.
func (f *frameSizer) limit() int {
	if f.mu.TryLock() {
		now := f.now()
		if el := now.Sub(f.at); el >= sizerInterval {
			w := f.written.Load()
			n := int64(float64(w-f.base) * float64(frameAirtime) / float64(el))
			f.limitB.Store(min(max(n&^(16<<10-1), minDataFrame), maxDataFrame))
			f.at, f.base = now, w
		}
		f.mu.Unlock()
	}
	return int(f.limitB.Load())
}

var _ Stream = (*stream)(nil)

// newTypedStream returns a stream that sends prefix before its first
// bytes; a nil prefix means there is nothing to send (accepted streams).
func newTypedStream(raw rawStream, local, remote net.Addr, prefix []byte) *stream {
	s := &stream{raw: raw, local: local, remote: remote}
	if len(prefix) > 0 {
		if len(prefix) <= len(s.typ) {
			s.prefix = s.typ[:copy(s.typ[:], prefix)]
		} else {
			s.prefix = prefix
		}
		s.pending.Store(true)
	}
	return s
}

// Write writes p; the first Write carries the pending prefix in the same
// transport frame.
func (s *stream) Write(p []byte) (int, error) {
	if s.pending.Load() {
		return s.writeFirst(p)
	}
	return s.writeRaw(p)
}

// writeRaw writes p in raw writes of at most the sizer's limit, each
// within the send window when there is one.
func (s *stream) writeRaw(p []byte) (int, error) {
	maxWrite := 0
	if s.sizer != nil && len(p) > minDataFrame { // never split below the floor
		maxWrite = s.sizer.limit()
	}
	if s.win == nil && (maxWrite <= 0 || len(p) <= maxWrite) {
		return s.raw.Write(p)
	}
	n := 0
	for n < len(p) {
		k := len(p) - n
		if maxWrite > 0 {
			k = min(k, maxWrite)
		}
		if s.win != nil {
			var err error
			if k, err = s.win.acquire(k); err != nil {
				return n, err
			}
		}
		m, err := s.raw.Write(p[n : n+k])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *stream) writeFirst(p []byte) (int, error) {
	s.mu.Lock()
	if s.prefix == nil {
		s.mu.Unlock()
		return s.writeRaw(p)
	}
	n := min(len(p), maxPrefixedChunk)
	bp := prefixBufPool.Get().(*[]byte)
	b := append(append((*bp)[:0], s.prefix...), p[:n]...)
	if s.win != nil {
		s.win.take(len(b))
	}
	_, err := s.raw.Write(b)
	*bp = b[:0]
	prefixBufPool.Put(bp)
	s.prefix = nil
	s.pending.Store(false)
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if n == len(p) {
		return n, nil
	}
	m, err := s.writeRaw(p[n:])
	return n + m, err
}

// flushPrefix sends a pending prefix alone.
func (s *stream) flushPrefix() error {
	if !s.pending.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prefix == nil {
		return nil
	}
	if s.win != nil {
		s.win.take(len(s.prefix))
	}
	_, err := s.raw.Write(s.prefix)
	s.prefix = nil
	s.pending.Store(false)
	return err
}

// Read reads from the stream. A Read before any Write first sends the
// pending prefix, since the peer cannot answer a stream it has not seen.
func (s *stream) Read(p []byte) (int, error) {
	if s.pending.Load() {
		if err := s.flushPrefix(); err != nil {
			return 0, err
		}
	}
	return s.raw.Read(p)
}

// streamEndTimeout bounds how long Close and CloseWrite wait to hand the
// stream's end (muxado's FIN) to the transport.
const streamEndTimeout = 5 * time.Second

// endDeadline gives the stream's end a fresh write deadline: muxado sends
// FIN under the stream's write deadline, and one already past (crypto/tls
// sets it to now on Close, after its close_notify) may drop the FIN, so
// that the peer never learns the stream ended. After CloseWrite or Close
// nothing else is written, so the deadline set here concerns only the end.
func (s *stream) endDeadline() {
	_ = s.raw.SetWriteDeadline(time.Now().Add(streamEndTimeout))
}

// CloseWrite half-closes the send side after sending a pending prefix.
func (s *stream) CloseWrite() error {
	s.endDeadline()
	if err := s.flushPrefix(); err != nil {
		return err
	}
	err := s.raw.CloseWrite()
	if s.release != nil {
		s.release()
	}
	return err
}

// Close closes both directions. A stream that never sent its prefix sends
// it first, so the peer sees a typed stream that ends rather than an
// untyped one (which the SDK's accept loop treats as fatal).
func (s *stream) Close() error {
	s.endDeadline()
	_ = s.flushPrefix()
	if s.win != nil {
		s.win.fail(ErrClosed)
		s.release()
	}
	return s.raw.Close()
}

// LocalAddr returns the connection's local address.
func (s *stream) LocalAddr() net.Addr { return s.local }

// RemoteAddr returns the connection's remote address.
func (s *stream) RemoteAddr() net.Addr { return s.remote }

// SetDeadline sets the read and write deadlines.
func (s *stream) SetDeadline(t time.Time) error {
	if s.win != nil {
		s.win.setDeadline(t)
	}
	return s.raw.SetDeadline(t)
}

// SetReadDeadline sets the read deadline.
func (s *stream) SetReadDeadline(t time.Time) error { return s.raw.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (s *stream) SetWriteDeadline(t time.Time) error {
	if s.win != nil {
		s.win.setDeadline(t)
	}
	return s.raw.SetWriteDeadline(t)
}
