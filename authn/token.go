package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/segmentio/ksuid"
)

// Token is a secret credential string: an authtoken or API key token. It
// prints as [REDACTED] under every fmt verb and in zap; call Reveal to get
// the value, which should happen only when it is shown to its owner once.
type Token string

// Redacted is what a Token prints as.
const Redacted = "[REDACTED]"

// String returns Redacted.
func (Token) String() string { return Redacted }

// GoString returns Redacted.
func (Token) GoString() string { return Redacted }

// Format writes Redacted for every verb.
func (Token) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// Reveal returns the secret value.
func (t Token) Reveal() string { return string(t) }

// secretLen is the number of base62 characters in a secret: about 190 bits.
const secretLen = 32

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewCredential returns a fresh credential: its ID ("<prefix>_<KSUID>"), the
// token to show once ("<KSUID>_<secret>", the form the hosted platform's
// API keys and authtokens have) and the hash to store.
func NewCredential(prefix string) (id string, tok Token, hash string) {
	k := ksuid.New().String()
	secret := randomBase62(secretLen)
	return prefix + "_" + k, Token(k + "_" + secret), HashSecret(secret)
}

func randomBase62(n int) string {
	// Rejection sampling keeps every character equally likely.
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			panic("authn: crypto/rand failed: " + err.Error())
		}
		for _, b := range buf {
			if b < 248 && len(out) < n { // 248 = 62*4
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out)
}

// ParseToken splits a token "<KSUID>_<secret>" into the credential's KSUID
// and the secret. It returns ErrMalformed when the token does not have that
// shape.
func ParseToken(tok string) (kid, secret string, err error) {
	tok = strings.TrimSpace(tok)
	i := strings.IndexByte(tok, '_')
	if i != 27 || len(tok)-i-1 < 16 || len(tok) > 256 {
		return "", "", ErrMalformed
	}
	kid, secret = tok[:i], tok[i+1:]
	if _, err := ksuid.Parse(kid); err != nil {
		return "", "", ErrMalformed
	}
	for j := 0; j < len(secret); j++ {
		if strings.IndexByte(base62, secret[j]) < 0 {
			return "", "", ErrMalformed
		}
	}
	return kid, secret, nil
}

// HashSecret returns the hex SHA-256 of a secret. Secrets are 190-bit random
// strings, so a fast hash suffices: there is nothing to brute-force.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SecretMatches reports whether secret hashes to hash, comparing in constant
// time.
func SecretMatches(secret, hash string) bool {
	sum := sha256.Sum256([]byte(secret))
	var want [sha256.Size]byte
	if n, err := hex.Decode(want[:], []byte(hash)); err != nil || n != sha256.Size {
		return false
	}
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}
