package dashboard_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/restapi"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// member invites a user with roles (the invitation body's fields) through
// the API, accepts, and returns a browser signed in as them and their ID.
func member(t *testing.T, e *cptest.Env, base, email string, roles map[string]any) (*browser, string) {
	t.Helper()
	body := map[string]any{"email": email}
	for k, v := range roles {
		body[k] = v
	}
	inv := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations", e.Admin, body))
	acc := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations/accept", "", map[string]any{"token": cptest.Str(inv, "accept_token"), "name": email}))
	b := newBrowser(t, base)
	b.signIn(cptest.Str(acc["api_key"].(map[string]any), "token")).want(t, http.StatusSeeOther, "")
	return b, cptest.Str(acc["user"].(map[string]any), "id")
}

// doneID checks that p redirects to page with the banner of key and
// returns the object's ID from the redirect.
func (p page) done(t *testing.T, pagePath, key string) string {
	t.Helper()
	if p.status != http.StatusSeeOther {
		t.Fatalf("status %d, want 303: %s", p.status, p.body)
	}
	u, err := url.Parse(p.location)
	if err != nil || u.Path != pagePath || u.Query().Get("done") != key {
		t.Fatalf("redirected to %q, want %s with done=%s", p.location, pagePath, key)
	}
	return u.Query().Get("id")
}

// unchanged fails when the store's revision moved since rev.
func unchanged(t *testing.T, e *cptest.Env, rev uint64, what string) {
	t.Helper()
	if e.Revision() != rev {
		t.Fatalf("%s changed the store", what)
	}
}

// TestDashboardReservationsManage: domains and TCP addresses are reserved
// and released on the reservations page with the API's rules: the
// region's pool assigns an address, a taken domain or an address outside
// any pool without a port is refused with its code and changes nothing,
// and a read-only member is refused.
func TestDashboardReservationsManage(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			e := cptest.NewEnv(t, storetest.DSN(t, d), cptest.Config{DefaultRegion: "eu",
				TCPAddrPools: map[string]restapi.TCPAddrPool{"eu": {Host: "1.tcp.eu.example.com", FirstPort: 20000, LastPort: 20009}}})
			base := serveDashboard(e, "127.0.0.1:0")
			b := newBrowser(t, base)
			b.signIn(e.Admin).want(t, http.StatusSeeOther, "")
			if p := b.get("/reservations").want(t, http.StatusOK, "No reserved domains"); !strings.Contains(p.body, `id="reserve-domain"`) {
				t.Fatal("an administrator is not offered the reserve form")
			}
			rd := b.post("/reservations", "/reservations/domains", url.Values{"domain": {"app.example.com"}, "region": {"ap"}, "description": {"main site"}}).
				done(t, "/reservations", "domain-reserved")
			dom, err := e.Store.GetReservedDomain(cptest.Ctx(t), e.Dev.AccountID, rd)
			if err != nil || dom.Domain != "app.example.com" || dom.Region != "ap" || dom.CertPolicy == nil {
				t.Fatalf("reserved %+v, %v", dom, err)
			}
			b.get("/reservations?done=domain-reserved&id="+rd).want(t, http.StatusOK, `id="notice"`)
			// Without a region: the configured default, as with the API.
			rd2 := b.post("/reservations", "/reservations/domains", url.Values{"domain": {"api.example.com"}}).done(t, "/reservations", "domain-reserved")
			if dom, _ := e.Store.GetReservedDomain(cptest.Ctx(t), e.Dev.AccountID, rd2); dom.Region != "eu" {
				t.Fatalf("without a region: %s, want eu", dom.Region)
			}

			rev := e.Revision()
			b.post("/reservations", "/reservations/domains", url.Values{"domain": {"app.example.com"}}).want(t, http.StatusConflict, string(codes.ReservedAlready))
			b.post("/reservations", "/reservations/domains", url.Values{"domain": {"not a domain"}}).want(t, http.StatusBadRequest, "TG_")
			b.post("/reservations", "/reservations/addrs", url.Values{"region": {"us"}}).want(t, http.StatusBadRequest, string(codes.AddrRequired))
			b.post("/reservations", "/reservations/addrs", url.Values{"region": {"us"}, "addr": {"1.tcp.eu.example.com:20001"}}).
				want(t, http.StatusBadRequest, string(codes.AddrInvalid))
			unchanged(t, e, rev, "a refused reservation")

			ra := b.post("/reservations", "/reservations/addrs", url.Values{"region": {"eu"}, "description": {"db"}}).done(t, "/reservations", "addr-reserved")
			addr, err := e.Store.GetReservedAddr(cptest.Ctx(t), e.Dev.AccountID, ra)
			if err != nil || !strings.HasPrefix(addr.Addr, "1.tcp.eu.example.com:2000") || addr.Region != "eu" {
				t.Fatalf("reserved %+v, %v", addr, err)
			}
			if p := b.get("/reservations").want(t, http.StatusOK, addr.Addr); !strings.Contains(p.body, "app.example.com") {
				t.Fatal("the page does not list the reserved domain")
			}

			ro, _ := member(t, e, base, "ro@example.com", nil)
			if p := ro.get("/reservations"); strings.Contains(p.body, `id="reserve-domain"`) || strings.Contains(p.body, "/delete") {
				t.Fatal("a read-only member is offered the forms")
			}
			rev = e.Revision()
			ro.post("/reservations", "/reservations/domains", url.Values{"domain": {"ro.example.com"}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
			ro.post("/reservations", "/reservations/addrs", url.Values{"region": {"eu"}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
			ro.post("/reservations", "/reservations/"+rd+"/delete", nil).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
			unchanged(t, e, rev, "a read-only member's form")

			b.post("/reservations", "/reservations/"+rd+"/delete", nil).done(t, "/reservations", "domain-released")
			b.post("/reservations", "/reservations/"+ra+"/delete", nil).done(t, "/reservations", "addr-released")
			if _, err := e.Store.GetReservedDomain(cptest.Ctx(t), e.Dev.AccountID, rd); err == nil {
				t.Fatal("the released domain is still reserved")
			}
			if _, err := e.Store.GetReservedAddr(cptest.Ctx(t), e.Dev.AccountID, ra); err == nil {
				t.Fatal("the released address is still reserved")
			}
			b.post("/reservations", "/reservations/"+rd+"/delete", nil).want(t, http.StatusNotFound, string(codes.APINotFound))
			b.post("/reservations", "/reservations/nope/delete", nil).want(t, http.StatusBadRequest, string(codes.DashboardBadInput))
		})
	}
}

// TestDashboardIPPoliciesManage: IP policies, rules and restrictions are
// created, edited and deleted on their page; a bad CIDR is refused with a
// clear error and changes nothing; a restriction switches between dry run
// and enforcing; a policy in use cannot be deleted; read-only members are
// refused.
func TestDashboardIPPoliciesManage(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		base := serveDashboard(e, "127.0.0.1:0")
		b := newBrowser(t, base)
		b.signIn(e.Admin).want(t, http.StatusSeeOther, "")
		ctx := cptest.Ctx(t)
		pol := b.post("/ip-policies", "/ip-policies", url.Values{"description": {"office"}}).done(t, "/ip-policies", "policy-created")
		if p, err := e.Store.GetIPPolicy(ctx, e.Dev.AccountID, pol); err != nil || p.Description != "office" {
			t.Fatalf("created %+v, %v", p, err)
		}

		rev := e.Revision()
		p := b.post("/ip-policies", "/ip-policies/"+pol+"/rules", url.Values{"action": {"allow"}, "cidr": {"10.0.0.300/8"}}).
			want(t, http.StatusBadRequest, string(codes.IPRuleCIDRInvalid))
		if !strings.Contains(p.body, "10.0.0.300/8") || !strings.Contains(p.body, `id="error"`) {
			t.Fatalf("the error does not name the CIDR: %s", p.body)
		}
		b.post("/ip-policies", "/ip-policies/"+pol+"/rules", url.Values{"action": {"maybe"}, "cidr": {"10.0.0.0/8"}}).want(t, http.StatusBadRequest, "TG_")
		b.post("/ip-policies", "/ip-policies/"+ids.New(ids.PrefixIPPolicy)+"/rules", url.Values{"action": {"allow"}, "cidr": {"10.0.0.0/8"}}).want(t, http.StatusBadRequest, string(codes.IPRulePolicy))
		b.post("/ip-policies", "/ip-restrictions", url.Values{"type": {"bogus"}, "ip_policy_ids": {pol}}).want(t, http.StatusBadRequest, "TG_")
		unchanged(t, e, rev, "a refused IP policy form")

		rule := b.post("/ip-policies", "/ip-policies/"+pol+"/rules", url.Values{"action": {"allow"}, "cidr": {"10.0.0.0/8"}, "description": {"vpn"}}).
			done(t, "/ip-policies", "rule-created")
		b.post("/ip-policies", "/ip-policy-rules/"+rule, url.Values{"action": {"deny"}, "cidr": {"192.0.2.0/24"}, "description": {"lab"}}).done(t, "/ip-policies", "rule-updated")
		if x, err := e.Store.GetIPPolicyRule(ctx, e.Dev.AccountID, rule); err != nil || x.Action != "deny" || x.CIDR != "192.0.2.0/24" || x.Description != "lab" {
			t.Fatalf("edited rule %+v, %v", x, err)
		}
		rev = e.Revision()
		b.post("/ip-policies", "/ip-policy-rules/"+rule, url.Values{"action": {"deny"}, "cidr": {"bad"}}).want(t, http.StatusBadRequest, string(codes.IPRuleCIDRInvalid))
		unchanged(t, e, rev, "a rule edit with a bad CIDR")

		rx := b.post("/ip-policies", "/ip-restrictions", url.Values{"type": {"api"}, "ip_policy_ids": {pol}, "description": {"api from the office"}}).
			done(t, "/ip-policies", "restriction-created")
		x, err := e.Store.GetIPRestriction(ctx, e.Dev.AccountID, rx)
		if err != nil || x.Enforced || x.Type != "api" || len(x.IPPolicyIDs) != 1 {
			t.Fatalf("created %+v, %v: want a dry run applying the policy", x, err)
		}
		if p := b.get("/ip-policies"); !strings.Contains(p.body, "Dry run") || !strings.Contains(p.body, `data-action="enforce"`) {
			t.Fatal("the page does not show the dry run and its switch")
		}
		b.post("/ip-policies", "/ip-restrictions/"+rx+"/enforced", url.Values{"enforced": {"true"}}).done(t, "/ip-policies", "restriction-enforced")
		if x, _ := e.Store.GetIPRestriction(ctx, e.Dev.AccountID, rx); !x.Enforced {
			t.Fatal("the restriction is not enforced")
		}
		b.post("/ip-policies", "/ip-restrictions/"+rx+"/enforced", url.Values{"enforced": {"false"}}).done(t, "/ip-policies", "restriction-dry-run")
		if x, _ := e.Store.GetIPRestriction(ctx, e.Dev.AccountID, rx); x.Enforced {
			t.Fatal("the restriction is still enforced")
		}
		b.post("/ip-policies", "/ip-restrictions/"+rx+"/enforced", url.Values{"enforced": {"yes"}}).want(t, http.StatusBadRequest, string(codes.DashboardBadInput))

		rev = e.Revision()
		b.post("/ip-policies", "/ip-policies/"+pol+"/delete", nil).want(t, http.StatusConflict, string(codes.IPPolicyInUse))
		unchanged(t, e, rev, "deleting a policy in use")

		ro, _ := member(t, e, base, "ro@example.com", nil)
		if p := ro.get("/ip-policies").want(t, http.StatusOK, rx); strings.Contains(p.body, `id="create-policy"`) || strings.Contains(p.body, "/delete") {
			t.Fatal("a read-only member is offered the forms")
		}
		rev = e.Revision()
		ro.post("/ip-policies", "/ip-policies", url.Values{"description": {"x"}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		ro.post("/ip-policies", "/ip-policies/"+pol+"/rules", url.Values{"action": {"allow"}, "cidr": {"0.0.0.0/0"}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		ro.post("/ip-policies", "/ip-restrictions/"+rx+"/enforced", url.Values{"enforced": {"true"}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		ro.post("/ip-policies", "/ip-restrictions/"+rx+"/delete", nil).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		ro.post("/ip-policies", "/ip-policy-rules/"+rule+"/delete", nil).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		unchanged(t, e, rev, "a read-only member's form")

		pol2 := b.post("/ip-policies", "/ip-policies", url.Values{"description": {"home"}}).done(t, "/ip-policies", "policy-created")
		b.post("/ip-policies", "/ip-restrictions/"+rx, url.Values{"ip_policy_ids": {pol2}, "description": {"api from home"}}).done(t, "/ip-policies", "restriction-updated")
		if x, _ := e.Store.GetIPRestriction(ctx, e.Dev.AccountID, rx); len(x.IPPolicyIDs) != 1 || x.IPPolicyIDs[0] != pol2 || x.Description != "api from home" {
			t.Fatalf("edited restriction %+v", x)
		}
		b.post("/ip-policies", "/ip-policies/"+pol, url.Values{"description": {"old office"}}).done(t, "/ip-policies", "policy-updated")
		b.post("/ip-policies", "/ip-policy-rules/"+rule+"/delete", nil).done(t, "/ip-policies", "rule-deleted")
		b.post("/ip-policies", "/ip-policies/"+pol+"/delete", nil).done(t, "/ip-policies", "policy-deleted")
		b.post("/ip-policies", "/ip-restrictions/"+rx+"/delete", nil).done(t, "/ip-policies", "restriction-deleted")
		if _, err := e.Store.GetIPRestriction(ctx, e.Dev.AccountID, rx); err == nil {
			t.Fatal("the deleted restriction is still there")
		}
	})
}

// TestDashboardMembersManage: roles are changed and members removed with
// the API's rules: the last administrator is kept (TG_2619), a team
// manager neither touches an administrator nor grants the flag, a
// read-only member changes nothing, and a refusal changes nothing.
func TestDashboardMembersManage(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		base := serveDashboard(e, "127.0.0.1:0")
		admin := newBrowser(t, base)
		admin.signIn(e.Admin).want(t, http.StatusSeeOther, "")
		ctx := cptest.Ctx(t)
		self := e.Dev.UserID

		rev := e.Revision()
		admin.post("/users", "/users/"+self+"/roles", url.Values{"developer": {"rw"}, "team": {"manager"}}).
			want(t, http.StatusConflict, string(codes.LastAdmin))
		admin.post("/users", "/users/"+self+"/remove", nil).want(t, http.StatusConflict, string(codes.LastAdmin))
		admin.post("/users", "/users/"+self+"/roles", url.Values{"developer": {"god"}, "team": {"ro"}, "admin": {"on"}}).want(t, http.StatusBadRequest, "TG_")
		unchanged(t, e, rev, "a refused role change")

		mgr, mgrID := member(t, e, base, "manager@example.com", map[string]any{"developer": "rw", "team": "manager"})
		ro, roID := member(t, e, base, "ro@example.com", nil)
		if p := mgr.get("/users"); !strings.Contains(p.body, `data-edit-roles="`+roID+`"`) || strings.Contains(p.body, `data-edit-roles="`+self+`"`) {
			t.Fatal("a team manager must be offered to edit members but not administrators")
		}
		mgr.post("/users", "/users/"+roID+"/roles", url.Values{"developer": {"rw"}, "team": {"invite"}, "billing": {"on"}}).done(t, "/users", "member-updated")
		if m, err := e.Store.GetMember(ctx, e.Dev.AccountID, roID); err != nil || m.Roles.Developer != store.DeveloperRW || m.Roles.Team != store.TeamInvite || !m.Roles.Billing || m.Roles.Admin {
			t.Fatalf("after the change: %+v, %v", m, err)
		}
		rev = e.Revision()
		mgr.post("/users", "/users/"+roID+"/roles", url.Values{"developer": {"rw"}, "team": {"ro"}, "admin": {"on"}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		mgr.post("/users", "/users/"+self+"/roles", url.Values{"developer": {"ro"}, "team": {"ro"}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		mgr.post("/users", "/users/"+self+"/remove", nil).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		ro.post("/users", "/users/"+mgrID+"/roles", url.Values{"developer": {"ro"}, "team": {"ro"}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		ro.post("/users", "/users/"+mgrID+"/remove", nil).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		admin.post("/users", "/users/"+ids.New(ids.PrefixUser)+"/remove", nil).want(t, http.StatusNotFound, string(codes.APINotFound))
		admin.post("/users", "/users/nope/remove", nil).want(t, http.StatusBadRequest, string(codes.DashboardBadInput))
		unchanged(t, e, rev, "a refused member action")

		// A second administrator lets the first step down; then removing
		// a member takes their credentials.
		admin.post("/users", "/users/"+mgrID+"/roles", url.Values{"developer": {"rw"}, "team": {"manager"}, "admin": {"on"}}).done(t, "/users", "member-updated")
		admin.post("/users", "/users/"+roID+"/remove", nil).done(t, "/users", "member-removed")
		if _, err := e.Store.GetMember(ctx, e.Dev.AccountID, roID); err == nil {
			t.Fatal("the removed member is still a member")
		}
		if p := ro.get("/"); p.status != http.StatusSeeOther {
			t.Fatalf("the removed member's session still opens pages (%d)", p.status)
		}
		// Leaving: the manager, now an administrator, leaves; the page
		// sends them to sign in.
		if p := mgr.post("/users", "/users/"+mgrID+"/remove", nil); p.status != http.StatusSeeOther || p.location != "/signin" {
			t.Fatalf("leaving: %d to %q", p.status, p.location)
		}
		if _, err := e.Store.GetMember(ctx, e.Dev.AccountID, mgrID); err == nil {
			t.Fatal("the member who left is still a member")
		}
	})
}

// newAuthorizedKey returns a fresh ed25519 authorized_keys line.
func newAuthorizedKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " test@example"
}

// TestDashboardSSHAndBotKeys: SSH keys are added and deleted on the
// credentials page (a key registered already is refused, TG code, no
// change); an administrator gives a bot user an API key (shown once) and
// an SSH key on its page, which others may not.
func TestDashboardSSHAndBotKeys(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		base := serveDashboard(e, "127.0.0.1:0")
		admin := newBrowser(t, base)
		admin.signIn(e.Admin).want(t, http.StatusSeeOther, "")
		ctx := cptest.Ctx(t)
		key := newAuthorizedKey(t)
		sk := admin.post("/credentials", "/credentials/ssh-keys", url.Values{"public_key": {key}, "description": {"laptop"}, "acl": {"bind:*.example.com"}}).
			done(t, "/credentials", "ssh-key-added")
		if k, err := e.Store.GetSSHCredential(ctx, e.Dev.AccountID, sk); err != nil || k.OwnerID != e.Dev.UserID || k.Description != "laptop" || len(k.ACL) != 1 {
			t.Fatalf("added %+v, %v", k, err)
		}
		rev := e.Revision()
		admin.post("/credentials", "/credentials/ssh-keys", url.Values{"public_key": {key}}).want(t, http.StatusConflict, string(codes.SSHKeyRegistered))
		admin.post("/credentials", "/credentials/ssh-keys", url.Values{"public_key": {"ssh-ed25519 nope"}}).want(t, http.StatusBadRequest, "TG_")
		unchanged(t, e, rev, "a refused SSH key")
		admin.post("/credentials", "/credentials/"+sk+"/delete", nil).done(t, "/credentials", "credential-deleted")
		if _, err := e.Store.GetSSHCredential(ctx, e.Dev.AccountID, sk); err == nil {
			t.Fatal("the deleted SSH key is still there")
		}

		bot := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/bot_users", e.Admin, map[string]any{"name": "ci"})), "id")
		admin.get("/bot-users").want(t, http.StatusOK, `href="/bot-users/`+bot+`"`)
		admin.get("/bot-users/"+bot).want(t, http.StatusOK, `id="create-bot-api-key"`)
		p := admin.post("/bot-users/"+bot, "/bot-users/"+bot+"/api-keys", url.Values{"description": {"deploys"}}).want(t, http.StatusCreated, "shown only once")
		m := regexp.MustCompile(`<pre id="new-bot-api-key">([^<]+)</pre>`).FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("no API key on the page: %s", p.body)
		}
		e.Must(http.StatusOK, e.Call(http.MethodGet, "/endpoints", m[1], nil))
		if strings.Contains(admin.get("/bot-users/"+bot).body, m[1]) {
			t.Fatal("the bot's API key is shown again")
		}
		bsk := admin.post("/bot-users/"+bot, "/bot-users/"+bot+"/ssh-keys", url.Values{"public_key": {newAuthorizedKey(t)}}).done(t, "/bot-users/"+bot, "ssh-key-added")
		if k, err := e.Store.GetSSHCredential(ctx, e.Dev.AccountID, bsk); err != nil || k.OwnerID != bot {
			t.Fatalf("the bot's SSH key: %+v, %v", k, err)
		}
		admin.post("/bot-users/"+bot, "/credentials/"+bsk+"/delete", url.Values{"back": {"/bot-users/" + bot}}).done(t, "/bot-users/"+bot, "credential-deleted")
		admin.post("/credentials", "/credentials/"+ids.New(ids.PrefixSSHCredential)+"/delete", url.Values{"back": {"https://evil.example/"}}).want(t, http.StatusNotFound, "")

		// A read/write developer who is not an administrator may not give
		// a bot credentials.
		dev, _ := member(t, e, base, "dev@example.com", map[string]any{"developer": "rw"})
		if p := dev.get("/bot-users/" + bot); strings.Contains(p.body, `id="create-bot-api-key"`) {
			t.Fatal("a developer is offered the bot's key form")
		}
		rev = e.Revision()
		dev.post("/bot-users/"+bot, "/bot-users/"+bot+"/api-keys", nil).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		dev.post("/bot-users/"+bot, "/bot-users/"+bot+"/ssh-keys", url.Values{"public_key": {newAuthorizedKey(t)}}).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		unchanged(t, e, rev, "a developer's bot key form")
		dev.get("/bot-users/"+ids.New(ids.PrefixBotUser)).want(t, http.StatusNotFound, "")
	})
}

// TestDashboardAuditLog: the audit log page filters by principal, kind of
// object and time, pages by 50, refuses a filter it cannot read with a
// clear error, and is for administrators and team managers only.
func TestDashboardAuditLog(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		base := serveDashboard(e, "127.0.0.1:0")
		admin := newBrowser(t, base)
		admin.signIn(e.Admin).want(t, http.StatusSeeOther, "")
		start := time.Now().UTC().Add(-time.Minute)
		botID := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/bot_users", e.Admin, map[string]any{"name": "auditor-bot"})), "id")
		botKey := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/api_keys", e.Admin, map[string]any{"owner_id": botID})), "token")
		for i := 0; i < 55; i++ {
			e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policies", botKey, map[string]any{"description": "p"}))
		}
		e.Must(http.StatusCreated, e.Call(http.MethodPost, "/reserved_domains", e.Admin, map[string]any{"domain": "audit.example.com"}))

		p := admin.get("/audit").want(t, http.StatusOK, "reserved_domain_created.v0")
		if !strings.Contains(p.body, `id="audit-older"`) {
			t.Fatal("more than 50 events and no link to older ones")
		}
		p = admin.get("/audit?object="+ids.PrefixIPPolicy+"&principal="+botID).want(t, http.StatusOK, "ip_policy_created.v0")
		if strings.Contains(p.body, "reserved_domain_created") || strings.Count(p.body, "ip_policy_created.v0") != 50 {
			t.Fatalf("filtered page: %d IP policy events (want 50) or other events", strings.Count(p.body, "ip_policy_created.v0"))
		}
		older := regexp.MustCompile(`id="audit-older" href="([^"]+)"`).FindStringSubmatch(p.body)
		if older == nil {
			t.Fatal("no older page within the filter")
		}
		p = admin.get(strings.ReplaceAll(older[1], "&amp;", "&")).want(t, http.StatusOK, "ip_policy_created.v0")
		if n := strings.Count(p.body, "ip_policy_created.v0"); n != 5 || strings.Contains(p.body, `id="audit-older"`) {
			t.Fatalf("second page: %d events, want the last 5", n)
		}
		if p := admin.get("/audit?principal=" + e.Dev.UserID + "&object=" + ids.PrefixIPPolicy); !strings.Contains(p.body, `id="audit-empty"`) {
			t.Fatal("the admin created no IP policy, yet events are shown")
		}
		future := start.Add(time.Hour).Format("2006-01-02T15:04")
		if p := admin.get("/audit?since=" + url.QueryEscape(future)); !strings.Contains(p.body, `id="audit-empty"`) {
			t.Fatal("events from the future")
		}
		if p := admin.get("/audit?since=" + url.QueryEscape(start.Format("2006-01-02T15:04")) + "&object=" + ids.PrefixReservedDomain); !strings.Contains(p.body, "audit.example.com") && !strings.Contains(p.body, "reserved_domain_created") {
			t.Fatal("the time range lost the reservation")
		}
		admin.get("/audit?since=yesterday").want(t, http.StatusBadRequest, string(codes.DashboardBadInput))
		admin.get("/audit?object=zz").want(t, http.StatusBadRequest, string(codes.DashboardBadInput))
		admin.get("/audit?principal=bob").want(t, http.StatusBadRequest, string(codes.DashboardBadInput))

		dev, _ := member(t, e, base, "dev@example.com", map[string]any{"developer": "rw"})
		if p := dev.get("/audit").want(t, http.StatusForbidden, string(codes.DashboardForbidden)); strings.Contains(dev.get("/").body, `href="/audit"`) {
			t.Fatalf("a developer is offered the audit log: %d", p.status)
		}
		mgr, _ := member(t, e, base, "mgr@example.com", map[string]any{"team": "manager"})
		if p := mgr.get("/audit").want(t, http.StatusOK, "ip_policy_created.v0"); !strings.Contains(p.body, `href="/audit"`) {
			t.Fatal("a team manager's navigation has no audit log")
		}
	})
}

// TestDashboardRestartSession: the overview's Restart is the API's
// restart: read-only members are refused, an unknown session is a 404.
func TestDashboardRestartSession(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		base := serveDashboard(e, "127.0.0.1:0")
		admin := newBrowser(t, base)
		admin.signIn(e.Admin).want(t, http.StatusSeeOther, "")
		ro, _ := member(t, e, base, "ro@example.com", nil)
		ro.post("/", "/sessions/"+ids.New(ids.PrefixAgentSession)+"/restart", nil).want(t, http.StatusForbidden, string(codes.DashboardForbidden))
		admin.post("/", "/sessions/"+ids.New(ids.PrefixAgentSession)+"/restart", nil).want(t, http.StatusNotFound, "")
		admin.post("/", "/sessions/nope/restart", nil).want(t, http.StatusBadRequest, string(codes.DashboardBadInput))
	})
}
