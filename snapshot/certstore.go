package snapshot

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// The edge API's certificate storage (docs/tls.md#edges-share-certificates-through-the-control-plane):
// the wire types and the key rules that the control plane (which enforces
// them) and the edge (which refuses to send what would be refused) share.
// Keys are certmagic's: slash-separated components made by
// certmagic.KeyBuilder.Safe, e.g.
// "certificates/acme-v02.api.letsencrypt.org-directory/app.example.com/app.example.com.crt".

// Limits of the certificate storage wire protocol.
const (
	// MaxCertValue is the largest value (bytes) stored through the edge
	// API: certmagic stores PEM chains, keys and small JSON documents, and
	// is "not suitable for very large files" (certmagic.Storage).
	MaxCertValue = 1 << 20
	// MaxCertKey is the longest key or list prefix (bytes).
	MaxCertKey = 1024
	// MaxCertLockName is the longest lock name (bytes); certmagic's are
	// "issue_cert_<name>", "register_acme_account_<email>", "storage_clean".
	MaxCertLockName = 512
)

// ErrBadCertKey is wrapped by CheckCertKey, CheckCertPrefix,
// CheckCertLockName and CheckCertLockToken.
var ErrBadCertKey = errors.New("bad certificate storage key")

// CheckCertKey accepts a certmagic storage key: 1 to MaxCertKey bytes of
// components separated by single slashes, no leading or trailing slash,
// each component of ASCII letters, digits and "_@.-" (the characters
// certmagic.KeyBuilder.Safe leaves) and none "." or "..". So a key never
// names a parent, a root or anything outside certmagic's key space.
func CheckCertKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrBadCertKey)
	}
	return CheckCertPrefix(key)
}

// CheckCertPrefix is CheckCertKey that also accepts "" (the root, for
// List).
func CheckCertPrefix(key string) error {
	if len(key) > MaxCertKey {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadCertKey, MaxCertKey)
	}
	if key == "" {
		return nil
	}
	for _, c := range strings.Split(key, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%w: %q has an empty, \".\" or \"..\" component", ErrBadCertKey, key)
		}
		for i := 0; i < len(c); i++ {
			if !certKeyByte(c[i]) {
				return fmt.Errorf("%w: %q has a character outside [A-Za-z0-9_@.-]", ErrBadCertKey, key)
			}
		}
	}
	return nil
}

// certKeyByte reports whether b may appear in a key component.
func certKeyByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
		b == '_' || b == '@' || b == '.' || b == '-'
}

// CheckCertLockName accepts a lock name: 1 to MaxCertLockName bytes of
// UTF-8 without control characters, spaces, slashes or backslashes
// (certmagic builds them from an operation and a domain or email).
func CheckCertLockName(name string) error {
	if name == "" || len(name) > MaxCertLockName || !utf8.ValidString(name) {
		return fmt.Errorf("%w: lock name empty, over %d bytes or not UTF-8", ErrBadCertKey, MaxCertLockName)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == '/' || r == '\\' || (r >= 0x80 && r <= 0x9f) {
			return fmt.Errorf("%w: lock name %q has a control character, space or slash", ErrBadCertKey, name)
		}
	}
	return nil
}

// CheckCertLockToken accepts a lock token: 16 to 64 ASCII letters, digits,
// '_' or '-'.
func CheckCertLockToken(tok string) error {
	if len(tok) < 16 || len(tok) > 64 {
		return fmt.Errorf("%w: lock token must be 16 to 64 characters", ErrBadCertKey)
	}
	for i := 0; i < len(tok); i++ {
		b := tok[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return fmt.Errorf("%w: lock token has a character outside [A-Za-z0-9_-]", ErrBadCertKey)
		}
	}
	return nil
}

// CertKeyInfo is the answer to GET /edge/v1/certstore/stat: certmagic's
// KeyInfo.
type CertKeyInfo struct {
	Key        string    `json:"key"`
	Modified   time.Time `json:"modified,omitzero"`
	Size       int64     `json:"size"`
	IsTerminal bool      `json:"is_terminal"`
}

// CertKeyList is the answer to GET /edge/v1/certstore/list.
type CertKeyList struct {
	Keys []string `json:"keys"`
}

// CertLockRequest is the body of POST /edge/v1/certstore/locks/{acquire,
// renew,release}: the lock and the token of one acquisition (random,
// chosen by the edge for each Lock call; see CheckCertLockToken).
type CertLockRequest struct {
	Name  string `json:"name"`
	Token string `json:"token"`
}

// CertLockAnswer is the answer to acquire and renew: whether the token
// holds the lock, and for how long (milliseconds) without a renewal.
type CertLockAnswer struct {
	Acquired bool  `json:"acquired"`
	TTLMilli int64 `json:"ttl_ms"`
}

// CertStatusReport is the body of PUT /edge/v1/certificates/status: an
// edge's certificate status for one name (certificate_management_status
// of the reserved_domains API).
type CertStatusReport struct {
	Region       string    `json:"region"`
	Domain       string    `json:"domain"`
	NotAfter     time.Time `json:"not_after,omitzero"`
	RenewsAt     time.Time `json:"renews_at,omitzero"`
	Issuer       string    `json:"issuer,omitempty"`
	JobErrorCode string    `json:"job_error_code,omitempty"`
	JobMsg       string    `json:"job_msg,omitempty"`
	JobStartedAt time.Time `json:"job_started_at,omitzero"`
	JobRetriesAt time.Time `json:"job_retries_at,omitzero"`
}
