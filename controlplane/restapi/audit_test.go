package controlplane

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

func TestAuditEvents(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		key := e.must(201, e.call("POST", "/api_keys", e.admin, map[string]any{"description": "ci"}))
		cred := e.must(201, e.call("POST", "/credentials", e.admin, map[string]any{"acl": []string{"bind:app.example.com"}}))
		e.must(200, e.call("PATCH", "/credentials/"+str(cred, "id"), e.admin, map[string]any{"description": "laptop"}))

		list := e.must(200, e.call("GET", "/audit_events", e.admin, nil))
		items, _ := list["audit_events"].([]any)
		if len(items) < 3 || list["next_page_uri"] != nil || str(list, "uri") != e.http.URL+"/audit_events" {
			t.Fatalf("list = %v", list)
		}
		// Newest first, exactly in commit order, even within one second.
		wantTypes := []string{"credential_updated.v0", "credential_created.v0", "api_key_created.v0"}
		for i, want := range wantTypes {
			if got := str(items[i].(map[string]any), "type"); got != want {
				t.Fatalf("event %d is %q, want %q; list = %v", i, got, want, items)
			}
		}
		upd := items[0].(map[string]any)
		principal, _ := upd["principal"].(map[string]any)
		credential, _ := upd["credential"].(map[string]any)
		object, _ := upd["object"].(map[string]any)
		payload, _ := upd["payload"].(map[string]any)
		if str(principal, "id") != e.dev.UserID || str(principal, "uri") != e.http.URL+"/users/"+e.dev.UserID ||
			str(credential, "id") != e.dev.APIKeyID || str(credential, "uri") != e.http.URL+"/api_keys/"+e.dev.APIKeyID ||
			str(object, "id") != str(cred, "id") || str(object, "uri") != e.http.URL+"/credentials/"+str(cred, "id") ||
			str(payload, "description") != "laptop" || !strings.HasPrefix(str(upd, "id"), ids.PrefixAuditEvent+"_") ||
			str(upd, "uri") != e.http.URL+"/audit_events/"+str(upd, "id") || str(upd, "created_at") == "" {
			t.Fatalf("event = %v", upd)
		}
		// Bootstrap events are the system's: no credential, no uri.
		last := items[len(items)-1].(map[string]any)
		if p, _ := last["principal"].(map[string]any); str(p, "id") != "system" || p["uri"] != nil || last["credential"] != nil {
			t.Fatalf("oldest event = %v", last)
		}
		// Secrets never appear in the log.
		raw := e.call("GET", "/audit_events", e.admin, nil)
		for _, secret := range []string{str(key, "token"), str(cred, "token"), e.admin} {
			if strings.Contains(string(raw.body), secret) {
				t.Fatal("the audit log shows a secret")
			}
		}

		// Paging: limit 1, then follow next_page_uri.
		p1 := e.must(200, e.call("GET", "/audit_events?limit=1", e.admin, nil))
		next, _ := p1["next_page_uri"].(string)
		if next == "" {
			t.Fatalf("page 1 = %v", p1)
		}
		p2 := e.must(200, e.call("GET", next, e.admin, nil))
		p2items, _ := p2["audit_events"].([]any)
		if len(p2items) != 1 || str(p2items[0].(map[string]any), "type") != "credential_created.v0" {
			t.Fatalf("page 2 = %v", p2)
		}

		one := e.must(200, e.call("GET", "/audit_events/"+str(upd, "id"), e.admin, nil))
		if str(one, "type") != "credential_updated.v0" || str(one, "id") != str(upd, "id") {
			t.Fatalf("get = %v", one)
		}
		wantError(t, e.call("GET", "/audit_events/"+ids.New(ids.PrefixAuditEvent), e.admin, nil), 404, string(codes.APINotFound))
		wantError(t, e.call("GET", "/audit_events/"+e.dev.APIKeyID, e.admin, nil), 400, string(codes.APIInvalidID))
		wantError(t, e.call("DELETE", "/audit_events/"+str(upd, "id"), e.admin, nil), 405, string(codes.APIMethodNotAllowed))
		wantError(t, e.call("GET", "/audit_events?limit=0", e.admin, nil), 400, string(codes.APIPageSize))
	})
}

func TestAuditEventsReaders(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		_, managerKey := e.memberKey("manager@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamManager})
		_, devKey := e.memberKey("dev@example.com", store.Membership{Developer: store.DeveloperRW, Team: store.TeamRO})
		bot := e.must(201, e.call("POST", "/bot_users", e.admin, map[string]any{"name": "exporter"}))
		botKey := str(e.must(201, e.call("POST", "/api_keys", e.admin, map[string]any{"owner_id": str(bot, "id")})), "token")

		e.must(200, e.call("GET", "/audit_events", managerKey, nil))
		for name, k := range map[string]string{"developer": devKey, "bot user": botKey} {
			wantError(t, e.call("GET", "/audit_events", k, nil), 403, string(codes.APIForbidden))
			evs, _, err := e.store.ListAuditEvents(testCtx(t), e.dev.AccountID, store.Page{Limit: 1})
			if err != nil || len(evs) != 1 {
				t.Fatalf("%s: %v", name, err)
			}
			wantError(t, e.call("GET", "/audit_events/"+evs[0].ID, k, nil), 403, string(codes.APIForbidden))
		}
		// Another account's events are not visible.
		other, err := e.store.CreateAccount(testCtx(t), store.SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.store.RecordEvent(testCtx(t), store.SystemActor, other.ID, "test_event.v0", other.ID, map[string]any{}); err != nil {
			t.Fatal(err)
		}
		evs, _, err := e.store.ListAuditEvents(testCtx(t), other.ID, store.Page{Limit: 1})
		if err != nil || len(evs) != 1 || evs[0].Type != "test_event.v0" {
			t.Fatalf("other account's events = %+v, %v", evs, err)
		}
		wantError(t, e.call("GET", "/audit_events/"+evs[0].ID, e.admin, nil), 404, string(codes.APINotFound))
	})
}
