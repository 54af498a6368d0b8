package test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tollgate/tollgate/internal/idptest"
)

// httpGet fetches u and returns its body.
func httpGet(t *testing.T, u string) []byte {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", u, res.StatusCode, err)
	}
	return b
}

// signOutInBrowser clicks the dashboard's sign-out button.
func signOutInBrowser(t *testing.T, ctx context.Context, dash string) {
	t.Helper()
	run(t, ctx, "sign out", chromedp.Navigate(dash+"/"), chromedp.WaitVisible(chromedp.ID("signout")),
		chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("api_key")))
}

// wantSignedInAs checks the signed-in user the overview shows.
func wantSignedInAs(t *testing.T, ctx context.Context, what, email string) {
	t.Helper()
	var got string
	run(t, ctx, what, chromedp.WaitVisible(chromedp.ID("user-email")), into(chromedp.Text(chromedp.ID("user-email")), &got))
	if got != email {
		t.Fatalf("%s: signed in as %q, want %s", what, got, email)
	}
}

// wantErrorCode checks the error box of the page the browser shows.
func wantErrorCode(t *testing.T, ctx context.Context, what, code string, also ...string) {
	t.Helper()
	var text string
	run(t, ctx, what, chromedp.WaitVisible(chromedp.ID("error")), into(chromedp.Text(chromedp.ID("error")), &text))
	if !strings.Contains(text, code) {
		t.Fatalf("%s: the page says %q, want %s", what, text, code)
	}
	for _, a := range also {
		if !strings.Contains(text, a) {
			t.Fatalf("%s: the page says %q, which does not name %q", what, text, a)
		}
	}
}

// userID returns the ID of the account's user with email (GET /users).
func userID(t *testing.T, apiURL, key, email string) string {
	t.Helper()
	users := api(t, apiURL, key, "GET", "/users", nil, 200)
	for _, u := range users["users"].([]any) {
		if m := u.(map[string]any); m["email"] == email {
			return m["id"].(string)
		}
	}
	t.Fatalf("%s is not a user of the account: %v", email, users)
	return ""
}

// TestSSOInBrowser drives single sign-on of `tollgated dev` in Chromium
// against real identity providers (samlidp and zitadel's example OP):
// SP-initiated SAML sign-in creates a new user by JIT; IdP-initiated SAML
// sign-in from the IdP's portal; the email form's chooser between the SAML
// and OIDC providers, and OIDC sign-in; invite-only refusing an uninvited
// user; enforced SSO refusing the API-key and password sign-ins that
// mixed mode allowed; and a verified email domain forcing its users through the
// account's SSO.
func TestSSOInBrowser(t *testing.T) {
	ns := idptest.NewDNS(t)
	dev := startDev(t, "", "--dns-resolver", ns.Addr)
	dash, apiURL, key := dev.dashboardURL(t), dev.info.APIURL, dev.info.APIKey

	samlIdP := idptest.NewSAML(t, idptest.SAMLOptions{})
	samlIdP.AddUser(t, "erin", "pw-erin", "erin@example.net", "Erin Example")
	op := idptest.NewOIDC(t)
	op.AddUser(idptest.OIDCUser{Username: "admin", Password: "pw-admin", Email: "admin@tollgate.localhost", EmailVerified: true})
	op.AddUser(idptest.OIDCUser{Username: "carol", Password: "pw-carol", Email: "carol@example.org", EmailVerified: true})

	saml := addSAMLProvider(t, apiURL, key, samlIdP, "Example SAML")
	samlID := saml["id"].(string)
	if spEntity := saml["saml"].(map[string]any)["sp_entity_id"].(string); spEntity != dash+"/sso/saml/"+samlID+"/metadata" {
		t.Fatalf("sp_entity_id %q", spEntity)
	}
	oidc := api(t, apiURL, key, "POST", "/identity_providers", map[string]any{"type": "oidc", "name": "Example OIDC",
		"oidc": map[string]any{"issuer": op.Issuer, "client_id": "tollgate", "client_secret": "oidc-secret"}}, 201)
	op.AddClient("tollgate", "oidc-secret", oidc["oidc"].(map[string]any)["redirect_url"].(string))

	ctx := chromium(t)
	run(t, ctx, "SP-initiated SAML sign-in of a new user",
		chromedp.Navigate(saml["sign_in_url"].(string)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="user"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="user"]`), "erin"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "pw-erin"),
		chromedp.Click(chromedp.CSS(`input[type="submit"]`)),
	)
	wantSignedInAs(t, ctx, "after SAML sign-in", "erin@example.net")
	var png []byte
	run(t, ctx, "screenshot", into(chromedp.FullScreenshot(100), &png))
	dir := os.Getenv("TOLLGATE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, "sso-saml-signed-in.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	signOutInBrowser(t, ctx, dash)
	run(t, ctx, "screenshot of the sign-in page", into(chromedp.FullScreenshot(100), &png))
	if err := os.WriteFile(filepath.Join(dir, "sso-signin.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}

	// IdP-initiated: from the IdP's portal link (the IdP session is still on).
	run(t, ctx, "IdP-initiated SAML sign-in", chromedp.Navigate(samlIdP.URL+"/login/tollgate"))
	wantSignedInAs(t, ctx, "after IdP-initiated sign-in", "erin@example.net")
	signOutInBrowser(t, ctx, dash)

	// The chooser: the admin is a member of the account with two IdPs.
	run(t, ctx, "SSO email form",
		chromedp.WaitVisible(chromedp.ID("sso_email")),
		chromedp.SendKeys(chromedp.ID("sso_email"), "admin@tollgate.localhost"),
		chromedp.Click(chromedp.ID("sso-continue")),
		chromedp.WaitVisible(chromedp.ID("idp-choices")),
		chromedp.Click(chromedp.ID("choose-"+oidc["id"].(string))),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "admin"),
		chromedp.SendKeys(chromedp.ID("password"), "pw-admin"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	)
	wantSignedInAs(t, ctx, "after OIDC sign-in", "admin@tollgate.localhost")
	var acs string
	run(t, ctx, "the administrators' SSO page",
		chromedp.Click(chromedp.ID("nav-sso")),
		chromedp.WaitVisible(chromedp.ID("idp-"+samlID)),
		into(chromedp.Text(chromedp.ID("idp-"+samlID)), &acs),
		into(chromedp.FullScreenshot(100), &png))
	if !strings.Contains(acs, dash+"/sso/saml/"+samlID+"/acs") {
		t.Fatalf("the SSO page does not show the ACS URL: %s", acs)
	}
	if err := os.WriteFile(filepath.Join(dir, "sso-admin.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	signOutInBrowser(t, ctx, dash)

	// Invite-only refuses carol, whom nobody invited.
	api(t, apiURL, key, "PATCH", "/sso_settings", map[string]any{"provisioning": "invite_only"}, 200)
	run(t, ctx, "OIDC sign-in of an uninvited user",
		chromedp.Navigate(oidc["sign_in_url"].(string)),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "carol"),
		chromedp.SendKeys(chromedp.ID("password"), "pw-carol"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	)
	wantErrorCode(t, ctx, "invite-only", "TG_2854", "carol@example.org")

	// Mixed allows the API key; enforced refuses it, naming the IdPs.
	run(t, ctx, "API-key sign-in in mixed mode",
		chromedp.Navigate(dash+"/signin"), chromedp.WaitVisible(chromedp.ID("api_key")),
		chromedp.SendKeys(chromedp.ID("api_key"), key), chromedp.Click(chromedp.ID("signin")))
	wantSignedInAs(t, ctx, "API key, mixed", "admin@tollgate.localhost")
	// The admin gives themself a password through a reset link (which
	// ends their sessions), and signs in with it: mixed allows passwords.
	const adminPassword = "a long and unusual admin passphrase"
	adminID := userID(t, apiURL, key, "admin@tollgate.localhost")
	var link string
	run(t, ctx, "a password reset link for the admin",
		chromedp.Navigate(dash+"/users"),
		chromedp.WaitVisible(`button[data-user="`+adminID+`"]`),
		chromedp.Click(`button[data-user="`+adminID+`"]`),
		chromedp.WaitVisible(chromedp.ID("reset-link")),
		into(chromedp.Text(chromedp.ID("reset-link")), &link))
	passwordSignIn := []chromedp.Action[chromedp.Void]{
		chromedp.WaitVisible(chromedp.ID("signin-password")),
		chromedp.SendKeys(chromedp.ID("email"), "admin@tollgate.localhost"),
		chromedp.SendKeys(chromedp.ID("password"), adminPassword),
		chromedp.Click(chromedp.ID("signin-password")),
	}
	run(t, ctx, "set the password", chromedp.Navigate(strings.TrimSpace(link)),
		chromedp.WaitVisible(chromedp.ID("reset")),
		chromedp.SendKeys(chromedp.ID("password"), adminPassword),
		chromedp.Click(chromedp.ID("reset")))
	run(t, ctx, "password sign-in in mixed mode", passwordSignIn...)
	wantSignedInAs(t, ctx, "password, mixed", "admin@tollgate.localhost")
	signOutInBrowser(t, ctx, dash)
	api(t, apiURL, key, "PATCH", "/sso_settings", map[string]any{"mode": "enforced"}, 200)
	run(t, ctx, "API-key sign-in when SSO is enforced",
		chromedp.SendKeys(chromedp.ID("api_key"), key), chromedp.Click(chromedp.ID("signin")))
	wantErrorCode(t, ctx, "enforced", "TG_2852", "Example SAML", "Example OIDC")
	run(t, ctx, "password sign-in when SSO is enforced", append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(dash + "/signin")}, passwordSignIn...)...)
	wantErrorCode(t, ctx, "enforced, password", "TG_2852", "Example SAML", "Example OIDC")
	api(t, apiURL, key, "PATCH", "/sso_settings", map[string]any{"mode": "mixed"}, 200)

	// A verified domain forces its users (erin) through the account's SSO.
	dom := api(t, apiURL, key, "POST", "/account_domains", map[string]any{"domain": "example.net"}, 201)
	ch := dom["challenge"].(map[string]any)
	ns.SetTXT(ch["name"].(string), ch["value"].(string))
	api(t, apiURL, key, "POST", "/account_domains/"+dom["id"].(string)+"/verify", nil, 200)
	erinID := userID(t, apiURL, key, "erin@example.net")
	erinKey := api(t, apiURL, key, "POST", "/api_keys", map[string]any{"owner_id": erinID}, 201)["token"].(string)
	run(t, ctx, "API-key sign-in of a user of a claimed domain",
		chromedp.Navigate(dash+"/signin"), chromedp.WaitVisible(chromedp.ID("api_key")),
		chromedp.SendKeys(chromedp.ID("api_key"), erinKey), chromedp.Click(chromedp.ID("signin")))
	wantErrorCode(t, ctx, "claimed domain", "TG_2853", "example.net", "Example SAML")
	run(t, ctx, "SSO form with an address of the claimed domain",
		chromedp.Navigate(dash+"/signin"), chromedp.WaitVisible(chromedp.ID("sso_email")),
		chromedp.SendKeys(chromedp.ID("sso_email"), "frank@example.net"),
		chromedp.Click(chromedp.ID("sso-continue")),
		chromedp.WaitVisible(chromedp.ID("idp-choices")), // the claiming account's two IdPs
		chromedp.Click(chromedp.ID("choose-"+samlID)),
	)
	// The chooser sent the browser to the account's SAML IdP, whose
	// session (erin's, from above) signed it in.
	wantSignedInAs(t, ctx, "after the SSO form for the claimed domain", "erin@example.net")
}

// addSAMLProvider creates a SAML identity provider named name, with
// IdP-initiated sign-in allowed, from idp's metadata through the API, and
// registers Tollgate with idp (our metadata and a portal shortcut,
// /login/tollgate). It returns the API's object.
func addSAMLProvider(t *testing.T, apiURL, key string, idp *idptest.SAML, name string) map[string]any {
	t.Helper()
	p := api(t, apiURL, key, "POST", "/identity_providers", map[string]any{"type": "saml", "name": name,
		"saml": map[string]any{"metadata_url": idp.MetadataURL(), "idp_initiated": true}}, 201)
	spEntity := p["saml"].(map[string]any)["sp_entity_id"].(string)
	idp.AddServiceProvider(t, "tollgate", httpGet(t, spEntity))
	idp.AddShortcut(t, "tollgate", spEntity)
	return p
}
