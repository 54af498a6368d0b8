package test

import (
	"context"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/tollgate/tollgate/internal/idptest"
)

// capturedSAML is what a SAML IdP's auto-submitting form posted to the
// ACS, and the dashboard's SSO sign-in cookie (the flow in progress) the
// browser held then, if any.
type capturedSAML struct {
	ACS, Response, RelayState string
	Flow                      *network.Cookie
}

// scripts turns the page's JavaScript on or off (off, the IdP's
// auto-submitting form waits for its Continue button).
func scripts(t *testing.T, ctx context.Context, on bool) {
	t.Helper()
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !on}); err != nil {
		t.Fatalf("browser: scripts on=%v: %v", on, err)
	}
}

// captureSAMLPost runs start (actions that end at the IdP's response
// form) with the page's scripts off, reads the form the IdP would
// auto-submit and the browser's cookies for dash's /sso/, then posts the
// form as the IdP meant to.
func captureSAMLPost(t *testing.T, ctx context.Context, dash, what string, start ...chromedp.Action[chromedp.Void]) capturedSAML {
	t.Helper()
	scripts(t, ctx, false)
	run(t, ctx, what, start...)
	var form, resp, relay map[string]string
	run(t, ctx, what+": the IdP's response form",
		chromedp.WaitVisible(chromedp.ID("SAMLSubmitButton")),
		into(chromedp.Attributes(chromedp.ID("SAMLResponseForm")), &form),
		into(chromedp.Attributes(chromedp.CSS(`input[name="SAMLResponse"]`)), &resp),
		into(chromedp.Attributes(chromedp.CSS(`input[name="RelayState"]`)), &relay))
	c := capturedSAML{ACS: form["action"], Response: resp["value"], RelayState: relay["value"]}
	if c.ACS == "" || c.Response == "" {
		t.Fatalf("%s: no SAML response form: %v %v", what, form, resp)
	}
	cks, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{dash + "/sso/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range cks.Cookies {
		if ck.Name == "tollgate_sso" {
			c.Flow = ck
		}
	}
	scripts(t, ctx, true)
	run(t, ctx, what+": the IdP's form posted", chromedp.Click(chromedp.ID("SAMLSubmitButton")))
	return c
}

// attackerPage serves, on its own loopback address, a page that
// auto-submits a captured SAML response to its ACS, as a replaying
// attacker's page would.
func attackerPage(t *testing.T, c capturedSAML) string {
	t.Helper()
	page := template.Must(template.New("replay").Parse(`<html><body>` +
		`<form method="post" action="{{.ACS}}" id="replay">` +
		`<input type="hidden" name="SAMLResponse" value="{{.Response}}">` +
		`<input type="hidden" name="RelayState" value="{{.RelayState}}">` +
		`</form><script>document.getElementById('replay').submit();</script></body></html>`))
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, c); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(hs.Close)
	return hs.URL + "/"
}

// wantSignedOutInBrowser checks that the dashboard sends the browser to
// its sign-in page.
func wantSignedOutInBrowser(t *testing.T, ctx context.Context, dash, what string) {
	t.Helper()
	var loc string
	run(t, ctx, what, chromedp.Navigate(dash+"/"), chromedp.WaitVisible(chromedp.ID("api_key")), into(chromedp.Location(), &loc))
	if u, err := url.Parse(loc); err != nil || u.Path != "/signin" {
		t.Fatalf("%s: the dashboard shows %s, want its sign-in page", what, loc)
	}
}

// TestSSOReplayInBrowser: in Chromium against `tollgated dev` and
// samlidp, a SAML response the IdP posted once (SP- and IdP-initiated) is
// refused when a page posts it again (TG_2856), and a response whose
// assertion has expired is refused (TG_2855); none of them signs in.
func TestSSOReplayInBrowser(t *testing.T) {
	dev := startDev(t, "")
	dash, apiURL, key := dev.dashboardURL(t), dev.info.APIURL, dev.info.APIKey
	idp := idptest.NewSAML(t, idptest.SAMLOptions{})
	idp.AddUser(t, "erin", "pw-erin", "erin@example.net", "Erin Example")
	saml := addSAMLProvider(t, apiURL, key, idp, "Example SAML")
	ctx := chromium(t)

	sp := captureSAMLPost(t, ctx, dash, "SP-initiated SAML sign-in",
		chromedp.Navigate(saml["sign_in_url"].(string)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="user"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="user"]`), "erin"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "pw-erin"),
		chromedp.Click(chromedp.CSS(`input[type="submit"]`)))
	wantSignedInAs(t, ctx, "after SP-initiated sign-in", "erin@example.net")
	if !strings.HasPrefix(sp.ACS, dash+"/sso/saml/") {
		t.Fatalf("the IdP posted to %s", sp.ACS)
	}
	if sp.Flow == nil {
		t.Fatal("the browser held no SSO sign-in cookie when the IdP posted its response")
	}
	signOutInBrowser(t, ctx, dash)

	// Posted again by a page with the sign-in cookie of the original
	// request put back (so only the replay check stands in the way).
	flow := sp.Flow
	if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: flow.Name, Value: flow.Value,
		URL: dash + "/sso/", Path: flow.Path, HTTPOnly: &flow.HTTPOnly, SameSite: flow.SameSite}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "SP-initiated response replayed", chromedp.Navigate(attackerPage(t, sp)))
	wantErrorCode(t, ctx, "SP-initiated response replayed", "TG_2856")
	wantSignedOutInBrowser(t, ctx, dash, "after the replayed SP-initiated response")
	// Without that cookie the response answers no request of this browser.
	run(t, ctx, "SP-initiated response posted by another page", chromedp.Navigate(attackerPage(t, sp)))
	wantErrorCode(t, ctx, "SP-initiated response without its request", "TG_2855")
	wantSignedOutInBrowser(t, ctx, dash, "after the SP-initiated response without its request")

	// IdP-initiated (from the portal link; erin's IdP session is still
	// on): no request binds the response, only the replay check.
	portal := captureSAMLPost(t, ctx, dash, "IdP-initiated SAML sign-in", chromedp.Navigate(idp.URL+"/login/tollgate"))
	wantSignedInAs(t, ctx, "after IdP-initiated sign-in", "erin@example.net")
	signOutInBrowser(t, ctx, dash)
	run(t, ctx, "IdP-initiated response replayed", chromedp.Navigate(attackerPage(t, portal)))
	wantErrorCode(t, ctx, "IdP-initiated response replayed", "TG_2856")
	wantSignedOutInBrowser(t, ctx, dash, "after the replayed IdP-initiated response")

	// Expired: an IdP whose clock is two hours behind issues assertions
	// that expired long ago (IdP-initiated, so no request of ours is judged
	// by its clock).
	late := idptest.NewSAML(t, idptest.SAMLOptions{Clock: dsig.NewFakeClockAt(time.Now().Add(-2 * time.Hour))})
	late.AddUser(t, "erin", "pw-erin", "erin@example.net", "Erin Example")
	addSAMLProvider(t, apiURL, key, late, "Slow clock SAML")
	run(t, ctx, "IdP-initiated sign-in with an expired assertion",
		chromedp.Navigate(late.URL+"/login/tollgate"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="user"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="user"]`), "erin"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "pw-erin"),
		chromedp.Click(chromedp.CSS(`input[type="submit"]`)),
		// samlidp answers the sign-in at its portal with the session
		// (JSON); the portal link then posts the response.
		chromedp.WaitNotPresent(chromedp.CSS(`input[name="user"]`)),
		chromedp.Navigate(late.URL+"/login/tollgate"))
	wantErrorCode(t, ctx, "expired assertion", "TG_2855", "expired")
	wantSignedOutInBrowser(t, ctx, dash, "after the expired assertion")
}
