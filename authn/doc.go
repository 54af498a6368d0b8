// Package authn owns every credential check: authtokens and SSH public keys
// (by fingerprint) against the control-plane snapshot, API keys against the
// state the store holds of them (APIKeyState; the caller does the lookup),
// and the rule every credential obeys — its owner (principal) and its
// account exist and are active (ActiveOwner on a snapshot, CheckOwnerState
// on store flags). Authtokens and API keys are both "<KSUID>_<secret>", the
// KSUID naming the credential. A check returns what it found (Identity: the
// credential, principal and account), so callers never parse a token or
// look a credential up a second time.
//
// Invariants: secrets are never stored, only their SHA-256; comparisons are
// constant-time; a Token never prints its value. authn is a leaf: no
// network I/O, and it imports only snapshot and ids/codes of this module.
package authn
