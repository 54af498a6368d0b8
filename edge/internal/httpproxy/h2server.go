package httpproxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The HTTP/2 server is net/http's own (http.Server with Protocols set to
// unencrypted HTTP/2 only): the proxy terminates TLS itself, reads the
// client preface, and hands each negotiated "h2" connection, wrapped in
// an h2wire, straight to the server's HTTP/2 connection handler (the
// TLSNextProto entry net/http keeps for unencrypted HTTP/2), on the
// goroutine that accepted it. Going through http.Server.Serve would cost
// every connection a second goroutine and the 8 KiB of HTTP/1.1 buffers
// net/http allocates before it looks for the preface, for as long as the
// connection lives. The wrapper watches the frames that pass for what
// net/http does not police: a client's stream resets (HTTP/2 rapid reset,
// CVE-2023-44487).

// HTTP/2 frame types and codes this file uses (RFC 9113 §6, §7).
const (
	h2FrameData      = 0x0
	h2FlagEndStream  = 0x1
	h2FrameHeaders   = 0x1
	h2FrameRSTStream = 0x3
	h2FrameSettings  = 0x4
	h2FlagAck        = 0x1
	// h2SettingInitialWindow is SETTINGS_INITIAL_WINDOW_SIZE's identifier,
	// h2DefaultWindow its value until the client sets it (RFC 9113 §6.5.2).
	h2SettingInitialWindow = 0x4
	h2DefaultWindow        = 65535
	h2FrameGoAway          = 0x7
	h2EnhanceCalm          = 0xb
	h2FrameHeaderLen       = 9
	h2ClientPreface        = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	// resetWindow is the period Config.MaxStreamResets counts over.
	resetWindow = 10 * time.Second
	// calmLinger is how long a connection told to calm down still reads
	// (and discards) before it closes, so that the client reads the GOAWAY
	// instead of a TCP reset.
	calmLinger = time.Second
)

// errEnhanceYourCalm ends a connection whose client reset too many streams.
var errEnhanceYourCalm = errors.New("httpproxy: too many stream resets from the client")

// h2handoffKey is net/http's TLSNextProto key for unencrypted HTTP/2
// connections ("unencrypted_http2"): the connection's client preface has
// been read, and the *tls.Conn it is given wraps a net.Conn whose
// UnencryptedNetConn method returns the connection to serve.
const h2handoffKey = "unencrypted_http2"

// h2handoff carries an h2wire to net/http's HTTP/2 connection handler
// through the *tls.Conn its TLSNextProto signature asks for (no TLS runs
// on it: the handler unwraps it at once).
type h2handoff struct{ *h2wire }

func (c h2handoff) UnencryptedNetConn() net.Conn { return c.h2wire }

// h2handler is an HTTP/2 connection's handler: the proxy's, with the
// connection's context (ClientAddrFromContext, the h2conn) as the base of
// its requests' contexts. net/http asks a handler for it by this method.
type h2handler struct{ h *h2conn }

func (hh h2handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { hh.h.ServeHTTP(w, r) }

// BaseContext is the connection's context without its cancellation: a
// drain lets accepted requests finish (Proxy.Shutdown ends them).
func (hh h2handler) BaseContext() context.Context { return context.WithoutCancel(hh.h.ctx) }

// errNoH2Handoff is newH2Server's error when net/http offers no hand-off
// for unencrypted HTTP/2 connections.
var errNoH2Handoff = errors.New("httpproxy: net/http has no unencrypted HTTP/2 connection handler (GODEBUG http2server=0?)")

// failingListener is a listener whose Accept fails at once.
type failingListener struct{}

func (failingListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (failingListener) Close() error              { return nil }
func (failingListener) Addr() net.Addr            { return &net.TCPAddr{} }

// newH2Server returns the http.Server whose HTTP/2 connection handler
// serves every HTTP/2 connection of p, and that handler.
func (p *Proxy) newH2Server() (*http.Server, func(*http.Server, *tls.Conn, http.Handler), error) {
	errLog, err := newStdLog(p.log)
	if err != nil {
		return nil, nil, err
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Protocols:      &protos,
		MaxHeaderBytes: p.cfg.MaxHeaderBytes,
		IdleTimeout:    p.cfg.IdleTimeout,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: int(p.cfg.MaxConcurrentStreams),
			WriteByteTimeout:     p.cfg.IdleTimeout,
		},
		ErrorLog: errLog,
		ConnState: func(_ net.Conn, s http.ConnState) {
			// A connection that registered with the HTTP/2 server after
			// Shutdown ran its GOAWAY hook: Shutdown runs it again.
			if s == http.StateActive && p.isClosing() {
				p.lateH2.Store(true)
			}
		},
	}
	// Serve sets the server's HTTP/2 up (TLSNextProto, and the Shutdown
	// hook that sends GOAWAY to its connections) before it accepts; with
	// nothing to accept it returns.
	_ = srv.Serve(failingListener{})
	serve := srv.TLSNextProto[h2handoffKey]
	if serve == nil {
		return nil, nil, errNoH2Handoff
	}
	return srv, serve, nil
}

// readPreface reads the client connection preface (RFC 9113 §3.4) from w
// within timeout (none when 0).
func (w *h2wire) readPreface(timeout time.Duration) error {
	if timeout > 0 {
		if err := w.Conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
	}
	var b [len(h2ClientPreface)]byte
	if _, err := io.ReadFull(w, b[:]); err != nil {
		return err
	}
	if string(b[:]) != h2ClientPreface {
		return errBadPreface
	}
	return w.Conn.SetReadDeadline(time.Time{})
}

// errBadPreface means an "h2" connection did not start with the client
// connection preface.
var errBadPreface = errors.New("httpproxy: bad HTTP/2 client preface")

// frameTracker follows the frame boundaries of one direction of an
// HTTP/2 connection from the bytes that pass.
type frameTracker struct {
	skip int // bytes of a client preface, or of the current frame's payload, still to pass
	hdr  [h2FrameHeaderLen]byte
	hn   int // bytes of hdr collected
}

// next consumes bytes of b up to the end of the next frame header and
// returns how many; header reports whether a complete frame header is in
// t.hdr.
func (t *frameTracker) next(b []byte) (n int, header bool) {
	if t.skip > 0 {
		n = min(t.skip, len(b))
		t.skip -= n
		return n, false
	}
	n = copy(t.hdr[t.hn:], b)
	t.hn += n
	if t.hn < h2FrameHeaderLen {
		return n, false
	}
	t.hn = 0
	t.skip = int(t.hdr[0])<<16 | int(t.hdr[1])<<8 | int(t.hdr[2])
	return n, true
}

// atBoundary reports whether the bytes passed so far end a frame.
func (t *frameTracker) atBoundary() bool { return t.skip == 0 && t.hn == 0 }

// h2wire is an HTTP/2 client connection as the http.Server sees it. It
// counts the client's RST_STREAM frames and, past Config.MaxStreamResets
// within resetWindow, writes GOAWAY(ENHANCE_YOUR_CALM) at the next frame
// boundary of the server's output and ends the connection.
type h2wire struct {
	net.Conn
	h         *h2conn
	maxResets int
	batch     recordBatcher // nil when c cannot batch TLS records

	// Read side: only the server's frame reader calls Read.
	in          frameTracker
	resets      int
	windowStart time.Time
	lastID      uint32 // highest client stream ID seen in a HEADERS frame
	settings    int    // payload bytes of the client's current SETTINGS frame still to parse
	setting     [6]byte
	settingN    int // bytes of setting collected

	// initialWindow is the client's SETTINGS_INITIAL_WINDOW_SIZE: how many
	// bytes of a response it takes before it must send a window update
	// (set by the read side, read by handlers: the first flight, bulkbuf.go).
	initialWindow atomic.Uint32

	wmu      sync.Mutex
	out      frameTracker
	sock     clientSocket // the client's socket, looked at before direct writes (roomFor)
	unpolled int          // bytes written directly since the socket was last seen to have room
	calm     bool         // GOAWAY(ENHANCE_YOUR_CALM) is due or sent
	sent     bool         // it was sent: no more writes
	calmN    uint32

	closeOnce sync.Once
	closed    chan struct{}
	calmed    atomic.Bool

	// The write queue (see write), under qmu.
	qmu       sync.Mutex
	qcond     sync.Cond // signalled when the flusher frees room or ends
	q         *[]byte   // bytes the server wrote, not yet to the connection; nil when none
	qspare    *[]byte   // the flusher's other buffer
	qflushing bool      // a flusher goroutine runs
	qerr      error     // the flusher's write error: returned by every later Write
	qfast     bool      // the client keeps up: full DATA frames are queued (see write)
	qmoved    int       // bytes written since a write last blocked (to h2FastAfter)

	// Write deadlines (SetWriteDeadline), under dmu.
	dmu         sync.Mutex
	byteTimeout time.Duration // the server's WriteByteTimeout
	deadline    time.Time     // the write deadline set on the connection
}

func newH2Wire(c net.Conn, h *h2conn, maxResets int) *h2wire {
	w := &h2wire{Conn: c, h: h, maxResets: maxResets, closed: make(chan struct{}), batch: recordBatcherOf(c),
		byteTimeout: h.p.cfg.IdleTimeout}
	w.qcond.L = &w.qmu
	w.in.skip = len(h2ClientPreface)
	w.initialWindow.Store(h2DefaultWindow)
	return w
}

func (w *h2wire) Read(b []byte) (int, error) {
	if w.calmed.Load() {
		return 0, errEnhanceYourCalm
	}
	n, err := w.Conn.Read(b)
	for p := b[:n]; len(p) > 0; {
		payload := w.in.skip > 0
		k, header := w.in.next(p)
		if payload && w.settings > 0 {
			w.readSettings(p[:k])
		}
		p = p[k:]
		if !header {
			continue
		}
		id := binary.BigEndian.Uint32(w.in.hdr[5:]) & (1<<31 - 1)
		switch w.in.hdr[3] {
		case h2FrameSettings:
			if w.in.hdr[4]&h2FlagAck == 0 && id == 0 {
				w.settings, w.settingN = w.in.skip, 0
			}
		case h2FrameHeaders:
			w.lastID = max(w.lastID, id)
		case h2FrameRSTStream:
			if w.countReset() {
				w.enhanceYourCalm()
				return 0, errEnhanceYourCalm
			}
		}
	}
	return n, err
}

// readSettings takes b, bytes of a client SETTINGS frame's payload, and
// records the SETTINGS_INITIAL_WINDOW_SIZE it carries. A malformed frame
// is net/http's to refuse; the value is only the proxy's estimate.
func (w *h2wire) readSettings(b []byte) {
	for _, c := range b {
		w.setting[w.settingN] = c
		w.settingN++
		if w.settingN == len(w.setting) {
			w.settingN = 0
			if binary.BigEndian.Uint16(w.setting[:2]) == h2SettingInitialWindow {
				w.initialWindow.Store(binary.BigEndian.Uint32(w.setting[2:]))
			}
		}
	}
	w.settings -= len(b)
}

// countReset counts one client reset and reports whether the connection
// is over its budget.
func (w *h2wire) countReset() bool {
	if w.maxResets < 0 {
		return false
	}
	now := time.Now()
	if now.Sub(w.windowStart) > resetWindow {
		w.windowStart, w.resets = now, 0
	}
	w.resets++
	return w.resets > w.maxResets
}

// enhanceYourCalm sends GOAWAY(ENHANCE_YOUR_CALM) now if the server's
// output is between frames, else as soon as the frame being written ends.
func (w *h2wire) enhanceYourCalm() {
	w.calmed.Store(true)
	w.h.p.calmed.Add(1)
	if ce := w.h.p.log.Check(debugLevel, "too many HTTP/2 stream resets; sending GOAWAY"); ce != nil {
		ce.Write(remoteField(w.h.remote))
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.calm, w.calmN = true, w.lastID
	if w.out.atBoundary() {
		w.sendCalmLocked()
	}
}

func (w *h2wire) sendCalmLocked() {
	_ = w.waitQueue()
	w.clearWriteDeadline()
	var f [h2FrameHeaderLen + 8]byte
	f[2] = 8 // payload length
	f[3] = h2FrameGoAway
	binary.BigEndian.PutUint32(f[9:], w.calmN)
	binary.BigEndian.PutUint32(f[13:], h2EnhanceCalm)
	w.sent = true
	_, _ = w.Conn.Write(f[:])
	if cw, ok := w.Conn.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
}

func (w *h2wire) Write(b []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.sent {
		return 0, errEnhanceYourCalm
	}
	if !w.calm {
		n, err := w.write(b)
		for p := b[:n]; len(p) > 0; {
			k, _ := w.out.next(p)
			p = p[k:]
		}
		return n, err
	}
	// GOAWAY is due: finish the frame being written, then send it.
	end := 0
	for end < len(b) && !w.out.atBoundary() {
		k, _ := w.out.next(b[end:])
		end += k
	}
	if _, err := w.write(b[:end]); err != nil {
		return 0, err
	}
	if w.out.atBoundary() {
		w.sendCalmLocked()
	}
	return len(b), nil
}

// SetWriteDeadline sets the write deadline, sparingly. net/http's HTTP/2
// server, with a WriteByteTimeout, sets one before every write to the
// connection and clears it after: two timer updates per DATA frame, a
// tenth of the edge's CPU in a bulk download. The wire keeps the deadline
// it set while the one asked for is less than half a WriteByteTimeout
// later, and leaves it in place when asked to clear it (the server sets a
// new one before its next write). A write then fails after between half
// and all of WriteByteTimeout without completing, as on HTTP/1.1
// (writeClient). An earlier deadline is always set.
func (w *h2wire) SetWriteDeadline(t time.Time) error {
	w.dmu.Lock()
	defer w.dmu.Unlock()
	if w.byteTimeout <= 0 {
		w.deadline = t
		return w.Conn.SetWriteDeadline(t)
	}
	if t.IsZero() {
		return nil
	}
	if !w.deadline.IsZero() && !t.Before(w.deadline) && t.Sub(w.deadline) < w.byteTimeout/2 {
		return nil
	}
	w.deadline = t
	return w.Conn.SetWriteDeadline(t)
}

// clearWriteDeadline removes the write deadline for a write of the wire's
// own.
func (w *h2wire) clearWriteDeadline() {
	w.dmu.Lock()
	defer w.dmu.Unlock()
	if !w.deadline.IsZero() {
		w.deadline = time.Time{}
		_ = w.Conn.SetWriteDeadline(time.Time{})
	}
}

// h2QueueMax bounds the bytes the wire queues for the connection (see
// write): eight full DATA frames, what the flusher encrypts and writes in
// one system call at most. With the bytes of the write in flight, a
// client that stops reading holds at most twice this at the edge, once
// it kept up for h2FastAfter.
const h2QueueMax = 128 << 10

// h2FastAfter is what a client must take, with no write blocked
// (blockedWrite or longer) since, before its DATA frames are queued:
// keepUpFactor times the queue, as a body buffer grows (bulkbuf.go).
const h2FastAfter = keepUpFactor * h2QueueMax

// h2QueuePool holds the wire's queue buffers (*[]byte, cap h2QueueMax).
var h2QueuePool = sync.Pool{New: func() any { b := make([]byte, 0, h2QueueMax); return &b }}

// write writes b to the client, in order with every earlier write.
//
// net/http's HTTP/2 server writes a DATA frame larger than its 4 KiB
// buffer from a goroutine started for that frame alone, and starts the
// next frame only once that write returned: one frame at a time, each
// encrypted and written in a system call of its own while the server
// waits. On a connection that batches TLS records and whose client keeps
// up (it took h2FastAfter with no blocked write), the wire instead queues
// full DATA frames of a body that goes on (queueFrame), and whatever is
// written while the queue holds anything, and a flusher goroutine —
// running only while the queue holds bytes — encrypts and writes all that
// accumulated during its previous write, records held together, in one
// system call. The server's frame goroutine returns after a copy (its
// stack stays small: it no longer calls into TLS), and the next frame is
// prepared while the last is encrypted. The queue is bounded (h2QueueMax:
// a write waits for room); a write that blocks (the client stopped
// keeping up) turns queueing off until the client has taken h2FastAfter
// again, so a slow client holds no queue; a write error of the flusher
// closes the connection and is returned by every later write. Other
// writes (HEADERS, SETTINGS, a body's last frame) with nothing queued go
// out at once, from the caller.
func (w *h2wire) write(b []byte) (int, error) {
	if w.batch == nil {
		if err := w.roomFor(len(b)); err != nil {
			return 0, err
		}
		n, err := w.Conn.Write(b)
		w.unpolled += n
		return n, err
	}
	w.qmu.Lock()
	if w.qflushing || (w.qfast && w.out.atBoundary() && queueFrame(b)) {
		defer w.qmu.Unlock()
		return w.enqueueLocked(b)
	}
	err := w.qerr
	w.qmu.Unlock()
	if err != nil {
		return 0, err
	}
	// Nothing is queued and only the caller (holding wmu) could queue:
	// write directly, a frame larger than one record in one system call.
	t := time.Now()
	if err := w.roomFor(len(b)); err != nil {
		return 0, err
	}
	var n int
	if len(b) <= maxRecordPayload {
		n, err = w.Conn.Write(b)
	} else {
		w.batch.HoldRecords()
		n, err = w.Conn.Write(b)
		if rerr := w.batch.ReleaseRecords(); err == nil {
			err = rerr
		}
	}
	w.unpolled += n
	w.qmu.Lock()
	w.keptUpLocked(n, time.Since(t))
	w.qmu.Unlock()
	return n, err
}

// roomFor waits, before a direct write of n bytes, while the client's
// socket is full, as an HTTP/1.1 response copy does (unsent.go): a write
// into a full socket blocks holding the TLS record it was encrypted into,
// a wait holds nothing of the wire's (the server keeps the frame it is
// writing either way). The socket is looked at only once parkAfter bytes
// went out since it last had room: it cannot fill before. A client whose
// network is slower than its HTTP/2 window (a browser's is megabytes) is
// what fills it; one whose window is small is held back by flow control
// in the server, before the wire. Under wmu; the wait ends as a write
// would: room, the write deadline, or the connection's end, and it counts
// toward the write's time (keptUpLocked): a client that made the wire
// wait is not keeping up. The queue's flusher (fast clients) writes
// without looking, and its bytes are not counted here.
func (w *h2wire) roomFor(n int) error {
	if w.unpolled+n <= parkAfter {
		return nil
	}
	if w.sock.full(w.Conn) {
		if err := w.h.p.awaitRoom(&w.sock, w.Conn); err != nil {
			return err
		}
	}
	w.unpolled = 0
	return nil
}

// keptUpLocked counts a write of n bytes that took d toward h2FastAfter,
// or turns queueing off if it blocked.
func (w *h2wire) keptUpLocked(n int, d time.Duration) {
	if d >= blockedWrite {
		w.qfast, w.qmoved = false, 0
		return
	}
	if w.qmoved += n; w.qmoved >= h2FastAfter {
		w.qfast = true
	}
}

// enqueueLocked appends b to the queue, waiting while it is full, and
// makes sure a flusher runs.
func (w *h2wire) enqueueLocked(b []byte) (int, error) {
	for w.qerr == nil && w.q != nil && len(*w.q) > 0 && len(*w.q)+len(b) > h2QueueMax {
		w.qcond.Wait()
	}
	if w.qerr != nil {
		return 0, w.qerr
	}
	if w.q == nil {
		w.q = h2QueuePool.Get().(*[]byte)
	}
	*w.q = append(*w.q, b...)
	if !w.qflushing {
		w.qflushing = true
		go w.flushQueue()
	}
	return len(b), nil
}

// flushQueue writes the queue until it is empty (see write).
func (w *h2wire) flushQueue() {
	w.qmu.Lock()
	var err error
	for w.q != nil && len(*w.q) > 0 && err == nil {
		if len(*w.q) < 2*(maxRecordPayload+h2FrameHeaderLen) {
			// One frame: let the server, if it can, queue the next one
			// first (its frame goroutine is runnable), so that a frame's
			// 9-byte header does not end up alone in a TLS record.
			w.qmu.Unlock()
			runtime.Gosched()
			w.qmu.Lock()
		}
		data := w.q
		w.q, w.qspare = w.qspare, nil
		w.qmu.Unlock()
		t := time.Now()
		w.batch.HoldRecords()
		var n int
		n, err = w.Conn.Write(*data)
		if rerr := w.batch.ReleaseRecords(); err == nil {
			err = rerr
		}
		d := time.Since(t)
		*data = (*data)[:0]
		w.qmu.Lock()
		w.keptUpLocked(n, d)
		w.qspare = data
		if err != nil {
			w.qerr = err
		}
		w.qcond.Broadcast()
	}
	for _, b := range []*[]byte{w.q, w.qspare} {
		if b != nil && err == nil {
			*b = (*b)[:0]
			h2QueuePool.Put(b)
		}
	}
	w.q, w.qspare = nil, nil
	w.qflushing = false
	w.qcond.Broadcast()
	w.qmu.Unlock()
	if err != nil {
		_ = w.Conn.Close() // the server's reader notices too
	}
}

// waitQueue waits until the queue is written (bounded by the
// connection's write deadline) and returns the flusher's error, if any.
func (w *h2wire) waitQueue() error {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	for w.qflushing {
		w.qcond.Wait()
	}
	return w.qerr
}

// queueFrame reports whether b is exactly one DATA frame larger than a
// TLS record that does not end its stream: more of the body follows.
func queueFrame(b []byte) bool {
	if len(b) <= maxRecordPayload || b[3] != h2FrameData || b[4]&h2FlagEndStream != 0 {
		return false
	}
	return int(b[0])<<16|int(b[1])<<8|int(b[2]) == len(b)-h2FrameHeaderLen
}

// Close closes the connection; one told to calm down first lingers so
// that the client can read the GOAWAY.
func (w *h2wire) Close() error {
	w.closeOnce.Do(func() {
		defer close(w.closed)
		// What the server wrote last may still be queued: write it first
		// (bounded by the write deadline; Proxy.Shutdown's abort closes
		// the connection under the wire, which ends the wait at once).
		_ = w.waitQueue()
		if !w.calmed.Load() {
			w.Conn.Close()
			return
		}
		w.wmu.Lock()
		if !w.sent {
			w.sendCalmLocked()
		}
		w.wmu.Unlock()
		w.Conn.SetReadDeadline(time.Now().Add(calmLinger))
		var buf [4096]byte
		for n := 0; n < lingerBytes; {
			k, err := w.Conn.Read(buf[:])
			n += k
			if err != nil {
				break
			}
		}
		w.Conn.Close()
	})
	return nil
}
