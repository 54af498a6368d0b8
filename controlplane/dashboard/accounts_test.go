package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/dashboard"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/store"
)

// TestDashboardSignUp: off by default (the page and the form refuse, the
// store is unchanged); on, a new user with a password and a new account
// they administer, signed in to it; the same address again and a common
// password are refused.
func TestDashboardSignUp(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		form := url.Values{"email": {"founder@example.com"}, "name": {"Fran"}, "account": {"Fran's startup"}, "password": {testPassword}}
		off := newBrowser(t, serveDashboard(e, "127.0.0.1:0"))
		off.get("/signup").want(t, http.StatusNotFound, string(codes.SignUpDisabled))
		if strings.Contains(off.get("/signin").body, "/signup") {
			t.Fatal("the sign-in page links a sign-up that is off")
		}
		rev := e.Revision()
		off.do(http.MethodPost, "/signup", form).want(t, http.StatusNotFound, string(codes.SignUpDisabled))
		if e.Revision() != rev {
			t.Fatal("a refused sign-up changed the store")
		}

		b := newBrowser(t, serveIdentity(e, "127.0.0.1:0", dashboard.Config{SignUp: true}))
		b.get("/signin").want(t, http.StatusOK, `href="/signup"`)
		b.get("/signup").want(t, http.StatusOK, `id="account"`)
		weak := url.Values{"email": {"weak@example.com"}, "name": {"W"}, "account": {"W"}, "password": {"iloveyou1"}}
		b.do(http.MethodPost, "/signup", weak).want(t, http.StatusBadRequest, string(codes.PasswordPolicy))
		if e.Revision() != rev {
			t.Fatal("a refused sign-up changed the store")
		}
		b.do(http.MethodPost, "/signup", form).want(t, http.StatusSeeOther, "")
		p := b.get("/").want(t, http.StatusOK, "founder@example.com")
		if !strings.Contains(p.body, `id="current-account"`) || !strings.Contains(p.body, "Fran&#39;s startup") {
			t.Fatalf("the new account is not the current one: %s", p.body)
		}
		s, err := e.Store.LookupDashboardSession(cptest.Ctx(t), b.sessionID())
		if err != nil || s.Method != store.SignInPassword {
			t.Fatalf("session %+v, %v", s, err)
		}
		m, err := e.Store.GetMembership(cptest.Ctx(t), s.AccountID, s.UserID)
		if err != nil || !m.Admin || m.Developer != store.DeveloperRW {
			t.Fatalf("the founder's roles: %+v, %v", m, err)
		}
		// Signed out, the founder signs in with the password.
		b.post("/", "/signout", nil).want(t, http.StatusSeeOther, "")
		b.passwordSignIn("founder@example.com", testPassword).want(t, http.StatusSeeOther, "")

		// The same address again, or a dev user's, is refused.
		b.fresh()
		b.do(http.MethodPost, "/signup", form).want(t, http.StatusConflict, string(codes.SignUpTaken))
	})
}

// TestDashboardTwoAccounts: a user creates a second account from the
// switcher (becoming its administrator), switches between the two and sees
// only each one's resources; a switch is audited in both accounts and
// rotates the session; a switch to an account they do not belong to, or
// whose dashboard IP restriction refuses the browser, is refused; an
// invitation to a third account accepted while signed in adds the
// membership to the same user; an API-key session cannot switch.
func TestDashboardTwoAccounts(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		ctx := cptest.Ctx(t)
		base := serveDashboard(e, "127.0.0.1:0")
		uid, key := e.AddUser(e.Dev.AccountID, "pat@example.com", store.Membership{Developer: store.DeveloperRW, Team: store.TeamRO})
		withPassword(t, e, uid)
		b := newBrowser(t, base)
		b.passwordSignIn("pat@example.com", testPassword).want(t, http.StatusSeeOther, "")
		b.post("/credentials", "/credentials", url.Values{"description": {"dev-account-token"}}).want(t, http.StatusCreated, "")

		// A second account, created from the switcher.
		first := b.sessionID()
		p := b.post("/", "/accounts", url.Values{"name": {"Side project"}}).want(t, http.StatusSeeOther, "")
		if p.location != "/" || b.sessionID() == first {
			t.Fatalf("creating an account: %q, session %s -> %s", p.location, first, b.sessionID())
		}
		s, err := e.Store.LookupDashboardSession(ctx, b.sessionID())
		if err != nil || s.AccountID == e.Dev.AccountID {
			t.Fatalf("not switched to the new account: %+v, %v", s, err)
		}
		side := s.AccountID
		if m, err := e.Store.GetMembership(ctx, side, uid); err != nil || !m.Admin {
			t.Fatalf("the creator's roles in the new account: %+v, %v", m, err)
		}
		p = b.get("/credentials").want(t, http.StatusOK, "Side project")
		if strings.Contains(p.body, "dev-account-token") {
			t.Fatal("the new account shows the other account's authtoken")
		}
		b.post("/credentials", "/credentials", url.Values{"description": {"side-account-token"}}).want(t, http.StatusCreated, "")
		if ev := e.LastEvent(side); ev.Type != "authtoken_created.v0" && ev.Type != "credential_created.v0" {
			t.Fatalf("the new account's log ends with %+v", ev)
		}

		// Back to the first account: the switcher lists both.
		p = b.get("/")
		if !strings.Contains(p.body, `data-account="`+e.Dev.AccountID+`"`) {
			t.Fatalf("the switcher does not offer the dev account: %s", p.body)
		}
		before := b.sessionID()
		b.post("/", "/accounts/switch", url.Values{"account_id": {e.Dev.AccountID}}).want(t, http.StatusSeeOther, "")
		p = b.get("/credentials").want(t, http.StatusOK, "dev-account-token")
		if strings.Contains(p.body, "side-account-token") {
			t.Fatal("the first account shows the second one's authtoken")
		}
		if ev := lastOfType(t, e, side, "dashboard_session_deleted.v0"); ev.ObjectID != before || !strings.Contains(string(ev.Payload), "replaced") {
			t.Fatalf("leaving %s was audited as %+v", side, ev)
		}
		if ev := lastOfType(t, e, e.Dev.AccountID, "dashboard_session_created.v0"); ev.ObjectID != b.sessionID() || ev.ActorID != uid {
			t.Fatalf("entering the dev account was audited as %+v", ev)
		}

		// Not a member: refused, the session unchanged.
		foreign, foreignAdmin := e.OtherAccount("foreign")
		cur := b.sessionID()
		b.post("/", "/accounts/switch", url.Values{"account_id": {foreign}}).want(t, http.StatusForbidden, string(codes.AccountSwitch))
		if b.sessionID() != cur {
			t.Fatal("a refused switch changed the session")
		}

		// Invited to the foreign account: accepted while signed in, as the
		// same user, and switched there.
		inv := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations", foreignAdmin, map[string]any{"email": "pat@example.com"}))
		tok := cptest.Str(inv, "accept_token")
		p = b.get("/accept?token="+url.QueryEscape(tok)).want(t, http.StatusOK, "Join foreign")
		form := url.Values{"token": {tok}, "form_token": {find(t, p, `name="form_token" value="([^"]+)"`)}}
		b.do(http.MethodPost, "/accept", form).want(t, http.StatusCreated, "shown only once")
		s, err = e.Store.LookupDashboardSession(ctx, b.sessionID())
		if err != nil || s.AccountID != foreign || s.UserID != uid || s.Method != store.SignInPassword {
			t.Fatalf("after joining: %+v, %v", s, err)
		}
		accts, _, err := e.Store.ListAccountsOf(ctx, uid, store.Page{})
		if err != nil || len(accts) != 3 {
			t.Fatalf("pat belongs to %d accounts (%v), want 3", len(accts), err)
		}

		// The side account's dashboard IP restriction refuses loopback:
		// switching there is refused.
		sideKey := e.KeyFor(side, uid)
		pol := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policies", sideKey, map[string]any{})), "id")
		e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policy_rules", sideKey, map[string]any{"ip_policy_id": pol, "cidr": "10.0.0.0/8", "action": "allow"}))
		e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_restrictions", sideKey, map[string]any{"type": "dashboard", "ip_policy_ids": []string{pol}, "enforced": true}))
		b.post("/", "/accounts/switch", url.Values{"account_id": {side}}).want(t, http.StatusForbidden, string(codes.DashboardIPRestricted))

		// An API-key session stays in its key's account.
		k := newBrowser(t, base)
		k.signIn(key).want(t, http.StatusSeeOther, "")
		if strings.Contains(k.get("/").body, `action="/accounts/switch"`) {
			t.Fatal("an API-key session is offered to switch")
		}
		k.post("/", "/accounts/switch", url.Values{"account_id": {foreign}}).want(t, http.StatusConflict, string(codes.AccountSwitch))
	})
}

// TestDashboardJoinBySigningIn: an invitation for an address that has a
// user, opened signed out, sends the user to sign in and back; they join
// as the same user, and a password posted to the signed-out form instead
// is refused without a change.
func TestDashboardJoinBySigningIn(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		base := serveDashboard(e, "127.0.0.1:0")
		uid, _ := e.AddUser(e.Dev.AccountID, "sam@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO})
		withPassword(t, e, uid)
		_, otherAdmin := e.OtherAccount("other")
		tok := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations", otherAdmin, map[string]any{"email": "sam@example.com"})), "accept_token")

		b := newBrowser(t, base)
		p := b.get("/accept?token="+url.QueryEscape(tok)).want(t, http.StatusOK, `id="signin-to-accept"`)
		next := strings.ReplaceAll(find(t, p, `href="/signin\?next=([^"]+)"`), "&amp;", "&")
		rev := e.Revision()
		b.do(http.MethodPost, "/accept", url.Values{"token": {tok}, "name": {"Sam"}, "password": {testPassword}}).
			want(t, http.StatusConflict, string(codes.InvitationExists))
		if e.Revision() != rev {
			t.Fatal("a refused acceptance changed the store")
		}
		nextPath, err := url.QueryUnescape(next)
		if err != nil {
			t.Fatal(err)
		}
		p = b.do(http.MethodPost, "/signin", url.Values{"email": {"sam@example.com"}, "password": {testPassword}, "next": {nextPath}}).
			want(t, http.StatusSeeOther, "")
		if p.location != nextPath {
			t.Fatalf("after sign-in the browser goes to %q, want %q", p.location, nextPath)
		}
		p = b.get(p.location).want(t, http.StatusOK, "Join other")
		b.do(http.MethodPost, "/accept", url.Values{"token": {tok}, "form_token": {find(t, p, `name="form_token" value="([^"]+)"`)}}).
			want(t, http.StatusCreated, "shown only once")
		accts, _, err := e.Store.ListAccountsOf(cptest.Ctx(t), uid, store.Page{})
		if err != nil || len(accts) != 2 {
			t.Fatalf("sam belongs to %d accounts (%v), want 2", len(accts), err)
		}
	})
}
