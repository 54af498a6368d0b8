package test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium starts Debian's Chromium, headless, for one test and returns a
// browser context bounded to two minutes.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("the dashboard tests drive a real browser: install Debian's chromium (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancel(); cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

// dashboardURL reads the dev dashboard's address from dev-ingress.json.
func (d *devServer) dashboardURL(t *testing.T) string {
	t.Helper()
	in := d.ingress(t)
	if in.DashboardURL == "" {
		t.Fatalf("dev-ingress.json has no dashboard_url: %+v", in)
	}
	return in.DashboardURL
}

// TestDashboardInBrowser drives the dashboard of `tollgated dev` in
// Chromium as a new user would: sign-in refused with a wrong key, signed in
// with the dev API key, the running agent's endpoint on the overview, an
// authtoken created on the credentials page that then serves a second
// agent, the dashboard IP restriction refusing the browser and lifted, the
// second agent stopped from the overview, a user invited, sign-out, and the
// invitee joining through the link.
func TestDashboardInBrowser(t *testing.T) {
	dev := startDev(t, "")
	dash := dev.dashboardURL(t)
	up := echoUpstream(t)
	_, epURL := dev.agent(t, "http", upstreamPort(up), "--url", "https://browser-demo."+dev.info.BaseDomain)
	ctx := chromium(t)

	var loc, errText string
	run(t, ctx, "open the dashboard",
		chromedp.Navigate(dash+"/credentials"),
		chromedp.WaitVisible(chromedp.ID("api_key")),
		into(chromedp.Location(), &loc),
	)
	if !strings.HasSuffix(loc, "/signin?next=%2Fcredentials") {
		t.Fatalf("signed out, the dashboard went to %s, want the sign-in page", loc)
	}
	run(t, ctx, "sign in with a wrong key",
		chromedp.SendKeys(chromedp.ID("api_key"), "2abcdefghijklmnopqrstuvwxyz_notthekey"),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("error")),
		into(chromedp.Text(chromedp.ID("error")), &errText),
	)
	if !strings.Contains(errText, "TG_2720") {
		t.Fatalf("wrong key: the page says %q, want TG_2720", errText)
	}

	var endpoints, email string
	run(t, ctx, "sign in",
		chromedp.SendKeys(chromedp.ID("api_key"), dev.info.APIKey),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("authtokens")), // back to the page asked for
		chromedp.Navigate(dash+"/"),
		chromedp.WaitVisible(chromedp.ID("endpoints")),
		into(chromedp.Text(chromedp.ID("endpoints")), &endpoints),
		into(chromedp.Text(chromedp.ID("user-email")), &email),
	)
	if !strings.Contains(endpoints, epURL) || email != "admin@tollgate.localhost" {
		t.Fatalf("overview: endpoints %q (want %s), user %q", endpoints, epURL, email)
	}

	var token string
	run(t, ctx, "create an authtoken",
		chromedp.Navigate(dash+"/credentials"),
		chromedp.WaitVisible(chromedp.ID("create-token")),
		chromedp.SendKeys(chromedp.ID("token-description"), "made in the browser"),
		chromedp.SendKeys(chromedp.ID("token-acl"), "bind:*."+dev.info.BaseDomain),
		chromedp.Click(chromedp.ID("create-token")),
		chromedp.WaitVisible(chromedp.ID("new-token")),
		into(chromedp.Text(chromedp.ID("new-token")), &token),
	)
	token = strings.TrimSpace(token)
	if !regexp.MustCompile(`^[0-9A-Za-z]{27}_[0-9A-Za-z]+$`).MatchString(token) {
		t.Fatalf("the page showed %q, not an authtoken", token)
	}
	if dir := os.Getenv("TOLLGATE_SCREENSHOT_DIR"); dir != "" {
		var png []byte
		run(t, ctx, "screenshot", into(chromedp.FullScreenshot(100), &png))
		_ = os.WriteFile(filepath.Join(dir, "dashboard-credentials.png"), png, 0o644)
	}
	// The new authtoken serves an agent.
	up2 := echoUpstream(t)
	p := start(t, bins.tollgate, []string{"TOLLGATE_CONFIG=" + filepath.Join(t.TempDir(), "tollgate.yml")},
		"http", upstreamPort(up2), "--url", "https://browser-token."+dev.info.BaseDomain, "--authtoken", token,
		"--server-addr", dev.info.AgentAddr, "--root-ca", dev.info.CAFile, "--web-addr", "127.0.0.1:0")
	m := p.waitFor(regexp.MustCompile(`Forwarding\s+(\S+)\s+->`), 30*time.Second)
	if err := getOK(dev.client(false), m[1]+"/hello"); err != nil {
		t.Fatalf("the agent with the dashboard's authtoken does not serve: %v", err)
	}

	// A dashboard IP restriction that does not allow loopback refuses the
	// browser on its next page; removing it lets the browser back in.
	pol := ipPolicy(t, dev, "allow 10.0.0.0/8")
	rx := mustAPI(t, dev, dev.info.APIKey, http.MethodPost, "/ip_restrictions",
		map[string]any{"type": "dashboard", "ip_policy_ids": []string{pol}, "enforced": true}, http.StatusCreated)
	run(t, ctx, "refused by the IP restriction",
		chromedp.Navigate(dash+"/"),
		chromedp.WaitVisible(chromedp.ID("error")),
		into(chromedp.Text(chromedp.ID("error")), &errText),
	)
	if !strings.Contains(errText, "TG_2722") || !strings.Contains(errText, "127.0.0.1") {
		t.Fatalf("restricted: the page says %q, want TG_2722 naming 127.0.0.1", errText)
	}
	mustAPI(t, dev, dev.info.APIKey, http.MethodDelete, "/ip_restrictions/"+rx["id"].(string), nil, http.StatusNoContent)
	run(t, ctx, "allowed again",
		chromedp.Navigate(dash+"/"),
		chromedp.WaitVisible(chromedp.ID("endpoints")),
	)

	// Stop the second agent from the overview: it exits 0 and says why.
	sess := p.waitFor(regexp.MustCompile(`Session\s+(ts_\S+)`), 5*time.Second)[1]
	run(t, ctx, "stop an agent session",
		chromedp.Navigate(dash+"/"),
		chromedp.Click(chromedp.CSS(`button[data-id="`+sess+`"]`)),
		chromedp.WaitVisible(chromedp.ID("notice")), // the page after the stop: navigation is done
	)
	if code, exited := p.wait(20 * time.Second); !exited || code != 0 || !strings.Contains(p.output(), "the edge asked this agent to stop") {
		t.Fatalf("after Stop in the dashboard: exited %v with %d:\n%s", exited, code, p.output())
	}

	var link string
	run(t, ctx, "invite a user",
		chromedp.Navigate(dash+"/users"),
		chromedp.WaitVisible(chromedp.ID("invite")),
		chromedp.SendKeys(chromedp.ID("invite-email"), "newcomer@example.com"),
		chromedp.Click(chromedp.ID("invite")),
		chromedp.WaitVisible(chromedp.ID("invite-link")),
		into(chromedp.Text(chromedp.ID("invite-link")), &link),
	)
	if dir := os.Getenv("TOLLGATE_SCREENSHOT_DIR"); dir != "" {
		var png []byte
		run(t, ctx, "screenshot", into(chromedp.FullScreenshot(100), &png))
		_ = os.WriteFile(filepath.Join(dir, "dashboard-users.png"), png, 0o644)
	}

	run(t, ctx, "sign out",
		chromedp.Click(chromedp.ID("signout")),
		chromedp.WaitVisible(chromedp.ID("api_key")),
		chromedp.Navigate(dash+"/credentials"),
		chromedp.WaitVisible(chromedp.ID("api_key")),
		into(chromedp.Location(), &loc),
	)
	if !strings.Contains(loc, "/signin") {
		t.Fatalf("after sign-out /credentials is at %s, want the sign-in page", loc)
	}

	// The invitee opens the link, joins, sees their API key once and is in.
	var key string
	run(t, ctx, "accept the invitation",
		chromedp.Navigate(strings.TrimSpace(link)),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "Newcomer"),
		chromedp.SendKeys(chromedp.ID("password"), "newcomer passphrase"),
		chromedp.Click(chromedp.ID("accept")),
		chromedp.WaitVisible(chromedp.ID("new-api-key")),
		into(chromedp.Text(chromedp.ID("new-api-key")), &key),
		chromedp.Click(chromedp.ID("continue")),
		chromedp.WaitVisible(chromedp.ID("user-email")),
		into(chromedp.Text(chromedp.ID("user-email")), &email),
	)
	if email != "newcomer@example.com" {
		t.Fatalf("after accepting, signed in as %q", email)
	}
	if st, _ := restJSON(t, dev.info.APIURL, strings.TrimSpace(key), http.MethodGet, "/credentials", nil); st != http.StatusOK {
		t.Fatalf("the newcomer's API key from the page: API answers %d", st)
	}
}

// run runs browser actions, failing the test with what was being done.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// into makes an action that stores a's value in dst.
func into[T any](a chromedp.Action[T], dst *T) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		v, err := a(ctx, tg)
		*dst = v
		return chromedp.Void{}, err
	}
}

// TestDashboardEventsInBrowser drives the dashboard's Events page of
// `tollgated dev` in Chromium: a file destination created with the form,
// its test event sent with the button (the page shows its ID and the file
// holds it), a subscription with a bad CEL filter refused with the
// compiler's message, then created with a good one and listed; a second
// source with a filter added to it, and the first removed.
func TestDashboardEventsInBrowser(t *testing.T) {
	fileDir := t.TempDir()
	dev := startDev(t, "", "--events-file-dir", fileDir)
	dash := dev.dashboardURL(t)
	ctx := chromium(t)

	var result, errText, subs string
	run(t, ctx, "sign in and create a file destination",
		chromedp.Navigate(dash+"/events"),
		chromedp.WaitVisible(chromedp.ID("api_key")),
		chromedp.SendKeys(chromedp.ID("api_key"), dev.info.APIKey),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("create-destination")),
		chromedp.SetValue(chromedp.ID("dest-kind"), "file"),
		chromedp.SendKeys(chromedp.ID("dest-description"), "browser file"),
		chromedp.SendKeys(chromedp.ID("dest-path"), "browser.jsonl"),
		chromedp.Click(chromedp.ID("create-destination")),
		chromedp.WaitVisible(`#event-destinations button.test`),
		chromedp.Click(`#event-destinations button.test`),
		chromedp.WaitVisible(chromedp.ID("test-result")),
		into(chromedp.Text(chromedp.ID("test-result")), &result),
	)
	m := regexp.MustCompile(`Test event (\S+) delivered`).FindStringSubmatch(result)
	if m == nil {
		t.Fatalf("the test result says %q", result)
	}
	raw, err := os.ReadFile(filepath.Join(fileDir, "browser.jsonl"))
	if err != nil || !strings.Contains(string(raw), m[1]) {
		t.Fatalf("the file holds %q, %v; want the test event %s", raw, err, m[1])
	}

	run(t, ctx, "a subscription with a bad filter",
		chromedp.Click(`#subscription-form input[name=destination_id]`),
		chromedp.SetValue(chromedp.ID("sub-type"), "http_request_complete.v0"),
		chromedp.SendKeys(chromedp.ID("sub-filter"), "status >="),
		chromedp.Click(chromedp.ID("create-subscription")),
		chromedp.WaitVisible(chromedp.ID("error")),
		into(chromedp.Text(chromedp.ID("error")), &errText),
	)
	if !strings.Contains(errText, "TG_5410") || !strings.Contains(errText, "Syntax error") {
		t.Fatalf("bad filter: the page says %q", errText)
	}
	run(t, ctx, "a subscription with a good filter",
		chromedp.Click(`#subscription-form input[name=destination_id]`),
		chromedp.SetValue(chromedp.ID("sub-type"), "http_request_complete.v0"),
		chromedp.SendKeys(chromedp.ID("sub-filter"), "status >= 500"),
		chromedp.Click(chromedp.ID("create-subscription")),
		chromedp.WaitVisible(chromedp.ID("event-subscriptions")),
		into(chromedp.Text(chromedp.ID("event-subscriptions")), &subs),
	)
	if !strings.Contains(subs, "http_request_complete.v0 if status >= 500") {
		t.Fatalf("subscriptions: %q", subs)
	}

	// A second source with its own filter, added to the subscription;
	// then the first removed.
	add := `#event-subscriptions form.add-source `
	run(t, ctx, "add a source",
		chromedp.SetValue(add+`select[name=type]`, "tcp_connection_closed.v0"),
		chromedp.SendKeys(add+`input[name=filter]`, "bytes_in > 100"),
		chromedp.Click(add+`button[type=submit]`),
		chromedp.WaitVisible(`#event-subscriptions div.source[data-type="tcp_connection_closed.v0"]`),
		chromedp.Click(`#event-subscriptions div.source[data-type="http_request_complete.v0"] button.remove-source`),
		chromedp.WaitNotPresent(`#event-subscriptions div.source[data-type="http_request_complete.v0"]`),
		into(chromedp.Evaluate[string](`Array.from(document.querySelectorAll('#event-subscriptions div.source')).map(d => d.innerText.replace(/\s*Remove$/, '')).join('|')`), &subs),
	)
	if subs != "tcp_connection_closed.v0 if bytes_in > 100" {
		t.Fatalf("sources after adding and removing one: %q", subs)
	}
}
