package httpproxy

import (
	"net/netip"

	"github.com/tollgate/tollgate/codes"
)

// Gate is implemented by an Endpoint that admits each request itself before
// any byte of it is forwarded: the endpoint's IP policy and HTTP basic
// auth. An Endpoint that does not implement it admits every request.
type Gate interface {
	// Admit decides one request. client is the TCP peer address with an
	// IPv4-mapped address folded to IPv4 (never a client-sent header);
	// authorization is the value of the request's Authorization field, nil
	// when it has none, and authCount how many Authorization fields it
	// had. Admit must be safe for concurrent use, fast, must not block
	// and must not keep authorization.
	Admit(client netip.Addr, authorization []byte, authCount int) Admission
}

// Admission is a Gate's answer for one request.
type Admission struct {
	// Refusal is the answer the edge gives instead of forwarding; nil
	// admits the request.
	Refusal *Refusal
	// StripAuthorization removes every Authorization field from the
	// forwarded request (the credentials were the edge's, not the
	// upstream's).
	StripAuthorization bool
}

// Refusal is an answer the edge writes itself instead of forwarding a
// request: a page with a status, a TG_ code and a message, plus an optional
// WWW-Authenticate challenge. Build it once with NewRefusal and reuse it:
// answering with it allocates nothing beyond the page itself.
type Refusal struct {
	pg pageSpec
}

// NewRefusal returns a refusal with the given status (403, 401...), code,
// plain message (what happened, what to do; shown to the client) and
// WWW-Authenticate challenge ("" = none; RFC 9110 §11.6.1).
func NewRefusal(status int, code codes.Code, msg, challenge string) *Refusal {
	return &Refusal{pg: pageSpec{status: status, code: code, msg: msg, challenge: challenge}}
}

// WithRetryAfter returns a copy of r whose answer carries Retry-After:
// secs (RFC 9110 §10.2.3), for a 429 or 503; secs ≤ 0 leaves it out.
func (r *Refusal) WithRetryAfter(secs int) *Refusal {
	c := *r
	c.pg.retryAfter = max(secs, 0)
	return &c
}

// Status returns the refusal's HTTP status.
func (r *Refusal) Status() int { return r.pg.status }

// Code returns the refusal's TG_ code.
func (r *Refusal) Code() codes.Code { return r.pg.code }
