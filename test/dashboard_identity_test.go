package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestDashboardPasswordAndAccountsInBrowser drives `tollgated dev` (sign-up
// on) in Chromium as a new user would: sign up with a password and a first
// account, create a second account from the account switcher, make an
// authtoken there, sign out, sign in with e-mail and password (a wrong
// password refused first), land in the first account, switch to the
// second with the switcher, see each account's own credentials only, and
// start an authenticator enrolment on the profile page (QR code shown).
// With TOLLGATE_SCREENSHOT_DIR set it saves the sign-in page, the open
// switcher and the enrolment there.
func TestDashboardPasswordAndAccountsInBrowser(t *testing.T) {
	dev := startDev(t, "")
	dash := dev.dashboardURL(t)
	ctx := chromium(t)
	shot := func(name string) {
		t.Helper()
		if dir := os.Getenv("TOLLGATE_SCREENSHOT_DIR"); dir != "" {
			var png []byte
			run(t, ctx, "screenshot "+name, into(chromedp.FullScreenshot(100), &png))
			if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	const email, password = "fran@example.com", "a long and unusual passphrase"

	var current string
	run(t, ctx, "sign up",
		chromedp.Navigate(dash+"/signin"),
		chromedp.WaitVisible(chromedp.ID("signup-link")),
		chromedp.Click(chromedp.ID("signup-link")),
		chromedp.WaitVisible(chromedp.ID("account")),
		chromedp.SendKeys(chromedp.ID("name"), "Fran"),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("account"), "Acme"),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("signup")),
		chromedp.WaitVisible(chromedp.ID("current-account")),
		into(chromedp.Text(chromedp.ID("current-account")), &current),
	)
	if current != "Acme" {
		t.Fatalf("after sign-up the current account is %q", current)
	}

	run(t, ctx, "create a second account from the switcher",
		chromedp.Click(`#account-switcher summary`),
		chromedp.WaitVisible(chromedp.ID("new-account-name")),
		chromedp.SendKeys(chromedp.ID("new-account-name"), "Side project"),
		chromedp.Click(chromedp.ID("create-account")),
		chromedp.WaitVisible(`#current-account[data-name="Side project"]`),
		into(chromedp.Text(chromedp.ID("current-account")), &current),
	)
	if current != "Side project" {
		t.Fatalf("after creating an account the current one is %q", current)
	}
	run(t, ctx, "an authtoken in the second account",
		chromedp.Navigate(dash+"/credentials"),
		chromedp.WaitVisible(chromedp.ID("create-token")),
		chromedp.SendKeys(chromedp.ID("token-description"), "side-project-token"),
		chromedp.Click(chromedp.ID("create-token")),
		chromedp.WaitVisible(chromedp.ID("new-token")),
	)

	var errText string
	run(t, ctx, "sign out, and a wrong password",
		chromedp.Click(chromedp.ID("signout")),
		chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), "not my passphrase"),
		chromedp.Click(chromedp.ID("signin-password")),
		chromedp.WaitVisible(chromedp.ID("error")),
		into(chromedp.Text(chromedp.ID("error")), &errText),
	)
	if !strings.Contains(errText, "TG_2820") {
		t.Fatalf("a wrong password: the page says %q", errText)
	}
	shot("dashboard-signin.png")

	var creds string
	run(t, ctx, "sign in with the password",
		chromedp.SendKeys(chromedp.ID("password"), password), // the address stays filled in
		chromedp.Click(chromedp.ID("signin-password")),
		chromedp.WaitVisible(`#current-account[data-name="Acme"]`),
		into(chromedp.Text(chromedp.ID("current-account")), &current),
		chromedp.Navigate(dash+"/credentials"),
		chromedp.WaitVisible(chromedp.ID("create-token")),
		into(chromedp.Text(`main`), &creds),
	)
	if current != "Acme" || strings.Contains(creds, "side-project-token") {
		t.Fatalf("signed in to %q (want the first account, Acme), its credentials: %q", current, creds)
	}

	run(t, ctx, "open the switcher",
		chromedp.Click(`#account-switcher summary`),
		chromedp.WaitVisible(`button.switch`),
	)
	shot("dashboard-switcher.png")
	run(t, ctx, "switch accounts",
		chromedp.Click(`button.switch`),
		chromedp.WaitVisible(`#current-account[data-name="Side project"]`),
		into(chromedp.Text(chromedp.ID("current-account")), &current),
		chromedp.Navigate(dash+"/credentials"),
		chromedp.WaitVisible(chromedp.ID("create-token")),
		into(chromedp.Text(`main`), &creds),
	)
	if current != "Side project" || !strings.Contains(creds, "side-project-token") {
		t.Fatalf("after switching: account %q, credentials %q", current, creds)
	}

	var uri string
	run(t, ctx, "start an authenticator enrolment on the profile page",
		chromedp.Click(`a.user`),
		chromedp.WaitVisible(chromedp.ID("start-totp")),
		chromedp.Click(chromedp.ID("start-totp")),
		chromedp.WaitVisible(chromedp.ID("totp-qr")),
		into(chromedp.Text(chromedp.ID("totp-uri")), &uri),
	)
	if !strings.HasPrefix(uri, "otpauth://totp/Tollgate:"+email) {
		t.Fatalf("the enrolment shows %q", uri)
	}
	shot("dashboard-profile-totp.png")
}
