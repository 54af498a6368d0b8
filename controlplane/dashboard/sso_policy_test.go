package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/dashboard"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/sso"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/internal/idptest"
)

// oidcSignIn signs w in through the OpenID provider idp as user and
// returns the dashboard's answer to the callback.
func (s *ssoSetup) oidcSignIn(t *testing.T, w *walker, idp *store.IdentityProvider, user, password string) page {
	t.Helper()
	cb := w.oidcCallback(s.dash, s.dash+"/sso/start/"+idp.ID, user, password)
	w.stopAt = s.dash + "/"
	defer func() { w.stopAt = "" }()
	return w.do(http.MethodGet, cb, nil)
}

// TestSSOInviteOnlyAndEnforced: invite-only refuses a user who is not a
// member (and creates nothing) but admits a member; enforced SSO refuses
// the API-key sign-in that mixed mode allowed, naming the identity
// provider, and still admits SSO.
func TestSSOInviteOnlyAndEnforced(t *testing.T) {
	s := newSSOSetup(t)
	ctx := cptest.Ctx(t)
	op := idptest.NewOIDC(t)
	op.AddUser(idptest.OIDCUser{Username: "carol", Password: "pw-carol", Email: "carol@example.org", EmailVerified: true})
	op.AddUser(idptest.OIDCUser{Username: "admin", Password: "pw-admin", Email: "admin@tollgate.localhost", EmailVerified: true})
	idp := s.addOIDC(t, op, "Corp OIDC")
	if _, err := s.e.Store.PutSSOSettings(ctx, store.SystemActor, s.acct, "", store.ProvisionInviteOnly); err != nil {
		t.Fatal(err)
	}
	s.oidcSignIn(t, newWalker(t), idp, "carol", "pw-carol").want(t, http.StatusForbidden, string(codes.SSONotInvited))
	if pl := s.wantRefusalAudited(t, idp.ID, store.SignInOIDC, codes.SSONotInvited, "not_invited"); pl["email"] != "carol@example.org" {
		t.Fatalf("the refusal's audit event names %q", pl["email"])
	}
	if _, err := s.e.Store.UserByEmail(ctx, "carol@example.org"); err == nil {
		t.Fatal("invite-only created the uninvited user")
	}
	w := newWalker(t)
	s.oidcSignIn(t, w, idp, "admin", "pw-admin").want(t, http.StatusSeeOther, "")
	s.signedInAs(t, w, "admin@tollgate.localhost")

	// Mixed: the API key signs in.
	newBrowser(t, s.dash).signIn(s.e.Admin).want(t, http.StatusSeeOther, "")
	if _, err := s.e.Store.PutSSOSettings(ctx, store.SystemActor, s.acct, store.SSOEnforced, ""); err != nil {
		t.Fatal(err)
	}
	p := newBrowser(t, s.dash).signIn(s.e.Admin).want(t, http.StatusForbidden, string(codes.SSOEnforced))
	if !strings.Contains(p.body, "Corp OIDC") || !strings.Contains(p.body, idp.ID) {
		t.Fatalf("the refusal does not name the identity provider: %s", p.body)
	}
	w = newWalker(t)
	s.oidcSignIn(t, w, idp, "admin", "pw-admin").want(t, http.StatusSeeOther, "")
	s.signedInAs(t, w, "admin@tollgate.localhost")
}

// TestSSOChooser: the email form sends a user with one identity provider
// straight to it, shows a chooser when several apply, and says so when
// none does; the form itself keeps the cross-origin check that only the
// ACS is exempt from.
func TestSSOChooser(t *testing.T) {
	s := newSSOSetup(t)
	samlIdP := idptest.NewSAML(t, idptest.SAMLOptions{})
	samlIdP.AddUser(t, "admin", "pw-admin", "admin@tollgate.localhost", "Admin")
	one := s.addSAML(t, samlIdP, "Okta-like SAML", false)
	b := newBrowser(t, s.dash)
	form := url.Values{"email": {"admin@tollgate.localhost"}, "next": {"/users"}}
	p := b.do(http.MethodPost, "/signin/sso", form).want(t, http.StatusOK, "")
	if !strings.Contains(p.body, `<meta http-equiv="refresh" content="0;url=/sso/start/`+one.ID+`?next=%2Fusers">`) {
		t.Fatalf("one identity provider: the page does not move on to it: %s", p.body)
	}
	op := idptest.NewOIDC(t)
	op.AddUser(idptest.OIDCUser{Username: "admin", Password: "pw-admin", Email: "admin@tollgate.localhost", EmailVerified: true})
	two := s.addOIDC(t, op, "Entra-like OIDC")
	p = b.do(http.MethodPost, "/signin/sso", form).want(t, http.StatusOK, "Choose an identity provider")
	for _, id := range []string{one.ID, two.ID} {
		if !strings.Contains(p.body, `href="/sso/start/`+id+`?next=%2Fusers"`) {
			t.Fatalf("the chooser has no link to %s: %s", id, p.body)
		}
	}
	// Choosing the OIDC provider signs in and returns to the page asked for.
	w := newWalker(t)
	res := s.oidcSignIn(t, w, two, "admin", "pw-admin").want(t, http.StatusSeeOther, "")
	if res.location != "/" {
		t.Fatalf("after the callback: %q", res.location)
	}
	b.do(http.MethodPost, "/signin/sso", url.Values{"email": {"nobody@example.com"}}).want(t, http.StatusNotFound, string(codes.SSONoProvider))
	b.do(http.MethodPost, "/signin/sso", form, "Sec-Fetch-Site", "cross-site").want(t, http.StatusForbidden, string(codes.DashboardForgery))
}

// TestSSODomainControls: an administrator claims a domain, which the DNS
// TXT challenge proves (not before the record exists, not without an
// identity provider); then the domain's users are refused API-key
// sign-in, naming the account's identity provider, are sent to it by the
// email form, and another account's identity provider cannot sign them
// in; a second account cannot verify the domain.
func TestSSODomainControls(t *testing.T) {
	ns := idptest.NewDNS(t)
	s := newSSOSetupWith(t, cptest.Config{DNSResolver: ns.Addr})
	ctx := cptest.Ctx(t)
	b := newBrowser(t, s.dash)
	b.signIn(s.e.Admin).want(t, http.StatusSeeOther, "")
	p := b.post("/single-sign-on", "/single-sign-on/domains", url.Values{"domain": {"Example.NET"}}).want(t, http.StatusCreated, "_tollgate-challenge.example.net")
	doms, _, err := s.e.Store.ListAccountDomains(ctx, s.acct, store.Page{})
	if err != nil || len(doms) != 1 {
		t.Fatalf("domains: %v %v", doms, err)
	}
	d := doms[0]
	if !strings.Contains(p.body, d.ChallengeValue()) {
		t.Fatalf("the page does not show the TXT value: %s", p.body)
	}
	verify := "/single-sign-on/domains/" + d.ID + "/verify"
	b.post("/single-sign-on", verify, nil).want(t, http.StatusConflict, string(codes.DomainNotVerified))
	ns.SetTXT(d.ChallengeName(), "unrelated", d.ChallengeValue())
	b.post("/single-sign-on", verify, nil).want(t, http.StatusConflict, string(codes.DomainNeedsProvider))
	samlIdP := idptest.NewSAML(t, idptest.SAMLOptions{})
	samlIdP.AddUser(t, "erin", "pw-erin", "erin@example.net", "Erin")
	idp := s.addSAML(t, samlIdP, "Example SAML", false)
	b.post("/single-sign-on", verify, nil).want(t, http.StatusCreated, "is verified")

	// erin, a member with an API key, may no longer sign in with it.
	u, err := s.e.Store.CreateUser(ctx, store.SystemActor, "erin@example.net", "Erin")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.e.Store.PutMembership(ctx, store.SystemActor, store.JITMembership(s.acct, u.ID)); err != nil {
		t.Fatal(err)
	}
	_, tok, err := s.e.Store.CreateAPIKey(ctx, store.SystemActor, s.acct, store.APIKeyCreate{OwnerID: u.ID})
	if err != nil {
		t.Fatal(err)
	}
	p = newBrowser(t, s.dash).signIn(tok.Reveal()).want(t, http.StatusForbidden, string(codes.SSODomainClaimed))
	if !strings.Contains(p.body, "Example SAML") {
		t.Fatalf("the refusal does not name the identity provider: %s", p.body)
	}
	// The email form sends a new address of the domain to the account's IdP.
	p = newBrowser(t, s.dash).do(http.MethodPost, "/signin/sso", url.Values{"email": {"frank@example.net"}}).want(t, http.StatusOK, "")
	if !strings.Contains(p.body, `content="0;url=/sso/start/`+idp.ID) {
		t.Fatalf("frank@example.net not sent to the account's IdP: %s", p.body)
	}
	w := newWalker(t)
	acs, form := w.samlResponse(s.dash+"/sso/start/"+idp.ID, "erin", "pw-erin")
	w.post(acs, form).want(t, http.StatusSeeOther, "")
	s.signedInAs(t, w, "erin@example.net")

	// Another account's identity provider cannot sign in an example.net user.
	other, err := s.e.Store.CreateAccount(ctx, store.SystemActor, "other")
	if err != nil {
		t.Fatal(err)
	}
	op := idptest.NewOIDC(t)
	op.AddUser(idptest.OIDCUser{Username: "erin", Password: "pw", Email: "erin@example.net", EmailVerified: true})
	s.acct = other.ID
	rogue := s.addOIDC(t, op, "Rogue")
	s.oidcSignIn(t, newWalker(t), rogue, "erin", "pw").want(t, http.StatusForbidden, string(codes.SSODomainClaimed))
	s.wantRefusalAudited(t, rogue.ID, store.SignInOIDC, codes.SSODomainClaimed, "domain_claimed") // in the rogue IdP's account
	if _, err := s.e.Store.GetMembership(ctx, other.ID, u.ID); err == nil {
		t.Fatal("the other account's IdP made erin a member")
	}
	// Nor can it verify the domain.
	od, err := s.e.Store.CreateAccountDomain(ctx, store.SystemActor, other.ID, "example.net")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.e.Store.MarkAccountDomainVerified(ctx, store.SystemActor, other.ID, od.ID); !strings.Contains(errString(err), string(codes.DomainTaken)) {
		t.Fatalf("a second account verified the domain: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestSSODeactivatedMember: a user deactivated in the account (SCIM
// active: false) loses the SSO session they had and cannot sign in
// through the account's identity provider again.
func TestSSODeactivatedMember(t *testing.T) {
	s := newSSOSetup(t)
	ctx := cptest.Ctx(t)
	op := idptest.NewOIDC(t)
	op.AddUser(idptest.OIDCUser{Username: "carol", Password: "pw-carol", Email: "carol@example.org", EmailVerified: true})
	idp := s.addOIDC(t, op, "Corp OIDC")
	w := newWalker(t)
	s.oidcSignIn(t, w, idp, "carol", "pw-carol").want(t, http.StatusSeeOther, "")
	s.signedInAs(t, w, "carol@example.org")
	u, err := s.e.Store.UserByEmail(ctx, "carol@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.e.Store.SCIMUpdateUser(ctx, store.SystemActor, s.acct, u.ID, func(cur store.SCIMUserInput) (store.SCIMUserInput, error) {
		cur.Active = false
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	w.stopAt = s.dash + "/"
	w.do(http.MethodGet, s.dash+"/", nil).want(t, http.StatusForbidden, string(codes.APIPrincipalInactive))
	s.oidcSignIn(t, newWalker(t), idp, "carol", "pw-carol").want(t, http.StatusForbidden, string(codes.APIPrincipalInactive))
	s.wantRefusalAudited(t, idp.ID, store.SignInOIDC, codes.APIPrincipalInactive, "user_inactive")
	if ev := s.e.LastEvent(s.acct); ev.ObjectID != u.ID {
		t.Fatalf("the refusal's audit event is about %q, want %s", ev.ObjectID, u.ID)
	}
}

// TestSSOFailuresThrottled: refused SAML responses and addresses no
// provider signs in are charged to the client address's failure budget;
// past it the answer is 429, and a valid sign-in still goes through.
func TestSSOFailuresThrottled(t *testing.T) {
	s := newSSOSetupWith(t, cptest.Config{AuthFailureLimit: 0.001, AuthFailureBurst: 2})
	idp := idptest.NewSAML(t, idptest.SAMLOptions{})
	idp.AddUser(t, "erin", "pw-erin", "erin@example.net", "Erin")
	p := s.addSAML(t, idp, "samlidp", false)
	acs := s.dash + "/sso/saml/" + p.ID + "/acs"
	w := newWalker(t)
	bogus := url.Values{"SAMLResponse": {"PHNhbWxwOlJlc3BvbnNlLz4="}}
	w.post(acs, bogus).want(t, http.StatusUnauthorized, string(codes.SSOResponseInvalid))
	newBrowser(t, s.dash).do(http.MethodPost, "/signin/sso", url.Values{"email": {"nobody@example.com"}}).want(t, http.StatusNotFound, string(codes.SSONoProvider))
	w.post(acs, bogus).want(t, http.StatusTooManyRequests, string(codes.APIRateLimited))
	acs2, form := w.samlResponse(s.dash+"/sso/start/"+p.ID, "erin", "pw-erin")
	w.post(acs2, form).want(t, http.StatusSeeOther, "")
}

// TestSSOWithPasswordsAndAccounts: with the identity features of item 1
// and 5 — a password sign-in is refused by an account that enforces SSO
// and admitted in mixed mode; an address of a claimed domain cannot sign
// up or create another account; a session signed in through one
// account's identity provider does not switch into another account.
func TestSSOWithPasswordsAndAccounts(t *testing.T) {
	s := newSSOSetup(t)
	ctx := cptest.Ctx(t)
	dash := serveIdentity(s.e, "127.0.0.1:0", dashboard.Config{SignUp: true, Domains: sso.DomainVerifier{}})
	s.dash = dash
	op := idptest.NewOIDC(t)
	op.AddUser(idptest.OIDCUser{Username: "admin", Password: "pw-admin", Email: "admin@tollgate.localhost", EmailVerified: true})
	idp := s.addOIDC(t, op, "Corp OIDC")
	withPassword(t, s.e, s.e.Dev.UserID)

	newBrowser(t, dash).passwordSignIn("admin@tollgate.localhost", testPassword).want(t, http.StatusSeeOther, "")
	if _, err := s.e.Store.PutSSOSettings(ctx, store.SystemActor, s.acct, store.SSOEnforced, ""); err != nil {
		t.Fatal(err)
	}
	newBrowser(t, dash).passwordSignIn("admin@tollgate.localhost", testPassword).want(t, http.StatusForbidden, string(codes.SSOEnforced))
	if ev := s.e.LastEvent(s.acct); ev.Type != failedSignIn || ev.ObjectID != s.e.Dev.UserID || !strings.Contains(string(ev.Payload), string(codes.SSOEnforced)) {
		t.Fatalf("the refused password sign-in is not audited: last event %s %s", ev.Type, ev.Payload)
	}

	// A second account of the admin; the SSO session of the first stays there.
	other, err := s.e.Store.CreateAccountFor(ctx, store.SystemActor, s.e.Dev.UserID, "second")
	if err != nil {
		t.Fatal(err)
	}
	w := newWalker(t)
	s.oidcSignIn(t, w, idp, "admin", "pw-admin").want(t, http.StatusSeeOther, "")
	b := &browser{t: t, base: dash, c: &http.Client{Jar: w.c.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	b.post("/", "/accounts/switch", url.Values{"account_id": {other.ID}}).want(t, http.StatusForbidden, string(codes.SignInMethodDenied))

	// A claimed domain: no sign-up, no new account with its addresses.
	ns := idptest.NewDNS(t)
	d, err := s.e.Store.CreateAccountDomain(ctx, store.SystemActor, s.acct, "tollgate.localhost")
	if err != nil {
		t.Fatal(err)
	}
	ns.SetTXT(d.ChallengeName(), d.ChallengeValue())
	if _, err := (sso.DomainVerifier{Resolver: ns.Addr}).Verify(ctx, s.e.Store, store.SystemActor, s.acct, d.ID); err != nil {
		t.Fatal(err)
	}
	rev := s.e.Revision()
	form := url.Values{"email": {"newbie@tollgate.localhost"}, "name": {"N"}, "account": {"N"}, "password": {"a long enough passphrase 42"}}
	newBrowser(t, dash).do(http.MethodPost, "/signup", form).want(t, http.StatusForbidden, string(codes.SSODomainClaimed))
	b.post("/", "/accounts", url.Values{"name": {"third"}}).want(t, http.StatusForbidden, string(codes.SSODomainClaimed))
	if s.e.Revision() != rev {
		t.Fatal("a refused sign-up or account creation changed the store")
	}
}
