package controlplane

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
)

func TestRateLimitPerAccount(t *testing.T) {
	e := newEnv(t, storetest.DSN(t, "sqlite"), ServerConfig{RateLimit: 2, RateBurst: 3})
	for i := 0; i < 3; i++ {
		e.must(200, e.call("GET", "/credentials", e.admin, nil))
	}
	r := e.call("GET", "/credentials", e.admin, nil)
	wantError(t, r, 429, string(codes.APIRateLimited))
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 || secs > 2 {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	// Writes count too, and a refused request changes nothing.
	before := e.revision()
	wantError(t, e.call("POST", "/bot_users", e.admin, map[string]any{"name": "x"}), 429, string(codes.APIRateLimited))
	if e.revision() != before {
		t.Fatal("a rate-limited write changed the store")
	}

	// Another account has its own budget.
	ctx := testCtx(t)
	acct, err := e.store.CreateAccount(ctx, store.SystemActor, "other")
	if err != nil {
		t.Fatal(err)
	}
	u, err := e.store.CreateUser(ctx, store.SystemActor, "other@example.com", "Other")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: acct.ID, UserID: u.ID,
		Developer: store.DeveloperRW, Team: store.TeamManager, Admin: true}); err != nil {
		t.Fatal(err)
	}
	_, tok, err := e.store.CreateAPIKey(ctx, store.Actor{AccountID: acct.ID, PrincipalID: u.ID}, acct.ID, store.APIKeyCreate{OwnerID: u.ID})
	if err != nil {
		t.Fatal(err)
	}
	e.must(200, e.call("GET", "/credentials", tok.Reveal(), nil))

	// The bucket refills at the configured rate.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r := e.call("GET", "/credentials", e.admin, nil); r.status == 200 {
			break
		} else if r.status != 429 || time.Now().After(deadline) {
			t.Fatalf("after waiting: %d %s", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRateLimitFailedAuthPerIP(t *testing.T) {
	e := newEnv(t, storetest.DSN(t, "sqlite"), ServerConfig{AuthFailureLimit: 0.5, AuthFailureBurst: 2})
	kid, secret, err := authn.ParseToken(e.admin)
	if err != nil {
		t.Fatal(err)
	}
	bad := "Bearer " + kid + "_" + strings.Repeat("A", len(secret))
	for i := 0; i < 2; i++ {
		wantError(t, e.call("GET", "/api_keys", "", nil, "Authorization", bad), 401, string(codes.APIAuthInvalid))
	}
	// The address has used its failures: even a valid key waits now, so
	// guessing is slow whatever is guessed.
	r := e.call("GET", "/api_keys", e.admin, nil)
	wantError(t, r, 429, string(codes.APIRateLimited))
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 || secs > 2 {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	wantError(t, e.call("GET", "/api_keys", "", nil, "Authorization", bad), 429, string(codes.APIRateLimited))
}

func TestRateLimitOff(t *testing.T) {
	e := newEnv(t, storetest.DSN(t, "sqlite"), ServerConfig{RateLimit: -1, AuthFailureLimit: -1})
	for i := 0; i < 50; i++ {
		e.must(200, e.call("GET", "/credentials", e.admin, nil))
		wantError(t, e.call("GET", "/credentials", "", nil), 401, string(codes.APIAuthMissing))
	}
}

func TestKeyedLimiterSweepForgetsRefilledBuckets(t *testing.T) {
	k := newKeyedLimiter(1000, 1, 0, 0)
	now := time.Now()
	for i := 0; i < 10; i++ {
		k.get(strconv.Itoa(i), now)
	}
	k.sweep(now.Add(k.idle + time.Millisecond))
	if n := len(k.buckets); n != 0 {
		t.Fatalf("%d buckets left after they all refilled", n)
	}
	k.get("busy", now)
	k.sweep(now) // not idle yet
	if len(k.buckets) != 1 {
		t.Fatal("a busy bucket was dropped")
	}
}
