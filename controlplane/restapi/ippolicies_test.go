package restapi_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/store"
)

// wantKeys checks that an API object has exactly the given fields.
func wantKeys(t *testing.T, obj map[string]any, keys ...string) {
	t.Helper()
	got := make([]string, 0, len(obj))
	for k := range obj {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Fatalf("object fields %v, want %v: %v", got, keys, obj)
	}
}

// ref returns an {id, uri} reference's fields.
func ref(t *testing.T, v any) (id, uri string) {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok || len(m) != 2 {
		t.Fatalf("not a reference: %v", v)
	}
	return cptest.Str(m, "id"), cptest.Str(m, "uri")
}

func TestIPPolicyAPILifecycle(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		ctx := cptest.Ctx(t)
		start, err := e.Core.Snapshot(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		pol := e.Must(201, e.Call("POST", "/ip_policies", e.Admin, map[string]any{"description": "office", "metadata": `{"k":1}`}))
		wantKeys(t, pol, "id", "uri", "created_at", "description", "metadata")
		pid := cptest.Str(pol, "id")
		if !strings.HasPrefix(pid, "ipp_") || cptest.Str(pol, "uri") != e.HTTP.URL+"/ip_policies/"+pid || cptest.Str(pol, "description") != "office" {
			t.Fatalf("created policy = %v", pol)
		}

		// A CIDR that is not its network address is refused, naming the right one.
		r := e.Call("POST", "/ip_policy_rules", e.Admin, map[string]any{"ip_policy_id": pid, "cidr": "10.0.0.5/8", "action": "allow"})
		cptest.WantError(t, r, 400, string(codes.IPRuleCIDRNotNetwork))
		if msg := cptest.Str(r.Obj(t), "msg"); !strings.Contains(msg, "use 10.0.0.0/8") {
			t.Fatalf("msg %q does not name the network address", msg)
		}

		rule := e.Must(201, e.Call("POST", "/ip_policy_rules", e.Admin, map[string]any{
			"ip_policy_id": pid, "cidr": "::ffff:10.0.0.0/104", "action": "allow", "description": "vpn"}))
		wantKeys(t, rule, "id", "uri", "created_at", "description", "metadata", "cidr", "ip_policy", "action")
		rid := cptest.Str(rule, "id")
		if refID, refURI := ref(t, rule["ip_policy"]); refID != pid || refURI != e.HTTP.URL+"/ip_policies/"+pid {
			t.Fatalf("rule ip_policy = %v", rule["ip_policy"])
		}
		if !strings.HasPrefix(rid, "ipr_") || cptest.Str(rule, "cidr") != "10.0.0.0/8" || cptest.Str(rule, "action") != "allow" ||
			cptest.Str(rule, "uri") != e.HTTP.URL+"/ip_policy_rules/"+rid {
			t.Fatalf("created rule = %v", rule)
		}
		cptest.WantError(t, e.Call("POST", "/ip_policy_rules", e.Admin, map[string]any{"ip_policy_id": pid, "cidr": "10.0.0.0/8", "action": "deny"}),
			409, string(codes.IPRuleDuplicate))
		host := e.Must(201, e.Call("POST", "/ip_policy_rules", e.Admin, map[string]any{"ip_policy_id": pid, "cidr": "2001:DB8::1", "action": "deny"}))
		if cptest.Str(host, "cidr") != "2001:db8::1/128" {
			t.Fatalf("host rule cidr %v", host["cidr"])
		}
		upd := e.Must(200, e.Call("PATCH", "/ip_policy_rules/"+rid, e.Admin, map[string]any{"cidr": "10.1.0.0/16", "metadata": "m"}))
		if cptest.Str(upd, "cidr") != "10.1.0.0/16" || cptest.Str(upd, "action") != "allow" || cptest.Str(upd, "description") != "vpn" || cptest.Str(upd, "metadata") != "m" {
			t.Fatalf("updated rule = %v", upd)
		}
		if got := e.Must(200, e.Call("GET", "/ip_policy_rules/"+rid, e.Admin, nil)); cptest.Str(got, "cidr") != "10.1.0.0/16" {
			t.Fatalf("got rule = %v", got)
		}
		list := e.Must(200, e.Call("GET", "/ip_policy_rules", e.Admin, nil))
		wantKeys(t, list, "ip_policy_rules", "uri", "next_page_uri")
		if items, _ := list["ip_policy_rules"].([]any); len(items) != 2 || list["next_page_uri"] != nil {
			t.Fatalf("rules list = %v", list)
		}
		page := e.Must(200, e.Call("GET", "/ip_policy_rules?limit=1", e.Admin, nil))
		next, err := url.Parse(cptest.Str(page, "next_page_uri"))
		if items, _ := page["ip_policy_rules"].([]any); len(items) != 1 || err != nil || next.Query().Get("limit") != "1" {
			t.Fatalf("first page = %v", page)
		}
		rest := e.Must(200, e.Call("GET", next.String(), e.Admin, nil))
		if items, _ := rest["ip_policy_rules"].([]any); len(items) != 1 || rest["next_page_uri"] != nil {
			t.Fatalf("second page = %v", rest)
		}

		// A restriction names policies by reference, in order.
		pol2 := e.Must(201, e.Call("POST", "/ip_policies", e.Admin, map[string]any{}))
		pid2 := cptest.Str(pol2, "id")
		x := e.Must(201, e.Call("POST", "/ip_restrictions", e.Admin, map[string]any{"type": "endpoints", "ip_policy_ids": []string{pid2, pid}}))
		wantKeys(t, x, "id", "uri", "created_at", "description", "metadata", "enforced", "type", "ip_policies")
		xid := cptest.Str(x, "id")
		refs, _ := x["ip_policies"].([]any)
		if !strings.HasPrefix(xid, "ipx_") || x["enforced"] != false || cptest.Str(x, "type") != "endpoints" || len(refs) != 2 {
			t.Fatalf("created restriction = %v", x)
		}
		if id0, _ := ref(t, refs[0]); id0 != pid2 {
			t.Fatalf("ip_policies order = %v", refs)
		}
		xs := e.Must(200, e.Call("GET", "/ip_restrictions", e.Admin, nil))
		if items, _ := xs["ip_restrictions"].([]any); len(items) != 1 || fmt.Sprint(items[0].(map[string]any)["ip_policies"]) != fmt.Sprint(x["ip_policies"]) {
			t.Fatalf("restrictions list = %v", xs)
		}
		if ps := e.Must(200, e.Call("GET", "/ip_policies", e.Admin, nil)); len(ps["ip_policies"].([]any)) != 2 {
			t.Fatalf("policies list = %v", ps)
		}

		// The edge's snapshot has the policy's rules and the restriction.
		snap, err := e.Core.Snapshot(ctx, start.Revision())
		if err != nil {
			t.Fatal(err)
		}
		sp, ok := snap.IPPolicy(pid)
		if !ok || len(sp.Rules) != 2 || len(snap.IPRestrictions(e.Dev.AccountID)) != 1 {
			t.Fatalf("snapshot policy %+v, restrictions %+v", sp, snap.IPRestrictions(e.Dev.AccountID))
		}

		// A policy in use cannot be deleted until the restriction lets go.
		cptest.WantError(t, e.Call("DELETE", "/ip_policies/"+pid, e.Admin, nil), 409, string(codes.IPPolicyInUse))
		cptest.WantError(t, e.Call("PATCH", "/ip_restrictions/"+xid, e.Admin, map[string]any{"type": "api"}), 400, string(codes.APIUnknownParam))
		upx := e.Must(200, e.Call("PATCH", "/ip_restrictions/"+xid, e.Admin, map[string]any{"ip_policy_ids": []string{pid2}, "enforced": true}))
		if refs, _ := upx["ip_policies"].([]any); len(refs) != 1 || upx["enforced"] != true || cptest.Str(upx, "type") != "endpoints" {
			t.Fatalf("updated restriction = %v", upx)
		}
		e.Must(200, e.Call("PATCH", "/ip_policies/"+pid, e.Admin, map[string]any{"description": "old office"}))
		e.Must(204, e.Call("DELETE", "/ip_policies/"+pid, e.Admin, nil))
		cptest.WantError(t, e.Call("GET", "/ip_policy_rules/"+rid, e.Admin, nil), 404, string(codes.APINotFound))
		cptest.WantError(t, e.Call("DELETE", "/ip_policy_rules/"+cptest.Str(host, "id"), e.Admin, nil), 404, string(codes.APINotFound))
		e.Must(204, e.Call("DELETE", "/ip_restrictions/"+xid, e.Admin, nil))
		cptest.WantError(t, e.Call("GET", "/ip_restrictions/"+xid, e.Admin, nil), 404, string(codes.APINotFound))
		e.Must(204, e.Call("DELETE", "/ip_policies/"+pid2, e.Admin, nil))

		// Every mutation left one audit event naming the admin and the key.
		evs, _, err := e.Store.ListAuditEvents(ctx, e.Dev.AccountID, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, ev := range evs {
			if strings.HasPrefix(ev.Type, "ip_") {
				if ev.ActorID != e.Dev.UserID || ev.ActorCredentialID != e.Dev.APIKeyID {
					t.Fatalf("event %s by %s/%s", ev.Type, ev.ActorID, ev.ActorCredentialID)
				}
				count[ev.Type]++
			}
		}
		want := map[string]int{
			"ip_policy_created.v0": 2, "ip_policy_updated.v0": 1, "ip_policy_deleted.v0": 2,
			"ip_policy_rule_created.v0": 2, "ip_policy_rule_updated.v0": 1, "ip_policy_rule_deleted.v0": 2,
			"ip_restriction_created.v0": 1, "ip_restriction_updated.v0": 1, "ip_restriction_deleted.v0": 1,
		}
		if fmt.Sprint(count) != fmt.Sprint(want) {
			t.Fatalf("audit events %v, want %v", count, want)
		}
	})
}

func TestIPPolicyAPIBadInputChangesNothing(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		ctx := cptest.Ctx(t)
		pid := cptest.Str(e.Must(201, e.Call("POST", "/ip_policies", e.Admin, map[string]any{})), "id")
		rid := cptest.Str(e.Must(201, e.Call("POST", "/ip_policy_rules", e.Admin, map[string]any{"ip_policy_id": pid, "cidr": "192.0.2.0/24", "action": "allow"})), "id")
		xid := cptest.Str(e.Must(201, e.Call("POST", "/ip_restrictions", e.Admin, map[string]any{"type": "api", "ip_policy_ids": []string{pid}})), "id")
		other, err := e.Store.CreateAccount(ctx, store.SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		otherPol, err := e.Store.CreateIPPolicy(ctx, store.SystemActor, other.ID, store.IPPolicyCreate{})
		if err != nil {
			t.Fatal(err)
		}
		otherRule, err := e.Store.CreateIPPolicyRule(ctx, store.SystemActor, other.ID, store.IPPolicyRuleCreate{IPPolicyID: otherPol.ID, CIDR: "1.2.3.4", Action: "deny"})
		if err != nil {
			t.Fatal(err)
		}
		otherX, err := e.Store.CreateIPRestriction(ctx, store.SystemActor, other.ID, store.IPRestrictionCreate{Type: "agent", IPPolicyIDs: []string{otherPol.ID}})
		if err != nil {
			t.Fatal(err)
		}
		rule := func(kv ...any) map[string]any {
			m := map[string]any{"ip_policy_id": pid, "cidr": "198.51.100.0/24", "action": "deny"}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		}
		long := strings.Repeat("d", 256)
		cases := []struct {
			name, method, path string
			body               any
			status             int
			code               codes.Code
		}{
			{"policy unknown field", "POST", "/ip_policies", `{"action":"allow"}`, 400, codes.APIUnknownParam},
			{"policy wrong type", "POST", "/ip_policies", `{"description":1}`, 400, codes.APIBodyInvalid},
			{"policy description", "POST", "/ip_policies", map[string]any{"description": long}, 400, codes.APIDescriptionLength},
			{"policy metadata", "PATCH", "/ip_policies/" + pid, map[string]any{"metadata": strings.Repeat("m", 4097)}, 400, codes.APIMetadataLength},
			{"policy malformed id", "GET", "/ip_policies/ipp_123", nil, 400, codes.APIInvalidID},
			{"policy id of another kind", "DELETE", "/ip_policies/" + rid, nil, 400, codes.APIInvalidID},
			{"policy of another account", "GET", "/ip_policies/" + otherPol.ID, nil, 404, codes.APINotFound},
			{"policy of another account patch", "PATCH", "/ip_policies/" + otherPol.ID, map[string]any{"description": "x"}, 404, codes.APINotFound},
			{"policy of another account delete", "DELETE", "/ip_policies/" + otherPol.ID, nil, 404, codes.APINotFound},
			{"policy limit 0", "GET", "/ip_policies?limit=0", nil, 400, codes.APIPageSize},
			{"policy limit 101", "GET", "/ip_policies?limit=101", nil, 400, codes.APIPageSize},
			{"policy bad before_id", "GET", "/ip_policies?before_id=" + rid, nil, 400, codes.APIInvalidID},
			{"policy in use", "DELETE", "/ip_policies/" + pid, nil, 409, codes.IPPolicyInUse},
			{"policy method", "PUT", "/ip_policies/" + pid, `{}`, 405, codes.APIMethodNotAllowed},

			{"rule not network", "POST", "/ip_policy_rules", rule("cidr", "198.51.100.7/24"), 400, codes.IPRuleCIDRNotNetwork},
			{"rule bad cidr", "POST", "/ip_policy_rules", rule("cidr", "198.51.100.0/33"), 400, codes.IPRuleCIDRInvalid},
			{"rule no cidr", "POST", "/ip_policy_rules", rule("cidr", ""), 400, codes.IPRuleCIDRInvalid},
			{"rule cidr not a string", "POST", "/ip_policy_rules", rule("cidr", 10), 400, codes.APIBodyInvalid},
			{"rule bad action", "POST", "/ip_policy_rules", rule("action", "block"), 400, codes.IPRuleAction},
			{"rule duplicate", "POST", "/ip_policy_rules", rule("cidr", "192.0.2.0/24"), 409, codes.IPRuleDuplicate},
			{"rule duplicate other spelling", "POST", "/ip_policy_rules", rule("cidr", "::ffff:192.0.2.0/120"), 409, codes.IPRuleDuplicate},
			{"rule unknown field", "POST", "/ip_policy_rules", rule("ip_policy", pid), 400, codes.APIUnknownParam},
			{"rule description", "POST", "/ip_policy_rules", rule("description", long), 400, codes.APIDescriptionLength},
			{"rule metadata", "POST", "/ip_policy_rules", rule("metadata", strings.Repeat("m", 4097)), 400, codes.APIMetadataLength},
			{"rule malformed policy id", "POST", "/ip_policy_rules", rule("ip_policy_id", "ipp_x"), 400, codes.APIInvalidID},
			{"rule no policy id", "POST", "/ip_policy_rules", rule("ip_policy_id", ""), 400, codes.IPRulePolicy},
			{"rule in another account's policy", "POST", "/ip_policy_rules", rule("ip_policy_id", otherPol.ID), 400, codes.IPRulePolicy},
			{"rule of another account", "GET", "/ip_policy_rules/" + otherRule.ID, nil, 404, codes.APINotFound},
			{"rule of another account patch", "PATCH", "/ip_policy_rules/" + otherRule.ID, map[string]any{"action": "allow"}, 404, codes.APINotFound},
			{"rule of another account delete", "DELETE", "/ip_policy_rules/" + otherRule.ID, nil, 404, codes.APINotFound},
			{"rule patch not network", "PATCH", "/ip_policy_rules/" + rid, map[string]any{"cidr": "192.0.2.1/24"}, 400, codes.IPRuleCIDRNotNetwork},
			{"rule patch action", "PATCH", "/ip_policy_rules/" + rid, map[string]any{"action": "ALLOW"}, 400, codes.IPRuleAction},
			{"rule patch policy", "PATCH", "/ip_policy_rules/" + rid, map[string]any{"ip_policy_id": pid}, 400, codes.APIUnknownParam},
			{"rule limit", "GET", "/ip_policy_rules?limit=-1", nil, 400, codes.APIPageSize},
			{"rule malformed id", "PATCH", "/ip_policy_rules/ipr_", map[string]any{}, 400, codes.APIInvalidID},

			{"restriction bad type", "POST", "/ip_restrictions", map[string]any{"type": "ssh", "ip_policy_ids": []string{pid}}, 400, codes.IPRestrictionType},
			{"restriction no type", "POST", "/ip_restrictions", map[string]any{"ip_policy_ids": []string{pid}}, 400, codes.IPRestrictionType},
			{"restriction no policies", "POST", "/ip_restrictions", map[string]any{"type": "api"}, 400, codes.IPPolicyIDs},
			{"restriction empty policies", "POST", "/ip_restrictions", map[string]any{"type": "api", "ip_policy_ids": []string{}}, 400, codes.IPPolicyIDs},
			{"restriction other account's policy", "POST", "/ip_restrictions", map[string]any{"type": "api", "ip_policy_ids": []string{pid, otherPol.ID}}, 400, codes.IPPolicyIDs},
			{"restriction malformed policy", "POST", "/ip_restrictions", map[string]any{"type": "api", "ip_policy_ids": []string{rid}}, 400, codes.APIInvalidID},
			{"restriction ids not a list", "POST", "/ip_restrictions", `{"type":"api","ip_policy_ids":"` + pid + `"}`, 400, codes.APIBodyInvalid},
			{"restriction enforced not bool", "POST", "/ip_restrictions", map[string]any{"type": "api", "ip_policy_ids": []string{pid}, "enforced": "yes"}, 400, codes.APIBodyInvalid},
			{"restriction description", "PATCH", "/ip_restrictions/" + xid, map[string]any{"description": long}, 400, codes.APIDescriptionLength},
			{"restriction patch type", "PATCH", "/ip_restrictions/" + xid, map[string]any{"type": "agent"}, 400, codes.APIUnknownParam},
			{"restriction patch empty", "PATCH", "/ip_restrictions/" + xid, map[string]any{"ip_policy_ids": []string{}}, 400, codes.IPPolicyIDs},
			{"restriction patch foreign", "PATCH", "/ip_restrictions/" + xid, map[string]any{"ip_policy_ids": []string{otherPol.ID}}, 400, codes.IPPolicyIDs},
			{"restriction of another account", "GET", "/ip_restrictions/" + otherX.ID, nil, 404, codes.APINotFound},
			{"restriction of another account delete", "DELETE", "/ip_restrictions/" + otherX.ID, nil, 404, codes.APINotFound},
			{"restriction limit", "GET", "/ip_restrictions?limit=1000", nil, 400, codes.APIPageSize},
			{"restriction query on create", "POST", "/ip_restrictions?type=api", map[string]any{}, 400, codes.APIUnknownParam},
			{"restriction body on delete", "DELETE", "/ip_restrictions/" + xid, `{"x":1}`, 400, codes.APIBodyNotAllowed},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := e.Revision()
				cptest.WantError(t, e.Call(tc.method, tc.path, e.Admin, tc.body), tc.status, string(tc.code))
				if after := e.Revision(); after != before {
					t.Fatalf("refused request moved the revision %d -> %d", before, after)
				}
			})
		}
		// At the limits is accepted.
		e.Must(201, e.Call("POST", "/ip_policies", e.Admin, map[string]any{"description": strings.Repeat("d", 255), "metadata": strings.Repeat("m", 4096)}))
		e.Must(200, e.Call("GET", "/ip_restrictions?limit=100", e.Admin, nil))
	})
}

func TestIPPolicyAPIRoles(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		ctx := cptest.Ctx(t)
		ro, err := e.Store.CreateUser(ctx, store.SystemActor, "viewer@example.com", "Viewer")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: e.Dev.AccountID, UserID: ro.ID,
			Developer: store.DeveloperRO, Team: store.TeamRO}); err != nil {
			t.Fatal(err)
		}
		roKey := cptest.Str(e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": ro.ID})), "token")
		bot := e.Must(201, e.Call("POST", "/bot_users", e.Admin, map[string]any{"name": "ci"}))
		botKey := cptest.Str(e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": cptest.Str(bot, "id")})), "token")

		// A read/write bot creates; its events name it.
		pid := cptest.Str(e.Must(201, e.Call("POST", "/ip_policies", botKey, map[string]any{})), "id")
		rid := cptest.Str(e.Must(201, e.Call("POST", "/ip_policy_rules", botKey, map[string]any{"ip_policy_id": pid, "cidr": "0.0.0.0/0", "action": "allow"})), "id")
		xid := cptest.Str(e.Must(201, e.Call("POST", "/ip_restrictions", botKey, map[string]any{"type": "agent", "ip_policy_ids": []string{pid}})), "id")
		evs, _, err := e.Store.ListAuditEvents(ctx, e.Dev.AccountID, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Type == "ip_restriction_created.v0" && ev.ObjectID == xid && ev.ActorID != cptest.Str(bot, "id") {
				t.Fatalf("restriction created by %s, want the bot", ev.ActorID)
			}
		}

		// A read-only member reads everything and changes nothing.
		for _, p := range []string{"/ip_policies", "/ip_policies/" + pid, "/ip_policy_rules", "/ip_policy_rules/" + rid, "/ip_restrictions", "/ip_restrictions/" + xid} {
			e.Must(200, e.Call("GET", p, roKey, nil))
		}
		before := e.Revision()
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/ip_policies", map[string]any{}},
			{"PATCH", "/ip_policies/" + pid, map[string]any{"description": "x"}},
			{"DELETE", "/ip_policies/" + pid, nil},
			{"POST", "/ip_policy_rules", map[string]any{"ip_policy_id": pid, "cidr": "10.0.0.0/8", "action": "deny"}},
			{"PATCH", "/ip_policy_rules/" + rid, map[string]any{"action": "deny"}},
			{"DELETE", "/ip_policy_rules/" + rid, nil},
			{"POST", "/ip_restrictions", map[string]any{"type": "api", "ip_policy_ids": []string{pid}}},
			{"PATCH", "/ip_restrictions/" + xid, map[string]any{"enforced": true}},
			{"DELETE", "/ip_restrictions/" + xid, nil},
		} {
			cptest.WantError(t, e.Call(c.method, c.path, roKey, c.body), 403, string(codes.APIForbidden))
		}
		if e.Revision() != before {
			t.Fatal("a read-only member's refused writes moved the revision")
		}
	})
}
