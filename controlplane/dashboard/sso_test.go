package dashboard_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	dsig "github.com/russellhaering/goxmldsig"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/internal/idptest"
)

// wantSignedOut checks that the walker has no dashboard session.
func (s *ssoSetup) wantSignedOut(t *testing.T, w *walker) {
	t.Helper()
	w.stopAt = s.dash + "/signin"
	defer func() { w.stopAt = "" }()
	if p := w.do(http.MethodGet, s.dash+"/", nil); p.status != http.StatusSeeOther {
		t.Fatalf("a refused sign-in left a session: GET / is %d", p.status)
	}
}

// wantRefusalAudited checks that the last event of the account's audit
// log is the refused sign-in through identity provider idp: by the
// anonymous actor, with the method, the refusal's code and reason, and
// nothing the provider sent (only the listed fields).
func (s *ssoSetup) wantRefusalAudited(t *testing.T, idp string, method store.SignInMethod, code codes.Code, reason string) map[string]string {
	t.Helper()
	ev := s.e.LastEvent(s.acct)
	if ev.Type != failedSignIn {
		t.Fatalf("last audit event %s: %s; want %s", ev.Type, ev.Payload, failedSignIn)
	}
	var pl map[string]string
	if err := json.Unmarshal(ev.Payload, &pl); err != nil {
		t.Fatalf("payload of %s: %s: %v", ev.Type, ev.Payload, err)
	}
	if ev.Type != failedSignIn || ev.ActorID != "anonymous" || pl["method"] != string(method) || pl["code"] != string(code) ||
		pl["reason"] != reason || pl["identity_provider_id"] != idp || pl["client_ip"] == "" {
		t.Fatalf("last audit event %s by %s: %s; want %s of %s %s %s %s", ev.Type, ev.ActorID, ev.Payload, failedSignIn, idp, method, code, reason)
	}
	for k := range pl {
		switch k {
		case "method", "code", "reason", "identity_provider_id", "client_ip", "email":
		default:
			t.Fatalf("the audit event of a refused SSO sign-in holds %q: %s", k, ev.Payload)
		}
	}
	return pl
}

// wantJITMember checks that email is a member of the account with the
// Just-in-Time roles.
func (s *ssoSetup) wantJITMember(t *testing.T, email string) {
	t.Helper()
	u, err := s.e.Store.UserByEmail(cptest.Ctx(t), email)
	if err != nil {
		t.Fatalf("JIT did not create %s: %v", email, err)
	}
	m, err := s.e.Store.GetMembership(cptest.Ctx(t), s.acct, u.ID)
	if err != nil || m.Developer != store.DeveloperRO || m.Team != store.TeamRO || m.Admin || m.Billing {
		t.Fatalf("membership of %s: %+v, %v; want the JIT roles", email, m, err)
	}
}

// TestSSOOIDCSignIn: a user of an OpenID provider signs in through the
// code flow (PKCE, state, nonce; email from userinfo) and JIT creates
// them with read-only roles; a second sign-in finds them; an unverified
// email is refused.
func TestSSOOIDCSignIn(t *testing.T) {
	s := newSSOSetup(t)
	op := idptest.NewOIDC(t)
	op.AddUser(idptest.OIDCUser{Username: "carol", Password: "pw-carol", Email: "carol@example.org", EmailVerified: true, FirstName: "Carol"})
	op.AddUser(idptest.OIDCUser{Username: "dan", Password: "pw-dan", Email: "dan@example.org"})
	idp := s.addOIDC(t, op, "Zitadel")
	for i := range 2 {
		w := newWalker(t)
		cb := w.oidcCallback(s.dash, s.dash+"/sso/start/"+idp.ID, "carol", "pw-carol")
		if !strings.HasPrefix(cb, s.dash+"/sso/oidc/"+idp.ID+"/callback?") {
			t.Fatalf("sign-in %d: the provider redirected to %s", i, cb)
		}
		w.do(http.MethodGet, cb, nil).want(t, http.StatusOK, "")
		s.signedInAs(t, w, "carol@example.org")
	}
	s.wantJITMember(t, "carol@example.org")

	w := newWalker(t)
	cb := w.oidcCallback(s.dash, s.dash+"/sso/start/"+idp.ID, "dan", "pw-dan")
	w.stopAt = s.dash + "/"
	w.do(http.MethodGet, cb, nil).want(t, http.StatusUnauthorized, string(codes.SSOEmailUnverified))
	if _, err := s.e.Store.UserByEmail(cptest.Ctx(t), "dan@example.org"); err == nil {
		t.Fatal("an unverified email created a user")
	}
}

// TestSSOOIDCStateAndNonce: a callback with another browser's state, with
// no sign-in in progress, or whose ID token carries another nonce, is
// refused and signs nobody in.
func TestSSOOIDCStateAndNonce(t *testing.T) {
	s := newSSOSetup(t)
	op := idptest.NewOIDC(t)
	op.AddUser(idptest.OIDCUser{Username: "carol", Password: "pw-carol", Email: "carol@example.org", EmailVerified: true})
	idp := s.addOIDC(t, op, "Zitadel")
	start := s.dash + "/sso/start/" + idp.ID

	t.Run("foreign state", func(t *testing.T) {
		victim, attacker := newWalker(t), newWalker(t)
		victim.do(http.MethodGet, start, nil) // the victim's own sign-in in progress
		cb := attacker.oidcCallback(s.dash, start, "carol", "pw-carol")
		victim.stopAt = s.dash + "/"
		victim.do(http.MethodGet, cb, nil).want(t, http.StatusUnauthorized, string(codes.SSOStateInvalid))
		s.wantSignedOut(t, victim)
	})
	t.Run("no sign-in in progress", func(t *testing.T) {
		cb := newWalker(t).oidcCallback(s.dash, start, "carol", "pw-carol")
		w := newWalker(t)
		w.stopAt = s.dash + "/"
		w.do(http.MethodGet, cb, nil).want(t, http.StatusUnauthorized, string(codes.SSOStateInvalid))
		s.wantSignedOut(t, w)
	})
	t.Run("foreign nonce", func(t *testing.T) {
		w := newWalker(t)
		cb := w.oidcCallback(s.dash, start, "carol", "pw-carol")
		w.editFlow(s.dash, func(f map[string]any) { f["nonce"] = "a-nonce-of-another-sign-in" })
		w.stopAt = s.dash + "/"
		w.do(http.MethodGet, cb, nil).want(t, http.StatusUnauthorized, string(codes.SSOStateInvalid))
		s.wantSignedOut(t, w)
	})
}

// TestSSOSAMLSignIn: SP-initiated SAML sign-in through samlidp signs in
// a new user by JIT; IdP-initiated sign-in works only where allowed.
func TestSSOSAMLSignIn(t *testing.T) {
	s := newSSOSetup(t)
	idp := idptest.NewSAML(t, idptest.SAMLOptions{})
	idp.AddUser(t, "erin", "pw-erin", "erin@example.net", "Erin Example", "eng")
	p := s.addSAML(t, idp, "samlidp", false)

	w := newWalker(t)
	acs, form := w.samlResponse(s.dash+"/sso/start/"+p.ID, "erin", "pw-erin")
	if acs != s.dash+"/sso/saml/"+p.ID+"/acs" {
		t.Fatalf("the IdP posts to %s", acs)
	}
	res := w.post(acs, form).want(t, http.StatusSeeOther, "")
	if res.location != "/" {
		t.Fatalf("after the ACS: Location %q", res.location)
	}
	s.signedInAs(t, w, "erin@example.net")
	s.wantJITMember(t, "erin@example.net")

	// IdP-initiated: refused while off, then allowed.
	idp.AddShortcut(t, "tollgate", s.dash+"/sso/saml/"+p.ID+"/metadata")
	w = newWalker(t)
	acs, form = w.samlResponse(idp.URL+"/login/tollgate", "erin", "pw-erin")
	w.post(acs, form).want(t, http.StatusUnauthorized, string(codes.SSOIdPInitiatedOff))
	s.wantSignedOut(t, w)

	p2 := s.addSAML(t, idp, "samlidp portal", true)
	idp.AddShortcut(t, "tollgate2", s.dash+"/sso/saml/"+p2.ID+"/metadata")
	w = newWalker(t)
	acs, form = w.samlResponse(idp.URL+"/login/tollgate2", "erin", "pw-erin")
	w.post(acs, form).want(t, http.StatusSeeOther, "")
	s.signedInAs(t, w, "erin@example.net")
}

// TestSSOSAMLProtocolChecks: responses signed with SHA-1, for another
// audience, replayed, answering another browser's request, or expired,
// are refused and sign nobody in.
func TestSSOSAMLProtocolChecks(t *testing.T) {
	s := newSSOSetup(t)
	good := idptest.NewSAML(t, idptest.SAMLOptions{})
	good.AddUser(t, "erin", "pw-erin", "erin@example.net", "Erin")
	p := s.addSAML(t, good, "samlidp", false)
	start := s.dash + "/sso/start/" + p.ID

	t.Run("replayed", func(t *testing.T) {
		w := newWalker(t)
		acs, form := w.samlResponse(start, "erin", "pw-erin")
		w.post(acs, form).want(t, http.StatusSeeOther, "")
		// The same browser starts again (so InResponseTo is no obstacle
		// only if the replay check were missing) and posts the old response.
		again := newWalker(t)
		again.samlResponse(start, "erin", "pw-erin")
		again.post(acs, form).want(t, http.StatusUnauthorized, "")
		// Refused as answering another request (this browser's is newer).
		s.wantRefusalAudited(t, p.ID, store.SignInSAML, codes.SSOResponseInvalid, "protocol")
		third := newWalker(t)
		third.post(acs, form).want(t, http.StatusUnauthorized, "")
		s.wantSignedOut(t, again)
		s.wantSignedOut(t, third)
	})
	t.Run("replayed by the same browser", func(t *testing.T) {
		w := newWalker(t)
		acs, form := w.samlResponse(start, "erin", "pw-erin")
		// Keep the flow cookie for a second post of the same response.
		u, _ := url.Parse(s.dash + "/sso/")
		cks := w.c.Jar.Cookies(u)
		w.post(acs, form).want(t, http.StatusSeeOther, "")
		w2 := newWalker(t)
		w2.c.Jar.SetCookies(u, []*http.Cookie{{Name: cks[0].Name, Value: cks[0].Value, Path: "/sso/"}})
		w2.post(acs, form).want(t, http.StatusUnauthorized, string(codes.SSOReplayed))
		s.wantRefusalAudited(t, p.ID, store.SignInSAML, codes.SSOReplayed, "protocol")
		s.wantSignedOut(t, w2)
	})
	t.Run("wrong InResponseTo", func(t *testing.T) {
		attacker, victim := newWalker(t), newWalker(t)
		acs, form := attacker.samlResponse(start, "erin", "pw-erin")
		victim.do(http.MethodGet, start, nil) // the victim's own request
		victim.post(acs, form).want(t, http.StatusUnauthorized, string(codes.SSOResponseInvalid))
		s.wantRefusalAudited(t, p.ID, store.SignInSAML, codes.SSOResponseInvalid, "protocol")
		s.wantSignedOut(t, victim)
	})
	t.Run("SHA-1", func(t *testing.T) {
		weak := idptest.NewSAML(t, idptest.SAMLOptions{SHA1: true})
		weak.AddUser(t, "erin", "pw-erin", "erin@example.net", "Erin")
		wp := s.addSAML(t, weak, "sha1 idp", false)
		w := newWalker(t)
		acs, form := w.samlResponse(s.dash+"/sso/start/"+wp.ID, "erin", "pw-erin")
		if sig, _ := base64.StdEncoding.DecodeString(form.Get("SAMLResponse")); !strings.Contains(string(sig), dsig.RSASHA1SignatureMethod) {
			t.Fatalf("the IdP did not sign with SHA-1: %s", sig)
		}
		w.post(acs, form).want(t, http.StatusUnauthorized, string(codes.SSOResponseInvalid))
		s.wantRefusalAudited(t, wp.ID, store.SignInSAML, codes.SSOResponseInvalid, "protocol")
		s.wantSignedOut(t, w)
	})
	t.Run("other destination", func(t *testing.T) {
		other := s.addSAML(t, good, "second sp", false)
		w := newWalker(t)
		_, form := w.samlResponse(s.dash+"/sso/start/"+other.ID, "erin", "pw-erin")
		// The browser's request binding is made to match the first SP, so
		// that only the audience and destination differ.
		w.editFlow(s.dash, func(f map[string]any) { f["idp"] = p.ID })
		w.post(s.dash+"/sso/saml/"+p.ID+"/acs", form).want(t, http.StatusUnauthorized, string(codes.SSOResponseInvalid))
		s.wantSignedOut(t, w)
	})
	t.Run("other audience", func(t *testing.T) {
		// A service provider registered at the IdP under another entity ID
		// but with our ACS URL: the response's Destination is ours, its
		// audience is not. IdP-initiated, which this provider allows.
		open := s.addSAML(t, good, "portal sp", true)
		md := newWalker(t).do(http.MethodGet, s.dash+"/sso/saml/"+open.ID+"/metadata", nil).body
		foreign := strings.ReplaceAll(md, `entityID="`+s.dash+"/sso/saml/"+open.ID+`/metadata"`, `entityID="https://other-sp.example/metadata"`)
		if foreign == md {
			t.Fatalf("no entityID to replace in %s", md)
		}
		good.AddServiceProvider(t, "foreign", []byte(foreign))
		good.AddShortcut(t, "foreign", "https://other-sp.example/metadata")
		w := newWalker(t)
		acs, form := w.samlResponse(good.URL+"/login/foreign", "erin", "pw-erin")
		if acs != s.dash+"/sso/saml/"+open.ID+"/acs" {
			t.Fatalf("the IdP posts to %s", acs)
		}
		w.post(acs, form).want(t, http.StatusUnauthorized, string(codes.SSOResponseInvalid))
		s.wantSignedOut(t, w)
	})
	t.Run("expired", func(t *testing.T) {
		// An IdP whose clock is two hours behind issues assertions that
		// expired long ago (IdP-initiated, so no request of ours is
		// judged by its clock).
		late := idptest.NewSAML(t, idptest.SAMLOptions{Clock: dsig.NewFakeClockAt(time.Now().Add(-2 * time.Hour))})
		late.AddUser(t, "erin", "pw-erin", "erin@example.net", "Erin")
		lp := s.addSAML(t, late, "slow clock idp", true)
		late.AddShortcut(t, "tollgate", s.dash+"/sso/saml/"+lp.ID+"/metadata")
		w := newWalker(t)
		acs, form := w.samlResponse(late.URL+"/login/tollgate", "erin", "pw-erin")
		w.post(acs, form).want(t, http.StatusUnauthorized, string(codes.SSOResponseInvalid))
		s.wantSignedOut(t, w)
	})
}

// editFlow rewrites the browser's SSO sign-in cookie (the flow in
// progress), as a tampering browser could.
func (w *walker) editFlow(dash string, edit func(map[string]any)) {
	w.t.Helper()
	u, _ := url.Parse(dash + "/sso/")
	var ck *http.Cookie
	for _, c := range w.c.Jar.Cookies(u) {
		if c.Name == "tollgate_sso" {
			ck = c
		}
	}
	if ck == nil {
		w.t.Fatal("no sign-in cookie")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(ck.Value)
	var flow map[string]any
	if err := json.Unmarshal(raw, &flow); err != nil {
		w.t.Fatal(err)
	}
	edit(flow)
	raw, _ = json.Marshal(flow)
	w.c.Jar.SetCookies(u, []*http.Cookie{{Name: "tollgate_sso", Value: base64.RawURLEncoding.EncodeToString(raw), Path: "/sso/"}})
}
