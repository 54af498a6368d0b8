package edge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// bindTokenKeyFile holds the key that signs bind tokens, so tokens survive an
// edge restart and a reconnecting agent gets its URL back.
const bindTokenKeyFile = "bind-token.key"

// bindTokens issues and checks bind tokens: "tgb1.<key>.<mac>", where key is
// the route key (host, or host:port) in base64url and mac is
// HMAC-SHA256(secret, account ID || 0 || proto || 0 || key). The agent sends
// the token back when it re-binds after a reconnect; a valid token lets it
// take its endpoint back at once, even from a session that has not timed
// out yet (docs/agent-protocol.md#session-rules).
type bindTokens struct{ secret []byte }

// bindTokenKeyLabel derives the bind-token key from a region secret.
const bindTokenKeyLabel = "tollgate bind-token key v1"

// loadBindTokens returns the bind-token signer: with a region secret, the
// key HMAC-SHA256(regionSecret, bindTokenKeyLabel), the same on every edge
// that holds the secret (a token verifies region-wide, and the secret
// itself never signs anything); without one, the key in dataDir, created
// on first start (random and in memory when dataDir is "").
func loadBindTokens(dataDir, regionSecret string) (*bindTokens, error) {
	if regionSecret != "" {
		m := hmac.New(sha256.New, []byte(regionSecret))
		m.Write([]byte(bindTokenKeyLabel))
		return &bindTokens{secret: m.Sum(nil)}, nil
	}
	if dataDir == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return &bindTokens{secret: b}, nil
	}
	path := filepath.Join(dataDir, bindTokenKeyFile)
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 32 {
		return &bindTokens{secret: b}, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return &bindTokens{secret: b}, nil
}

func (t *bindTokens) mac(accountID, proto, key string) []byte {
	m := hmac.New(sha256.New, t.secret)
	m.Write([]byte(accountID))
	m.Write([]byte{0})
	m.Write([]byte(proto))
	m.Write([]byte{0})
	m.Write([]byte(key))
	return m.Sum(nil)
}

// issue returns the token for an endpoint.
func (t *bindTokens) issue(accountID, proto, key string) string {
	enc := base64.RawURLEncoding
	return "tgb1." + enc.EncodeToString([]byte(key)) + "." + enc.EncodeToString(t.mac(accountID, proto, key))
}

// verify returns the route key a token was issued for, if the token is valid
// for this account and proto.
func (t *bindTokens) verify(token, accountID, proto string) (string, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] != "tgb1" {
		return "", false
	}
	enc := base64.RawURLEncoding.Strict() // one encoding per token: no ignored trailing bits
	key, err := enc.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	got, err := enc.DecodeString(parts[2])
	if err != nil {
		return "", false
	}
	if !hmac.Equal(got, t.mac(accountID, proto, string(key))) {
		return "", false
	}
	return string(key), true
}
