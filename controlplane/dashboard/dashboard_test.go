package dashboard_test

import (
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/dashboard"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/snapshot"
)

// browser is an HTTP client of the dashboard with its own cookie jar; it
// does not follow redirects, so tests see them.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

// page is one dashboard response.
type page struct {
	status   int
	location string
	header   http.Header
	body     string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: base, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// serveDashboard serves e's dashboard on a listener at addr ("127.0.0.1:0",
// "[::1]:0") and returns its base URL.
func serveDashboard(e *cptest.Env, addr string) string {
	e.T.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		e.T.Fatalf("listening on %s: %v", addr, err)
	}
	hs := httptest.NewUnstartedServer(e.Dashboard.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	e.T.Cleanup(hs.Close)
	return hs.URL
}

func (b *browser) do(method, path string, form url.Values, hdr ...string) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(cptest.Ctx(b.t), method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return page{status: res.StatusCode, location: res.Header.Get("Location"), header: res.Header, body: string(raw)}
}

func (b *browser) get(path string) page { return b.do(http.MethodGet, path, nil) }

func (b *browser) signIn(key string, hdr ...string) page {
	return b.do(http.MethodPost, "/signin", url.Values{"api_key": {key}, "next": {"/"}}, hdr...)
}

// post submits a form of a page the browser is signed in to, with the
// session's form token taken from the page at from.
func (b *browser) post(from, path string, form url.Values, hdr ...string) page {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("form_token", b.formToken(from))
	return b.do(http.MethodPost, path, form, hdr...)
}

var formTokenRE = regexp.MustCompile(`name="form_token" value="([^"]+)"`)

func (b *browser) formToken(from string) string {
	b.t.Helper()
	p := b.get(from)
	m := formTokenRE.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("GET %s (%d) has no form token: %s", from, p.status, p.body)
	}
	return m[1]
}

// want checks the status and that the page shows code (an error code, or
// "" for none).
func (p page) want(t *testing.T, status int, code string) page {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d: %s", p.status, status, p.body)
	}
	if code != "" && !strings.Contains(p.body, code) {
		t.Fatalf("page does not show %s: %s", code, p.body)
	}
	return p
}

// TestDashboardSignIn: a user signs in with their API key and gets an
// HttpOnly, SameSite=Strict session cookie; a wrong key, an API key ID, an
// authtoken and a bot user's key are refused with their codes and change
// nothing; signing out, or deleting the API key, ends the session.
func TestDashboardSignIn(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		b := newBrowser(t, serveDashboard(e, "127.0.0.1:0"))

		p := b.get("/")
		if p.status != http.StatusSeeOther || p.location != "/signin?next=%2F" {
			t.Fatalf("signed out GET / = %d %q, want a redirect to sign-in", p.status, p.location)
		}
		b.get("/signin").want(t, http.StatusOK, "")

		rev := e.Revision()
		_, secret, _ := strings.Cut(e.Admin, "_")
		b.signIn("").want(t, http.StatusUnauthorized, string(codes.DashboardSignIn))
		b.signIn("2abcdefghijklmnopqrstuvwxyz_"+secret).want(t, http.StatusUnauthorized, string(codes.DashboardSignIn))
		b.signIn(e.Dev.APIKeyID).want(t, http.StatusUnauthorized, "API key&#39;s ID")
		b.signIn(e.Dev.Authtoken.Reveal()).want(t, http.StatusUnauthorized, "authtoken")
		kid, _, _ := strings.Cut(e.Admin, "_")
		b.signIn(kid+"_wrongsecretwrongsecretwrongsecr").want(t, http.StatusUnauthorized, string(codes.DashboardSignIn))

		onlyFailuresSince(t, e, rev, "", e.Dev.AccountID) // audited, and nothing else

		bot := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/bot_users", e.Admin, map[string]any{"name": "ci"})), "id")
		botKey := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/api_keys", e.Admin, map[string]any{"owner_id": bot})), "token")
		rev = e.Revision()
		b.signIn(botKey).want(t, http.StatusForbidden, string(codes.DashboardBotUser))
		onlyFailuresSince(t, e, rev, "", e.Dev.AccountID)

		p = b.signIn(e.Admin)
		if p.status != http.StatusSeeOther || p.location != "/" {
			t.Fatalf("sign-in = %d %q: %s", p.status, p.location, p.body)
		}
		ck := p.header.Get("Set-Cookie")
		for _, want := range []string{dashboard.CookieName + "=", "HttpOnly", "SameSite=Strict", "Path=/"} {
			if !strings.Contains(ck, want) {
				t.Fatalf("session cookie %q lacks %s", ck, want)
			}
		}
		if strings.Contains(ck, e.Admin) {
			t.Fatal("the session cookie holds the API key")
		}
		p = b.get("/").want(t, http.StatusOK, "admin@tollgate.localhost")
		for h, want := range map[string]string{"Cache-Control": "no-store", "X-Frame-Options": "DENY",
			"Content-Security-Policy": "default-src 'none'"} {
			if !strings.Contains(p.header.Get(h), want) {
				t.Fatalf("%s = %q, want %q", h, p.header.Get(h), want)
			}
		}
		if b.get("/signin").status != http.StatusSeeOther {
			t.Fatal("the sign-in page does not send a signed-in user on")
		}
		ev := e.Must(http.StatusOK, e.Call(http.MethodGet, "/audit_events?limit=1", e.Admin, nil))
		if items, _ := ev["audit_events"].([]any); len(items) != 1 || cptest.Str(items[0].(map[string]any), "type") != "dashboard_session_created.v0" {
			t.Fatalf("newest audit event = %v, want the sign-in", ev)
		}

		// Signing out ends the session: the old cookie no longer works.
		old := b.c.Jar.Cookies(mustURL(t, b.base))
		b.post("/", "/signout", nil).want(t, http.StatusSeeOther, "")
		replay := newBrowser(t, b.base)
		replay.c.Jar.SetCookies(mustURL(t, b.base), old)
		if p := replay.get("/credentials"); p.status != http.StatusSeeOther {
			t.Fatalf("a signed-out session still works: %d", p.status)
		}
		// A forged cookie with the right ID and another secret is refused.
		if len(old) == 1 {
			id, _, _ := strings.Cut(old[0].Value, "_")
			forged := newBrowser(t, b.base)
			forged.c.Jar.SetCookies(mustURL(t, b.base), []*http.Cookie{{Name: dashboard.CookieName, Value: id + "_" + secret}})
			if p := forged.get("/"); p.status != http.StatusSeeOther {
				t.Fatalf("a forged cookie got %d", p.status)
			}
		}

		// Deleting the API key a session was opened with ends the session.
		key2 := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/api_keys", e.Admin, map[string]any{"description": "laptop"}))
		b2 := newBrowser(t, b.base)
		b2.signIn(cptest.Str(key2, "token")).want(t, http.StatusSeeOther, "")
		b2.get("/").want(t, http.StatusOK, "")
		e.Must(http.StatusNoContent, e.Call(http.MethodDelete, "/api_keys/"+cptest.Str(key2, "id"), e.Admin, nil))
		if p := b2.get("/"); p.status != http.StatusSeeOther {
			t.Fatalf("a session of a deleted API key got %d", p.status)
		}
		b2.do(http.MethodPost, "/signout", url.Values{}).want(t, http.StatusUnauthorized, string(codes.DashboardSignedOut))
		b2.get("/nope").want(t, http.StatusNotFound, string(codes.DashboardNotFound))
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestDashboardCredentials: a read/write user creates an authtoken (its
// token shown once, never again) and deletes it; posts without the form
// token or from another origin are refused and change nothing; a read-only
// developer sees the lists but may not create.
func TestDashboardCredentials(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		b := newBrowser(t, serveDashboard(e, "127.0.0.1:0"))
		b.signIn(e.Admin).want(t, http.StatusSeeOther, "")
		b.get("/credentials").want(t, http.StatusOK, e.Dev.AuthtokenID)

		rev := e.Revision()
		b.do(http.MethodPost, "/credentials", url.Values{"description": {"x"}}).want(t, http.StatusForbidden, string(codes.DashboardForgery))
		b.post("/credentials", "/credentials", url.Values{"description": {"x"}}, "Origin", "https://evil.example").
			want(t, http.StatusForbidden, string(codes.DashboardForgery))
		b.post("/credentials", "/credentials", url.Values{"description": {"x"}}, "Sec-Fetch-Site", "cross-site").
			want(t, http.StatusForbidden, string(codes.DashboardForgery))
		b.post("/credentials", "/credentials", url.Values{"acl": {"bind:"}}).want(t, http.StatusBadRequest, "TG_")
		if e.Revision() != rev {
			t.Fatal("a refused form changed the store")
		}

		p := b.post("/credentials", "/credentials", url.Values{"description": {"ci runner"}, "acl": {"bind:*.ci.example.com, bind:app.example.com"}}).
			want(t, http.StatusCreated, "shown only once")
		m := regexp.MustCompile(`<pre id="new-token">([^<]+)</pre>`).FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("no token on the page: %s", p.body)
		}
		tok := m[1]
		kid, _, _ := strings.Cut(tok, "_")
		id := ids.PrefixAuthtoken + "_" + kid
		a, err := e.Store.GetAuthtoken(cptest.Ctx(t), e.Dev.AccountID, id)
		if err != nil {
			t.Fatalf("the created authtoken is not in the store: %v", err)
		}
		if a.OwnerID != e.Dev.UserID || a.Description != "ci runner" || len(a.ACL) != 2 {
			t.Fatalf("created %+v", a)
		}
		if p := b.get("/credentials"); !strings.Contains(p.body, id) || strings.Contains(p.body, tok) {
			t.Fatal("the credentials page must list the authtoken and never show its token again")
		}
		b.post("/credentials", "/credentials/"+id+"/delete", nil).want(t, http.StatusSeeOther, "")
		if _, err := e.Store.GetAuthtoken(cptest.Ctx(t), e.Dev.AccountID, id); err == nil {
			t.Fatal("the deleted authtoken is still there")
		}
		b.post("/credentials", "/credentials/"+id+"/delete", nil).want(t, http.StatusNotFound, "")
		b.post("/credentials", "/credentials/nope/delete", nil).want(t, http.StatusBadRequest, string(codes.DashboardBadInput))

		// A read-only developer reads but cannot create or delete.
		inv := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations", e.Admin, map[string]any{"email": "ro@example.com", "developer": "ro"}))
		acc := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations/accept", "", map[string]any{"token": cptest.Str(inv, "accept_token"), "name": "Reader"}))
		roKey := cptest.Str(acc["api_key"].(map[string]any), "token")
		ro := newBrowser(t, b.base)
		ro.signIn(roKey).want(t, http.StatusSeeOther, "")
		p = ro.get("/credentials").want(t, http.StatusOK, e.Dev.AuthtokenID)
		if strings.Contains(p.body, `id="create-token"`) || strings.Contains(p.body, "/delete") {
			t.Fatal("a read-only developer is offered the create or delete forms")
		}
		rev = e.Revision()
		ro.post("/credentials", "/credentials", url.Values{"description": {"x"}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		ro.post("/credentials", "/credentials/"+e.Dev.AuthtokenID+"/delete", nil).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		ro.post("/", "/sessions/"+ids.New(ids.PrefixAgentSession)+"/stop", nil).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		if e.Revision() != rev {
			t.Fatal("a refused form changed the store")
		}
		b.post("/", "/sessions/"+ids.New(ids.PrefixAgentSession)+"/stop", nil).want(t, http.StatusNotFound, "")
		b.post("/", "/sessions/nope/stop", nil).want(t, http.StatusBadRequest, string(codes.DashboardBadInput))
		ro.get("/ip-policies").want(t, http.StatusOK, "No IP policies")
		ro.get("/reservations").want(t, http.StatusOK, "No reserved domains")
		e.Must(201, e.Call("POST", "/reserved_domains", e.Admin, `{"domain":"hsts.example.com","hsts":{"max_age":600,"include_subdomains":true}}`))
		ro.get("/reservations").want(t, http.StatusOK, "<code>max-age=600; includeSubDomains</code>")
	})
}

// TestDashboardIPRestriction: the account's `dashboard` IP restriction
// refuses sign-in from an address it does not allow (the TCP peer, never
// X-Forwarded-For) and cuts a session that is already open; unenforced it
// only counts and logs; other surfaces' restrictions do not touch it.
func TestDashboardIPRestriction(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		b := newBrowser(t, serveDashboard(e, "127.0.0.1:0"))
		b.signIn(e.Admin).want(t, http.StatusSeeOther, "")

		office := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policies", e.Admin, map[string]any{"description": "office"})), "id")
		e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policy_rules", e.Admin,
			map[string]any{"ip_policy_id": office, "cidr": "10.0.0.0/8", "action": "allow"}))
		// The API's restriction does not guard the dashboard.
		apiRx := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_restrictions", e.Admin,
			map[string]any{"type": "api", "ip_policy_ids": []string{office}, "enforced": false})), "id")
		b.get("/").want(t, http.StatusOK, "")

		before := controlplane.DryRunRefusals(policy.SurfaceDashboard)
		rx := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_restrictions", e.Admin,
			map[string]any{"type": "dashboard", "ip_policy_ids": []string{office}, "enforced": false})), "id")
		b.get("/ip-policies").want(t, http.StatusOK, rx)
		if controlplane.DryRunRefusals(policy.SurfaceDashboard) == before {
			t.Fatal("an unenforced dashboard refusal was not counted")
		}

		e.Must(http.StatusOK, e.Call(http.MethodPatch, "/ip_restrictions/"+rx, e.Admin, map[string]any{"enforced": true}))
		// The open session is cut, and a forged X-Forwarded-For inside the
		// allowed network changes nothing.
		b.do(http.MethodGet, "/", nil, "X-Forwarded-For", "10.1.2.3").want(t, http.StatusForbidden, string(codes.DashboardIPRestricted))
		rev := e.Revision()
		fresh := newBrowser(t, b.base)
		fresh.signIn(e.Admin, "X-Forwarded-For", "10.1.2.3", "Forwarded", "for=10.1.2.3").
			want(t, http.StatusForbidden, string(codes.DashboardIPRestricted))
		onlyFailuresSince(t, e, rev, "", e.Dev.AccountID) // no session opened

		// An invitation accepted from a refused address creates the member
		// and shows the key, but signs nobody in.
		inv := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations", e.Admin, map[string]any{"email": "far@example.com"}))
		p := newBrowser(t, b.base).do(http.MethodPost, "/accept", url.Values{"token": {cptest.Str(inv, "accept_token")}, "name": {"Far"}, "password": {testPassword}}).
			want(t, http.StatusCreated, string(codes.DashboardIPRestricted))
		if strings.Contains(p.header.Get("Set-Cookie"), dashboard.CookieName) || !strings.Contains(p.body, `id="new-api-key"`) {
			t.Fatalf("accepted from a refused address: cookie %q; page %s", p.header.Get("Set-Cookie"), p.body)
		}

		// Allow loopback too: sign-in works again.
		loop := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policies", e.Admin, map[string]any{"description": "loopback"})), "id")
		e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policy_rules", e.Admin,
			map[string]any{"ip_policy_id": loop, "cidr": "127.0.0.1/32", "action": "allow"}))
		e.Must(http.StatusOK, e.Call(http.MethodPatch, "/ip_restrictions/"+rx, e.Admin, map[string]any{"ip_policy_ids": []string{office, loop}}))
		fresh.signIn(e.Admin).want(t, http.StatusSeeOther, "")
		fresh.get("/").want(t, http.StatusOK, "")
		b.get("/").want(t, http.StatusOK, "")
		_ = apiRx
	})
}

// TestDashboardIPRestrictionMatrix: browsers at 127.0.0.1, 127.0.0.2 and
// ::1 (the dashboard listens on both loopbacks) against dashboard
// restrictions built from different policies: only the TCP peer address
// decides, deny wins, and the sign-in audit records the address.
func TestDashboardIPRestrictionMatrix(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{})
	v4base, v6base := serveDashboard(e, "127.0.0.1:0"), serveDashboard(e, "[::1]:0")
	from := map[string]string{"127.0.0.1": v4base, "127.0.0.2": v4base, "::1": v6base}
	policy := func(rules ...string) string {
		id := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policies", e.Admin, map[string]any{})), "id")
		for _, r := range rules {
			action, cidr, _ := strings.Cut(r, " ")
			e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policy_rules", e.Admin,
				map[string]any{"ip_policy_id": id, "cidr": cidr, "action": action}))
		}
		return id
	}
	for _, tc := range []struct {
		name    string
		rules   []string
		allowed map[string]bool
	}{
		{"allow one IPv4 address", []string{"allow 127.0.0.1/32"}, map[string]bool{"127.0.0.1": true}},
		{"allow IPv6 loopback", []string{"allow ::1/128"}, map[string]bool{"::1": true}},
		{"deny wins inside an allowed range", []string{"allow 127.0.0.0/8", "deny 127.0.0.2/32", "allow ::/0"},
			map[string]bool{"127.0.0.1": true, "::1": true}},
		{"deny only matches nothing to allow", []string{"deny 10.0.0.0/8"}, map[string]bool{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rx := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_restrictions", e.Admin,
				map[string]any{"type": "dashboard", "ip_policy_ids": []string{policy(tc.rules...)}, "enforced": true})), "id")
			defer func() { e.Must(http.StatusNoContent, e.Call(http.MethodDelete, "/ip_restrictions/"+rx, e.Admin, nil)) }()
			for src, base := range from {
				b := newBrowserFrom(t, base, src)
				if tc.allowed[src] {
					b.signIn(e.Admin, "X-Forwarded-For", "10.9.9.9").want(t, http.StatusSeeOther, "")
					b.get("/").want(t, http.StatusOK, "admin@tollgate.localhost")
				} else {
					b.signIn(e.Admin, "X-Forwarded-For", "127.0.0.1").want(t, http.StatusForbidden, string(codes.DashboardIPRestricted))
				}
			}
		})
	}
	evs, _, err := e.Store.ListAuditEvents(cptest.Ctx(t), e.Dev.AccountID, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, ev := range evs {
		if ev.Type == "dashboard_session_created.v0" {
			var p struct {
				ClientIP string `json:"client_ip"`
			}
			if err := json.Unmarshal(ev.Payload, &p); err != nil {
				t.Fatal(err)
			}
			seen[p.ClientIP]++
		}
	}
	if want := map[string]int{"127.0.0.1": 2, "::1": 2}; !maps.Equal(seen, want) {
		t.Fatalf("sign-ins audited by address %v, want %v", seen, want)
	}
}

// newBrowserFrom is newBrowser whose connections come from source address
// src (a loopback address).
func newBrowserFrom(t *testing.T, base, src string) *browser {
	t.Helper()
	b := newBrowser(t, base)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	b.c.Transport = &http.Transport{DialContext: d.DialContext}
	return b
}

// TestDashboardAcceptInvitation: a new user accepts an invitation in the
// dashboard: a wrong or reused token is refused with its code and changes
// nothing; accepting shows the first API key once, signs the browser in as
// the new member, and the key works on the API. An invitation for an
// existing user is sent to the API, where the user proves who they are.
func TestDashboardAcceptInvitation(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		base := serveDashboard(e, "127.0.0.1:0")
		inv := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations", e.Admin,
			map[string]any{"email": "new@example.com", "developer": "rw"}))
		tok := cptest.Str(inv, "accept_token")
		b := newBrowser(t, base)
		b.get("/accept?token="+url.QueryEscape(tok)).want(t, http.StatusOK, `value="`+tok+`"`)

		rev := e.Revision()
		kid, _, _ := strings.Cut(tok, "_")
		b.do(http.MethodPost, "/accept", url.Values{"token": {kid + "_wrongwrongwrongwrongwrongwrongwr"}, "name": {"New"}}).
			want(t, http.StatusNotFound, string(codes.InvitationInvalid))
		b.do(http.MethodPost, "/accept", url.Values{"token": {tok}, "name": {""}}).want(t, http.StatusBadRequest, "TG_")
		b.do(http.MethodPost, "/accept", url.Values{"token": {tok}, "name": {"New"}}, "Origin", "https://evil.example").
			want(t, http.StatusForbidden, string(codes.DashboardForgery))
		if e.Revision() != rev {
			t.Fatal("a refused acceptance changed the store")
		}

		p := b.do(http.MethodPost, "/accept", url.Values{"token": {tok}, "name": {"New Member"}, "password": {testPassword}}).want(t, http.StatusCreated, "shown only once")
		m := regexp.MustCompile(`<pre id="new-api-key">([^<]+)</pre>`).FindStringSubmatch(p.body)
		if m == nil || !strings.Contains(p.body, `id="continue"`) {
			t.Fatalf("accepted page without the key or the way on: %s", p.body)
		}
		b.get("/").want(t, http.StatusOK, "new@example.com")
		e.Must(http.StatusOK, e.Call(http.MethodGet, "/credentials", m[1], nil))
		b.do(http.MethodPost, "/accept", url.Values{"token": {tok}, "name": {"Again"}}).want(t, http.StatusNotFound, string(codes.InvitationInvalid))

		// new@example.com is a user now: an invitation to another account
		// is accepted through the API, with one of their own keys.
		_, otherKey := e.OtherAccount("other")
		inv2 := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations", otherKey, map[string]any{"email": "new@example.com"}))
		rev = e.Revision()
		newBrowser(t, base).do(http.MethodPost, "/accept", url.Values{"token": {cptest.Str(inv2, "accept_token")}, "name": {"x"}}).
			want(t, http.StatusConflict, "/invitations/accept")
		if e.Revision() != rev {
			t.Fatal("a refused acceptance changed the store")
		}
	})
}

// TestDashboardSecureCookie: behind a TLS-terminating proxy the operator
// asks for a Secure cookie; by default a plain-HTTP dashboard's is not.
func TestDashboardSecureCookie(t *testing.T) {
	for _, secure := range []bool{false, true} {
		e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{DashboardSecureCookie: secure})
		p := newBrowser(t, serveDashboard(e, "127.0.0.1:0")).signIn(e.Admin).want(t, http.StatusSeeOther, "")
		if got := strings.Contains(p.header.Get("Set-Cookie"), "; Secure"); got != secure {
			t.Fatalf("DashboardSecureCookie %v: Set-Cookie %q", secure, p.header.Get("Set-Cookie"))
		}
	}
}

// TestDashboardInvite: an administrator invites someone on the users page
// and gets the accept link once; the invitee follows it, joins with the
// roles asked for and is signed in; bad input and callers who may not
// invite are refused with their codes and change nothing.
func TestDashboardInvite(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		base := serveDashboard(e, "127.0.0.1:0")
		admin := newBrowser(t, base)
		admin.signIn(e.Admin).want(t, http.StatusSeeOther, "")
		p := admin.get("/users").want(t, http.StatusOK, "admin@tollgate.localhost")
		if !strings.Contains(p.body, `id="invite"`) {
			t.Fatal("an administrator is not offered the invite form")
		}

		rev := e.Revision()
		admin.post("/users", "/users/invite", url.Values{"email": {"not-an-address"}}).want(t, http.StatusBadRequest, "TG_")
		admin.post("/users", "/users/invite", url.Values{"email": {"x@example.com"}, "team": {"owner"}}).
			want(t, http.StatusBadRequest, string(codes.RoleInvalid))
		admin.post("/users", "/users/invite", url.Values{"email": {"admin@tollgate.localhost"}}).
			want(t, http.StatusConflict, string(codes.InvitationExists))
		if e.Revision() != rev {
			t.Fatal("a refused invitation changed the store")
		}

		p = admin.post("/users", "/users/invite", url.Values{"email": {"Dev@Example.com"}, "developer": {"rw"}, "team": {"invite"}}).
			want(t, http.StatusCreated, "shown only once")
		m := regexp.MustCompile(`<pre id="invite-link">([^<]+)</pre>`).FindStringSubmatch(p.body)
		if m == nil || !strings.HasPrefix(m[1], base+"/accept?token=") {
			t.Fatalf("no accept link on the page: %s", p.body)
		}
		link := strings.ReplaceAll(m[1], "&amp;", "&")
		if p := admin.get("/users"); strings.Contains(p.body, "/accept?token=") || !strings.Contains(p.body, "dev@example.com") {
			t.Fatal("the users page must list the invitation and never show its link again")
		}

		invitee := newBrowser(t, base)
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		p = invitee.get("/accept?"+u.RawQuery).want(t, http.StatusOK, "")
		tok := u.Query().Get("token")
		if !strings.Contains(p.body, `value="`+tok+`"`) {
			t.Fatalf("the accept form does not carry the token: %s", p.body)
		}
		invitee.do(http.MethodPost, "/accept", url.Values{"token": {tok}, "name": {"Dev"}, "password": {testPassword}}).want(t, http.StatusCreated, "")
		p = invitee.get("/users").want(t, http.StatusOK, "dev@example.com")
		if !regexp.MustCompile(`dev@example.com</div><div class="sub">Dev · you</div></td>\s*<td>read-write</td><td>invite</td>`).MatchString(p.body) {
			t.Fatalf("the new member's roles are not rw/invite: %s", p.body)
		}
		// An invite-only member may invite with at most their own roles.
		rev = e.Revision()
		invitee.post("/users", "/users/invite", url.Values{"email": {"boss@example.com"}, "admin": {"on"}}).
			want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		if e.Revision() != rev {
			t.Fatal("a refused invitation changed the store")
		}
		invitee.post("/users", "/users/invite", url.Values{"email": {"peer@example.com"}}).want(t, http.StatusCreated, "peer@example.com")

		// A team read-only member is not offered the form and is refused.
		inv := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations", e.Admin, map[string]any{"email": "ro@example.com"}))
		acc := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations/accept", "", map[string]any{"token": cptest.Str(inv, "accept_token"), "name": "RO"}))
		ro := newBrowser(t, base)
		ro.signIn(cptest.Str(acc["api_key"].(map[string]any), "token")).want(t, http.StatusSeeOther, "")
		if p := ro.get("/users").want(t, http.StatusOK, "dev@example.com"); strings.Contains(p.body, `id="invite"`) {
			t.Fatal("a team read-only member is offered the invite form")
		}
		ro.post("/users", "/users/invite", url.Values{"email": {"y@example.com"}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
	})
}

// TestDashboardBotUsers: an administrator creates a bot user with an
// authtoken in one step (token shown once; bad input creates neither),
// the token authenticates as the bot at the edges' snapshot, deactivating
// the bot revokes it and activating restores it; a read-only developer
// sees the list but may do neither.
func TestDashboardBotUsers(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		base := serveDashboard(e, "127.0.0.1:0")
		admin := newBrowser(t, base)
		admin.signIn(e.Admin).want(t, http.StatusSeeOther, "")
		if p := admin.get("/bot-users").want(t, http.StatusOK, "No bot users"); !strings.Contains(p.body, `id="create-bot"`) {
			t.Fatal("an administrator is not offered the create form")
		}

		rev := e.Revision()
		admin.post("/bot-users", "/bot-users", url.Values{"name": {"ci"}, "acl": {"bind:"}}).want(t, http.StatusBadRequest, "TG_")
		admin.post("/bot-users", "/bot-users", url.Values{"name": {""}}).want(t, http.StatusBadRequest, "TG_")
		if e.Revision() != rev {
			t.Fatal("a refused bot user changed the store (a bot without its authtoken?)")
		}

		p := admin.post("/bot-users", "/bot-users", url.Values{"name": {"ci runner"}, "acl": {"bind:*.ci.example.com"}}).
			want(t, http.StatusCreated, "shown only once")
		m := regexp.MustCompile(`<pre id="new-bot-token">([^<]+)</pre>`).FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("no token on the page: %s", p.body)
		}
		if e.Revision() != rev+1 {
			t.Fatalf("revision %d, want %d: the bot and its authtoken are one unit of work", e.Revision(), rev+1)
		}
		verify := func() (*authn.Identity, error) {
			snap, err := e.Core.Snapshot(cptest.Ctx(t), 0)
			if err != nil {
				t.Fatal(err)
			}
			return authn.VerifyAuthtoken(snap, m[1])
		}
		id, err := verify()
		if err != nil || id.Principal.Kind != snapshot.PrincipalBot || len(id.ACL) != 1 {
			t.Fatalf("the bot's authtoken: %+v, %v", id, err)
		}
		bot := id.Principal.ID
		if strings.Contains(admin.get("/bot-users").body, m[1]) {
			t.Fatal("the token is shown again")
		}

		admin.post("/bot-users", "/bot-users/"+bot+"/active", url.Values{"active": {"false"}}).want(t, http.StatusSeeOther, "")
		if _, err := verify(); !errors.Is(err, authn.ErrCredentialRevoked) {
			t.Fatalf("after deactivation the bot's authtoken: %v, want revoked", err)
		}
		admin.post("/bot-users", "/bot-users/"+bot+"/active", url.Values{"active": {"true"}}).want(t, http.StatusSeeOther, "")
		if _, err := verify(); err != nil {
			t.Fatalf("after activation the bot's authtoken: %v", err)
		}
		admin.post("/bot-users", "/bot-users/"+bot+"/active", url.Values{"active": {"maybe"}}).want(t, http.StatusBadRequest, string(codes.DashboardBadInput))
		admin.post("/bot-users", "/bot-users/bot_nope/active", url.Values{"active": {"true"}}).want(t, http.StatusBadRequest, string(codes.DashboardBadInput))

		inv := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations", e.Admin, map[string]any{"email": "ro@example.com"}))
		acc := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations/accept", "", map[string]any{"token": cptest.Str(inv, "accept_token"), "name": "RO"}))
		ro := newBrowser(t, base)
		ro.signIn(cptest.Str(acc["api_key"].(map[string]any), "token")).want(t, http.StatusSeeOther, "")
		if p := ro.get("/bot-users").want(t, http.StatusOK, bot); strings.Contains(p.body, `id="create-bot"`) || strings.Contains(p.body, "/active") {
			t.Fatal("a read-only developer is offered the forms")
		}
		rev = e.Revision()
		ro.post("/bot-users", "/bot-users", url.Values{"name": {"x"}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		ro.post("/bot-users", "/bot-users/"+bot+"/active", url.Values{"active": {"false"}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		if e.Revision() != rev {
			t.Fatal("a refused form changed the store")
		}
	})
}

// TestDashboardSessionsAcrossControlPlanes: two control planes on one
// PostgreSQL database share dashboard sessions: signed in through one, the
// browser is signed in on the other; signing out on the second ends the
// session on the first.
func TestDashboardSessionsAcrossControlPlanes(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	a := cptest.NewEnv(t, dsn, cptest.Config{})
	b := cptest.NewEnv(t, dsn, cptest.Config{})
	key := a.Admin
	if key == "" {
		key = b.Admin
	}
	baseA, baseB := serveDashboard(a, "127.0.0.1:0"), serveDashboard(b, "127.0.0.1:0")
	onA := newBrowser(t, baseA)
	onA.signIn(key).want(t, http.StatusSeeOther, "")
	onB := newBrowser(t, baseB)
	onB.c.Jar.SetCookies(mustURL(t, baseB), onA.c.Jar.Cookies(mustURL(t, baseA)))
	onB.get("/").want(t, http.StatusOK, "admin@tollgate.localhost")
	onB.post("/", "/signout", nil).want(t, http.StatusSeeOther, "")
	if p := onA.get("/"); p.status != http.StatusSeeOther {
		t.Fatalf("signed out on one control plane, the other still serves the session: %d", p.status)
	}
}

// TestDashboardAPIKeys: a user creates an API key for the API (token shown
// once, and it works there) and deletes it; deleting the key the browser
// signed in with signs it out.
func TestDashboardAPIKeys(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{})
	b := newBrowser(t, serveDashboard(e, "127.0.0.1:0"))
	b.signIn(e.Admin).want(t, http.StatusSeeOther, "")
	p := b.post("/credentials", "/credentials/api-keys", url.Values{"description": {"laptop CLI"}}).want(t, http.StatusCreated, "shown only once")
	m := regexp.MustCompile(`<pre id="new-api-key">([^<]+)</pre>`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no API key on the page: %s", p.body)
	}
	e.Must(http.StatusOK, e.Call(http.MethodGet, "/api_keys", m[1], nil))
	kid, _, _ := strings.Cut(m[1], "_")
	newID := ids.PrefixAPIKey + "_" + kid
	if p := b.get("/credentials"); !strings.Contains(p.body, newID) || strings.Contains(p.body, m[1]) {
		t.Fatal("the credentials page must list the key and never show its token again")
	}
	b.post("/credentials", "/credentials/"+newID+"/delete", nil).want(t, http.StatusSeeOther, "")
	cptest.WantError(t, e.Call(http.MethodGet, "/api_keys", m[1], nil), http.StatusUnauthorized, string(codes.APIAuthInvalid))

	// Deleting the key this browser signed in with ends its session.
	b.post("/credentials", "/credentials/"+e.Dev.APIKeyID+"/delete", nil).want(t, http.StatusSeeOther, "")
	if p := b.get("/credentials"); p.status != http.StatusSeeOther {
		t.Fatalf("after deleting its own sign-in key the browser still gets %d", p.status)
	}
}
