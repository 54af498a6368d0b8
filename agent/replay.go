package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
)

// replayTimeout bounds one replay: dial, request, response.
const replayTimeout = 30 * time.Second

// replayEdit changes a request before it is replayed; nil fields keep the
// captured value.
type replayEdit struct {
	Method     *string     `json:"method,omitempty"`
	URI        *string     `json:"uri,omitempty"` // request target: /path?query
	Headers    http.Header `json:"headers,omitempty"`
	Body       *string     `json:"body,omitempty"`
	BodyBase64 *string     `json:"body_base64,omitempty"`
}

// inspector is the request inspector behind the local API and page.
type inspector struct {
	ring  *captureRing // nil: inspection is off
	token string       // the page's form token (inspectui.go)
	// upstream finds the HTTP endpoint named name: its upstream, whether
	// to skip TLS verification, and how to dial it; ok false when there is
	// none.
	upstream func(name string) (spec *config.EndpointSpec, dial func(context.Context, config.Upstream, bool) (halfConn, error), ok bool)
}

// on answers TG_9010 and returns false when inspection is off.
func (in *inspector) on(w http.ResponseWriter) bool {
	if in != nil && in.ring != nil {
		return true
	}
	writeAPIError(w, http.StatusConflict, codes.InspectOff,
		"request inspection is off: restart the agent without --inspect=false to record requests", nil)
	return false
}

// replay sends c's request (with edit applied) to the upstream of the
// endpoint named tunnel over a connection of its own, records the
// exchange (ReplayOf c.ID) with the taps tunnel traffic goes through, and
// returns it. Errors are *replayError: TG_250
// for an unknown endpoint, TG_9011 for a truncated body that was not
// replaced, TG_9009 for an invalid edit, TG_9012 when the upstream gives
// no response.
func (in *inspector) replay(ctx context.Context, c *capture, tunnel string, edit replayEdit) (*capture, error) {
	spec, dial, ok := in.upstream(tunnel)
	if !ok {
		return nil, &replayError{http.StatusNotFound, codes.NewError(codes.APINotFound, "no HTTP endpoint named %q in this agent", tunnel)}
	}
	req, err := buildReplay(c, edit)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	conn, err := dial(ctx, spec.Upstream, spec.UpstreamTLSInsecure)
	if err != nil {
		return nil, upstreamReplayError(spec, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Recorded by the same taps as tunnel traffic.
	tc := in.ring.newConn(tunnel, "")
	tc.replayOf = c.ID
	reqTap, respTap := tc.taps()
	wire := req.wire(spec)
	reqTap.Write(wire)
	_, err = conn.Write(wire)
	buf := make([]byte, 32<<10)
	for err == nil && !tc.answered() {
		var n int
		n, err = conn.Read(buf)
		respTap.Write(buf[:n])
	}
	tc.close(reqTap, respTap)
	out := tc.first
	if out == nil || out.resp == nil {
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("the connection closed before a response")
		}
		return nil, upstreamReplayError(spec, err)
	}
	return out, nil
}

func upstreamReplayError(spec *config.EndpointSpec, err error) *replayError {
	return &replayError{http.StatusBadGateway, codes.NewError(codes.ReplayFailed,
		"the upstream %s gave no response to the replay: %v", spec.Upstream.String(), err)}
}

// hopByHop are the fields a replay does not copy: the agent frames the
// request itself (RFC 9110 §7.6.1).
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length"}

// buildReplay returns the request to send: c's, with edit applied.
func buildReplay(c *capture, edit replayEdit) (*capturedRequest, error) {
	bad := func(format string, args ...any) error {
		return &replayError{http.StatusBadRequest, codes.NewError(codes.LocalBadRequest, format, args...)}
	}
	orig := c.request()
	r := capturedRequest{Method: orig.Method, URI: orig.URI, capturedMessage: capturedMessage{Proto: "HTTP/1.1",
		Header: orig.Header, Body: orig.Body}}
	if edit.Method != nil {
		r.Method = strings.TrimSpace(*edit.Method)
	}
	if edit.URI != nil {
		r.URI = strings.TrimSpace(*edit.URI)
	}
	if edit.Headers != nil {
		r.Header = edit.Headers.Clone()
	}
	switch {
	case edit.Body != nil && edit.BodyBase64 != nil:
		return nil, bad("give body or body_base64, not both")
	case edit.Body != nil:
		r.Body = []byte(*edit.Body)
	case edit.BodyBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*edit.BodyBase64)
		if err != nil {
			return nil, bad("body_base64 is not valid base64: %v", err)
		}
		r.Body = b
	case orig.Truncated:
		return nil, &replayError{http.StatusConflict, codes.NewError(codes.ReplayTruncated,
			"the captured body was truncated at %d of %d bytes, so it cannot be replayed as sent: give a body with the replay", len(orig.Body), orig.BodySize)}
	}
	if !isToken(r.Method) {
		return nil, bad("the method %q is not a valid HTTP method", r.Method)
	}
	if !strings.HasPrefix(r.URI, "/") || strings.ContainsFunc(r.URI, func(c rune) bool { return c <= ' ' || c == 0x7f }) {
		return nil, bad("the path %q must start with / and hold no spaces or control characters", r.URI)
	}
	for k, vs := range r.Header {
		if !isToken(k) {
			return nil, bad("the header name %q is not valid", k)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, bad("the value of header %s holds a line break or NUL", k)
			}
		}
	}
	for _, k := range hopByHop {
		r.Header.Del(k)
	}
	r.BodySize = int64(len(r.Body))
	return &r, nil
}

// wire is r as HTTP/1.1 bytes for spec's upstream, on a connection of its
// own (Connection: close), with Host kept or set to the upstream's.
func (r *capturedRequest) wire(spec *config.EndpointSpec) []byte {
	h := r.Header
	if h.Get("Host") == "" {
		h.Set("Host", spec.Upstream.Addr())
	}
	if len(r.Body) > 0 || r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		h.Set("Content-Length", strconv.Itoa(len(r.Body)))
	}
	h.Set("Connection", "close")
	var b bytes.Buffer
	b.WriteString(r.Method + " " + r.URI + " HTTP/1.1\r\n")
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.Write(r.Body)
	return b.Bytes()
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
