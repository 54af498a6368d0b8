package dashboard_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/dashboard"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
)

// TestDashboardPasswordSignIn: a user signs in with e-mail and password;
// a wrong password and an unknown address get the same answer and are
// audited (in the user's accounts, or in the control plane's own log);
// every sign-in opens a new session and ends the one the browser held;
// a deactivated user is refused after the password; sign-out is audited.
func TestDashboardPasswordSignIn(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		ctx := cptest.Ctx(t)
		b := newBrowser(t, serveDashboard(e, "127.0.0.1:0"))
		uid, _ := e.AddUser(e.Dev.AccountID, "pat@example.com", store.Membership{Developer: store.DeveloperRW, Team: store.TeamRO})
		withPassword(t, e, uid)
		b.get("/signin").want(t, http.StatusOK, `id="password"`)

		rev := e.Revision()
		b.passwordSignIn("pat@example.com", "not the password").want(t, http.StatusUnauthorized, string(codes.PasswordSignIn))
		if ev := e.LastEvent(e.Dev.AccountID); ev.Type != failedSignIn || ev.ObjectID != uid || !strings.Contains(string(ev.Payload), "wrong_password") {
			t.Fatalf("a wrong password was audited as %+v", ev)
		}
		p := b.passwordSignIn("nobody@example.com", testPassword).want(t, http.StatusUnauthorized, string(codes.PasswordSignIn))
		if !strings.Contains(p.body, "e-mail address or password is wrong") {
			t.Fatalf("an unknown address is told apart: %s", p.body)
		}
		if ev := e.LastEvent(""); ev.Type != failedSignIn || !strings.Contains(string(ev.Payload), "nobody@example.com") {
			t.Fatalf("an unknown address was audited as %+v", ev)
		}
		onlyFailuresSince(t, e, rev, "", e.Dev.AccountID)
		if b.sessionID() != "" {
			t.Fatal("a refused sign-in set a session cookie")
		}

		// Signed in with an API key first: the password sign-in replaces
		// that session.
		b.signIn(e.Admin).want(t, http.StatusSeeOther, "")
		old := b.sessionID()
		b.passwordSignIn("  Pat@Example.com ", testPassword).want(t, http.StatusSeeOther, "")
		cur := b.sessionID()
		if cur == "" || cur == old {
			t.Fatalf("the session did not rotate: %q then %q", old, cur)
		}
		if _, err := e.Store.LookupDashboardSession(ctx, old); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the replaced session %s still exists: %v", old, err)
		}
		s, err := e.Store.LookupDashboardSession(ctx, cur)
		if err != nil || s.Method != store.SignInPassword || s.UserID != uid || s.AccountID != e.Dev.AccountID {
			t.Fatalf("session = %+v, %v", s, err)
		}
		b.get("/").want(t, http.StatusOK, "pat@example.com")
		if ev := lastOfType(t, e, e.Dev.AccountID, "dashboard_session_created.v0"); ev.ObjectID != cur || !strings.Contains(string(ev.Payload), old) {
			t.Fatalf("the sign-in was audited as %+v", ev)
		}

		b.post("/", "/signout", nil).want(t, http.StatusSeeOther, "")
		if ev := e.LastEvent(e.Dev.AccountID); ev.Type != "dashboard_session_deleted.v0" || ev.ObjectID != cur {
			t.Fatalf("the sign-out was audited as %+v", ev)
		}

		// A deactivated user is refused, with a session for nobody.
		if err := e.Store.SetUserActive(ctx, store.SystemActor, uid, false); err != nil {
			t.Fatal(err)
		}
		b.passwordSignIn("pat@example.com", testPassword).want(t, http.StatusForbidden, string(codes.APIPrincipalInactive))
		if b.sessionID() != "" {
			t.Fatal("a deactivated user got a session")
		}
	})
}

// TestDashboardTOTP: a user enrols an authenticator from their profile
// (the secret shown once, confirmed by a first code), then a password
// sign-in asks for a code: a wrong one and a replayed one are refused, a
// fresh one signs in.
func TestDashboardTOTP(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		clk := &clock{t: time.Date(2026, 12, 7, 6, 0, 15, 0, time.UTC)}
		b := newBrowser(t, serveIdentity(e, "127.0.0.1:0", dashboard.Config{Now: clk.now}))
		uid, _ := e.AddUser(e.Dev.AccountID, "pat@example.com", store.Membership{Developer: store.DeveloperRW, Team: store.TeamRO})
		withPassword(t, e, uid)
		b.passwordSignIn("pat@example.com", testPassword).want(t, http.StatusSeeOther, "")

		p := b.post("/profile", "/profile/totp", nil).want(t, http.StatusCreated, `id="totp-qr"`)
		secret := find(t, p, `<pre id="totp-secret">([A-Z2-7]+)</pre>`)
		if uri := find(t, p, `<pre id="totp-uri">([^<]+)</pre>`); !strings.HasPrefix(uri, "otpauth://totp/Tollgate:pat@example.com?") {
			t.Fatalf("otpauth URI %q", uri)
		}
		if strings.Contains(b.get("/profile").body, secret) {
			t.Fatal("the TOTP secret is shown again")
		}
		b.post("/profile", "/profile/totp/confirm", url.Values{"code": {"000000"}}).want(t, http.StatusBadRequest, string(codes.TOTPInvalid))
		// Confirmed with the previous step's code (one step of allowance).
		b.post("/profile", "/profile/totp/confirm", url.Values{"code": {codeAt(t, secret, clk.t.Add(-30*time.Second))}}).
			want(t, http.StatusCreated, "Your authenticator is set up")
		b.post("/", "/signout", nil).want(t, http.StatusSeeOther, "")

		// The password alone no longer signs in.
		b.passwordSignIn("pat@example.com", testPassword).want(t, http.StatusOK, `id="code"`)
		if b.sessionID() != "" {
			t.Fatal("signed in before the code")
		}
		b.code("123").want(t, http.StatusUnauthorized, string(codes.TOTPInvalid))
		b.code(codeAt(t, secret, clk.t.Add(-30*time.Second))).want(t, http.StatusUnauthorized, string(codes.TOTPInvalid)) // used to confirm
		b.code(codeAt(t, secret, clk.t)).want(t, http.StatusSeeOther, "")
		b.get("/").want(t, http.StatusOK, "pat@example.com")
		b.post("/", "/signout", nil).want(t, http.StatusSeeOther, "")

		// The same code again, in a new sign-in within its window: refused.
		b.passwordSignIn("pat@example.com", testPassword).want(t, http.StatusOK, `id="code"`)
		b.code(codeAt(t, secret, clk.t)).want(t, http.StatusUnauthorized, string(codes.TOTPInvalid))
		if ev := e.LastEvent(e.Dev.AccountID); ev.Type != failedSignIn || !strings.Contains(string(ev.Payload), "replayed_totp") {
			t.Fatalf("the replayed code was audited as %+v", ev)
		}
		clk.t = clk.t.Add(30 * time.Second)
		b.code(codeAt(t, secret, clk.t)).want(t, http.StatusSeeOther, "")
		if o, err := e.Store.GetTOTP(cptest.Ctx(t), uid); err != nil || o.LastStep != clk.t.Unix()/30 {
			t.Fatalf("last step = %+v, %v, want %d", o, err, clk.t.Unix()/30)
		}

		// Too many wrong codes end the pending sign-in.
		b.post("/", "/signout", nil).want(t, http.StatusSeeOther, "")
		b.passwordSignIn("pat@example.com", testPassword).want(t, http.StatusOK, `id="code"`)
		for i := 0; i < store.MaxChallengeAttempts; i++ {
			b.code("000000").want(t, http.StatusUnauthorized, string(codes.TOTPInvalid))
		}
		clk.t = clk.t.Add(30 * time.Second)
		b.code(codeAt(t, secret, clk.t)).want(t, http.StatusUnauthorized, string(codes.TOTPRequired))
	})
}

// TestDashboardPasswordReset: an administrator issues a reset link, shown
// once; it refuses a common password, sets a new one once, ends the
// user's sessions, and works no second time. A user who belongs to an
// account the administrator does not administer gets no link.
func TestDashboardPasswordReset(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		base := serveDashboard(e, "127.0.0.1:0")
		uid, _ := e.AddUser(e.Dev.AccountID, "pat@example.com", store.Membership{Developer: store.DeveloperRW, Team: store.TeamRO})
		withPassword(t, e, uid)
		pat := newBrowser(t, base)
		pat.passwordSignIn("pat@example.com", testPassword).want(t, http.StatusSeeOther, "")
		// A member who is not an administrator issues no link.
		pat.post("/users", "/users/"+uid+"/password-reset", nil).want(t, http.StatusForbidden, string(codes.DashboardForbidden))

		admin := newBrowser(t, base)
		admin.signIn(e.Admin).want(t, http.StatusSeeOther, "")
		p := admin.post("/users", "/users/"+uid+"/password-reset", nil).want(t, http.StatusCreated, "shown only once")
		link := strings.ReplaceAll(find(t, p, `<pre id="reset-link">([^<]+)</pre>`), "&amp;", "&")
		if strings.Contains(admin.get("/users").body, "/reset?token=") {
			t.Fatal("the reset link is shown again")
		}
		if ev := e.LastEvent(e.Dev.AccountID); ev.Type != "password_reset_created.v0" || !strings.Contains(string(ev.Payload), uid) {
			t.Fatalf("issuing was audited as %+v", ev)
		}
		u, _ := url.Parse(link)
		tok := u.Query().Get("token")
		anon := newBrowser(t, base)
		anon.get("/reset?"+u.RawQuery).want(t, http.StatusOK, "pat@example.com")
		anon.do(http.MethodPost, "/reset", url.Values{"token": {tok}, "password": {"password123"}}).want(t, http.StatusBadRequest, string(codes.PasswordPolicy))
		anon.do(http.MethodPost, "/reset", url.Values{"token": {tok}, "password": {"short"}}).want(t, http.StatusBadRequest, string(codes.PasswordPolicy))
		p = anon.do(http.MethodPost, "/reset", url.Values{"token": {tok}, "password": {"a brand new passphrase"}}).want(t, http.StatusSeeOther, "")
		if p.location != "/signin?reset=1" {
			t.Fatalf("after the reset: %q", p.location)
		}
		if p := pat.get("/"); p.status == http.StatusOK {
			t.Fatal("a session of the user outlived the reset")
		}
		anon.do(http.MethodPost, "/reset", url.Values{"token": {tok}, "password": {"another new passphrase"}}).want(t, http.StatusNotFound, string(codes.ResetInvalid))
		anon.get("/reset?"+u.RawQuery).want(t, http.StatusNotFound, string(codes.ResetInvalid))
		anon.passwordSignIn("pat@example.com", testPassword).want(t, http.StatusUnauthorized, string(codes.PasswordSignIn))
		anon.passwordSignIn("pat@example.com", "a brand new passphrase").want(t, http.StatusSeeOther, "")
		if ev := lastOfType(t, e, e.Dev.AccountID, "password_reset_used.v0"); ev.ActorID != uid {
			t.Fatalf("the reset was audited as %+v", ev)
		}

		// pat joins another account: the dev administrator no longer
		// administers all of pat's accounts.
		other, _ := e.OtherAccount("other")
		if err := e.Store.PutMembership(cptest.Ctx(t), store.SystemActor, store.Membership{AccountID: other, UserID: uid,
			Developer: store.DeveloperRO, Team: store.TeamRO}); err != nil {
			t.Fatal(err)
		}
		rev := e.Revision()
		admin.post("/users", "/users/"+uid+"/password-reset", nil).want(t, http.StatusForbidden, string(codes.ResetForbidden))
		if e.Revision() != rev {
			t.Fatal("a refused reset link changed the store")
		}
	})
}

// TestDashboardPasswordSpray: password spraying is throttled per client
// address and per target user, with a throttled attempt refused before
// any password hash is computed; the right password from an address that
// has not failed is never refused, whatever others did.
func TestDashboardPasswordSpray(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{})
	base := serveDashboard(e, "127.0.0.1:0")
	uid, _ := e.AddUser(e.Dev.AccountID, "pat@example.com", store.Membership{Developer: store.DeveloperRW, Team: store.TeamRO})
	withPassword(t, e, uid)

	// Per address: a spray of addresses book entries from 127.0.0.2.
	sprayer := newBrowserFrom(t, base, "127.0.0.2")
	for i := 0; i < 20; i++ {
		sprayer.passwordSignIn(fmt.Sprintf("user%d@example.com", i), "Summer2026!").want(t, http.StatusUnauthorized, string(codes.PasswordSignIn))
	}
	before := dashboard.HashesChecked()
	p := sprayer.passwordSignIn("pat@example.com", testPassword).want(t, http.StatusTooManyRequests, string(codes.SignInThrottled))
	if p.header.Get("Retry-After") == "" {
		t.Fatal("a throttled sign-in has no Retry-After")
	}
	if dashboard.HashesChecked() != before {
		t.Fatal("a throttled attempt computed a password hash")
	}
	newBrowserFrom(t, base, "127.0.0.3").passwordSignIn("pat@example.com", testPassword).want(t, http.StatusSeeOther, "")

	// Per target: ten addresses fail once each against pat.
	for i := 0; i < 10; i++ {
		newBrowserFrom(t, base, fmt.Sprintf("127.0.1.%d", i+1)).passwordSignIn("pat@example.com", fmt.Sprintf("guess number %d", i)).
			want(t, http.StatusUnauthorized, string(codes.PasswordSignIn))
	}
	before = dashboard.HashesChecked()
	// An address that failed against pat is refused for pat, even with the
	// right password, without a hash...
	newBrowserFrom(t, base, "127.0.1.1").passwordSignIn("pat@example.com", testPassword).
		want(t, http.StatusTooManyRequests, "for this user")
	if dashboard.HashesChecked() != before {
		t.Fatal("a throttled attempt computed a password hash")
	}
	// ...while pat, from an address with no failures, signs in.
	newBrowserFrom(t, base, "127.0.2.1").passwordSignIn("pat@example.com", testPassword).want(t, http.StatusSeeOther, "")
	if e.Core.SignInThrottled() < 2 {
		t.Fatalf("throttled = %d", e.Core.SignInThrottled())
	}
}
