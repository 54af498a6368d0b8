package certs

import "errors"

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
