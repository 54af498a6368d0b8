// Package authn owns every credential check against the control-plane
// snapshot: authtokens and API keys (both "<KSUID>_<secret>", the KSUID
// naming the credential), SSH public keys (by fingerprint), and the rule
// every credential obeys — its owner (principal) and its account exist and
// are active (ActiveOwner). A check returns what it found (Identity: the
// credential, principal and account), so callers never parse a token or
// look a credential up a second time.
//
// Invariants: secrets are never stored, only their SHA-256; comparisons are
// constant-time; a Token never prints its value. authn is a leaf: no
// network I/O, and it imports only snapshot and ids/codes of this module.
package authn
