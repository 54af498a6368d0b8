package agent

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The inspector records at the forwarding layer: join copies the bytes
// between the proxy stream and the upstream as always, and hands each
// chunk it has written to a tap, which follows the HTTP/1.1 framing of
// that direction (RFC 9112 §6: Content-Length, chunked, until close) and
// keeps heads and the first bytes of bodies. A tap never blocks, fails or
// changes the bytes; when it cannot follow (a head over maxCapturedHead, a
// framing it does not understand, a protocol switch) it stops recording
// that connection and the bytes keep flowing.
//
// Every proxy stream of an HTTP endpoint carries HTTP/1.1, whatever the
// public client spoke: the edge translates HTTP/2 clients' requests to
// HTTP/1.1 (docs/agent-protocol.md#proxy-streams), so one parser serves
// both.

// tapConn pairs the two directions of one forwarded connection: requests
// queue in pending until their responses end.
type tapConn struct {
	ring         *captureRing
	tunnel, addr string

	replayOf string // set on every exchange: the connection of a replay

	mu      sync.Mutex
	pending []*capture // requests, oldest first, whose exchange is not published
	first   *capture   // the connection's first exchange
	off     bool       // recording stopped on this connection
	offWhy  string     // why, when the inspector could not follow the bytes
}

func (r *captureRing) newConn(tunnel, clientAddr string) *tapConn {
	return &tapConn{ring: r, tunnel: tunnel, addr: clientAddr}
}

// taps returns the request tap (stream → upstream) and the response tap
// (upstream → stream) of c.
func (c *tapConn) taps() (req, resp *msgTap) {
	req = &msgTap{c: c, request: true}
	resp = &msgTap{c: c}
	return req, resp
}

// close publishes what is left once both directions have ended: requests
// without a response, and a response that ran until the connection
// closed.
func (c *tapConn) close(req, resp *msgTap) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if resp.state == stUntilClose && resp.cur != nil {
		resp.cur.Duration = time.Since(resp.cur.Start)
		resp.cur.respDone = true
	}
	for _, p := range c.pending {
		switch {
		case c.offWhy != "" && (p.resp == nil || !p.respDone || !p.reqDone):
			p.Note = c.offWhy
		case p.resp == nil:
			p.Note = "the connection closed before a response"
		case !p.respDone:
			p.Note = "the connection closed during the response"
			p.Duration = time.Since(p.Start)
		case !p.reqDone:
			p.Note = "the connection closed during the request body"
		}
		c.ring.add(p)
	}
	c.pending = nil
}

// answered reports whether the first exchange's response has ended (a
// replay stops reading then).
func (c *tapConn) answered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first != nil && c.first.respDone
}

// stop ends recording on c (under c.mu).
func (c *tapConn) stop() { c.off = true }

// Parser states.
const (
	stHead       = iota // reading a head
	stFixed             // a body of known length
	stChunkSize         // a chunk-size line
	stChunkData         // chunk data
	stChunkEnd          // the CRLF after chunk data
	stTrailer           // trailer lines up to an empty one
	stUntilClose        // a response body that ends with the connection
	stOff               // not following this direction any more
)

// msgTap follows one direction of a tapConn.
type msgTap struct {
	c       *tapConn
	request bool

	state  int
	head   []byte
	remain int64    // stFixed, stChunkData: bytes left; stChunkEnd: CRLF bytes left
	line   []byte   // stChunkSize, stTrailer: the current line
	cur    *capture // the exchange whose message this direction is in
	start  time.Time
	tstart bool // start is set
}

// Write takes bytes this direction has forwarded. It always consumes all
// of p and never fails.
func (t *msgTap) Write(p []byte) {
	for len(p) > 0 && t.state != stOff {
		switch t.state {
		case stHead:
			p = t.readHead(p)
		case stFixed:
			n := int(min(t.remain, int64(len(p))))
			t.body(p[:n])
			p, t.remain = p[n:], t.remain-int64(n)
			if t.remain == 0 {
				t.end()
			}
		case stChunkSize, stTrailer:
			p = t.readLine(p)
		case stChunkData:
			n := int(min(t.remain, int64(len(p))))
			t.body(p[:n])
			p, t.remain = p[n:], t.remain-int64(n)
			if t.remain == 0 {
				t.state, t.remain = stChunkEnd, 2
			}
		case stChunkEnd:
			n := int(min(t.remain, int64(len(p))))
			p, t.remain = p[n:], t.remain-int64(n)
			if t.remain == 0 {
				t.state = stChunkSize
			}
		case stUntilClose:
			t.body(p)
			p = nil
		}
	}
}

// readHead collects head bytes up to the empty line and returns the rest.
func (t *msgTap) readHead(p []byte) []byte {
	if len(t.head) == 0 {
		// Empty lines before a head are allowed (RFC 9112 §2.2).
		for len(p) > 0 && (p[0] == '\r' || p[0] == '\n') {
			p = p[1:]
		}
		if len(p) == 0 {
			return nil
		}
		if t.request && !t.tstart {
			t.start, t.tstart = time.Now(), true
		}
		// Usually the whole head is in p: no copy into t.head.
		if i := bytes.Index(p[:min(len(p), maxCapturedHead)], []byte("\r\n\r\n")); i >= 0 {
			t.onHead(p[:i+4])
			return p[i+4:]
		}
	}
	had := len(t.head)
	from := max(had-3, 0)
	take := min(len(p), maxCapturedHead-had)
	t.head = append(t.head, p[:take]...)
	i := bytes.Index(t.head[from:], []byte("\r\n\r\n"))
	if i < 0 {
		if take < len(p) || len(t.head) >= maxCapturedHead {
			t.giveUp()
		}
		return nil
	}
	end := from + i + 4
	rest := p[end-had:]
	t.onHead(t.head[:end])
	t.head = t.head[:0]
	return rest
}

// onHead acts on a complete head; the next one starts afresh.
func (t *msgTap) onHead(head []byte) {
	t.tstart = false
	if t.request {
		t.onRequestHead(head)
	} else {
		t.onResponseHead(head)
	}
}

// readLine collects a chunk-size or trailer line and acts on it.
func (t *msgTap) readLine(p []byte) []byte {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		t.line = append(t.line, p...)
		if len(t.line) > 4096 {
			t.giveUp()
		}
		return nil
	}
	t.line = append(t.line, p[:i+1]...)
	line := strings.TrimRight(string(t.line), "\r\n")
	t.line = t.line[:0]
	if t.state == stTrailer {
		if line == "" {
			t.end()
		}
		return p[i+1:]
	}
	if semi := strings.IndexByte(line, ';'); semi >= 0 {
		line = line[:semi] // chunk extensions
	}
	n, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
	switch {
	case err != nil || n < 0:
		t.giveUp()
	case n == 0:
		t.state = stTrailer
	default:
		t.state, t.remain = stChunkData, n
	}
	return p[i+1:]
}

// giveUp stops recording the whole connection: what it carries is not
// HTTP/1.1 the inspector can follow (a head over maxCapturedHead, a
// malformed line or length).
func (t *msgTap) giveUp() {
	t.state = stOff
	t.c.mu.Lock()
	t.c.stop()
	if t.c.offWhy == "" {
		t.c.offWhy = "the inspector stopped following this connection (a head over 64 KiB or malformed framing); the bytes were forwarded unchanged"
	}
	t.c.mu.Unlock()
}

func (t *msgTap) body(p []byte) {
	if len(p) == 0 || t.cur == nil {
		return
	}
	limit := t.c.ring.cfg.BodyLimit
	t.c.mu.Lock()
	if t.request {
		t.cur.req.keep(p, limit)
	} else if t.cur.resp != nil {
		t.cur.resp.keep(p, limit)
	}
	t.c.mu.Unlock()
}

// end completes the current message and readies the next head.
func (t *msgTap) end() {
	t.state = stHead
	cur := t.cur
	t.cur = nil
	if cur == nil {
		return
	}
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.request {
		cur.reqDone = true
	} else {
		cur.respDone = true
		cur.Duration = time.Since(cur.Start)
	}
	t.c.publishDone()
}

// publishDone moves the finished exchanges at the front of pending to the
// ring, in order (under c.mu).
func (c *tapConn) publishDone() {
	n := 0
	for n < len(c.pending) && c.pending[n].reqDone && c.pending[n].respDone {
		c.ring.add(c.pending[n])
		c.pending[n] = nil
		n++
	}
	switch {
	case n == len(c.pending):
		c.pending = c.pending[:0] // keep the array: no allocation per request
	case n > 0:
		c.pending = c.pending[n:]
	}
}

// onRequestHead starts an exchange.
func (t *msgTap) onRequestHead(head []byte) {
	method, ok := requestMethod(head)
	f, fok := scanFraming(head)
	if !ok || !fok {
		t.giveUp()
		return
	}
	c := &capture{ID: t.c.ring.nextID(), Tunnel: t.c.tunnel, RemoteAddr: t.c.addr, Start: t.start, ReplayOf: t.c.replayOf,
		req:     t.c.ring.newMessage(head, f),
		headReq: string(method) == http.MethodHead, connectReq: string(method) == http.MethodConnect}
	// What follows a protocol switch is not HTTP: this direction stops
	// after the head (the response direction records the 101).
	switching := c.connectReq || f.upgrade
	c.reqDone = switching
	t.c.mu.Lock()
	off := t.c.off
	if !off {
		t.c.pending = append(t.c.pending, c)
		if t.c.first == nil {
			t.c.first = c
		}
	}
	t.c.mu.Unlock()
	if off {
		t.state = stOff
		return
	}
	t.cur = c
	switch {
	case switching:
		t.cur, t.state = nil, stOff
	case f.chunked:
		t.state = stChunkSize
	default:
		t.bodyOf(f.length)
	}
}

// onResponseHead attaches a response to the oldest request without one.
func (t *msgTap) onResponseHead(head []byte) {
	code, ok := responseCode(head)
	f, fok := scanFraming(head)
	if !ok || !fok {
		t.giveUp()
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		t.state = stHead // 100 Continue and the like: the final response follows
		return
	}
	t.c.mu.Lock()
	var c *capture
	for _, p := range t.c.pending {
		if p.resp == nil {
			c = p
			break
		}
	}
	if c == nil || t.c.off {
		t.c.stop()
		t.c.mu.Unlock()
		t.state = stOff
		return
	}
	c.respMsg = t.c.ring.newMessage(head, f)
	c.resp = &c.respMsg
	switched := code == http.StatusSwitchingProtocols || c.connectReq && code/100 == 2
	if switched {
		c.Upgraded = true
		t.c.stop()
	}
	headReq := c.headReq
	t.c.mu.Unlock()
	t.cur = c
	switch {
	case switched:
		t.end()
		t.state = stOff
	case headReq || code == http.StatusNoContent || code == http.StatusNotModified:
		t.end()
	case f.chunked:
		t.state = stChunkSize
	case f.length >= 0:
		t.bodyOf(f.length)
	default:
		t.state = stUntilClose
	}
}

// bodyOf expects a body of n bytes (n <= 0: none).
func (t *msgTap) bodyOf(n int64) {
	if n <= 0 {
		t.end()
		return
	}
	t.state, t.remain = stFixed, n
}

// framing is what a head says about the body after it.
type framing struct {
	length  int64 // Content-Length; -1 when absent
	chunked bool  // the last transfer coding is chunked
	upgrade bool  // an Upgrade field is present
}

var (
	fieldContentLength    = []byte("content-length")
	fieldTransferEncoding = []byte("transfer-encoding")
	fieldUpgrade          = []byte("upgrade")
)

// scanFraming reads the fields that frame the body from a head (first
// line, fields, empty line) without allocating. ok is false for a
// Content-Length that is not a number or that differs between fields.
func scanFraming(head []byte) (f framing, ok bool) {
	f.length = -1
	_, rest, _ := bytes.Cut(head, []byte("\r\n"))
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, fieldContentLength):
			n, err := strconv.ParseInt(string(value), 10, 64) // no allocation: the conversion does not escape
			if err != nil || n < 0 || f.length >= 0 && f.length != n {
				return f, false
			}
			f.length = n
		case bytes.EqualFold(name, fieldTransferEncoding):
			codings := value
			if i := bytes.LastIndexByte(codings, ','); i >= 0 {
				codings = codings[i+1:]
			}
			f.chunked = bytes.EqualFold(bytes.TrimSpace(codings), []byte("chunked"))
		case bytes.EqualFold(name, fieldUpgrade):
			f.upgrade = len(value) > 0
		}
	}
	return f, true
}

// requestMethod returns the method of a request head whose first line is
// METHOD SP TARGET SP HTTP/x.y.
func requestMethod(head []byte) ([]byte, bool) {
	first, _, _ := bytes.Cut(head, []byte("\r\n"))
	method, rest, ok1 := bytes.Cut(first, []byte(" "))
	_, proto, ok2 := bytes.Cut(rest, []byte(" "))
	return method, ok1 && ok2 && len(method) > 0 && bytes.HasPrefix(proto, []byte("HTTP/"))
}

// responseCode returns the status code of a response head whose first
// line is HTTP/x.y SP CODE[ SP REASON].
func responseCode(head []byte) (int, bool) {
	first, _, _ := bytes.Cut(head, []byte("\r\n"))
	if !bytes.HasPrefix(first, []byte("HTTP/")) {
		return 0, false
	}
	_, rest, _ := bytes.Cut(first, []byte(" "))
	if len(rest) < 3 || len(rest) > 3 && rest[3] != ' ' {
		return 0, false
	}
	code := 0
	for _, d := range rest[:3] {
		if d < '0' || d > '9' {
			return 0, false
		}
		code = code*10 + int(d-'0')
	}
	return code, true
}
