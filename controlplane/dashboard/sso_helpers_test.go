package dashboard_test

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/internal/idptest"
)

// walker is a browser that follows redirects across the dashboard and the
// identity provider, except to a URL that starts with stopAt (then the
// redirect is returned).
type walker struct {
	t      *testing.T
	c      *http.Client
	stopAt string
	last   *url.URL    // the URL of the last response
	hdr    http.Header // sent with every request
}

func newWalker(t *testing.T) *walker {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &walker{t: t}
	w.c = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if w.stopAt != "" && strings.HasPrefix(req.URL.String(), w.stopAt) || len(via) > 20 {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return w
}

// do sends a request (a form when form is set) and returns the final page.
func (w *walker) do(method, u string, form url.Values) page {
	w.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(cptest.Ctx(w.t), method, u, body)
	if err != nil {
		w.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range w.hdr {
		req.Header[k] = v
	}
	res, err := w.c.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer res.Body.Close()
	w.last = res.Request.URL
	raw, _ := io.ReadAll(res.Body)
	return page{status: res.StatusCode, location: res.Header.Get("Location"), header: res.Header, body: string(raw)}
}

var (
	formActionRE = regexp.MustCompile(`(?i)<form method="post" action="([^"]+)"`)
	hiddenRE     = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
)

// formOf returns the action and hidden fields of the page's first form.
func formOf(t *testing.T, p page) (string, url.Values) {
	t.Helper()
	m := formActionRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("page %d has no form: %s", p.status, p.body)
	}
	v := url.Values{}
	for _, h := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(h[1], html.UnescapeString(h[2]))
	}
	return html.UnescapeString(m[1]), v
}

// samlResponse signs in at the SAML IdP, starting from start (an SP- or
// IdP-initiated URL), and returns the ACS URL and the response form the
// IdP would make the browser post, without posting it.
func (w *walker) samlResponse(start, user, password string) (string, url.Values) {
	w.t.Helper()
	login := w.do(http.MethodGet, start, nil).want(w.t, http.StatusOK, "")
	action, form := formOf(w.t, login)
	form.Set("user", user)
	form.Set("password", password)
	resp := w.do(http.MethodPost, action, form).want(w.t, http.StatusOK, "")
	if !strings.Contains(resp.body, "SAMLResponse") {
		// An IdP-initiated start logs in first (samlidp answers the
		// session as JSON), then is opened again.
		resp = w.do(http.MethodGet, start, nil).want(w.t, http.StatusOK, "SAMLResponse")
	}
	acs, rf := formOf(w.t, resp)
	if rf.Get("SAMLResponse") == "" {
		w.t.Fatalf("the IdP's page has no SAMLResponse: %s", resp.body)
	}
	return acs, rf
}

// post posts the IdP's response form as the IdP's page would (a cross-site
// form post) without following the dashboard's redirect.
func (w *walker) post(u string, form url.Values) page {
	w.t.Helper()
	stop := w.stopAt
	w.stopAt = "http"
	// What a browser sends with the IdP page's cross-site form post.
	w.hdr = http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://idp.example"}}
	defer func() { w.stopAt, w.hdr = stop, nil }()
	return w.do(http.MethodPost, u, form)
}

// oidcCallback signs in at the OpenID provider from the dashboard's start
// URL and returns the callback URL the provider redirects to, without
// following it.
func (w *walker) oidcCallback(dash, start, user, password string) string {
	w.t.Helper()
	w.stopAt = dash + "/sso/oidc/"
	defer func() { w.stopAt = "" }()
	login := w.do(http.MethodGet, start, nil).want(w.t, http.StatusOK, "")
	action, form := formOf(w.t, login)
	form.Set("username", user)
	form.Set("password", password)
	au, _ := w.last.Parse(action)
	res := w.do(http.MethodPost, au.String(), form)
	if res.status != http.StatusFound && res.status != http.StatusSeeOther {
		w.t.Fatalf("OP login: %d %s", res.status, res.body)
	}
	return res.location
}

// ssoSetup is a control plane with its dashboard served, and what the SSO
// tests configure on it.
type ssoSetup struct {
	e    *cptest.Env
	dash string
	acct string
}

func newSSOSetup(t *testing.T) *ssoSetup {
	return newSSOSetupWith(t, cptest.Config{})
}

func newSSOSetupWith(t *testing.T, cfg cptest.Config) *ssoSetup {
	e := cptest.NewEnv(t, storetest.DSN(t, storetest.Dialects[0]), cfg)
	return &ssoSetup{e: e, dash: serveDashboard(e, "127.0.0.1:0"), acct: e.Dev.AccountID}
}

// addSAML configures a SAML identity provider for the dev account from
// the IdP's metadata URL and registers the service provider at the IdP.
func (s *ssoSetup) addSAML(t *testing.T, idp *idptest.SAML, name string, idpInitiated bool) *store.IdentityProvider {
	t.Helper()
	p, err := s.e.Store.CreateIdentityProvider(cptest.Ctx(t), store.SystemActor, s.acct, store.IdentityProviderCreate{
		Kind: store.IdPSAML, Name: name, SAML: &store.SAMLSettings{MetadataURL: idp.MetadataURL(), IdPInitiated: idpInitiated}})
	if err != nil {
		t.Fatal(err)
	}
	md := newWalker(t).do(http.MethodGet, s.dash+"/sso/saml/"+p.ID+"/metadata", nil).want(t, http.StatusOK, "EntityDescriptor")
	idp.AddServiceProvider(t, p.ID, []byte(md.body))
	return p
}

// addOIDC configures an OIDC identity provider for the dev account and
// registers its client at the provider.
func (s *ssoSetup) addOIDC(t *testing.T, op *idptest.OIDC, name string) *store.IdentityProvider {
	t.Helper()
	p, err := s.e.Store.CreateIdentityProvider(cptest.Ctx(t), store.SystemActor, s.acct, store.IdentityProviderCreate{
		Kind: store.IdPOIDC, Name: name, OIDC: &store.OIDCSettings{Issuer: op.Issuer, ClientID: "tollgate-" + name}, ClientSecret: "s3cret-" + name})
	if err != nil {
		t.Fatal(err)
	}
	op.AddClient("tollgate-"+name, "s3cret-"+name, s.dash+"/sso/oidc/"+p.ID+"/callback")
	return p
}

// signedInAs checks that the walker's dashboard session belongs to email.
func (s *ssoSetup) signedInAs(t *testing.T, w *walker, email string) {
	t.Helper()
	p := w.do(http.MethodGet, s.dash+"/", nil).want(t, http.StatusOK, "")
	if !strings.Contains(p.body, `id="user-email">`+email+`<`) {
		t.Fatalf("the overview is not signed in as %s: %s", email, p.body)
	}
}
