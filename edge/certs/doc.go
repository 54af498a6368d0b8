// Package certs is the edge's certificate manager: it obtains, stores, renews
// and serves the TLS certificates of public names, on certmagic. It also
// holds the local CA that `tollgated dev` issues from (LoadOrCreateCA,
// NewLocalIssuer); production plugs an ACME issuer into the same Manager.
//
// Invariants:
//   - Certificates exist only for the base domain, for names one label under
//     it (via the wildcard "*.<base>"), and for names Config.AllowName
//     accepts; any other server name fails the handshake before storage or
//     the issuer is touched. The local CA's issuer refuses, on its own, every
//     name outside the base domain (DESIGN: "certificates are issued only for
//     the base domain and for names the snapshot says are reserved").
//   - Server names are ASCII: IDNs arrive as punycode A-labels (RFC 6066 §3,
//     RFC 5890); a non-ASCII SNI is refused, so AllowName only ever sees
//     lower-case ASCII names.
//   - A handshake never waits on OCSP: stapling is disabled.
//   - New has no side effects; the maintenance goroutine starts in Start and
//     ends in Stop.
package certs
