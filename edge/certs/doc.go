// Package certs is the edge's certificate manager: it obtains, stores, renews
// and serves the TLS certificates of public names, on certmagic, from an
// ACME CA (Let's Encrypt by default; HTTP-01, TLS-ALPN-01, and DNS-01 via
// libdns providers for the wildcard "*.<base>") or, for `tollgated dev`,
// from a local CA (LoadOrCreateCA, NewLocalIssuer).
//
// Invariants:
//   - Certificates exist only for the base domain, for names one label under
//     it (via the wildcard "*.<base>", or, with ACME before the wildcard is
//     held, their own certificate if Config.AllowSubdomain accepts them),
//     for names the snapshot says are reserved in this region, and for names
//     Config.AllowName accepts; any other server name fails the handshake
//     before storage or the issuer is touched. The local CA's issuer
//     refuses, on its own, every name outside the base domain (DESIGN:
//     "certificates are issued only for the base domain and for names the
//     snapshot says are reserved").
//   - Server names are ASCII: IDNs arrive as punycode A-labels (RFC 6066 §3,
//     RFC 5890); a non-ASCII SNI is refused, so AllowName only ever sees
//     lower-case ASCII names.
//   - A handshake never waits on OCSP or on the CA for a name whose
//     certificate is held: it is served from the cache; renewal (ARI where
//     the CA offers it, backoff on errors) and OCSP stapling (with ACME,
//     when the certificate names a responder) run in the background.
//   - Edges sharing a Storage obtain each certificate once (certmagic's
//     storage lock) and answer each other's HTTP-01 and TLS-ALPN-01
//     challenges; a restart re-issues nothing.
//   - An edge reaches shared storage only through the control plane's edge
//     API (ControlStorage, with the edge secret), never through the control
//     plane's database; its locks are leases that expire when it dies.
//   - New has no side effects; goroutines start in Start and end in Stop.
package certs
