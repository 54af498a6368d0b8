package httpproxy

import (
	"errors"
	"net/http"
)

// Sentinel errors. A *ProtocolError wraps one of the first four; compare
// with errors.Is.
var (
	// ErrMalformed means a message head or chunked body is not valid
	// HTTP/1.1 (RFC 9112) as this package reads it: bad request or status
	// line, bad field name or value, obs-fold, bare LF, bad chunk.
	ErrMalformed = errors.New("httpproxy: malformed HTTP message")
	// ErrAmbiguousLength means a message's length cannot be decided
	// without guessing: Content-Length together with Transfer-Encoding, or
	// conflicting or repeated Content-Length fields (RFC 9112 §6.3).
	ErrAmbiguousLength = errors.New("httpproxy: ambiguous message length")
	// ErrHeadTooLarge means a head exceeded the size limit.
	ErrHeadTooLarge = errors.New("httpproxy: message head too large")
	// ErrUnsupported means a valid request uses something the edge does not
	// relay: a transfer coding other than chunked, an HTTP version other
	// than 1.0 and 1.1, or the CONNECT method.
	ErrUnsupported = errors.New("httpproxy: unsupported request")

	// ErrProxyClosed is returned by Shutdown when called more than once.
	ErrProxyClosed = errors.New("httpproxy: proxy closed")
	// ErrUnsolicited means the agent's stream sent bytes while no request
	// was outstanding.
	ErrUnsolicited = errors.New("httpproxy: response without a request")
	// ErrEndpointDown is what Endpoint.OpenStream returns (wrapped) when
	// the endpoint's agent is not answering and another endpoint may serve
	// the host (a member of an endpoint pool). Nothing of the request was
	// sent, so the proxy resolves the host again, admits the request again
	// (Gate) and opens a stream to what it gets: at most maxEndpointTries
	// opens for one request, then 502 (TG_3201).
	ErrEndpointDown = errors.New("httpproxy: the endpoint's agent is not answering")
)

// maxEndpointTries bounds the stream opens for one request when they fail
// with ErrEndpointDown.
const maxEndpointTries = 3

// ProtocolError is a rejected message: the status the client is answered
// with, a short reason (no secrets, safe to show), and one of the sentinel
// errors above.
type ProtocolError struct {
	Status int    // HTTP status for the client: 400, 405, 431, 501, 505
	Reason string // short, fixed text, e.g. "Content-Length with Transfer-Encoding"
	Err    error  // ErrMalformed, ErrAmbiguousLength, ErrHeadTooLarge, ErrUnsupported
}

// Error returns "httpproxy: <reason>".
func (e *ProtocolError) Error() string { return "httpproxy: " + e.Reason }

// Unwrap returns the sentinel.
func (e *ProtocolError) Unwrap() error { return e.Err }

func protoErr(status int, sentinel error, reason string) *ProtocolError {
	return &ProtocolError{Status: status, Reason: reason, Err: sentinel}
}

// The parser's errors are preallocated so that rejecting costs nothing.
var (
	errBareLF         = protoErr(http.StatusBadRequest, ErrMalformed, "bare LF or CR in message head")
	errRequestLine    = protoErr(http.StatusBadRequest, ErrMalformed, "malformed request line")
	errStatusLine     = protoErr(http.StatusBadGateway, ErrMalformed, "malformed status line")
	errVersion        = protoErr(http.StatusHTTPVersionNotSupported, ErrUnsupported, "HTTP version not supported")
	errMethodConnect  = protoErr(http.StatusMethodNotAllowed, ErrUnsupported, "CONNECT is not supported")
	errTarget         = protoErr(http.StatusBadRequest, ErrMalformed, "malformed request target")
	errFieldName      = protoErr(http.StatusBadRequest, ErrMalformed, "malformed header field name")
	errFieldValue     = protoErr(http.StatusBadRequest, ErrMalformed, "invalid character in header field value")
	errObsFold        = protoErr(http.StatusBadRequest, ErrMalformed, "obsolete line folding in header")
	errIncomplete     = protoErr(http.StatusBadRequest, ErrMalformed, "incomplete message head")
	errNoHost         = protoErr(http.StatusBadRequest, ErrMalformed, "missing Host header")
	errDupHost        = protoErr(http.StatusBadRequest, ErrMalformed, "more than one Host header")
	errBadHost        = protoErr(http.StatusBadRequest, ErrMalformed, "malformed Host header")
	errBadLength      = protoErr(http.StatusBadRequest, ErrMalformed, "malformed Content-Length")
	errDupLength      = protoErr(http.StatusBadRequest, ErrAmbiguousLength, "more than one Content-Length")
	errLengthAndTE    = protoErr(http.StatusBadRequest, ErrAmbiguousLength, "Content-Length with Transfer-Encoding")
	errDupTE          = protoErr(http.StatusBadRequest, ErrAmbiguousLength, "more than one Transfer-Encoding")
	errTEHTTP10       = protoErr(http.StatusBadRequest, ErrAmbiguousLength, "Transfer-Encoding in an HTTP/1.0 request")
	errTEUnsupported  = protoErr(http.StatusNotImplemented, ErrUnsupported, "transfer coding not supported")
	errHeadTooLarge   = protoErr(http.StatusRequestHeaderFieldsTooLarge, ErrHeadTooLarge, "request head too large")
	errRespTooLarge   = protoErr(http.StatusBadGateway, ErrHeadTooLarge, "response head too large")
	errChunk          = protoErr(http.StatusBadRequest, ErrMalformed, "malformed chunked body")
	errChunkTooLarge  = protoErr(http.StatusBadRequest, ErrMalformed, "chunk size or extension too large")
	errTrailerTooLong = protoErr(http.StatusBadRequest, ErrHeadTooLarge, "chunked trailer too large")
	errTooManyBlanks  = protoErr(http.StatusBadRequest, ErrMalformed, "too many empty lines before request")
	errUnexpected101  = protoErr(http.StatusBadGateway, ErrMalformed, "101 Switching Protocols without an upgrade request")
)
