package controlplane

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
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
	return str(m, "id"), str(m, "uri")
}

func TestIPPolicyAPILifecycle(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		start, err := e.srv.Snapshot(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		pol := e.must(201, e.call("POST", "/ip_policies", e.admin, map[string]any{"description": "office", "metadata": `{"k":1}`}))
		wantKeys(t, pol, "id", "uri", "created_at", "description", "metadata")
		pid := str(pol, "id")
		if !strings.HasPrefix(pid, "ipp_") || str(pol, "uri") != e.http.URL+"/ip_policies/"+pid || str(pol, "description") != "office" {
			t.Fatalf("created policy = %v", pol)
		}

		// A CIDR that is not its network address is refused, naming the right one.
		r := e.call("POST", "/ip_policy_rules", e.admin, map[string]any{"ip_policy_id": pid, "cidr": "10.0.0.5/8", "action": "allow"})
		wantError(t, r, 400, string(codes.IPRuleCIDRNotNetwork))
		if msg := str(r.obj(t), "msg"); !strings.Contains(msg, "use 10.0.0.0/8") {
			t.Fatalf("msg %q does not name the network address", msg)
		}

		rule := e.must(201, e.call("POST", "/ip_policy_rules", e.admin, map[string]any{
			"ip_policy_id": pid, "cidr": "::ffff:10.0.0.0/104", "action": "allow", "description": "vpn"}))
		wantKeys(t, rule, "id", "uri", "created_at", "description", "metadata", "cidr", "ip_policy", "action")
		rid := str(rule, "id")
		if refID, refURI := ref(t, rule["ip_policy"]); refID != pid || refURI != e.http.URL+"/ip_policies/"+pid {
			t.Fatalf("rule ip_policy = %v", rule["ip_policy"])
		}
		if !strings.HasPrefix(rid, "ipr_") || str(rule, "cidr") != "10.0.0.0/8" || str(rule, "action") != "allow" ||
			str(rule, "uri") != e.http.URL+"/ip_policy_rules/"+rid {
			t.Fatalf("created rule = %v", rule)
		}
		wantError(t, e.call("POST", "/ip_policy_rules", e.admin, map[string]any{"ip_policy_id": pid, "cidr": "10.0.0.0/8", "action": "deny"}),
			409, string(codes.IPRuleDuplicate))
		host := e.must(201, e.call("POST", "/ip_policy_rules", e.admin, map[string]any{"ip_policy_id": pid, "cidr": "2001:DB8::1", "action": "deny"}))
		if str(host, "cidr") != "2001:db8::1/128" {
			t.Fatalf("host rule cidr %v", host["cidr"])
		}
		upd := e.must(200, e.call("PATCH", "/ip_policy_rules/"+rid, e.admin, map[string]any{"cidr": "10.1.0.0/16", "metadata": "m"}))
		if str(upd, "cidr") != "10.1.0.0/16" || str(upd, "action") != "allow" || str(upd, "description") != "vpn" || str(upd, "metadata") != "m" {
			t.Fatalf("updated rule = %v", upd)
		}
		if got := e.must(200, e.call("GET", "/ip_policy_rules/"+rid, e.admin, nil)); str(got, "cidr") != "10.1.0.0/16" {
			t.Fatalf("got rule = %v", got)
		}
		list := e.must(200, e.call("GET", "/ip_policy_rules", e.admin, nil))
		wantKeys(t, list, "ip_policy_rules", "uri", "next_page_uri")
		if items, _ := list["ip_policy_rules"].([]any); len(items) != 2 || list["next_page_uri"] != nil {
			t.Fatalf("rules list = %v", list)
		}
		page := e.must(200, e.call("GET", "/ip_policy_rules?limit=1", e.admin, nil))
		next, err := url.Parse(str(page, "next_page_uri"))
		if items, _ := page["ip_policy_rules"].([]any); len(items) != 1 || err != nil || next.Query().Get("limit") != "1" {
			t.Fatalf("first page = %v", page)
		}
		rest := e.must(200, e.call("GET", next.String(), e.admin, nil))
		if items, _ := rest["ip_policy_rules"].([]any); len(items) != 1 || rest["next_page_uri"] != nil {
			t.Fatalf("second page = %v", rest)
		}

		// A restriction names policies by reference, in order.
		pol2 := e.must(201, e.call("POST", "/ip_policies", e.admin, map[string]any{}))
		pid2 := str(pol2, "id")
		x := e.must(201, e.call("POST", "/ip_restrictions", e.admin, map[string]any{"type": "endpoints", "ip_policy_ids": []string{pid2, pid}}))
		wantKeys(t, x, "id", "uri", "created_at", "description", "metadata", "enforced", "type", "ip_policies")
		xid := str(x, "id")
		refs, _ := x["ip_policies"].([]any)
		if !strings.HasPrefix(xid, "ipx_") || x["enforced"] != false || str(x, "type") != "endpoints" || len(refs) != 2 {
			t.Fatalf("created restriction = %v", x)
		}
		if id0, _ := ref(t, refs[0]); id0 != pid2 {
			t.Fatalf("ip_policies order = %v", refs)
		}
		xs := e.must(200, e.call("GET", "/ip_restrictions", e.admin, nil))
		if items, _ := xs["ip_restrictions"].([]any); len(items) != 1 || fmt.Sprint(items[0].(map[string]any)["ip_policies"]) != fmt.Sprint(x["ip_policies"]) {
			t.Fatalf("restrictions list = %v", xs)
		}
		if ps := e.must(200, e.call("GET", "/ip_policies", e.admin, nil)); len(ps["ip_policies"].([]any)) != 2 {
			t.Fatalf("policies list = %v", ps)
		}

		// The edge's snapshot has the policy's rules and the restriction.
		snap, err := e.srv.Snapshot(ctx, start.Revision())
		if err != nil {
			t.Fatal(err)
		}
		sp, ok := snap.IPPolicy(pid)
		if !ok || len(sp.Rules) != 2 || len(snap.IPRestrictions(e.dev.AccountID)) != 1 {
			t.Fatalf("snapshot policy %+v, restrictions %+v", sp, snap.IPRestrictions(e.dev.AccountID))
		}

		// A policy in use cannot be deleted until the restriction lets go.
		wantError(t, e.call("DELETE", "/ip_policies/"+pid, e.admin, nil), 409, string(codes.IPPolicyInUse))
		wantError(t, e.call("PATCH", "/ip_restrictions/"+xid, e.admin, map[string]any{"type": "api"}), 400, string(codes.APIUnknownParam))
		upx := e.must(200, e.call("PATCH", "/ip_restrictions/"+xid, e.admin, map[string]any{"ip_policy_ids": []string{pid2}, "enforced": true}))
		if refs, _ := upx["ip_policies"].([]any); len(refs) != 1 || upx["enforced"] != true || str(upx, "type") != "endpoints" {
			t.Fatalf("updated restriction = %v", upx)
		}
		e.must(200, e.call("PATCH", "/ip_policies/"+pid, e.admin, map[string]any{"description": "old office"}))
		e.must(204, e.call("DELETE", "/ip_policies/"+pid, e.admin, nil))
		wantError(t, e.call("GET", "/ip_policy_rules/"+rid, e.admin, nil), 404, string(codes.APINotFound))
		wantError(t, e.call("DELETE", "/ip_policy_rules/"+str(host, "id"), e.admin, nil), 404, string(codes.APINotFound))
		e.must(204, e.call("DELETE", "/ip_restrictions/"+xid, e.admin, nil))
		wantError(t, e.call("GET", "/ip_restrictions/"+xid, e.admin, nil), 404, string(codes.APINotFound))
		e.must(204, e.call("DELETE", "/ip_policies/"+pid2, e.admin, nil))

		// Every mutation left one audit event naming the admin and the key.
		evs, _, err := e.store.ListAuditEvents(ctx, e.dev.AccountID, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, ev := range evs {
			if strings.HasPrefix(ev.Type, "ip_") {
				if ev.ActorID != e.dev.UserID || ev.ActorCredentialID != e.dev.APIKeyID {
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
	eachDialect(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		pid := str(e.must(201, e.call("POST", "/ip_policies", e.admin, map[string]any{})), "id")
		rid := str(e.must(201, e.call("POST", "/ip_policy_rules", e.admin, map[string]any{"ip_policy_id": pid, "cidr": "192.0.2.0/24", "action": "allow"})), "id")
		xid := str(e.must(201, e.call("POST", "/ip_restrictions", e.admin, map[string]any{"type": "api", "ip_policy_ids": []string{pid}})), "id")
		other, err := e.store.CreateAccount(ctx, store.SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		otherPol, err := e.store.CreateIPPolicy(ctx, store.SystemActor, other.ID, store.IPPolicyCreate{})
		if err != nil {
			t.Fatal(err)
		}
		otherRule, err := e.store.CreateIPPolicyRule(ctx, store.SystemActor, other.ID, store.IPPolicyRuleCreate{IPPolicyID: otherPol.ID, CIDR: "1.2.3.4", Action: "deny"})
		if err != nil {
			t.Fatal(err)
		}
		otherX, err := e.store.CreateIPRestriction(ctx, store.SystemActor, other.ID, store.IPRestrictionCreate{Type: "agent", IPPolicyIDs: []string{otherPol.ID}})
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
				before := e.revision()
				wantError(t, e.call(tc.method, tc.path, e.admin, tc.body), tc.status, string(tc.code))
				if after := e.revision(); after != before {
					t.Fatalf("refused request moved the revision %d -> %d", before, after)
				}
			})
		}
		// At the limits is accepted.
		e.must(201, e.call("POST", "/ip_policies", e.admin, map[string]any{"description": strings.Repeat("d", 255), "metadata": strings.Repeat("m", 4096)}))
		e.must(200, e.call("GET", "/ip_restrictions?limit=100", e.admin, nil))
	})
}

func TestIPPolicyAPIRoles(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		ro, err := e.store.CreateUser(ctx, store.SystemActor, "viewer@example.com", "Viewer")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: e.dev.AccountID, UserID: ro.ID,
			Developer: store.DeveloperRO, Team: store.TeamRO}); err != nil {
			t.Fatal(err)
		}
		roKey := str(e.must(201, e.call("POST", "/api_keys", e.admin, map[string]any{"owner_id": ro.ID})), "token")
		bot := e.must(201, e.call("POST", "/bot_users", e.admin, map[string]any{"name": "ci"}))
		botKey := str(e.must(201, e.call("POST", "/api_keys", e.admin, map[string]any{"owner_id": str(bot, "id")})), "token")

		// A read/write bot creates; its events name it.
		pid := str(e.must(201, e.call("POST", "/ip_policies", botKey, map[string]any{})), "id")
		rid := str(e.must(201, e.call("POST", "/ip_policy_rules", botKey, map[string]any{"ip_policy_id": pid, "cidr": "0.0.0.0/0", "action": "allow"})), "id")
		xid := str(e.must(201, e.call("POST", "/ip_restrictions", botKey, map[string]any{"type": "agent", "ip_policy_ids": []string{pid}})), "id")
		evs, _, err := e.store.ListAuditEvents(ctx, e.dev.AccountID, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Type == "ip_restriction_created.v0" && ev.ObjectID == xid && ev.ActorID != str(bot, "id") {
				t.Fatalf("restriction created by %s, want the bot", ev.ActorID)
			}
		}

		// A read-only member reads everything and changes nothing.
		for _, p := range []string{"/ip_policies", "/ip_policies/" + pid, "/ip_policy_rules", "/ip_policy_rules/" + rid, "/ip_restrictions", "/ip_restrictions/" + xid} {
			e.must(200, e.call("GET", p, roKey, nil))
		}
		before := e.revision()
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
			wantError(t, e.call(c.method, c.path, roKey, c.body), 403, string(codes.APIForbidden))
		}
		if e.revision() != before {
			t.Fatal("a read-only member's refused writes moved the revision")
		}
	})
}
