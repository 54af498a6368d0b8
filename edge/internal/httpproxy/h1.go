package httpproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

const (
	maxPipelined  = 16       // requests forwarded ahead of their responses
	maxBlankLines = 8        // empty lines tolerated before a request line (RFC 9112 §2.2)
	maxCoalesce   = 16 << 10 // head and first body bytes go out in one Write up to this size
	maxOutRetain  = 64 << 10 // a larger head buffer is dropped after use
	lingerTimeout = 500 * time.Millisecond
	lingerBytes   = 256 << 10 // read and discarded after an error page, so the close sends no RST
)

// aLongTimeAgo is a deadline in the past: it wakes a blocked Read.
var aLongTimeAgo = time.Unix(1, 0)

// Phases of the request side of an HTTP/1.1 connection.
const (
	phaseIdle uint8 = iota // waiting for the first byte of a request
	phaseHead              // reading a request head
	phaseBody              // forwarding a request body, or upgraded
)

// pending is a request forwarded whose response has not ended yet.
type pending struct {
	isHead, upgrade, close, html bool
	sts                          string    // Strict-Transport-Security the edge sets; "" = the upstream's (hsts.go)
	start                        time.Time // OnRequest only
	method, path, proto          string    // OnRequest only
}

// h1conn is one HTTP/1.1 client connection. The goroutine that runs serve
// reads requests and writes them to the proxy stream; a second goroutine
// per stream (readResponses) copies responses back. They share the queue of
// pending requests under mu.
type h1conn struct {
	p         *Proxy
	ctx       context.Context
	c         net.Conn
	remote    netip.AddrPort
	authority string // lower-case host this connection serves; from SNI, else the first Host
	xff       []byte // "X-Forwarded-For: <ip>\r\n"; nil when the peer has no IP address
	tlsVer    uint16 // for OnRequest; 0 without TLS

	// Request side, owned by serve.
	in, inPool []byte             // in is inPool unless a head needed more room
	ir, iw     int                // unread bytes are in[ir:iw]
	first      [idleReadSize]byte // the next request's first bytes (idleFill)
	headLen    int
	out        []byte
	req        requestHead
	body       bodyFramer
	ep         Endpoint
	stripAuth  bool // the current request's Authorization fields are not forwarded

	// Response side, owned by readResponses.
	resp responseHead
	sock clientSocket // c's socket, for a body copy that finds it full
	info RequestInfo
	hsts []byte // a response head rewritten with the edge's Strict-Transport-Security

	mu           sync.Mutex
	cond         sync.Cond
	q            [maxPipelined]pending
	qh, qn       int
	st           Stream // the open stream; nil when none
	bRunning     bool   // readResponses runs for st
	waiters      int
	phase        uint8
	rdSet        bool // a read deadline is set on c
	upgraded     bool
	closing      bool
	lastSent     bool // draining: a response went out with "Connection: close"
	clientClosed bool
	abortPage    *pageSpec // answer for the last request if its stream is cut before a response

	// bodyIn counts request body bytes forwarded since the last
	// OnRequest call took them (RequestInfo.RequestBytes).
	bodyIn atomic.Int64

	wmu sync.Mutex // client writes
	wdl time.Time  // current write deadline
}

func newH1Conn(p *Proxy, ctx context.Context, c net.Conn, sni string, remote netip.AddrPort) *h1conn {
	h := &h1conn{p: p, ctx: ctx, c: c, remote: remote, authority: sni}
	h.cond.L = &h.mu
	if remote.Addr().IsValid() {
		h.xff = []byte("X-Forwarded-For: " + remote.Addr().String() + "\r\n")
	}
	return h
}

// serve runs the request side until the connection ends.
func (h *h1conn) serve() {
	h.inPool = h.p.getBuf()
	h.in = h.inPool
	h.out = make([]byte, 0, 2048)
	defer func() {
		h.end()
		h.p.pool.Put(h.inPool)
	}()
	for h.readHead() && h.forward() {
	}
}

// readHead reads the next request head into in[ir:ir+headLen] and parses
// it. False means the connection is done (answered and closed as needed).
func (h *h1conn) readHead() bool {
	// An answer before the head parses must not take the last request's.
	h.req.isHead, h.req.acceptsHTML, h.req.method, h.req.path = false, false, nil, nil
	if h.ir == h.iw {
		h.ir, h.iw = 0, 0
		if len(h.in) != len(h.inPool) {
			h.in = h.inPool
		}
	}
	blanks := 0
	for {
		for h.iw-h.ir >= 2 && h.in[h.ir] == '\r' && h.in[h.ir+1] == '\n' {
			h.ir += 2
			if blanks++; blanks > maxBlankLines {
				h.fail(pageFor(errTooManyBlanks))
				return false
			}
		}
		if n := h.iw - h.ir; n >= 2 || n == 1 && h.in[h.ir] != '\r' {
			break
		}
		if h.ir > 0 {
			h.iw = copy(h.in, h.in[h.ir:h.iw])
			h.ir = 0
		}
		if !h.idle() {
			h.graceful()
			return false
		}
		fill := h.fill
		if h.iw == 0 {
			fill = h.idleFill
		}
		if err := fill(); err != nil {
			// EOF, reset, idle timeout or shutdown: end quietly once the
			// responses in flight are written.
			h.graceful()
			return false
		}
	}
	scanned := 0
	deadline := false
	for {
		n, err := scanHead(h.in[h.ir:h.iw], scanned)
		if err != nil {
			h.fail(pageFor(err))
			return false
		}
		if n > 0 {
			h.headLen = n
			break
		}
		scanned = h.iw - h.ir
		if scanned >= h.p.cfg.MaxHeaderBytes {
			h.fail(pageHeadTooLarge)
			return false
		}
		if !deadline {
			h.headDeadline()
			deadline = true
		}
		if err := h.fill(); err != nil {
			if isTimeout(err) {
				h.fail(pageHeadTimeout)
			} else {
				h.graceful()
			}
			return false
		}
	}
	if h.headLen > h.p.cfg.MaxHeaderBytes {
		h.fail(pageHeadTooLarge)
		return false
	}
	if err := parseRequestHead(h.in[h.ir:h.ir+h.headLen], &h.req); err != nil {
		if ce := h.p.log.Check(zap.DebugLevel, "request refused"); ce != nil {
			ce.Write(zap.Stringer("remote_addr", h.remote), zap.Error(err))
		}
		h.fail(pageFor(err))
		return false
	}
	return true
}

// forward checks and forwards the parsed request, then its body. False
// means the connection is done.
func (h *h1conn) forward() bool {
	r := &h.req
	head := h.in[h.ir : h.ir+h.headLen]
	if h.authority == "" {
		h.authority = strings.ToLower(string(r.hostName))
	}
	if !equalFold(r.hostName, h.authority) || r.absolute && !equalFold(r.absHostName, h.authority) {
		h.fail(pageMisdirected)
		return false
	}
	if h.overloaded() {
		return false
	}
	ep, ok := h.admit(r)
	if !ok {
		return false
	}
	switch {
	case r.chunked:
		h.body.setChunked()
	case r.contentLength > 0:
		h.body.setLength(r.contentLength)
	default:
		h.body.kind = frameNone
	}
	bodyStart := h.ir + h.headLen
	k, done, err := h.body.consume(h.in[bodyStart:h.iw])
	if err != nil {
		h.fail(pageFor(err))
		return false
	}

	e := pending{isHead: r.isHead, upgrade: r.upgrade, close: r.close, html: r.acceptsHTML, sts: hstsOf(ep, h.c)}
	if h.p.cfg.OnRequest != nil {
		e.start = time.Now()
		e.method, e.path = string(r.method), string(r.path)
		e.proto = "HTTP/1.1"
		if r.minor == 0 {
			e.proto = "HTTP/1.0"
		}
	}
	var st Stream
	for attempt := 0; ; attempt++ {
		if st, ep, ok = h.stream(ep, r); !ok {
			return false
		}
		e.sts = hstsOf(ep, h.c) // ep may be another member of a pool
		queued, last := h.begin(st, e)
		if last {
			// Draining, and the last response said "Connection: close":
			// this request was never forwarded; the client sends it again
			// on a new connection.
			h.graceful()
			return false
		}
		if queued {
			break
		}
		if attempt == 1 {
			h.fail(pageAgentUnreachable)
			return false
		}
	}

	pre := h.in[bodyStart : bodyStart+k]
	h.bodyIn.Add(int64(k))
	out := h.appendHead(h.out[:0], head)
	coalesce := len(out)+len(pre) <= maxCoalesce
	if coalesce {
		out = append(out, pre...)
	}
	_, werr := st.Write(out)
	if werr == nil && !coalesce && len(pre) > 0 {
		_, werr = st.Write(pre)
	}
	if cap(out) <= maxOutRetain {
		h.out = out[:0]
	} else {
		h.out = make([]byte, 0, 2048)
	}
	h.ir = bodyStart + k
	if werr != nil {
		h.abortBody(nil)
		return false
	}

	pace := h.p.newPacer(time.Now())
	for !done {
		h.ir, h.iw = 0, 0
		if len(h.in) != len(h.inPool) {
			h.in = h.inPool
		}
		if dl, ok := pace.next(time.Now()); ok {
			h.mu.Lock()
			h.c.SetReadDeadline(dl)
			h.rdSet = true
			h.mu.Unlock()
		}
		if err := h.fill(); err != nil {
			// The client stopped mid-body, or stalled: the upstream must
			// not see a complete request, and the stream is released.
			var pg *pageSpec
			if isTimeout(err) {
				pg = pageBodyTimeout
			}
			h.abortBody(pg)
			return false
		}
		pace.n += int64(h.iw)
		var ferr error
		k, done, ferr = h.body.consume(h.in[:h.iw])
		h.bodyIn.Add(int64(k))
		if k > 0 {
			if _, err := st.Write(h.in[:k]); err != nil {
				h.abortBody(nil)
				return false
			}
		}
		h.ir = k
		if ferr != nil {
			h.abortBody(pageFor(ferr))
			return false
		}
	}

	if r.upgrade {
		h.mu.Lock()
		for !h.upgraded && h.qn > 0 && h.bRunning {
			h.waitLocked()
		}
		upgraded := h.upgraded
		h.mu.Unlock()
		if upgraded {
			h.rawToStream(st)
			return false
		}
	}
	if r.close {
		h.graceful()
		return false
	}
	return true
}

// appendHead appends the request head to forward: the request line with an
// absolute-form target reduced to origin-form, the fields minus client-sent
// X-Forwarded-* and Forwarded, then the edge's X-Forwarded-For, -Proto and
// -Host.
func (h *h1conn) appendHead(out, head []byte) []byte {
	r := &h.req
	out = append(out, r.method...)
	out = append(out, ' ')
	if r.absolute && (len(r.path) == 0 || r.path[0] != '/') {
		out = append(out, '/')
	}
	out = append(out, r.path...)
	if r.minor == 0 {
		out = append(out, " HTTP/1.0\r\n"...)
	} else {
		out = append(out, " HTTP/1.1\r\n"...)
	}
	for _, f := range r.fields {
		switch f.kind {
		case fieldDrop:
			continue
		case fieldConnection:
			if r.connFilter {
				out = appendConnection(out, head[f.valStart:f.valEnd])
				continue
			}
		case fieldAuthorization:
			if h.stripAuth {
				continue
			}
		}
		out = append(out, head[f.start:f.end]...)
	}
	out = append(out, h.xff...)
	out = append(out, h.p.xfp...)
	out = append(out, "X-Forwarded-Host: "...)
	out = append(out, r.host...)
	return append(out, "\r\n\r\n"...)
}

// appendConnection appends a Connection field without the options that name
// a dropped field: a client must not make a proxy behind the agent strip
// the edge's X-Forwarded-For (RFC 9110 §7.6.1).
func appendConnection(out, value []byte) []byte {
	n := len(out)
	out = append(out, "Connection: "...)
	first := true
	for v := value; v != nil; {
		var tok []byte
		tok, v = nextToken(v)
		if len(tok) == 0 || isDroppedName(tok) {
			continue
		}
		if !first {
			out = append(out, ", "...)
		}
		first = false
		out = append(out, tok...)
	}
	if first {
		return out[:n]
	}
	return append(out, "\r\n"...)
}

// admit returns the endpoint of the request (the open stream's, else the
// resolver's) once its Gate, if any, admitted the request; it decides
// whether the request's Authorization fields are forwarded. On refusal the
// client has been answered and the connection is done.
func (h *h1conn) admit(r *requestHead) (Endpoint, bool) {
	h.mu.Lock()
	ep := h.ep
	if h.st == nil || !h.bRunning {
		ep = nil
	}
	h.mu.Unlock()
	if ep == nil {
		var ok bool
		if ep, ok = h.p.resolver.Resolve(h.authority); !ok {
			h.fail(pageNotFound(h.authority))
			return nil, false
		}
	}
	h.stripAuth = false
	g, ok := ep.(Gate)
	if !ok {
		return ep, true
	}
	ad := g.Admit(h.remote.Addr(), r.auth, r.authCount)
	if ad.Refusal != nil {
		h.mu.Lock()
		if h.st == nil {
			h.ep = ep // for OnRequest's EndpointID
		}
		h.mu.Unlock()
		h.fail(&ad.Refusal.pg)
		return nil, false
	}
	h.stripAuth = ad.StripAuthorization
	return ep, true
}

// overloaded answers the request with Config.Overload's refusal, if it
// gives one, and ends the connection: nothing of the request is
// forwarded, and a kept-alive connection's open stream carries nothing
// more.
func (h *h1conn) overloaded() bool {
	fn := h.p.cfg.Overload
	if fn == nil {
		return false
	}
	rf := fn()
	if rf == nil {
		return false
	}
	h.fail(&rf.pg)
	return true
}

// stream returns the connection's open stream, opening one to ep (and
// starting its response goroutine) when there is none, and the endpoint
// it goes to. When ep's agent is not answering and another endpoint may
// serve the host (ErrEndpointDown), the request r, of which nothing was
// sent, is resolved and admitted again (admit), at most maxEndpointTries
// opens in all. On failure the client has been answered and the
// connection is done.
func (h *h1conn) stream(ep Endpoint, r *requestHead) (Stream, Endpoint, bool) {
	h.mu.Lock()
	st, running, closed := h.st, h.bRunning, h.clientClosed
	h.mu.Unlock()
	if closed {
		return nil, ep, false
	}
	if st != nil && running {
		return st, ep, true
	}
	for tries := 1; ; tries++ {
		var err error
		if st, err = ep.OpenStream(h.ctx); err == nil {
			break
		}
		if ce := h.p.log.Check(zap.DebugLevel, "opening proxy stream failed"); ce != nil {
			ce.Write(zap.String("endpoint", ep.ID()), zap.Stringer("remote_addr", h.remote), zap.Error(err))
		}
		if !errors.Is(err, ErrEndpointDown) || tries == maxEndpointTries || h.ctx.Err() != nil {
			h.fail(pageAgentUnreachable)
			return nil, ep, false
		}
		var ok bool
		if ep, ok = h.admit(r); !ok {
			return nil, ep, false
		}
	}
	h.mu.Lock()
	if h.clientClosed {
		h.mu.Unlock()
		st.Close()
		return nil, ep, false
	}
	h.ep, h.st, h.bRunning = ep, st, true
	h.mu.Unlock()
	go h.readResponses(st)
	return st, ep, true
}

// begin queues e as the newest pending request on st. queued false
// means st died in the meantime; last means the connection is draining and
// its last response was sent with "Connection: close", so e must not be
// forwarded.
func (h *h1conn) begin(st Stream, e pending) (queued, last bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.qn == maxPipelined && h.bRunning && h.st == st && !h.lastSent {
		h.waitLocked()
	}
	if h.lastSent {
		return false, true
	}
	if h.st != st || !h.bRunning {
		return false, false
	}
	h.q[(h.qh+h.qn)%maxPipelined] = e
	h.qn++
	h.phase = phaseBody
	if h.rdSet {
		h.c.SetReadDeadline(time.Time{})
		h.rdSet = false
	}
	return true, false
}

// idle enters phaseIdle before waiting for a request. The idle timeout runs
// only while no response is outstanding; complete arms it otherwise.
func (h *h1conn) idle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing || h.clientClosed {
		return false
	}
	h.phase = phaseIdle
	if h.qn == 0 {
		h.c.SetReadDeadline(time.Now().Add(h.p.cfg.IdleTimeout))
		h.rdSet = true
	} else if h.rdSet {
		h.c.SetReadDeadline(time.Time{})
		h.rdSet = false
	}
	return true
}

// headDeadline bounds the rest of a request head.
func (h *h1conn) headDeadline() {
	h.mu.Lock()
	h.phase = phaseHead
	h.c.SetReadDeadline(time.Now().Add(h.p.cfg.HeaderReadTimeout))
	h.rdSet = true
	h.mu.Unlock()
}

// fill reads once from the client into in[iw:], making room first: unread
// bytes move to the front, and a buffer full of one head grows up to the
// head limit.
func (h *h1conn) fill() error {
	if h.iw == len(h.in) {
		switch {
		case h.ir > 0:
			h.iw = copy(h.in, h.in[h.ir:h.iw])
			h.ir = 0
		case len(h.in) < h.p.cfg.MaxHeaderBytes+minBufferSize:
			n := min(2*len(h.in), h.p.cfg.MaxHeaderBytes+minBufferSize)
			nb := make([]byte, n)
			h.iw = copy(nb, h.in[h.ir:h.iw])
			h.ir = 0
			h.in = nb
		default:
			return errHeadTooLarge
		}
	}
	n, err := h.read(h.in[h.iw:])
	h.iw += n
	return err
}

// idleReadSize is what a connection reads its next request's first bytes
// into (idleFill): most request heads, and far below a pool buffer.
const idleReadSize = 1 << 10

// idleFill is fill for an empty buffer: the wait for the next request (as
// long as the client likes while a response streams, or up to the idle
// timeout) holds no pool buffer, only first; the pool buffer is taken
// again when bytes arrive. 500 connections whose clients read a response
// slowly hold 500 fewer pool buffers.
func (h *h1conn) idleFill() error {
	h.p.pool.Put(h.inPool)
	h.inPool, h.in = nil, nil
	n, err := h.read(h.first[:])
	h.inPool = h.p.getBuf()
	h.in = h.inPool
	h.iw = copy(h.in, h.first[:n])
	return err
}

// read reads into b until it gets a byte or an error.
func (h *h1conn) read(b []byte) (int, error) {
	for range 100 {
		n, err := h.c.Read(b)
		if n > 0 {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
	return 0, io.ErrNoProgress
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// waitLocked waits for the response side to change the shared state.
func (h *h1conn) waitLocked() {
	h.waiters++
	h.cond.Wait()
	h.waiters--
}

func (h *h1conn) broadcastLocked() {
	if h.waiters > 0 {
		h.cond.Broadcast()
	}
}

// writeClient writes b to the client. A write stalled longer than the idle
// timeout fails; the deadline is refreshed only when half of it is used up.
func (h *h1conn) writeClient(b []byte) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	h.extendWriteDeadlineLocked()
	if len(b) > maxRecordPayload {
		if rb := recordBatcherOf(h.c); rb != nil {
			rb.HoldRecords()
			_, err := h.c.Write(b)
			if rerr := rb.ReleaseRecords(); err == nil {
				err = rerr
			}
			return err
		}
	}
	_, err := h.c.Write(b)
	return err
}

// extendWriteDeadlineLocked moves the client's write deadline an idle
// timeout ahead when half of it has passed. Under wmu.
func (h *h1conn) extendWriteDeadlineLocked() {
	if idle := h.p.cfg.IdleTimeout; idle > 0 {
		now := time.Now()
		if now.After(h.wdl.Add(-idle / 2)) {
			h.wdl = now.Add(idle)
			h.c.SetWriteDeadline(h.wdl)
		}
	}
}

// awaitClient waits until the client's socket takes bytes again, as long
// as a write to it may block (the idle timeout); an error ends the
// connection as a failed write does.
func (h *h1conn) awaitClient() error {
	h.wmu.Lock()
	h.extendWriteDeadlineLocked()
	h.wmu.Unlock()
	return h.p.awaitRoom(&h.sock, h.c)
}

// rawToStream copies the client's bytes to the stream after a 101 answer
// until the client half-closes, then half-closes the stream.
func (h *h1conn) rawToStream(st Stream) {
	defer h.end()
	if h.ir < h.iw {
		if _, err := st.Write(h.in[h.ir:h.iw]); err != nil {
			return
		}
		h.ir = h.iw
	}
	for {
		n, err := h.c.Read(h.in)
		if n > 0 {
			if _, werr := st.Write(h.in[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && st.CloseWrite() == nil {
				h.waitResponses()
			}
			return
		}
	}
}

// reportPage calls OnRequest for an answer the request side gave itself.
func (h *h1conn) reportPage(pg *pageSpec) {
	fn := h.p.cfg.OnRequest
	if fn == nil {
		return
	}
	info := &RequestInfo{
		RemoteAddr: h.remote, Host: h.authority, Proto: "HTTP/1.1", TLSVersion: h.tlsVer,
		Method: string(h.req.method), Path: string(h.req.path),
		Status: pg.status, Code: pg.code, Start: time.Now(), RequestBytes: h.bodyIn.Swap(0),
	}
	if h.ep != nil {
		info.EndpointID = h.ep.ID()
		info.Endpoint = h.ep
	}
	fn(info)
}
