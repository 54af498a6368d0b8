package httpproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/codes"
	"go.uber.org/zap"
)

// h2conn is one HTTP/2 client connection. net/http's HTTP/2 server
// (h2server.go) serves it and calls ServeHTTP per request on the stream's
// goroutine; each request travels as HTTP/1.1 over a proxy stream from the
// connection's pool.
type h2conn struct {
	p      *Proxy
	ctx    context.Context // ServeConn's (ClientAddrFromContext); its requests' base, without its cancellation
	c      net.Conn
	sni    string
	remote netip.AddrPort
	xff    string // "" when the peer has no IP address
	tlsVer uint16 // for OnRequest
	wire   *h2wire
	// carried counts the response body bytes written on the connection,
	// up to smallFrameSpan (bulkbuf.go); past it, no longer exactly.
	carried atomic.Int64

	mu     sync.Mutex
	idle   []*h2stream // streams ready for another request, newest last
	closed bool
}

func (p *Proxy) serveH2(ctx context.Context, c net.Conn, sni string, remote netip.AddrPort, tlsVersion uint16) {
	h := &h2conn{p: p, ctx: ctx, c: c, sni: sni, remote: remote, tlsVer: tlsVersion}
	if remote.Addr().IsValid() {
		h.xff = remote.Addr().String()
	}
	if !p.track(h) {
		c.Close()
		return
	}
	defer p.untrack(h)
	defer h.closeIdle()
	w := newH2Wire(c, h, p.cfg.MaxStreamResets)
	h.wire = w
	stop := context.AfterFunc(ctx, h.abort)
	defer stop()
	if err := w.readPreface(p.cfg.HeaderReadTimeout); err != nil {
		if ce := p.log.Check(zap.DebugLevel, "HTTP/2 connection without its client preface"); ce != nil {
			ce.Write(zap.Stringer("remote_addr", remote), zap.Error(err))
		}
		w.Close()
		return
	}
	// It returns once the server is done with the connection, closed.
	p.h2serve(p.h2srv, tls.Client(h2handoff{w}, nil), h2handler{h})
}

// shutdown implements servedConn. Proxy.Shutdown sends GOAWAY to every
// HTTP/2 connection through the http.Server's Shutdown.
func (h *h2conn) shutdown() {}

// abort implements servedConn.
func (h *h2conn) abort() { h.c.Close() }

// ServeHTTP relays one HTTP/2 request. When the upstream's response cannot
// be delivered whole, the stream is reset (http.ErrAbortHandler): the
// client never sees a status the upstream did not send.
func (h *h2conn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var start time.Time
	var body *countedBody
	if h.p.cfg.OnRequest != nil {
		start = time.Now()
		if r.Body != nil && r.Body != http.NoBody {
			body = &countedBody{ReadCloser: r.Body}
			r.Body = body
		}
	}
	res := h.relay(w, r)
	if fn := h.p.cfg.OnRequest; fn != nil {
		host := h.sni
		if host == "" {
			host = r.Host
		}
		info := &RequestInfo{
			RemoteAddr: h.remote, Host: host, EndpointID: res.epID, Endpoint: res.ep, TLSVersion: h.tlsVer,
			Proto: "HTTP/2.0", Method: r.Method, Path: r.RequestURI, Status: res.status, Code: res.code,
			ResponseBytes: res.n, Start: start, Duration: time.Since(start),
		}
		if body != nil {
			info.RequestBytes = body.n.Load()
		}
		fn(info)
	}
	if res.abort {
		panic(http.ErrAbortHandler)
	}
}

// countedBody counts the bytes of a request body read (OnRequest's
// RequestBytes). The body is read by sendBody's goroutine, which may
// still run when the response has ended.
type countedBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// relayResult is what relay did: the status sent (0 for none), the code
// of an edge answer, the endpoint ID, the response body bytes written, and
// whether the stream must be reset.
type relayResult struct {
	status int
	code   codes.Code
	epID   string
	ep     Endpoint // for OnRequest; nil when none was resolved
	n      int64
	abort  bool
}

func (h *h2conn) page(w http.ResponseWriter, r *http.Request, pg *pageSpec, epID string) relayResult {
	writeH2Page(w, r, pg)
	return relayResult{status: pg.status, code: pg.code, epID: epID}
}

// idempotent reports whether a request with method may be sent again
// (RFC 9110 §9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// relay checks r, sends it over a proxy stream and copies the response
// back.
func (h *h2conn) relay(w http.ResponseWriter, r *http.Request) (res relayResult) {
	hostName, ok := splitHostPort([]byte(r.Host))
	if !ok {
		return h.page(w, r, pageFor(errBadHost), "")
	}
	authority := h.sni
	if authority == "" {
		authority = strings.ToLower(string(hostName))
	}
	if !equalFold(hostName, authority) {
		return h.page(w, r, pageMisdirected, "")
	}
	for _, v := range r.Header.Values("Host") {
		if hn, ok := splitHostPort([]byte(v)); !ok || !equalFold(hn, authority) {
			return h.page(w, r, pageMisdirected, "")
		}
	}
	if r.Method == http.MethodConnect {
		return h.page(w, r, pageFor(errMethodConnect), "")
	}
	if !validMethodAndPath(r.Method, r.RequestURI) {
		return h.page(w, r, pageFor(errRequestLine), "")
	}
	if fn := h.p.cfg.Overload; fn != nil {
		if rf := fn(); rf != nil {
			return h.page(w, r, &rf.pg, "")
		}
	}
	// Admission, repeated when a pool member's agent is not answering
	// (ErrEndpointDown) and the host resolves to another member; the
	// Authorization fields are kept for a member that forwards them.
	authVals := r.Header["Authorization"]
	admit := func() (Endpoint, string, *relayResult) {
		ep, ok := h.p.resolver.Resolve(authority)
		if !ok {
			refused := h.page(w, r, pageNotFound(authority), "")
			return nil, "", &refused
		}
		epID := ep.ID()
		strip := false
		if g, ok := ep.(Gate); ok {
			var auth []byte
			if len(authVals) > 0 {
				auth = []byte(authVals[0])
			}
			ad := g.Admit(h.remote.Addr(), auth, len(authVals))
			if ad.Refusal != nil {
				refused := h.page(w, r, &ad.Refusal.pg, epID)
				refused.ep = ep
				return nil, "", &refused
			}
			strip = ad.StripAuthorization
		}
		if strip {
			r.Header.Del("Authorization")
		} else if authVals != nil {
			r.Header["Authorization"] = authVals
		}
		return ep, epID, nil
	}
	ep, epID, refused := admit()
	if refused != nil {
		return *refused
	}
	defer func() {
		if res.ep == nil {
			res.ep = ep
		}
	}()
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	chunked := hasBody && r.ContentLength < 0
	head := h.appendHead(make([]byte, 0, 1024), r, chunked)
	// Sent again on a fresh stream only if the upstream may see it twice.
	replayable := !hasBody && idempotent(r.Method)
	sts := hstsOf(ep, h.c)

	for attempt, opens := 0, 1; ; attempt++ {
		if r.Context().Err() != nil {
			// Reset by the client before it was forwarded: no stream is
			// opened for it (rapid reset costs the agent nothing).
			return relayResult{epID: epID, abort: true}
		}
		ps, reused, err := h.get(r.Context(), ep)
		if err != nil {
			if r.Context().Err() != nil {
				return relayResult{epID: epID, abort: true}
			}
			if ce := h.p.log.Check(zap.DebugLevel, "opening proxy stream failed"); ce != nil {
				ce.Write(zap.String("endpoint", epID), zap.Stringer("remote_addr", h.remote), zap.Error(err))
			}
			if errors.Is(err, ErrEndpointDown) && opens < maxEndpointTries {
				// Nothing was sent: another member of the pool may serve it.
				opens++
				next, nextID, refused := admit()
				if refused != nil {
					return *refused
				}
				ep, epID = next, nextID
				head = h.appendHead(head[:0], r, chunked)
				sts = hstsOf(ep, h.c)
				attempt--
				continue
			}
			return h.page(w, r, pageAgentUnreachable, epID)
		}
		status, n, retry, err := h.exchange(w, r, ps, head, hasBody, chunked, sts)
		if err == nil {
			return relayResult{status: status, epID: epID, n: n}
		}
		// A reused stream that ended before any response byte: the
		// upstream closed it while idle. Only a request that is safe to
		// repeat goes again.
		if retry && reused && replayable && attempt == 0 {
			continue
		}
		if ce := h.p.log.Check(zap.DebugLevel, "no response on proxy stream"); ce != nil {
			ce.Write(zap.String("endpoint", epID), zap.Stringer("remote_addr", h.remote), zap.Error(err))
		}
		switch {
		case status != 0, r.Context().Err() != nil, errors.Is(err, errClientGone):
			// The response began, or the client or the proxy is gone:
			// the client must see the stream cut, not a response.
			return relayResult{status: status, epID: epID, n: n, abort: true}
		case errors.Is(err, errBodyTimeout):
			return h.page(w, r, pageBodyTimeout, epID)
		case errors.Is(err, ErrMalformed), errors.Is(err, ErrAmbiguousLength),
			errors.Is(err, ErrHeadTooLarge), errors.Is(err, ErrUnsupported):
			return h.page(w, r, pageBadResponse, epID)
		}
		return h.page(w, r, pageNoResponse, epID)
	}
}

// exchange sends the request on ps and copies the response to w, with
// sts, when not "", as its only Strict-Transport-Security field. status is
// 0 when no final response was written; retry reports that the stream
// ended before any response byte. ps is returned to the pool only when it
// ended the exchange in step: the response complete, framed, nothing after
// it, the request body sent whole; else it is closed.
func (h *h2conn) exchange(w http.ResponseWriter, r *http.Request, ps *h2stream, head []byte, hasBody, chunked bool, sts string) (status int, n int64, retry bool, err error) {
	reusable := false
	ps.begin(h.p, h.carried.Load())
	defer func() {
		ps.release(h.p)
		if reusable {
			h.put(ps)
		} else {
			ps.st.Close()
		}
	}()
	stop := context.AfterFunc(r.Context(), func() { ps.st.Close() })
	defer stop()
	if _, err := ps.st.Write(head); err != nil {
		return 0, 0, true, err
	}
	var bodyDone chan error
	if hasBody {
		bodyDone = make(chan error, 1)
		go func() { bodyDone <- h.sendBody(w, ps, r, chunked) }()
	}
	if err := h.readFinal(w, r, ps); err != nil {
		if ps.bodyTimeout.Load() {
			err = errBodyTimeout
		}
		return 0, 0, !ps.got, err
	}
	if sts != "" {
		w.Header()[hstsHeader] = []string{sts}
	}
	w.WriteHeader(ps.resp.status)
	fl, _ := w.(http.Flusher)
	n, err = ps.copyBody(h.p, w, fl, int64(h.wire.initialWindow.Load()), &h.carried)
	if err != nil {
		return ps.resp.status, n, false, err
	}
	if len(ps.trailer) > 0 {
		dst := w.Header()
		forEachField(ps.trailer, 0, func(name, value []byte) {
			k := http.TrailerPrefix + textproto.CanonicalMIMEHeaderKey(string(name))
			dst[k] = append(dst[k], string(value))
		})
	}
	reusable = !ps.resp.close && ps.fr.kind != frameClose && ps.inStep() && stop()
	if reusable && bodyDone != nil {
		select {
		case berr := <-bodyDone:
			reusable = berr == nil
		default:
			reusable = false // the upstream answered before the body was sent
		}
	}
	return ps.resp.status, n, false, nil
}

// readFinal reads response heads from ps until a final one, which it
// leaves parsed in ps.resp with its fields in w.Header(); informational
// ones other than 100 are passed to the client. Heads are read by the same
// bounded, strict parser as on HTTP/1.1 (maxResponseHead, parseResponseHead).
func (h *h2conn) readFinal(w http.ResponseWriter, r *http.Request, ps *h2stream) error {
	for range 32 {
		hl, err := ps.readHead()
		if err != nil {
			return err
		}
		head := ps.buf[ps.r : ps.r+hl]
		if err := parseResponseHead(head, &ps.resp); err != nil {
			return err
		}
		switch status := ps.resp.status; {
		case status == http.StatusSwitchingProtocols:
			return errUnexpected101
		case status == http.StatusContinue:
			// Expect is not forwarded; the http2 server sends its own 100.
		case status < 200:
			dst := w.Header()
			copyResponseFields(dst, head)
			w.WriteHeader(status)
			clear(dst)
		default:
			copyResponseFields(w.Header(), head)
			ps.r += hl
			ps.frame(r.Method == http.MethodHead)
			return nil
		}
		ps.r += hl
	}
	return errStatusLine
}

// copyResponseFields adds the fields of a response head to dst, minus the
// connection-specific ones (RFC 9113 §8.2.2) and those its Connection
// field names.
func copyResponseFields(dst http.Header, head []byte) {
	var conn []string
	forEachField(head, bytes.IndexByte(head, '\n')+1, func(name, value []byte) {
		k := textproto.CanonicalMIMEHeaderKey(string(name))
		if k == "Connection" {
			conn = append(conn, string(value))
		}
		if !hopByHop(k) {
			dst[k] = append(dst[k], string(value))
		}
	})
	for _, v := range conn {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = textproto.TrimString(tok); tok != "" {
				dst.Del(tok)
			}
		}
	}
}

// forEachField calls fn for each field line of a head (or trailer section)
// from pos, which parseResponseHead or the chunk scanner already validated.
func forEachField(b []byte, pos int, fn func(name, value []byte)) {
	for pos < len(b) {
		line, end, colon, err := headerLine(b, pos, errFieldValue)
		if err != nil || len(line) == 0 {
			return
		}
		fn(line[:colon], trimOWS(line[colon+1:]))
		pos = end
	}
}

// sendBody copies r's body to st, chunked when its length is unknown (then
// with r's trailers). The body is paced (Config.BodyReadTimeout,
// MinBodyRate): a stalled one fails with errBodyTimeout. On failure st is
// closed so that the upstream never takes a truncated body for a complete
// one, and the proxy stream and the upstream connection are released.
func (h *h2conn) sendBody(w http.ResponseWriter, ps *h2stream, r *http.Request, chunked bool) (err error) {
	st := ps.st
	defer func() {
		if err != nil {
			if errors.Is(err, errBodyTimeout) {
				ps.bodyTimeout.Store(true) // before the close that ends readFinal
			}
			st.Close()
		}
	}()
	buf := h.p.getBuf()
	defer h.p.pool.Put(buf)
	rc := http.NewResponseController(w)
	pace := h.p.newPacer(time.Now())
	read := func(b []byte) (int, error) {
		if dl, ok := pace.next(time.Now()); ok {
			_ = rc.SetReadDeadline(dl)
		}
		k, err := r.Body.Read(b)
		pace.n += int64(k)
		if err != nil && isTimeout(err) {
			err = errBodyTimeout
		}
		return k, err
	}
	if !chunked {
		for {
			k, rerr := read(buf)
			if k > 0 {
				if _, err := st.Write(buf[:k]); err != nil {
					return err
				}
			}
			if rerr == io.EOF {
				return nil
			}
			if rerr != nil {
				return rerr
			}
		}
	}
	const pre = 18 // room for a hex size line
	for {
		k, rerr := read(buf[pre : len(buf)-2])
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
		if skipRequestField(k) || !validFieldName(k) {
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
// ones the edge writes itself, hop-by-hop ones, and the client-sent
// address fields isDroppedName names (X-Forwarded-*, Forwarded, X-Real-IP,
// any name with an underscore).
func skipRequestField(k string) bool {
	switch k {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
		"Proxy-Connection", "Upgrade", "Te", "Expect":
		return true
	}
	return isDroppedName([]byte(k))
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
