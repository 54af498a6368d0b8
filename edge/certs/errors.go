package certs

import (
	"errors"
	"fmt"
)

// ErrInvalidConfig is returned by New and NewLocalIssuer for a missing or
// malformed setting; the wrapped message names it.
var ErrInvalidConfig = errors.New("certs: invalid config")

// ErrNotStarted is returned by GetCertificate before Start has succeeded and
// after Stop.
var ErrNotStarted = errors.New("certs: manager not started")

// ErrStarted is returned by Start on a Manager that is already running.
var ErrStarted = errors.New("certs: manager already started")

// ErrStopped is returned by Start after Stop; a Manager is not restartable.
var ErrStopped = errors.New("certs: manager stopped")

// ErrNoServerName is returned by GetCertificate when the client sent no SNI:
// the edge routes by name and has no default certificate.
var ErrNoServerName = errors.New("certs: client sent no server name")

// ErrBadServerName is returned by GetCertificate for an SNI value that is not
// an ASCII DNS hostname (letters, digits, hyphens; IDNs as punycode).
var ErrBadServerName = errors.New("certs: server name is not an ASCII hostname")

// ErrNameNotAllowed means a certificate was refused for a name: it is not
// under the base domain and AllowName did not accept it, or (from the local
// issuer) it is not the base domain, its wildcard or one label under it.
// Issuer errors wrap it in certmagic.ErrNoRetry so certmagic does not retry.
var ErrNameNotAllowed = errors.New("certs: certificate not allowed for name")

// ErrBadCSR is returned by the local issuer for a certificate request it will
// not sign: bad signature, no DNS names, non-DNS names, or a key that is not
// ECDSA P-256/P-384. It is wrapped in certmagic.ErrNoRetry.
var ErrBadCSR = errors.New("certs: unacceptable certificate request")

// ErrControlUnavailable is wrapped by ControlStorage when the control plane
// did not answer (no connection, timeout, 5xx, 429) after its retries; it
// is worth retrying later.
var ErrControlUnavailable = errors.New("certs: control plane unreachable")

// ErrLockLost is wrapped by ControlStorage.RenewLockLease when this process
// no longer holds the lock: it expired (the edge could not renew it in
// time) and may be held by another edge.
var ErrLockLost = errors.New("certs: certificate lock lost")

// ErrCertValueTooLarge is wrapped by ControlStorage.Store for a value over
// snapshot.MaxCertValue bytes.
var ErrCertValueTooLarge = errors.New("certs: certificate storage value too large")

// APIError is an answer of the control plane's edge API that is neither
// success nor a condition with its own sentinel: a request it refused
// (bad key: TG_5100; wrong edge secret: TG_2710). It is permanent.
type APIError struct {
	// Status is the HTTP status.
	Status int
	// Code is the TG_ code of the error body, if any.
	Code string
	// Msg is the error body's message.
	Msg string
}

// Error implements error.
func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("control plane answered %d", e.Status)
	}
	return fmt.Sprintf("control plane answered %d %s: %s", e.Status, e.Code, e.Msg)
}
