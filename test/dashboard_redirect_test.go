package test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestDashboardSignInRedirectStaysOnSite is issue 12 §5 in a real browser:
// a sign-in link whose next is "/<TAB>/evil.example" (a browser drops the
// TAB and would follow "//evil.example", another site) lands the user on
// the dashboard after signing in.
func TestDashboardSignInRedirectStaysOnSite(t *testing.T) {
	dev := startDev(t, "")
	dash := dev.dashboardURL(t)
	du, err := url.Parse(dash)
	if err != nil {
		t.Fatal(err)
	}
	ctx := chromium(t)
	var loc string
	run(t, ctx, "sign in through a link with next=/%09/evil.example",
		chromedp.Navigate(dash+"/signin?next=/%09/evil.example"),
		chromedp.WaitVisible(chromedp.ID("api_key")),
		chromedp.SendKeys(chromedp.ID("api_key"), dev.info.APIKey),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("user-email")), // a signed-in page of the dashboard
		into(chromedp.Location(), &loc),
	)
	u, err := url.Parse(loc)
	if err != nil || u.Host != du.Host || strings.Contains(loc, "evil") {
		t.Fatalf("after sign-in the browser is at %s, want the dashboard %s", loc, dash)
	}
}
