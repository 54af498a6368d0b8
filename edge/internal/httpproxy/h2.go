package httpproxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/codes"
	"go.uber.org/zap"
	"golang.org/x/net/http2"
)

// h2conn is one HTTP/2 client connection. x/net/http2 serves it and calls
// ServeHTTP per request on the stream's goroutine; each request travels as
// HTTP/1.1 over a proxy stream from the connection's pool.
type h2conn struct {
	p      *Proxy
	c      net.Conn
	sni    string
	remote netip.AddrPort
	xff    string // "" when the peer has no IP address

	mu     sync.Mutex
	idle   []*h2stream // streams ready for another request, newest last
	closed bool
}

// h2stream is a proxy stream that carries one HTTP/1.1 exchange at a time.
type h2stream struct {
	epID string
	st   Stream
	br   *bufio.Reader
	read int64 // bytes read from st
}

func (s *h2stream) Read(b []byte) (int, error) {
	n, err := s.st.Read(b)
	s.read += int64(n)
	return n, err
}

func (p *Proxy) serveH2(ctx context.Context, c net.Conn, sni string, remote netip.AddrPort) {
	h := &h2conn{p: p, c: c, sni: sni, remote: remote}
	if remote.Addr().IsValid() {
		h.xff = remote.Addr().String()
	}
	if !p.track(h) {
		c.Close()
		return
	}
	defer p.untrack(h)
	defer h.closeIdle()
	stop := context.AfterFunc(ctx, h.abort)
	defer stop()
	p.h2.ServeConn(c, &http2.ServeConnOpts{Context: ctx, BaseConfig: p.h2b, Handler: h})
}

// shutdown implements servedConn. Proxy.Shutdown sends GOAWAY to every
// HTTP/2 connection through the http2 server's shutdown hook.
func (h *h2conn) shutdown() {}

// abort implements servedConn.
func (h *h2conn) abort() { h.c.Close() }

// ServeHTTP relays one HTTP/2 request.
func (h *h2conn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var start time.Time
	if h.p.cfg.OnRequest != nil {
		start = time.Now()
	}
	status, code, epID, n := h.relay(w, r)
	if fn := h.p.cfg.OnRequest; fn != nil {
		fn(&RequestInfo{
			RemoteAddr: h.remote, Host: h.sni, EndpointID: epID, Proto: "HTTP/2.0",
			Method: r.Method, Path: r.RequestURI, Status: status, Code: code,
			ResponseBytes: n, Start: start, Duration: time.Since(start),
		})
	}
}

func (h *h2conn) page(w http.ResponseWriter, r *http.Request, pg *pageSpec) (int, codes.Code) {
	writeH2Page(w, r, pg)
	return pg.status, pg.code
}

// relay checks r, sends it over a proxy stream and copies the response
// back. It returns the status sent, the code of an edge answer, the
// endpoint ID and the response body bytes written.
func (h *h2conn) relay(w http.ResponseWriter, r *http.Request) (int, codes.Code, string, int64) {
	hostName, ok := splitHostPort([]byte(r.Host))
	if !ok {
		s, c := h.page(w, r, pageFor(errBadHost))
		return s, c, "", 0
	}
	authority := h.sni
	if authority == "" {
		authority = strings.ToLower(string(hostName))
	}
	if !equalFold(hostName, authority) {
		s, c := h.page(w, r, pageMisdirected)
		return s, c, "", 0
	}
	for _, v := range r.Header.Values("Host") {
		if hn, ok := splitHostPort([]byte(v)); !ok || !equalFold(hn, authority) {
			s, c := h.page(w, r, pageMisdirected)
			return s, c, "", 0
		}
	}
	if r.Method == http.MethodConnect {
		s, c := h.page(w, r, pageFor(errMethodConnect))
		return s, c, "", 0
	}
	if !validMethodAndPath(r.Method, r.RequestURI) {
		s, c := h.page(w, r, pageFor(errRequestLine))
		return s, c, "", 0
	}
	ep, ok := h.p.resolver.Resolve(authority)
	if !ok {
		s, c := h.page(w, r, pageNotFound(authority))
		return s, c, "", 0
	}
	epID := ep.ID()
	if g, ok := ep.(Gate); ok {
		var auth []byte
		vals := r.Header["Authorization"]
		if len(vals) > 0 {
			auth = []byte(vals[0])
		}
		ad := g.Admit(h.remote.Addr(), auth, len(vals))
		if ad.Refusal != nil {
			s, c := h.page(w, r, &ad.Refusal.pg)
			return s, c, epID, 0
		}
		if ad.StripAuthorization {
			r.Header.Del("Authorization")
		}
	}
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	chunked := hasBody && r.ContentLength < 0
	head := h.appendHead(make([]byte, 0, 1024), r, chunked)

	for attempt := 0; ; attempt++ {
		ps, reused, err := h.get(r.Context(), ep)
		if err != nil {
			if ce := h.p.log.Check(zap.DebugLevel, "opening proxy stream failed"); ce != nil {
				ce.Write(zap.String("endpoint", epID), zap.Stringer("remote_addr", h.remote), zap.Error(err))
			}
			s, c := h.page(w, r, pageAgentUnreachable)
			return s, c, epID, 0
		}
		status, n, retry, err := h.exchange(w, r, ps, head, hasBody, chunked)
		if err == nil {
			return status, "", epID, n
		}
		// A reused stream the upstream closed while idle: try a fresh one
		// when nothing of the request body was consumed.
		if retry && reused && !hasBody && attempt == 0 {
			continue
		}
		if ce := h.p.log.Check(zap.DebugLevel, "no response on proxy stream"); ce != nil {
			ce.Write(zap.String("endpoint", epID), zap.Stringer("remote_addr", h.remote), zap.Error(err))
		}
		if status != 0 {
			// The response began; the client must see it cut, not complete.
			panic(http.ErrAbortHandler)
		}
		if r.Context().Err() != nil {
			return 0, "", epID, 0
		}
		s, c := h.page(w, r, pageNoResponse)
		return s, c, epID, 0
	}
}

// exchange sends the request on ps and copies the response to w. status is
// 0 when no final response was written; retry reports that the stream
// ended before any response byte. ps is returned to the pool or closed.
func (h *h2conn) exchange(w http.ResponseWriter, r *http.Request, ps *h2stream, head []byte, hasBody, chunked bool) (status int, n int64, retry bool, err error) {
	reusable := false
	defer func() {
		if reusable {
			h.put(ps)
		} else {
			ps.st.Close()
		}
	}()
	stop := context.AfterFunc(r.Context(), func() { ps.st.Close() })
	defer stop()
	readBefore := ps.read
	if _, err := ps.st.Write(head); err != nil {
		return 0, 0, true, err
	}
	var bodyDone chan error
	if hasBody {
		bodyDone = make(chan error, 1)
		go func() { bodyDone <- h.sendBody(ps.st, r, chunked) }()
	}
	resp, err := h.readFinal(w, r, ps)
	if err != nil {
		return 0, 0, ps.read == readBefore, err
	}
	defer resp.Body.Close()

	dst := w.Header()
	for k, vv := range resp.Header {
		if !hopByHop(k) {
			dst[k] = vv
		}
	}
	for _, v := range resp.Header["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = textproto.TrimString(tok); tok != "" {
				dst.Del(tok)
			}
		}
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		dst["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)

	buf := h.p.getBuf()
	defer h.p.pool.Put(buf)
	fl, _ := w.(http.Flusher)
	var copyErr error
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return resp.StatusCode, n, false, nil // the client went away
			}
			n += int64(k)
			if fl != nil && ps.br.Buffered() == 0 {
				fl.Flush() // nothing more at hand: send what we have (SSE, streaming)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			copyErr = rerr
			break
		}
	}
	if copyErr != nil {
		return resp.StatusCode, n, false, copyErr
	}
	for k, vv := range resp.Trailer {
		dst[http.TrailerPrefix+k] = vv
	}
	reusable = !resp.Close && stop()
	if reusable && hasBody {
		select {
		case berr := <-bodyDone:
			reusable = berr == nil
		default:
			reusable = false // the upstream answered before the body was sent
		}
	}
	return resp.StatusCode, n, false, nil
}

// readFinal reads responses until a final one; informational ones other
// than 100 are passed to the client.
func (h *h2conn) readFinal(w http.ResponseWriter, r *http.Request, ps *h2stream) (*http.Response, error) {
	fake := &http.Request{Method: r.Method}
	for range 32 {
		resp, err := http.ReadResponse(ps.br, fake)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode >= 200:
			return resp, nil
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errUnexpected101
		case resp.StatusCode == http.StatusContinue:
			// Expect is not forwarded; the http2 server sends its own 100.
		default:
			dst := w.Header()
			for k, vv := range resp.Header {
				dst[k] = vv
			}
			w.WriteHeader(resp.StatusCode)
			for k := range resp.Header {
				delete(dst, k)
			}
		}
	}
	return nil, errStatusLine
}

// sendBody copies r's body to st, chunked when its length is unknown (then
// with r's trailers). On failure st is closed so that the upstream never
// takes a truncated body for a complete one.
func (h *h2conn) sendBody(st Stream, r *http.Request, chunked bool) (err error) {
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	buf := h.p.getBuf()
	defer h.p.pool.Put(buf)
	if !chunked {
		_, err = io.CopyBuffer(writerOnly{st}, readerOnly{r.Body}, buf)
		return err
	}
	const pre = 18 // room for a hex size line
	for {
		k, rerr := r.Body.Read(buf[pre : len(buf)-2])
		if k > 0 {
			line := strconv.AppendInt(buf[:0:pre], int64(k), 16)
			line = append(line, '\r', '\n')
			s := pre - len(line)
			copy(buf[s:], line)
			buf[pre+k], buf[pre+k+1] = '\r', '\n'
			if _, err := st.Write(buf[s : pre+k+2]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	end := append(buf[:0], "0\r\n"...)
	for k, vv := range r.Trailer {
		if !validFieldName(k) {
			continue
		}
		for _, v := range vv {
			if validFieldValue(v) {
				end = append(append(append(append(end, k...), ": "...), v...), "\r\n"...)
			}
		}
	}
	end = append(end, "\r\n"...)
	_, err = st.Write(end)
	return err
}

type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }

// appendHead appends r's head as an HTTP/1.1 request.
func (h *h2conn) appendHead(b []byte, r *http.Request, chunked bool) []byte {
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, r.RequestURI...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, "\r\n"...)
	for k, vv := range r.Header {
		if skipRequestField(k) || !validFieldName(k) {
			continue
		}
		for _, v := range vv {
			if validFieldValue(v) {
				b = append(append(append(append(b, k...), ": "...), v...), "\r\n"...)
			}
		}
	}
	switch {
	case chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case r.ContentLength > 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, r.ContentLength, 10)
		b = append(b, "\r\n"...)
	}
	if h.xff != "" {
		b = append(append(append(b, "X-Forwarded-For: "...), h.xff...), "\r\n"...)
	}
	b = append(b, h.p.xfp...)
	b = append(append(append(b, "X-Forwarded-Host: "...), r.Host...), "\r\n\r\n"...)
	return b
}

// skipRequestField reports whether a request field is not forwarded: the
// ones the edge writes itself, hop-by-hop ones, and client-sent
// X-Forwarded-* and Forwarded.
func skipRequestField(k string) bool {
	switch k {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
		"Proxy-Connection", "Upgrade", "Te", "Expect", "Forwarded":
		return true
	}
	return len(k) >= 12 && strings.EqualFold(k[:12], "x-forwarded-")
}

// hopByHop reports whether a response field is connection-specific and so
// not sent on HTTP/2 (RFC 9113 §8.2.2).
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer":
		return true
	}
	return false
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !tokenChar[k[i]] {
			return false
		}
	}
	return true
}

func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if !valueChar[v[i]] {
			return false
		}
	}
	return true
}

func validMethodAndPath(method, path string) bool {
	if !validFieldName(method) || path == "" {
		return false
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// get returns an idle stream to ep, or opens one.
func (h *h2conn) get(ctx context.Context, ep Endpoint) (*h2stream, bool, error) {
	id := ep.ID()
	h.mu.Lock()
	for i := len(h.idle) - 1; i >= 0; i-- {
		if ps := h.idle[i]; ps.epID == id {
			h.idle = append(h.idle[:i], h.idle[i+1:]...)
			h.mu.Unlock()
			return ps, true, nil
		}
	}
	h.mu.Unlock()
	st, err := ep.OpenStream(ctx)
	if err != nil {
		return nil, false, err
	}
	ps := &h2stream{epID: id, st: st}
	ps.br = bufio.NewReaderSize(ps, 8<<10)
	return ps, false, nil
}

// put keeps ps for reuse, or closes it when the pool is full or gone.
func (h *h2conn) put(ps *h2stream) {
	h.mu.Lock()
	if h.closed || len(h.idle) >= h.p.cfg.MaxIdleStreams {
		h.mu.Unlock()
		ps.st.Close()
		return
	}
	h.idle = append(h.idle, ps)
	h.mu.Unlock()
}

func (h *h2conn) closeIdle() {
	h.mu.Lock()
	h.closed = true
	idle := h.idle
	h.idle = nil
	h.mu.Unlock()
	for _, ps := range idle {
		ps.st.Close()
	}
}
