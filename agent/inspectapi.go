package agent

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate/tollgate/codes"
)

// The captured requests in the local API, shaped like the hosted
// platform's agent API (GET /api/requests/http) so its wrappers read them;
// fields beyond its shape are ours (docs/inspect.md).

type apiRequestList struct {
	URI      string       `json:"uri"`
	Requests []apiRequest `json:"requests"`
}

type apiRequest struct {
	URI        string      `json:"uri"`
	ID         string      `json:"id"`
	TunnelName string      `json:"tunnel_name"`
	RemoteAddr string      `json:"remote_addr"`
	Start      string      `json:"start"`    // RFC 3339, UTC
	Duration   int64       `json:"duration"` // nanoseconds
	DurationMS float64     `json:"duration_ms"`
	ReplayOf   string      `json:"replay_of,omitempty"`
	Upgraded   bool        `json:"upgraded"`       // 101: the frames after it are not recorded
	Note       string      `json:"note,omitempty"` // why the exchange is incomplete
	Request    apiReqMsg   `json:"request"`
	Response   *apiRespMsg `json:"response"` // null: no response
}

// apiBody describes a kept body: text as is, anything else base64.
type apiBody struct {
	Body          string `json:"body"`
	BodyEncoding  string `json:"body_encoding"` // "text" or "base64"
	BodyBinary    bool   `json:"body_binary"`
	BodySize      int64  `json:"body_size"` // bytes seen; body holds at most the inspector's body limit
	BodyTruncated bool   `json:"body_truncated"`
}

type apiReqMsg struct {
	Method  string      `json:"method"`
	Proto   string      `json:"proto"`
	Headers http.Header `json:"headers"`
	URI     string      `json:"uri"`
	Raw     string      `json:"raw"` // base64 of the head as received and the kept body
	apiBody
}

type apiRespMsg struct {
	Status     string      `json:"status"`
	StatusCode int         `json:"status_code"`
	Proto      string      `json:"proto"`
	Headers    http.Header `json:"headers"`
	Raw        string      `json:"raw"`
	apiBody
}

const requestsPath = "/api/requests/http"

func toAPIRequest(c *capture) apiRequest {
	req := c.request()
	out := apiRequest{
		URI: requestsPath + "/" + c.ID, ID: c.ID, TunnelName: c.Tunnel, RemoteAddr: c.RemoteAddr,
		Start: c.Start.UTC().Format(time.RFC3339Nano), Duration: int64(c.Duration),
		DurationMS: float64(c.Duration) / float64(time.Millisecond),
		ReplayOf:   c.ReplayOf, Upgraded: c.Upgraded, Note: c.Note,
		Request: apiReqMsg{Method: req.Method, Proto: req.Proto, Headers: nonNil(req.Header), URI: req.URI,
			Raw: rawBase64(&c.req), apiBody: toAPIBody(&req.capturedMessage)},
	}
	if r := c.response(); r != nil {
		out.Response = &apiRespMsg{Status: r.Status, StatusCode: r.StatusCode, Proto: r.Proto, Headers: nonNil(r.Header),
			Raw: rawBase64(c.resp), apiBody: toAPIBody(&r.capturedMessage)}
	}
	return out
}

func nonNil(h http.Header) http.Header {
	if h == nil {
		return http.Header{}
	}
	return h
}

func toAPIBody(m *capturedMessage) apiBody {
	b := apiBody{BodySize: m.BodySize, BodyTruncated: m.Truncated, BodyEncoding: "text"}
	if isBinary(m) {
		b.BodyBinary, b.BodyEncoding = true, "base64"
		b.Body = base64.StdEncoding.EncodeToString(m.Body)
	} else {
		b.Body = string(m.Body)
	}
	return b
}

// isBinary reports whether m's body is shown as binary: compressed
// (Content-Encoding other than identity), not UTF-8, or with control
// characters other than tab, CR, LF and FF. A truncated body may end in
// part of a character; that part does not count.
func isBinary(m *capturedMessage) bool {
	if ce := m.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return true
	}
	body := m.Body
	if m.Truncated {
		for i := 0; i < utf8.UTFMax-1 && len(body) > 0 && !utf8.Valid(body); i++ {
			body = body[:len(body)-1]
		}
	}
	if !utf8.Valid(body) {
		return true
	}
	for _, b := range body {
		if b < 0x20 && b != '\t' && b != '\n' && b != '\r' && b != '\f' || b == 0x7f {
			return true
		}
	}
	return false
}

// rawBase64 is the base64 of a message's head as received and its kept
// body (de-chunked).
func rawBase64(m *rawMessage) string {
	b := make([]byte, 0, len(m.head)+len(m.body))
	return base64.StdEncoding.EncodeToString(append(append(b, m.head...), m.body...))
}

// maxReplayBody bounds the JSON body of POST /api/requests/http.
const maxReplayBody = 16 << 20

// replayRequest is POST /api/requests/http's body: the hosted platform's
// {id, tunnel_name}, and our optional edits (docs/inspect.md).
type replayRequest struct {
	ID         string `json:"id"`
	TunnelName string `json:"tunnel_name"`
	replayEdit
}

// handleRequests serves /api/requests/http: GET lists (limit,
// tunnel_name), DELETE clears, POST replays.
func (in *inspector) handleRequests(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete) || !in.on(w) {
		return
	}
	switch r.Method {
	case http.MethodDelete:
		in.ring.clear()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		in.replayAPI(w, r)
	default:
		q := r.URL.Query()
		limit := 0
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				writeAPIError(w, http.StatusBadRequest, codes.LocalBadRequest, "limit must be a whole number, 0 or more", map[string]string{"limit": s})
				return
			}
			limit = n
		}
		list := apiRequestList{URI: requestsPath, Requests: []apiRequest{}}
		for _, c := range in.ring.newest(limit, q.Get("tunnel_name")) {
			list.Requests = append(list.Requests, toAPIRequest(c))
		}
		writeJSON(w, http.StatusOK, list)
	}
}

// handleRequest serves GET /api/requests/http/{id}.
func (in *inspector) handleRequest(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) || !in.on(w) {
		return
	}
	id := r.PathValue("id")
	c := in.ring.get(id)
	if c == nil {
		writeAPIError(w, http.StatusNotFound, codes.APINotFound, "no captured request with this id (the inspector keeps the newest ones only)", map[string]string{"id": id})
		return
	}
	writeJSON(w, http.StatusOK, toAPIRequest(c))
}

// replayAPI decodes a replay request, runs it and answers 204 with the new
// exchange's ID in Tollgate-Replay-Id (the hosted agent answers 204).
func (in *inspector) replayAPI(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		// Also keeps cross-site pages from posting here without a preflight.
		writeAPIError(w, http.StatusUnsupportedMediaType, codes.LocalBadRequest, "send the replay request as application/json", map[string]string{"content_type": r.Header.Get("Content-Type")})
		return
	}
	var req replayRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReplayBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeAPIError(w, http.StatusBadRequest, codes.LocalBadRequest, "the body is not a valid replay request: "+err.Error(), nil)
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeAPIError(w, http.StatusBadRequest, codes.LocalBadRequest, "the body must hold one JSON object", nil)
		return
	}
	nc, err := in.replayByID(r, req.ID, req.TunnelName, req.replayEdit)
	if err != nil {
		writeCodedError(w, err)
		return
	}
	w.Header().Set("Tollgate-Replay-Id", nc.ID)
	w.WriteHeader(http.StatusNoContent)
}

// replayByID looks the exchange up and replays it; errors are *replayError.
func (in *inspector) replayByID(r *http.Request, id, tunnel string, edit replayEdit) (*capture, error) {
	if id == "" {
		return nil, &replayError{http.StatusBadRequest, codes.NewError(codes.LocalBadRequest, "give the id of a captured request")}
	}
	c := in.ring.get(id)
	if c == nil {
		return nil, &replayError{http.StatusNotFound, codes.NewError(codes.APINotFound, "no captured request with id %q (the inspector keeps the newest ones only)", id)}
	}
	if tunnel == "" {
		tunnel = c.Tunnel
	}
	return in.replay(r.Context(), c, tunnel, edit)
}

// replayError is a replay failure and its HTTP status.
type replayError struct {
	status int
	err    *codes.Error
}

func (e *replayError) Error() string { return e.err.Error() }

func writeCodedError(w http.ResponseWriter, err error) {
	var re *replayError
	if errors.As(err, &re) {
		writeAPIError(w, re.status, re.err.Code, re.err.Message, nil)
		return
	}
	writeAPIError(w, http.StatusInternalServerError, codes.Internal, err.Error(), nil)
}
