// Package policy holds Tollgate's pure access decisions: bind-ACL matching,
// IP policy evaluation, IP restrictions per surface, TLS version policy, and
// the one hostname normaliser (NormalizeHostname, NormalizeDomainPattern,
// NormalizeHostPort) that binds, routing, reservations, ACL rules and
// endpoint URLs all use.
//
// Invariants: no network I/O; callers pass in what the snapshot and the
// connection say. A leaf: it imports only snapshot and codes of
// Tollgate's.
package policy
