package edge

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/netip"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
	"github.com/tollgate/tollgate/tunnel"
)

// HTTP basic auth of an endpoint (RFC 7617), as `--basic-auth USER:PASS`
// (repeatable), the SDKs' BasicAuth option or the legacy Auth option ask
// for it. Rules, as the hosted platform's basic-auth action states them
// (ngrok.com/docs/traffic-policy/actions/basic-auth; its errors 359, 360):
// at most 10 credentials; a password of 8 to 128 characters; a non-empty
// user name. Tollgate also caps user names at 128 characters, and refuses a
// colon in a user name and control characters in either (RFC 7617 §2).
//
// Decisions:
//   - Credentials are kept only as salted SHA-256 digests (a random salt
//     per endpoint) and compared in constant time, over every credential,
//     so neither a user name nor a length is revealed by timing.
//   - A failed or missing login is a 401 page (TG_3207) with
//     `WWW-Authenticate: Basic realm="Tollgate", charset="UTF-8"`; the
//     connection closes after it.
//   - The Authorization field of an admitted request is removed before the
//     request is forwarded: the credential belongs to the edge, and the
//     upstream (and the agent's inspection) must not see the password. An
//     upstream that needs its own credentials cannot get them through the
//     same header while edge basic auth is on.
//   - Passwords are never logged nor echoed back in the bind answer.

// Basic auth limits.
const (
	maxBasicAuthCredentials = 10
	minBasicAuthPassword    = 8   // characters
	maxBasicAuthPassword    = 128 // characters
	maxBasicAuthUser        = 128 // characters
	// maxBasicAuthDecoded bounds the decoded user:password of a request:
	// longer ones cannot match and are refused without decoding.
	maxBasicAuthDecoded = 4*(maxBasicAuthUser+maxBasicAuthPassword) + 1
	basicAuthSaltLen    = 16
)

// basicAuthChallenge is the WWW-Authenticate challenge of an endpoint with basic
// auth (RFC 7617 §2, with the charset parameter of §2.1).
const basicAuthChallenge = `Basic realm="Tollgate", charset="UTF-8"`

// Refusals of public HTTP requests; built once, so answering allocates
// nothing.
var (
	refusalIPDenied = httpproxy.NewRefusal(http.StatusForbidden, codes.IPDenied,
		"Your IP address is not allowed to reach this endpoint: its IP policy refuses it. If you should have access, ask the endpoint's owner to allow your address.", "")
	refusalBasicAuth = httpproxy.NewRefusal(http.StatusUnauthorized, codes.BasicAuthRequired,
		"This endpoint requires a user name and password (HTTP basic auth). Sign in with the credentials its owner gave you.", basicAuthChallenge)
)

// basicAuth is an endpoint's set of credentials, as salted digests.
type basicAuth struct {
	salt  [basicAuthSaltLen]byte
	creds []basicCredential
}

type basicCredential struct{ user, pass [sha256.Size]byte }

// newBasicAuth validates the credentials of ba plus the legacy "user:pass"
// Auth option and returns them digested; nil when there are none. Errors
// name the credential by its user name and position, never the password.
func newBasicAuth(ba *tunnel.BasicAuth, legacy string) (*basicAuth, *codes.Error) {
	type pair struct{ user, pass string }
	var pairs []pair
	if ba != nil {
		for _, c := range ba.Credentials {
			pairs = append(pairs, pair{c.Username, c.CleartextPassword.Reveal()})
		}
	}
	if legacy != "" {
		u, p, ok := strings.Cut(legacy, ":")
		if !ok {
			return nil, codes.NewError(codes.BasicAuthPassword, "The Auth option is not of the form USER:PASSWORD.")
		}
		pairs = append(pairs, pair{u, p})
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	if len(pairs) > maxBasicAuthCredentials {
		return nil, codes.NewError(codes.BindOption, "An endpoint takes at most %d basic-auth credentials, not %d.", maxBasicAuthCredentials, len(pairs))
	}
	b := &basicAuth{}
	if _, err := rand.Read(b.salt[:]); err != nil {
		return nil, codes.NewError(codes.Internal, "The edge could not set up basic auth.").WithCause(err)
	}
	for i, p := range pairs {
		n := i + 1
		switch {
		case p.user == "":
			return nil, codes.NewError(codes.BasicAuthUser, "Basic-auth credential %d has an empty user name: use USER:PASSWORD.", n)
		case !utf8.ValidString(p.user) || utf8.RuneCountInString(p.user) > maxBasicAuthUser:
			return nil, codes.NewError(codes.BasicAuthUser, "Basic-auth credential %d: the user name must be valid UTF-8 of at most %d characters.", n, maxBasicAuthUser)
		case strings.ContainsRune(p.user, ':') || hasControl(p.user):
			return nil, codes.NewError(codes.BasicAuthUser, "Basic-auth credential %d: a user name must not contain a colon or control characters (RFC 7617).", n)
		}
		if !utf8.ValidString(p.pass) {
			return nil, codes.NewError(codes.BasicAuthPassword, "Basic-auth credential %d (user %q): the password is not valid UTF-8.", n, p.user)
		}
		if k := utf8.RuneCountInString(p.pass); k < minBasicAuthPassword || k > maxBasicAuthPassword {
			return nil, codes.NewError(codes.BasicAuthPassword, "Basic-auth credential %d (user %q): a password must have %d to %d characters, this one has %d.", n, p.user, minBasicAuthPassword, maxBasicAuthPassword, k)
		}
		if hasControl(p.pass) {
			return nil, codes.NewError(codes.BasicAuthPassword, "Basic-auth credential %d (user %q): a password must not contain control characters (RFC 7617).", n, p.user)
		}
		b.creds = append(b.creds, basicCredential{user: b.digest([]byte(p.user)), pass: b.digest([]byte(p.pass))})
	}
	return b, nil
}

// hasControl reports whether s has a control character (RFC 5234 CTL, and
// the C1 range).
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

// digest returns SHA-256(salt || v) without allocating (v is at most
// maxBasicAuthDecoded bytes; longer values are never digested).
func (b *basicAuth) digest(v []byte) [sha256.Size]byte {
	var buf [basicAuthSaltLen + maxBasicAuthDecoded]byte
	n := copy(buf[:], b.salt[:])
	n += copy(buf[n:], v)
	return sha256.Sum256(buf[:n])
}

// check reports whether an Authorization field value (one field; n is how
// many the request had) carries one of the credentials. Every credential
// is compared, in constant time. It does not allocate.
func (b *basicAuth) check(authorization []byte, n int) bool {
	if n != 1 || len(authorization) < 6 || !asciiEqualFold(authorization[:6], "basic ") {
		return false
	}
	tok := bytes.TrimLeft(authorization[6:], " ")
	if len(tok) == 0 || base64.StdEncoding.DecodedLen(len(tok)) > maxBasicAuthDecoded {
		return false
	}
	var dec [maxBasicAuthDecoded + 3]byte
	k, err := base64.StdEncoding.Decode(dec[:], tok)
	if err != nil {
		return false
	}
	user, pass, ok := bytes.Cut(dec[:k], []byte{':'})
	if !ok {
		return false
	}
	uh, ph := b.digest(user), b.digest(pass)
	match := 0
	for i := range b.creds {
		c := &b.creds[i]
		match |= subtle.ConstantTimeCompare(uh[:], c.user[:]) & subtle.ConstantTimeCompare(ph[:], c.pass[:])
	}
	return match == 1
}

// asciiEqualFold reports whether b equals lower-case s ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// refusalBasicThrottled answers a client throttled for failed basic-auth
// logins (429, TG_3240); refusalsBasicThrottled holds it with each
// Retry-After up to maxPrebuiltRetryAfter seconds, built once.
var (
	refusalBasicThrottled = httpproxy.NewRefusal(http.StatusTooManyRequests, codes.BasicAuthThrottled,
		"Too many wrong user names or passwords from your address for this endpoint. Wait for the time Retry-After gives, then sign in again.", "")
	refusalsBasicThrottled = func() (r [maxPrebuiltRetryAfter + 1]*httpproxy.Refusal) {
		for i := 1; i < len(r); i++ {
			r[i] = refusalBasicThrottled.WithRetryAfter(i)
		}
		return r
	}()
)

const maxPrebuiltRetryAfter = 60 // seconds

// basicThrottledRefusal is the 429 refusal with Retry-After: secs.
func basicThrottledRefusal(secs int) *httpproxy.Refusal {
	if secs >= 1 && secs <= maxPrebuiltRetryAfter {
		return refusalsBasicThrottled[secs]
	}
	return refusalBasicThrottled.WithRetryAfter(secs)
}

// Admit implements httpproxy.Gate for HTTPS endpoints: the account's
// endpoints IP restriction and the endpoint's IP policy (403, TG_3205),
// then basic auth (401, TG_3207), whose Authorization field is then not
// forwarded. Failed logins (requests that sent credentials) are throttled
// per endpoint and client address (guard.go): past the budget, a request
// is answered 429 with Retry-After (TG_3240) before its credentials are
// even checked, so guessing costs the guesser time, not the edge.
func (ep *Endpoint) Admit(client netip.Addr, authorization []byte, authCount int) httpproxy.Admission {
	a := ep.access
	if a == nil {
		return httpproxy.Admission{}
	}
	if !a.gates.admit(ep, client) {
		return httpproxy.Admission{Refusal: refusalIPDenied}
	}
	if a.basic == nil {
		return httpproxy.Admission{}
	}
	g := a.gates.guard
	if g != nil {
		if wait := g.basicAuth.Wait(ep.url, client); wait > 0 {
			secs := retryAfterSeconds(wait)
			if g.allowLog() {
				g.log.Warn("basic auth throttled: too many failed logins from this address", zap.String("endpoint", ep.url),
					zap.Stringer("remote_addr", client.Unmap()), zap.Int("retry_after_s", secs), zap.String("code", string(codes.BasicAuthThrottled)))
			}
			return httpproxy.Admission{Refusal: basicThrottledRefusal(secs)}
		}
	}
	if !a.basic.check(authorization, authCount) {
		if g != nil && authCount > 0 {
			g.basicAuth.Failed(ep.url, client)
		}
		a.gates.metrics.basicAuthFailed.Add(1)
		if ce := a.gates.log.Check(zap.DebugLevel, "basic auth refused"); ce != nil {
			ce.Write(zap.String("endpoint", ep.url), zap.Stringer("remote_addr", client.Unmap()), zap.Bool("credentials_sent", authCount > 0))
		}
		return httpproxy.Admission{Refusal: refusalBasicAuth}
	}
	return httpproxy.Admission{StripAuthorization: true}
}

var _ httpproxy.Gate = (*Endpoint)(nil)
