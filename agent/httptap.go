package agent

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
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

	mu      sync.Mutex
	pending []*capture // requests, oldest first, whose exchange is not published
	off     bool       // recording stopped on this connection
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
		case p.Resp == nil:
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
		if !t.tstart {
			t.start, t.tstart = time.Now(), true
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
	head := t.head[:end]
	if t.request {
		t.onRequestHead(head)
	} else {
		t.onResponseHead(head)
	}
	t.head, t.tstart = t.head[:0], false
	return rest
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

// giveUp stops recording the whole connection.
func (t *msgTap) giveUp() {
	t.state = stOff
	t.c.mu.Lock()
	t.c.stop()
	t.c.mu.Unlock()
}

func (t *msgTap) body(p []byte) {
	if len(p) == 0 || t.cur == nil {
		return
	}
	limit := t.c.ring.cfg.BodyLimit
	t.c.mu.Lock()
	if t.request {
		t.cur.Req.keep(p, limit)
	} else if t.cur.Resp != nil {
		t.cur.Resp.keep(p, limit)
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
	if n > 0 {
		c.pending = c.pending[n:]
	}
}

// onRequestHead starts an exchange.
func (t *msgTap) onRequestHead(head []byte) {
	first, hdr, ok := parseHead(head)
	parts := strings.SplitN(first, " ", 3)
	if !ok || len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/") {
		t.giveUp()
		return
	}
	c := &capture{ID: t.c.ring.nextID(), Tunnel: t.c.tunnel, RemoteAddr: t.c.addr, Start: t.start,
		Req: capturedRequest{Method: parts[0], URI: parts[1], capturedMessage: capturedMessage{Proto: parts[2], Header: hdr}}}
	// What follows a protocol switch is not HTTP: this direction stops
	// after the head (the response direction records the 101).
	switching := c.Req.Method == http.MethodConnect || hdr.Get("Upgrade") != ""
	c.reqDone = switching
	t.c.mu.Lock()
	off := t.c.off
	if !off {
		t.c.pending = append(t.c.pending, c)
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
	case chunked(hdr):
		t.state = stChunkSize
	default:
		n, _ := strconv.ParseInt(hdr.Get("Content-Length"), 10, 64)
		t.bodyOf(n)
	}
}

// onResponseHead attaches a response to the oldest request without one.
func (t *msgTap) onResponseHead(head []byte) {
	first, hdr, ok := parseHead(head)
	parts := strings.SplitN(first, " ", 3)
	if !ok || len(parts) < 2 || !strings.HasPrefix(parts[0], "HTTP/") {
		t.giveUp()
		return
	}
	code, err := strconv.Atoi(parts[1])
	if err != nil {
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
		if p.Resp == nil {
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
	status := strings.Join(parts[1:], " ")
	c.Resp = &capturedResponse{StatusCode: code, Status: status, capturedMessage: capturedMessage{Proto: parts[0], Header: hdr}}
	method := c.Req.Method
	switched := code == http.StatusSwitchingProtocols || method == http.MethodConnect && code/100 == 2
	if switched {
		c.Upgraded = true
		t.c.stop()
	}
	t.c.mu.Unlock()
	t.cur = c
	switch {
	case switched:
		t.end()
		t.state = stOff
	case method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified:
		t.end()
	case chunked(hdr):
		t.state = stChunkSize
	case hdr.Get("Content-Length") != "":
		n, err := strconv.ParseInt(hdr.Get("Content-Length"), 10, 64)
		if err != nil {
			t.giveUp()
			return
		}
		t.bodyOf(n)
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

// chunked reports whether the last transfer coding is chunked.
func chunked(h http.Header) bool {
	te := h.Values("Transfer-Encoding")
	if len(te) == 0 {
		return false
	}
	codings := strings.Split(te[len(te)-1], ",")
	return strings.EqualFold(strings.TrimSpace(codings[len(codings)-1]), "chunked")
}

// parseHead splits a head into its first line and its header fields.
func parseHead(head []byte) (string, http.Header, bool) {
	i := bytes.Index(head, []byte("\r\n"))
	if i < 0 {
		return "", nil, false
	}
	rest := head[i+2:]
	r := textproto.NewReader(bufio.NewReaderSize(bytes.NewReader(rest), len(rest)))
	h, err := r.ReadMIMEHeader()
	if err != nil {
		return "", nil, false
	}
	return string(head[:i]), http.Header(h), true
}
