package dashboard_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/dashboard"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/store"
)

// TestDashboardKeylessSession: a session signed in without an API key (a
// password or an identity provider) acts with the user's current roles in
// the session's account, is named in the audit log by its own ID, and ends
// when the user leaves the account. The store refuses a session whose
// method and API key disagree.
func TestDashboardKeylessSession(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		ctx := cptest.Ctx(t)
		base := serveDashboard(e, "127.0.0.1:0")
		uid, _ := e.AddUser(e.Dev.AccountID, "pat@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO})
		open := func(m store.SignInMethod, keyID string) (*store.DashboardSession, string, error) {
			s, tok, err := e.Store.CreateDashboardSession(ctx, store.SystemActor, store.DashboardSessionCreate{
				AccountID: e.Dev.AccountID, UserID: uid, Method: m, APIKeyID: keyID, ClientIP: "127.0.0.1", TTL: time.Hour})
			return s, tok.Reveal(), err
		}
		for _, bad := range []struct {
			m   store.SignInMethod
			key string
		}{{store.SignInPassword, e.Dev.APIKeyID}, {store.SignInAPIKey, ""}, {"magic", ""}} {
			if _, _, err := open(bad.m, bad.key); err == nil {
				t.Fatalf("a %q session with API key %q was created", bad.m, bad.key)
			}
		}
		sess, tok, err := open(store.SignInPassword, "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Store.LookupDashboardSession(ctx, sess.ID)
		if err != nil || got.Method != store.SignInPassword || got.APIKeyID != "" {
			t.Fatalf("stored session = %+v, %v", got, err)
		}
		b := newBrowser(t, base)
		b.c.Jar.SetCookies(mustURL(t, base), []*http.Cookie{{Name: dashboard.CookieName, Value: tok}})
		b.get("/").want(t, http.StatusOK, "pat@example.com")
		// Read-only: the user's roles in the account apply.
		b.post("/credentials", "/credentials/api-keys", nil).want(t, http.StatusForbidden, string(codes.DashboardForbidden))

		// An administrator's action is attributed to the session.
		if err := e.Store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: e.Dev.AccountID, UserID: uid,
			Developer: store.DeveloperRW, Team: store.TeamRO, Admin: true}); err != nil {
			t.Fatal(err)
		}
		p := b.post("/credentials", "/credentials/api-keys", nil).want(t, http.StatusCreated, "shown only once")
		if !strings.Contains(p.body, "ak_") && !strings.Contains(p.body, "new-api-key") {
			t.Fatalf("no key on the page: %s", p.body)
		}
		if ev := e.LastEvent(e.Dev.AccountID); ev.ActorCredentialID != sess.ID || ev.ActorID != uid {
			t.Fatalf("the key's creation is attributed to %s with %s, want session %s of %s", ev.ActorID, ev.ActorCredentialID, sess.ID, uid)
		}

		// Leaving the account ends the session.
		if err := e.Store.RemoveMembership(ctx, store.SystemActor, e.Dev.AccountID, uid); err != nil {
			t.Fatal(err)
		}
		if p := b.get("/"); p.status == http.StatusOK {
			t.Fatalf("a session of a removed member still works: %d", p.status)
		}
	})
}
