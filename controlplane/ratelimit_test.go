package controlplane_test

import (
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

func TestRateLimitFailedAuthPerIP(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{AuthFailureLimit: 0.5, AuthFailureBurst: 2})
	kid, secret, err := authn.ParseToken(e.Admin)
	if err != nil {
		t.Fatal(err)
	}
	bad := "Bearer " + kid + "_" + strings.Repeat("A", len(secret))
	for i := 0; i < 2; i++ {
		cptest.WantError(t, e.Call("GET", "/api_keys", "", nil, "Authorization", bad), 401, string(codes.APIAuthInvalid))
	}
	// The address has used its failures: even a valid key waits now, so
	// guessing is slow whatever is guessed.
	r := e.Call("GET", "/api_keys", e.Admin, nil)
	cptest.WantError(t, r, 429, string(codes.APIRateLimited))
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 2 {
		t.Fatalf("Retry-After = %q", r.Header.Get("Retry-After"))
	}
	cptest.WantError(t, e.Call("GET", "/api_keys", "", nil, "Authorization", bad), 429, string(codes.APIRateLimited))
}

func TestRateLimitOff(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{RateLimit: -1, AuthFailureLimit: -1})
	for i := 0; i < 50; i++ {
		e.Must(200, e.Call("GET", "/credentials", e.Admin, nil))
		cptest.WantError(t, e.Call("GET", "/credentials", "", nil), 401, string(codes.APIAuthMissing))
	}
}
