package controlplane_test

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
)

func TestRateLimitPerAccount(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{RateLimit: 2, RateBurst: 3})
	for i := 0; i < 3; i++ {
		e.Must(200, e.Call("GET", "/credentials", e.Admin, nil))
	}
	r := e.Call("GET", "/credentials", e.Admin, nil)
	cptest.WantError(t, r, 429, string(codes.APIRateLimited))
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 2 {
		t.Fatalf("Retry-After = %q", r.Header.Get("Retry-After"))
	}
	// Writes count too, and a refused request changes nothing.
	before := e.Revision()
	cptest.WantError(t, e.Call("POST", "/bot_users", e.Admin, map[string]any{"name": "x"}), 429, string(codes.APIRateLimited))
	if e.Revision() != before {
		t.Fatal("a rate-limited write changed the store")
	}

	// Another account has its own budget.
	ctx := cptest.Ctx(t)
	acct, err := e.Store.CreateAccount(ctx, store.SystemActor, "other")
	if err != nil {
		t.Fatal(err)
	}
	u, err := e.Store.CreateUser(ctx, store.SystemActor, "other@example.com", "Other")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: acct.ID, UserID: u.ID,
		Developer: store.DeveloperRW, Team: store.TeamManager, Admin: true}); err != nil {
		t.Fatal(err)
	}
	_, tok, err := e.Store.CreateAPIKey(ctx, store.Actor{AccountID: acct.ID, PrincipalID: u.ID}, acct.ID, store.APIKeyCreate{OwnerID: u.ID})
	if err != nil {
		t.Fatal(err)
	}
	e.Must(200, e.Call("GET", "/credentials", tok.Reveal(), nil))

	// The bucket refills at the configured rate.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r := e.Call("GET", "/credentials", e.Admin, nil); r.Status == 200 {
			break
		} else if r.Status != 429 || time.Now().After(deadline) {
			t.Fatalf("after waiting: %d %s", r.Status, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// badKey is a well-formed API key for the admin's key ID with a wrong
// secret: the guess an attacker makes.
func badKey(t *testing.T, e *cptest.Env) string {
	t.Helper()
	kid, secret, err := authn.ParseToken(e.Admin)
	if err != nil {
		t.Fatal(err)
	}
	return kid + "_" + strings.Repeat("A", len(secret))
}

// wantRetryAfter checks a 429's Retry-After: whole seconds in [1, max].
func wantRetryAfter(t *testing.T, r cptest.Response, max int) {
	t.Helper()
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 || secs > max {
		t.Fatalf("Retry-After = %q", r.Header.Get("Retry-After"))
	}
}

// An address's failed authentications are answered 429 once its budget is
// spent; a valid key from the same address is never refused for them
// (issue 12 §1: the edges' shared address must not freeze the API).
func TestRateLimitFailedAuthNeverRefusesValidKey(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{AuthFailureLimit: 0.5, AuthFailureBurst: 2})
	bad := badKey(t, e)
	for i := 0; i < 2; i++ {
		cptest.WantError(t, e.Call("GET", "/api_keys", bad, nil), 401, string(codes.APIAuthInvalid))
	}
	r := e.Call("GET", "/api_keys", bad, nil)
	cptest.WantError(t, r, 429, string(codes.APIRateLimited))
	wantRetryAfter(t, r, 2)
	cptest.WantError(t, e.Call("GET", "/api_keys", "", nil), 429, string(codes.APIRateLimited)) // no key is a failure too

	// The valid key goes through, every time, while the address is over
	// its budget; a write as well.
	for i := 0; i < 5; i++ {
		e.Must(200, e.Call("GET", "/api_keys", e.Admin, nil))
		cptest.WantError(t, e.Call("GET", "/api_keys", bad, nil), 429, string(codes.APIRateLimited))
	}
	e.Must(201, e.Call("POST", "/bot_users", e.Admin, map[string]any{"name": "still-works"}))
	// Requests that need no key are not refused either.
	cptest.WantError(t, e.Call("GET", "/no-such-thing", "", nil), 404, string(codes.APINotFound))
}

// The edge API is served on the API's listener but never under the API
// keys' failure budget: failed API keys from the edges' address do not
// stop the snapshot feed, and failed edge secrets have a budget of their
// own, which never refuses the right secret.
func TestRateLimitEdgeFeedHasItsOwnBudget(t *testing.T) {
	const secret = "edge-secret-for-the-test"
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{AuthFailureLimit: 0.5, AuthFailureBurst: 2, EdgeSecret: secret})
	bad := badKey(t, e)
	for i := 0; i < 5; i++ {
		e.Call("GET", "/api_keys", bad, nil)
	}
	cptest.WantError(t, e.Call("GET", "/api_keys", bad, nil), 429, string(codes.APIRateLimited))
	feed := func(key string) cptest.Response { return e.Call("GET", "/edge/v1/snapshot?wait=1", key, nil) }
	if r := feed(secret); r.Status != 200 {
		t.Fatalf("feed with the edge secret while API keys fail from the address: %d %s", r.Status, r.Body)
	}
	if r := e.Call("PUT", "/edge/v1/sessions", secret, map[string]any{"edge_id": "edge-1", "region": "us", "sessions": []any{}}); r.Status != 200 {
		t.Fatalf("report with the edge secret: %d %s", r.Status, r.Body)
	}

	// Wrong edge secrets: their own budget (2), then 429.
	for i := 0; i < 2; i++ {
		cptest.WantError(t, feed("wrong"), 401, string(codes.EdgeAuth))
	}
	r := feed("wrong")
	cptest.WantError(t, r, 429, string(codes.APIRateLimited))
	wantRetryAfter(t, r, 2)
	if r := feed(secret); r.Status != 200 {
		t.Fatalf("feed with the edge secret while wrong secrets fail from the address: %d %s", r.Status, r.Body)
	}
	e.Must(200, e.Call("GET", "/api_keys", e.Admin, nil))
}

// Invitation accept tokens are credentials: wrong ones are charged to the
// address (the API's budget) and answered 429 past it; the right one is
// accepted regardless.
func TestRateLimitInvitationTokens(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{AuthFailureLimit: 0.5, AuthFailureBurst: 2})
	inv := e.Must(201, e.Call("POST", "/invitations", e.Admin, map[string]any{"email": "new@example.com"}))
	tok := cptest.Str(inv, "accept_token")
	kid, secret, err := authn.ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	guess := map[string]any{"token": kid + "_" + strings.Repeat("B", len(secret)), "name": "Guesser"}
	for i := 0; i < 2; i++ {
		cptest.WantError(t, e.Call("POST", "/invitations/accept", "", guess), 404, string(codes.InvitationInvalid))
	}
	r := e.Call("POST", "/invitations/accept", "", guess)
	cptest.WantError(t, r, 429, string(codes.APIRateLimited))
	wantRetryAfter(t, r, 2)
	// The same budget as API keys: the address's bad keys are refused now.
	cptest.WantError(t, e.Call("GET", "/api_keys", badKey(t, e), nil), 429, string(codes.APIRateLimited))
	e.Must(201, e.Call("POST", "/invitations/accept", "", map[string]any{"token": tok, "name": "New"}))
}

// With trusted proxies, the budget is per X-Forwarded-For client; without,
// X-Forwarded-For is ignored.
func TestRateLimitTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		shared  bool // do two forwarded clients share one budget?
	}{
		{"no trusted proxies", nil, true},
		{"loopback trusted", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, false},
		{"another proxy trusted", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{AuthFailureLimit: 0.5, AuthFailureBurst: 2, TrustedProxies: tc.trusted})
			bad := badKey(t, e)
			for i := 0; i < 3; i++ {
				e.Call("GET", "/api_keys", bad, nil, "X-Forwarded-For", "198.51.100.7")
			}
			cptest.WantError(t, e.Call("GET", "/api_keys", bad, nil, "X-Forwarded-For", "198.51.100.7"), 429, string(codes.APIRateLimited))
			// A forged left part does not escape the proxy's entry.
			cptest.WantError(t, e.Call("GET", "/api_keys", bad, nil, "X-Forwarded-For", "203.0.113.9, 198.51.100.7"), 429, string(codes.APIRateLimited))
			r := e.Call("GET", "/api_keys", bad, nil, "X-Forwarded-For", "198.51.100.8")
			if tc.shared {
				cptest.WantError(t, r, 429, string(codes.APIRateLimited))
			} else {
				cptest.WantError(t, r, 401, string(codes.APIAuthInvalid))
			}
		})
	}
}

func TestRateLimitOff(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{RateLimit: -1, AuthFailureLimit: -1})
	for i := 0; i < 50; i++ {
		e.Must(200, e.Call("GET", "/credentials", e.Admin, nil))
		cptest.WantError(t, e.Call("GET", "/credentials", "", nil), 401, string(codes.APIAuthMissing))
	}
}
