package httpproxy

import (
	"encoding/json"
	"errors"
	"html"
	"net/http"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/codes"
)

// ErrorCodeHeader is the response header that carries the TG_ code of every
// answer the edge writes itself.
const ErrorCodeHeader = "Tollgate-Error-Code"

// pageSpec is an answer the edge gives itself instead of the upstream's.
type pageSpec struct {
	status int
	code   codes.Code
	msg    string // plain words: what happened, what to do
	// challenge is the WWW-Authenticate value of a 401; "" = none.
	challenge string
	// retryAfter is the Retry-After value in seconds; 0 = none.
	retryAfter int
}

var (
	pageAgentUnreachable = &pageSpec{status: http.StatusBadGateway, code: codes.AgentUnreachable,
		msg: "The agent serving this endpoint could not be reached. Try again in a moment."}
	pageNoResponse = &pageSpec{status: http.StatusBadGateway, code: codes.UpstreamFailed,
		msg: "The agent returned no response from its upstream service. Check that the service the agent forwards to is running and answers HTTP."}
	pageBadResponse = &pageSpec{status: http.StatusBadGateway, code: codes.UpstreamFailed,
		msg: "The upstream service sent an invalid HTTP response."}
	pageMisdirected = &pageSpec{status: http.StatusMisdirectedRequest, code: codes.Misdirected,
		msg: "This connection was opened for another host: the TLS server name, the Host header and the request target must name the same host."}
	pageHeadTimeout = &pageSpec{status: http.StatusRequestTimeout, code: codes.BadRequest,
		msg: "The request head was not received in time."}
	pageHeadTooLarge = &pageSpec{status: http.StatusRequestHeaderFieldsTooLarge, code: codes.BadRequest,
		msg: "The request head is too large."}
)

// pageNotFound is the answer for a host no endpoint is bound at.
func pageNotFound(host string) *pageSpec {
	return &pageSpec{status: http.StatusNotFound, code: codes.EndpointNotFound,
		msg: "No endpoint is online at " + host + ". Start an agent for it, or check the address."}
}

// pageFor turns a rejected request into its answer.
func pageFor(err error) *pageSpec {
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		return &pageSpec{status: http.StatusBadRequest, code: codes.BadRequest,
			msg: "Bad request."}
	}
	switch {
	case pe.Status == http.StatusRequestHeaderFieldsTooLarge:
		return pageHeadTooLarge
	case pe.Status >= 500:
		return &pageSpec{status: pe.Status, code: codes.BadRequest,
			msg: "The request is not supported: " + pe.Reason + "."}
	}
	return &pageSpec{status: pe.Status, code: codes.BadRequest,
		msg: "Bad request: " + pe.Reason + "."}
}

// appendPageBody appends the page body: a small HTML page for browsers,
// otherwise JSON shaped like the REST API's errors.
func appendPageBody(dst []byte, pg *pageSpec, htmlPage bool) []byte {
	if htmlPage {
		title := strconv.Itoa(pg.status) + " " + http.StatusText(pg.status)
		dst = append(dst, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"...)
		dst = append(dst, title...)
		dst = append(dst, "</title></head>\n<body><h1>"...)
		dst = append(dst, title...)
		dst = append(dst, "</h1>\n<p>"...)
		dst = append(dst, html.EscapeString(pg.msg)...)
		dst = append(dst, "</p>\n<p>Error code: <code>"...)
		dst = append(dst, pg.code...)
		dst = append(dst, "</code></p>\n</body></html>\n"...)
		return dst
	}
	b, _ := json.Marshal(struct {
		ErrorCode  string `json:"error_code"`
		StatusCode int    `json:"status_code"`
		Msg        string `json:"msg"`
	}{string(pg.code), pg.status, pg.msg})
	dst = append(dst, b...)
	return append(dst, '\n')
}

func pageContentType(htmlPage bool) string {
	if htmlPage {
		return "text/html; charset=utf-8"
	}
	return "application/json"
}

// appendH1Page appends a complete HTTP/1.1 response carrying pg. The
// connection closes after it, and the response says so.
func appendH1Page(dst []byte, pg *pageSpec, head, htmlPage bool) []byte {
	body := appendPageBody(nil, pg, htmlPage)
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(pg.status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(pg.status)...)
	dst = append(dst, "\r\nContent-Type: "...)
	dst = append(dst, pageContentType(htmlPage)...)
	dst = append(dst, "\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"...)
	if pg.challenge != "" {
		dst = append(dst, "WWW-Authenticate: "...)
		dst = append(dst, pg.challenge...)
		dst = append(dst, "\r\n"...)
	}
	if pg.retryAfter > 0 {
		dst = append(dst, "Retry-After: "...)
		dst = strconv.AppendInt(dst, int64(pg.retryAfter), 10)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, ErrorCodeHeader...)
	dst = append(dst, ": "...)
	dst = append(dst, pg.code...)
	dst = append(dst, "\r\nConnection: close\r\n\r\n"...)
	if !head {
		dst = append(dst, body...)
	}
	return dst
}

// wantsHTML reports whether an Accept header value asks for HTML.
func wantsHTML(accept string) bool { return strings.Contains(accept, "text/html") }

// writeH2Page answers an HTTP/2 request with pg.
func writeH2Page(w http.ResponseWriter, r *http.Request, pg *pageSpec) {
	htmlPage := wantsHTML(r.Header.Get("Accept"))
	body := appendPageBody(nil, pg, htmlPage)
	h := w.Header()
	h.Set("Content-Type", pageContentType(htmlPage))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(ErrorCodeHeader, string(pg.code))
	if pg.challenge != "" {
		h.Set("WWW-Authenticate", pg.challenge)
	}
	if pg.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(pg.retryAfter))
	}
	w.WriteHeader(pg.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
