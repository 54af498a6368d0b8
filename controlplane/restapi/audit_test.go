package restapi_test

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

func TestAuditEvents(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		key := e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"description": "ci"}))
		cred := e.Must(201, e.Call("POST", "/credentials", e.Admin, map[string]any{"acl": []string{"bind:app.example.com"}}))
		e.Must(200, e.Call("PATCH", "/credentials/"+cptest.Str(cred, "id"), e.Admin, map[string]any{"description": "laptop"}))

		list := e.Must(200, e.Call("GET", "/audit_events", e.Admin, nil))
		items, _ := list["audit_events"].([]any)
		if len(items) < 3 || list["next_page_uri"] != nil || cptest.Str(list, "uri") != e.HTTP.URL+"/audit_events" {
			t.Fatalf("list = %v", list)
		}
		// Newest first, exactly in commit order, even within one second.
		wantTypes := []string{"credential_updated.v0", "credential_created.v0", "api_key_created.v0"}
		for i, want := range wantTypes {
			if got := cptest.Str(items[i].(map[string]any), "type"); got != want {
				t.Fatalf("event %d is %q, want %q; list = %v", i, got, want, items)
			}
		}
		upd := items[0].(map[string]any)
		principal, _ := upd["principal"].(map[string]any)
		credential, _ := upd["credential"].(map[string]any)
		object, _ := upd["object"].(map[string]any)
		payload, _ := upd["payload"].(map[string]any)
		if cptest.Str(principal, "id") != e.Dev.UserID || cptest.Str(principal, "uri") != e.HTTP.URL+"/users/"+e.Dev.UserID ||
			cptest.Str(credential, "id") != e.Dev.APIKeyID || cptest.Str(credential, "uri") != e.HTTP.URL+"/api_keys/"+e.Dev.APIKeyID ||
			cptest.Str(object, "id") != cptest.Str(cred, "id") || cptest.Str(object, "uri") != e.HTTP.URL+"/credentials/"+cptest.Str(cred, "id") ||
			cptest.Str(payload, "description") != "laptop" || !strings.HasPrefix(cptest.Str(upd, "id"), ids.PrefixAuditEvent+"_") ||
			cptest.Str(upd, "uri") != e.HTTP.URL+"/audit_events/"+cptest.Str(upd, "id") || cptest.Str(upd, "created_at") == "" {
			t.Fatalf("event = %v", upd)
		}
		// Bootstrap events are the system's: no credential, no uri.
		last := items[len(items)-1].(map[string]any)
		if p, _ := last["principal"].(map[string]any); cptest.Str(p, "id") != "system" || p["uri"] != nil || last["credential"] != nil {
			t.Fatalf("oldest event = %v", last)
		}
		// Secrets never appear in the log.
		raw := e.Call("GET", "/audit_events", e.Admin, nil)
		for _, secret := range []string{cptest.Str(key, "token"), cptest.Str(cred, "token"), e.Admin} {
			if strings.Contains(string(raw.Body), secret) {
				t.Fatal("the audit log shows a secret")
			}
		}

		// Paging: limit 1, then follow next_page_uri.
		p1 := e.Must(200, e.Call("GET", "/audit_events?limit=1", e.Admin, nil))
		next, _ := p1["next_page_uri"].(string)
		if next == "" {
			t.Fatalf("page 1 = %v", p1)
		}
		p2 := e.Must(200, e.Call("GET", next, e.Admin, nil))
		p2items, _ := p2["audit_events"].([]any)
		if len(p2items) != 1 || cptest.Str(p2items[0].(map[string]any), "type") != "credential_created.v0" {
			t.Fatalf("page 2 = %v", p2)
		}

		one := e.Must(200, e.Call("GET", "/audit_events/"+cptest.Str(upd, "id"), e.Admin, nil))
		if cptest.Str(one, "type") != "credential_updated.v0" || cptest.Str(one, "id") != cptest.Str(upd, "id") {
			t.Fatalf("get = %v", one)
		}
		cptest.WantError(t, e.Call("GET", "/audit_events/"+ids.New(ids.PrefixAuditEvent), e.Admin, nil), 404, string(codes.APINotFound))
		cptest.WantError(t, e.Call("GET", "/audit_events/"+e.Dev.APIKeyID, e.Admin, nil), 400, string(codes.APIInvalidID))
		cptest.WantError(t, e.Call("DELETE", "/audit_events/"+cptest.Str(upd, "id"), e.Admin, nil), 405, string(codes.APIMethodNotAllowed))
		cptest.WantError(t, e.Call("GET", "/audit_events?limit=0", e.Admin, nil), 400, string(codes.APIPageSize))
	})
}

func TestAuditEventsReaders(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		_, managerKey := e.MemberKey("manager@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamManager})
		_, devKey := e.MemberKey("dev@example.com", store.Membership{Developer: store.DeveloperRW, Team: store.TeamRO})
		bot := e.Must(201, e.Call("POST", "/bot_users", e.Admin, map[string]any{"name": "exporter"}))
		botKey := cptest.Str(e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": cptest.Str(bot, "id")})), "token")

		e.Must(200, e.Call("GET", "/audit_events", managerKey, nil))
		for name, k := range map[string]string{"developer": devKey, "bot user": botKey} {
			cptest.WantError(t, e.Call("GET", "/audit_events", k, nil), 403, string(codes.APIForbidden))
			evs, _, err := e.Store.ListAuditEvents(cptest.Ctx(t), e.Dev.AccountID, store.Page{Limit: 1})
			if err != nil || len(evs) != 1 {
				t.Fatalf("%s: %v", name, err)
			}
			cptest.WantError(t, e.Call("GET", "/audit_events/"+evs[0].ID, k, nil), 403, string(codes.APIForbidden))
		}
		// Another account's events are not visible.
		other, err := e.Store.CreateAccount(cptest.Ctx(t), store.SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Store.RecordEvent(cptest.Ctx(t), store.SystemActor, other.ID, "test_event.v0", other.ID, map[string]any{}); err != nil {
			t.Fatal(err)
		}
		evs, _, err := e.Store.ListAuditEvents(cptest.Ctx(t), other.ID, store.Page{Limit: 1})
		if err != nil || len(evs) != 1 || evs[0].Type != "test_event.v0" {
			t.Fatalf("other account's events = %+v, %v", evs, err)
		}
		cptest.WantError(t, e.Call("GET", "/audit_events/"+evs[0].ID, e.Admin, nil), 404, string(codes.APINotFound))
	})
}
