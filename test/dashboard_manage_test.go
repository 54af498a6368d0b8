package test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// dashScreenshots returns where the browser tests write their screenshots:
// $TOLLGATE_SCREENSHOT_DIR, or the test's temporary directory; the test
// log names it.
func dashScreenshots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TOLLGATE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	t.Logf("dashboard screenshots in %s", dir)
	return dir
}

// dashShot saves a full-page PNG of the browser's page as dir/name.png.
func dashShot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	var png []byte
	run(t, ctx, "screenshot "+name, into(chromedp.FullScreenshot(100), &png))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDashboardManageInBrowser drives, in Chromium against `tollgated dev`,
// the dashboard pages that do what the API does, one main action each:
// an agent session restarted from the overview (the agent says so and
// reconnects), a domain reserved and released, an IP policy with a rule (a
// bad CIDR refused first) applied by a restriction switched from dry run to
// enforcing, an SSH key added, an API key given to a bot user, a member's
// roles changed while the last administrator cannot leave, and the audit
// log filtered. It takes a screenshot of each page.
func TestDashboardManageInBrowser(t *testing.T) {
	dev := startDev(t, "")
	dash := dev.dashboardURL(t)
	key := dev.info.APIKey
	up := echoUpstream(t)
	agent, _ := dev.agent(t, "http", upstreamPort(up), "--url", "https://manage-demo."+dev.info.BaseDomain)
	sess := agent.waitFor(regexp.MustCompile(`Session\s+(ts_\S+)`), 5*time.Second)[1]
	ctx := chromium(t)
	dir := dashScreenshots(t)

	var text string
	run(t, ctx, "open the sign-in page",
		chromedp.EmulateViewport(1360, 900),
		chromedp.Navigate(dash+"/"),
		chromedp.WaitVisible(chromedp.ID("api_key")),
	)
	dashShot(t, ctx, dir, "signin")
	run(t, ctx, "sign in",
		chromedp.SendKeys(chromedp.ID("api_key"), key),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("sessions")),
	)
	dashShot(t, ctx, dir, "overview")
	run(t, ctx, "restart the agent session",
		chromedp.Click(`button[data-restart="`+sess+`"]`),
		chromedp.WaitVisible(chromedp.ID("notice")),
		into(chromedp.Text(chromedp.ID("notice")), &text),
	)
	if !strings.Contains(text, sess) || !strings.Contains(text, "restart") {
		t.Fatalf("after Restart the page says %q", text)
	}
	agent.waitFor(regexp.MustCompile(`asked this agent to restart`), 20*time.Second)
	waitSession(t, dev, key, func(id string) bool { return id != sess })

	// Reservations: reserve a domain, see it listed, release it.
	var domains string
	run(t, ctx, "reserve a domain",
		chromedp.Navigate(dash+"/reservations"),
		chromedp.WaitVisible(chromedp.ID("reserve-domain")),
		chromedp.SendKeys(chromedp.ID("domain-name"), "shop.example.com"),
		chromedp.SetValue(chromedp.ID("domain-region"), "eu"),
		chromedp.SendKeys(chromedp.ID("domain-description"), "storefront"),
		chromedp.Click(chromedp.ID("reserve-domain")),
		chromedp.WaitVisible(chromedp.ID("notice")),
		into(chromedp.Text(chromedp.ID("reserved-domains")), &domains),
	)
	if !strings.Contains(domains, "shop.example.com") || !strings.Contains(domains, "eu") {
		t.Fatalf("reserved domains: %q", domains)
	}
	rds := mustAPI(t, dev, key, http.MethodGet, "/reserved_domains", nil, http.StatusOK)["reserved_domains"].([]any)
	if len(rds) != 1 {
		t.Fatalf("the API lists %d reserved domains, want 1", len(rds))
	}
	rd := rds[0].(map[string]any)["id"].(string)
	dashShot(t, ctx, dir, "reservations")
	run(t, ctx, "release the domain",
		chromedp.Navigate(dash+"/reservations"), // without the banner of the reservation
		chromedp.WaitVisible(chromedp.ID("reserved-domains")),
		chromedp.Click(`#reserved-domains button[data-id="`+rd+`"]`),
		chromedp.WaitVisible(chromedp.ID("notice")),
		into(chromedp.Text(chromedp.ID("notice")), &text),
	)
	if !strings.Contains(text, "released") {
		t.Fatalf("after Release the page says %q", text)
	}
	mustAPI(t, dev, key, http.MethodGet, "/reserved_domains/"+rd, nil, http.StatusNotFound)

	// IP policies: a policy, a bad CIDR refused, a rule, a restriction in
	// dry run, then enforced.
	var errText string
	run(t, ctx, "create an IP policy and a bad rule",
		chromedp.Navigate(dash+"/ip-policies"),
		chromedp.WaitVisible(chromedp.ID("create-policy")),
		chromedp.SendKeys(chromedp.ID("policy-description"), "Office network"),
		chromedp.Click(chromedp.ID("create-policy")),
		chromedp.WaitVisible(chromedp.ID("notice")),
		chromedp.SendKeys(`.add-rule input[name=cidr]`, "10.1.2.300/24"),
		chromedp.Click(`.add-rule button`),
		chromedp.WaitVisible(chromedp.ID("error")),
		into(chromedp.Text(chromedp.ID("error")), &errText),
	)
	if !strings.Contains(errText, "TG_2613") || !strings.Contains(errText, "10.1.2.300/24") {
		t.Fatalf("a bad CIDR: the page says %q", errText)
	}
	var restrictions string
	run(t, ctx, "add a rule and a restriction",
		chromedp.SendKeys(`.add-rule input[name=cidr]`, "127.0.0.0/8"),
		chromedp.SendKeys(`.add-rule input[name=description]`, "this machine"),
		chromedp.Click(`.add-rule button`),
		chromedp.WaitVisible(`table.rules`),
		chromedp.SetValue(chromedp.ID("restriction-type"), "api"),
		chromedp.Click(`#create-restriction-form input[name=ip_policy_ids]`),
		chromedp.SendKeys(chromedp.ID("restriction-description"), "API from the office"),
		chromedp.Click(chromedp.ID("create-restriction")),
		chromedp.WaitVisible(`button[data-action="enforce"]`),
		into(chromedp.Text(chromedp.ID("ip-restrictions")), &restrictions),
	)
	if !strings.Contains(restrictions, "Dry run") {
		t.Fatalf("a new restriction: %q, want dry run", restrictions)
	}
	run(t, ctx, "enforce the restriction",
		chromedp.Click(`button[data-action="enforce"]`),
		chromedp.WaitVisible(`button[data-action="dry-run"]`),
		into(chromedp.Text(chromedp.ID("ip-restrictions")), &restrictions),
	)
	rx := mustAPI(t, dev, key, http.MethodGet, "/ip_restrictions", nil, http.StatusOK)["ip_restrictions"].([]any)
	if len(rx) != 1 || rx[0].(map[string]any)["enforced"] != true || !strings.Contains(restrictions, "Enforced") {
		t.Fatalf("after Enforce: the API says %v, the page %q", rx, restrictions)
	}
	run(t, ctx, "open a rule's editor", chromedp.Click(`table.rules details.edit summary`))
	dashShot(t, ctx, dir, "ip-policies")

	// SSH keys on the credentials page.
	sk := newSSHKey(t)
	var keys string
	run(t, ctx, "add an SSH key",
		chromedp.Navigate(dash+"/credentials"),
		chromedp.WaitVisible(chromedp.ID("add-ssh-key")),
		chromedp.SendKeys(chromedp.ID("ssh-public-key"), sk.authorized),
		chromedp.SendKeys(chromedp.ID("ssh-description"), "laptop"),
		chromedp.Click(chromedp.ID("add-ssh-key")),
		chromedp.WaitVisible(chromedp.ID("notice")),
		into(chromedp.Text(chromedp.ID("ssh-keys")), &keys),
	)
	if !strings.Contains(keys, "laptop") || !strings.Contains(keys, "SHA256:") {
		t.Fatalf("SSH keys: %q", keys)
	}
	dashShot(t, ctx, dir, "credentials")

	// A bot user's API key, shown once, works on the API.
	bot := mustAPI(t, dev, key, http.MethodPost, "/bot_users", map[string]any{"name": "deploy-bot"}, http.StatusCreated)["id"].(string)
	var botKey string
	run(t, ctx, "give the bot an API key",
		chromedp.Navigate(dash+"/bot-users"),
		chromedp.Click(`a[href="/bot-users/`+bot+`"]`),
		chromedp.WaitVisible(chromedp.ID("create-bot-api-key")),
		chromedp.SendKeys(chromedp.ID("bot-key-description"), "deploys"),
		chromedp.Click(chromedp.ID("create-bot-api-key")),
		chromedp.WaitVisible(chromedp.ID("new-bot-api-key")),
		into(chromedp.Text(chromedp.ID("new-bot-api-key")), &botKey),
	)
	if st, _ := restJSON(t, dev.info.APIURL, strings.TrimSpace(botKey), http.MethodGet, "/endpoints", nil); st != http.StatusOK {
		t.Fatalf("the bot's API key from the page: the API answers %d", st)
	}
	dashShot(t, ctx, dir, "bot-user")

	// Members: the only administrator cannot leave; a member's roles change.
	inv := mustAPI(t, dev, key, http.MethodPost, "/invitations", map[string]any{"email": "teammate@example.com"}, http.StatusCreated)
	mate := acceptInvitation(t, dev, inv["accept_token"].(string), "Teammate")
	run(t, ctx, "the last administrator tries to leave",
		chromedp.Navigate(dash+"/users"),
		chromedp.WaitVisible(chromedp.ID("members")),
		chromedp.Click(`button[data-remove]:not([data-remove="`+mate+`"])`),
		chromedp.WaitVisible(chromedp.ID("error")),
		into(chromedp.Text(chromedp.ID("error")), &errText),
	)
	if !strings.Contains(errText, "TG_2619") {
		t.Fatalf("the last administrator leaving: the page says %q", errText)
	}
	dashShot(t, ctx, dir, "users-refused")
	run(t, ctx, "change a member's roles",
		chromedp.Click(`summary[data-edit-roles="`+mate+`"]`),
		chromedp.SetValue(`#`+mate+` select[name=developer]`, "rw"),
		chromedp.SetValue(`#`+mate+` select[name=team]`, "manager"),
		chromedp.Click(`button[data-save-roles="`+mate+`"]`),
		chromedp.WaitVisible(chromedp.ID("notice")),
	)
	u := mustAPI(t, dev, key, http.MethodGet, "/users/"+mate, nil, http.StatusOK)
	if u["developer"] != "rw" || u["team"] != "manager" {
		t.Fatalf("after Save roles: %v", u)
	}
	dashShot(t, ctx, dir, "users")

	// The audit log, filtered to IP policies.
	var events string
	run(t, ctx, "filter the audit log",
		chromedp.Navigate(dash+"/audit"),
		chromedp.WaitVisible(chromedp.ID("audit-events")),
		chromedp.SetValue(chromedp.ID("audit-object"), "ipp"),
		chromedp.Click(chromedp.ID("audit-apply")),
		chromedp.WaitReady(`#audit-object option[value="ipp"][selected]`),
		into(chromedp.Text(chromedp.ID("audit-events")), &events),
	)
	if !strings.Contains(events, "ip_policy_created.v0") || strings.Contains(events, "membership_updated") {
		t.Fatalf("the audit log filtered to IP policies: %q", events)
	}
	run(t, ctx, "the whole audit log", chromedp.Navigate(dash+"/audit"), chromedp.WaitVisible(chromedp.ID("audit-events")))
	dashShot(t, ctx, dir, "audit")
	run(t, ctx, "the events page", chromedp.Navigate(dash+"/events"), chromedp.WaitVisible(chromedp.ID("user-email")))
	dashShot(t, ctx, dir, "events")
	run(t, ctx, "a page that does not exist", chromedp.Navigate(dash+"/nowhere"), chromedp.WaitVisible(chromedp.ID("error")))
	dashShot(t, ctx, dir, "not-found")
}

// acceptInvitation accepts an invitation through the API, as the invitee
// (no Authorization header), and returns the new user's ID.
func acceptInvitation(t *testing.T, dev *devServer, token, name string) string {
	t.Helper()
	body, err := json.Marshal(map[string]any{"token": token, "name": name})
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(dev.info.APIURL+"/invitations/accept", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusCreated || out.User.ID == "" {
		t.Fatalf("accepting the invitation: %d, %v", res.StatusCode, err)
	}
	return out.User.ID
}
