// Package authn verifies credentials: authtokens and API keys (both
// "<KSUID>_<secret>", the KSUID naming the credential) and SSH key
// fingerprints, against the control-plane snapshot.
//
// Invariants: secrets are never stored, only their SHA-256; comparisons are
// constant-time; a Token never prints its value. No network I/O.
package authn
