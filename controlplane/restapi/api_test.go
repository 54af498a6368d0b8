package restapi_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

func TestBotUserLifecycle(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		bot := e.Must(201, e.Call("POST", "/bot_users", e.Admin, map[string]any{"name": "ci"}))
		botID := cptest.Str(bot, "id")
		if !strings.HasPrefix(botID, "bot_") || bot["active"] != true || cptest.Str(bot, "uri") != e.HTTP.URL+"/bot_users/"+botID {
			t.Fatalf("created bot = %v", bot)
		}
		key := e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": botID, "description": "ci key"}))
		botKey, keyID := cptest.Str(key, "token"), cptest.Str(key, "id")
		if botKey == "" || cptest.Str(key, "owner_id") != botID {
			t.Fatalf("created key = %v", key)
		}
		// The bot's key works and acts as the bot.
		own := e.Must(201, e.Call("POST", "/credentials", botKey, map[string]any{"description": "bot's own"}))
		if cptest.Str(own, "owner_id") != botID {
			t.Fatalf("bot's authtoken owned by %v", own["owner_id"])
		}
		e.Must(200, e.Call("GET", "/api_keys/"+keyID, botKey, nil))

		// Deactivate: the key is refused with a code, and the bot's
		// authtoken is revoked in the snapshot.
		upd := e.Must(200, e.Call("PATCH", "/bot_users/"+botID, e.Admin, map[string]any{"active": false}))
		if upd["active"] != false || cptest.Str(upd, "name") != "ci" {
			t.Fatalf("patched bot = %v", upd)
		}
		cptest.WantError(t, e.Call("GET", "/api_keys", botKey, nil), 403, string(codes.APIPrincipalInactive))
		snap, err := e.Core.Snapshot(cptest.Ctx(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := authn.VerifyAuthtoken(snap, cptest.Str(own, "token")); err != authn.ErrCredentialRevoked {
			t.Fatalf("deactivated bot's authtoken: %v", err)
		}
		// Reactivate.
		e.Must(200, e.Call("PATCH", "/service_users/"+botID, e.Admin, map[string]any{"active": true}))
		e.Must(200, e.Call("GET", "/api_keys", botKey, nil))
		// The alias serves the same object under its own collection.
		alias := e.Must(200, e.Call("GET", "/service_users/"+botID, e.Admin, nil))
		if cptest.Str(alias, "uri") != e.HTTP.URL+"/service_users/"+botID {
			t.Fatalf("alias uri = %v", alias["uri"])
		}
		// Delete: the bot's keys and authtokens go with it.
		e.Must(204, e.Call("DELETE", "/bot_users/"+botID, e.Admin, nil))
		cptest.WantError(t, e.Call("GET", "/api_keys", botKey, nil), 401, string(codes.APIAuthInvalid))
		cptest.WantError(t, e.Call("GET", "/api_keys/"+keyID, e.Admin, nil), 404, string(codes.APINotFound))
		cptest.WantError(t, e.Call("GET", "/credentials/"+cptest.Str(own, "id"), e.Admin, nil), 404, string(codes.APINotFound))
		cptest.WantError(t, e.Call("GET", "/bot_users/"+botID, e.Admin, nil), 404, string(codes.APINotFound))

		// The audit log names the admin as the actor, with the key used.
		evs, _, err := e.Store.ListAuditEvents(cptest.Ctx(t), e.Dev.AccountID, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range evs {
			if ev.Type == "bot_user_deleted.v0" && ev.ObjectID == botID {
				found = ev.ActorID == e.Dev.UserID && ev.ActorCredentialID == e.Dev.APIKeyID
			}
		}
		if !found {
			t.Fatal("no bot_user_deleted.v0 audit event attributed to the admin")
		}
	})
}

func TestAPIKeysCRUD(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		created := e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"description": "deploys", "metadata": `{"team":"x"}`},
			"Ngrok-Version", "2"))
		id := cptest.Str(created, "id")
		if !strings.HasPrefix(id, "ak_") || cptest.Str(created, "owner_id") != e.Dev.UserID || cptest.Str(created, "metadata") != `{"team":"x"}` {
			t.Fatalf("created = %v", created)
		}
		if _, err := time.Parse(time.RFC3339, cptest.Str(created, "created_at")); err != nil || !strings.HasSuffix(cptest.Str(created, "created_at"), "Z") {
			t.Fatalf("created_at %q", created["created_at"])
		}
		kid, _, err := authn.ParseToken(cptest.Str(created, "token"))
		if err != nil || "ak_"+kid != id {
			t.Fatalf("token does not name the key: %v", err)
		}
		got := e.Must(200, e.Call("GET", "/api_keys/"+id, e.Admin, nil))
		if tok, ok := got["token"]; !ok || tok != nil {
			t.Fatalf("token after creation = %v (present %v), want null", tok, ok)
		}
		list := e.Must(200, e.Call("GET", "/api_keys", e.Admin, nil))
		keys, _ := list["keys"].([]any)
		if len(keys) != 2 || list["next_page_uri"] != nil || cptest.Str(list, "uri") != e.HTTP.URL+"/api_keys" {
			t.Fatalf("list = %v", list)
		}
		for _, k := range keys {
			if k.(map[string]any)["token"] != nil {
				t.Fatal("a listed key carries its token")
			}
		}
		upd := e.Must(200, e.Call("PATCH", "/api_keys/"+id, e.Admin, map[string]any{"description": "renamed"}))
		if cptest.Str(upd, "description") != "renamed" || cptest.Str(upd, "metadata") != `{"team":"x"}` {
			t.Fatalf("updated = %v", upd)
		}
		// The new key works; deleting it makes it fail.
		tok := cptest.Str(created, "token")
		e.Must(200, e.Call("GET", "/api_keys/"+id, tok, nil))
		e.Must(204, e.Call("DELETE", "/api_keys/"+id, e.Admin, nil))
		cptest.WantError(t, e.Call("GET", "/api_keys", tok, nil), 401, string(codes.APIAuthInvalid))
		cptest.WantError(t, e.Call("DELETE", "/api_keys/"+id, e.Admin, nil), 404, string(codes.APINotFound))
	})
}

func TestCredentialsCRUD(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		before, err := e.Core.Snapshot(cptest.Ctx(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		created := e.Must(201, e.Call("POST", "/credentials", e.Admin, map[string]any{
			"description": "laptop", "acl": []string{"bind:App.Example.com", "bind:*.example.org", "bind:1.tcp.example.com:20002"}}))
		id, tok := cptest.Str(created, "id"), cptest.Str(created, "token")
		if !strings.HasPrefix(id, "cr_") || tok == "" || fmt.Sprint(created["acl"]) != "[bind:app.example.com bind:*.example.org bind:1.tcp.example.com:20002]" {
			t.Fatalf("created = %v", created)
		}
		// The feed delivers a snapshot in which the authtoken works.
		snap, err := e.Core.Snapshot(cptest.Ctx(t), before.Revision())
		if err != nil {
			t.Fatal(err)
		}
		ident, err := authn.VerifyAuthtoken(snap, tok)
		if err != nil || ident.CredentialID != id || len(ident.ACL) != 3 {
			t.Fatalf("VerifyAuthtoken = %+v, %v", ident, err)
		}
		got := e.Must(200, e.Call("GET", "/credentials/"+id, e.Admin, nil))
		if got["token"] != nil || cptest.Str(got, "description") != "laptop" {
			t.Fatalf("got = %v", got)
		}
		upd := e.Must(200, e.Call("PATCH", "/credentials/"+id, e.Admin, map[string]any{"acl": []string{}}))
		if acl, _ := upd["acl"].([]any); len(acl) != 0 || upd["acl"] == nil {
			t.Fatalf("acl after clearing = %v", upd["acl"])
		}
		list := e.Must(200, e.Call("GET", "/credentials?limit=1", e.Admin, nil))
		if c, _ := list["credentials"].([]any); len(c) != 1 || list["next_page_uri"] == nil {
			t.Fatalf("list = %v", list) // the bootstrap authtoken is the second
		}
		e.Must(204, e.Call("DELETE", "/credentials/"+id, e.Admin, nil))
		snap2, err := e.Core.Snapshot(cptest.Ctx(t), snap.Revision())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := authn.VerifyAuthtoken(snap2, tok); err != authn.ErrAuthtokenInvalid {
			t.Fatalf("deleted authtoken: %v", err)
		}
	})
}

func TestPagingOver250(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		for i := 0; i < 250; i++ {
			e.Must(201, e.Call("POST", "/bot_users", e.Admin, map[string]any{"name": fmt.Sprint("bot-", i)}))
		}
		var ids []string
		next := "/bot_users"
		var sizes []int
		for i := 0; next != "" && i < 10; i++ {
			page := e.Must(200, e.Call("GET", next, e.Admin, nil))
			items, _ := page["bot_users"].([]any)
			sizes = append(sizes, len(items))
			for _, it := range items {
				ids = append(ids, cptest.Str(it.(map[string]any), "id"))
			}
			next = ""
			if n, ok := page["next_page_uri"].(string); ok {
				if !strings.HasPrefix(n, e.HTTP.URL+"/bot_users?") {
					t.Fatalf("next_page_uri %q is not absolute", n)
				}
				next = n
			}
		}
		if fmt.Sprint(sizes) != "[100 100 50]" || len(ids) != 250 {
			t.Fatalf("page sizes %v, %d ids", sizes, len(ids))
		}
		for i := 1; i < len(ids); i++ {
			if ids[i-1] <= ids[i] {
				t.Fatalf("not newest first at %d", i)
			}
		}
		// A smaller limit is carried into next_page_uri.
		p := e.Must(200, e.Call("GET", "/bot_users?limit=30", e.Admin, nil))
		u, err := url.Parse(cptest.Str(p, "next_page_uri"))
		if err != nil || u.Query().Get("limit") != "30" || u.Query().Get("before_id") != ids[29] {
			t.Fatalf("next_page_uri = %v", p["next_page_uri"])
		}
	})
}

func TestBadInputChangesNothing(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		bot := e.Must(201, e.Call("POST", "/bot_users", e.Admin, map[string]any{"name": "b"}))
		botPath := "/bot_users/" + cptest.Str(bot, "id")
		other, err := e.Store.CreateAccount(cptest.Ctx(t), store.SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		otherBot, err := e.Store.CreateBotUser(cptest.Ctx(t), store.SystemActor, other.ID, store.BotUserCreate{Name: "x", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		unknownKey := ids.New(ids.PrefixAPIKey)
		cases := []struct {
			name, method, path string
			body               any
			hdr                []string
			status             int
			code               codes.Code
		}{
			{"unknown field", "POST", "/api_keys", `{"descripton":"x"}`, nil, 400, codes.APIUnknownParam},
			{"field case differs", "POST", "/api_keys", `{"Description":"x"}`, nil, 400, codes.APIUnknownParam},
			{"wrong type", "POST", "/api_keys", `{"description":5}`, nil, 400, codes.APIBodyInvalid},
			{"wrong type bool", "PATCH", botPath, `{"active":"no"}`, nil, 400, codes.APIBodyInvalid},
			{"acl not a list", "POST", "/credentials", `{"acl":"bind:x.com"}`, nil, 400, codes.APIBodyInvalid},
			{"not an object", "POST", "/api_keys", `[1]`, nil, 400, codes.APIBodyInvalid},
			{"null body", "POST", "/api_keys", `null`, nil, 400, codes.APIBodyInvalid},
			{"two objects", "POST", "/api_keys", `{} {}`, nil, 400, codes.APIBodyInvalid},
			{"truncated", "POST", "/api_keys", `{"description":`, nil, 400, codes.APIBodyInvalid},
			{"description 256 bytes", "POST", "/api_keys", map[string]any{"description": strings.Repeat("é", 128)}, nil, 400, codes.APIDescriptionLength},
			{"description patch", "PATCH", "/credentials/" + e.Dev.AuthtokenID, map[string]any{"description": strings.Repeat("d", 256)}, nil, 400, codes.APIDescriptionLength},
			{"metadata 4097", "POST", "/credentials", map[string]any{"metadata": strings.Repeat("m", 4097)}, nil, 400, codes.APIMetadataLength},
			{"bad acl", "POST", "/credentials", map[string]any{"acl": []string{"connect:app.example.com"}}, nil, 400, codes.ACLInvalid},
			{"bad acl port", "POST", "/credentials", map[string]any{"acl": []string{"bind:a.example.com:99999"}}, nil, 400, codes.ACLInvalid},
			{"bot name with newline", "POST", "/bot_users", map[string]any{"name": "a\nb"}, nil, 400, codes.APIInvalidParam},
			{"malformed id", "GET", "/api_keys/ak_123", nil, nil, 400, codes.APIInvalidID},
			{"malformed id delete", "DELETE", "/bot_users/bot_!!", nil, nil, 400, codes.APIInvalidID},
			{"id of another kind", "GET", "/api_keys/" + e.Dev.AuthtokenID, nil, nil, 400, codes.APIInvalidID},
			{"malformed owner", "POST", "/api_keys", map[string]any{"owner_id": "usr_x"}, nil, 400, codes.APIInvalidID},
			{"owner of another account", "POST", "/api_keys", map[string]any{"owner_id": otherBot.ID}, nil, 400, codes.APIInvalidParam},
			{"other account's bot", "PATCH", "/bot_users/" + otherBot.ID, map[string]any{"active": false}, nil, 404, codes.APINotFound},
			{"unknown key", "DELETE", "/api_keys/" + unknownKey, nil, nil, 404, codes.APINotFound},
			{"limit 0", "GET", "/api_keys?limit=0", nil, nil, 400, codes.APIPageSize},
			{"limit 101", "GET", "/api_keys?limit=101", nil, nil, 400, codes.APIPageSize},
			{"limit not a number", "GET", "/bot_users?limit=ten", nil, nil, 400, codes.APIPageSize},
			{"bad before_id", "GET", "/credentials?before_id=cr_nope", nil, nil, 400, codes.APIInvalidID},
			{"unknown query param", "GET", "/api_keys?filter=obj.id", nil, nil, 400, codes.APIUnknownParam},
			{"query on create", "POST", "/bot_users?x=1", map[string]any{}, nil, 400, codes.APIUnknownParam},
			{"text/plain", "POST", "/api_keys", `{}`, []string{"Content-Type", "text/plain"}, 415, codes.APIContentType},
			{"body on delete", "DELETE", botPath, `{"x":1}`, nil, 400, codes.APIBodyNotAllowed},
			{"huge body", "POST", "/api_keys", `{"description":"` + strings.Repeat("a", 2<<20) + `"}`, nil, 413, codes.APIBodyUnreadable},
			{"bad version", "GET", "/api_keys", nil, []string{"Ngrok-Version", "3"}, 400, codes.APIVersion},
			{"method", "PUT", "/api_keys", `{}`, nil, 405, codes.APIMethodNotAllowed},
			{"no such resource", "GET", "/no_such_things", nil, nil, 404, codes.APINotFound},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := e.Revision()
				cptest.WantError(t, e.Call(tc.method, tc.path, e.Admin, tc.body, tc.hdr...), tc.status, string(tc.code))
				if after := e.Revision(); after != before {
					t.Fatalf("refused request moved the revision %d -> %d", before, after)
				}
			})
		}
		// At the limits is accepted.
		e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"description": strings.Repeat("d", 255), "metadata": strings.Repeat("m", 4096)}))
		e.Must(200, e.Call("GET", "/api_keys?limit=1", e.Admin, nil))
		e.Must(200, e.Call("GET", "/api_keys?limit=100", e.Admin, nil))
	})
}

func TestAPIAuthentication(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		_, secret, err := authn.ParseToken(e.Admin)
		if err != nil {
			t.Fatal(err)
		}
		_, kid, _ := ids.Split(e.Dev.APIKeyID, "ak")
		other := ids.New("x")[2:] // a KSUID naming nothing
		cases := []struct {
			name, header string
			status       int
			code         codes.Code
		}{
			{"missing", "", 401, codes.APIAuthMissing},
			{"not bearer", "Basic dXNlcjpwYXNz", 401, codes.APIAuthParse},
			{"no scheme", e.Admin, 401, codes.APIAuthParse},
			{"key ID", "Bearer " + e.Dev.APIKeyID, 401, codes.APIKeyID},
			{"malformed", "Bearer not-a-key", 401, codes.APIAuthMalformed},
			{"authtoken", "Bearer " + e.Dev.Authtoken.Reveal(), 401, codes.APIAuthtoken},
			{"wrong secret", "Bearer " + kid + "_" + strings.Repeat("A", len(secret)), 401, codes.APIAuthInvalid},
			{"unknown key", "Bearer " + other + "_" + secret, 401, codes.APIAuthInvalid},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.Call("GET", "/api_keys", "", nil, "Authorization", tc.header)
				cptest.WantError(t, r, tc.status, string(tc.code))
				if strings.Contains(string(r.Body), secret) {
					t.Fatal("the error echoes the secret")
				}
			})
		}
		e.Must(200, e.Call("GET", "/api_keys", "", nil, "Authorization", "bearer "+e.Admin))

		// A suspended account's keys are refused.
		if err := e.Store.SetAccountActive(cptest.Ctx(t), store.SystemActor, e.Dev.AccountID, false); err != nil {
			t.Fatal(err)
		}
		cptest.WantError(t, e.Call("GET", "/api_keys", e.Admin, nil), 403, string(codes.APIAccountSuspended))
	})
}

func TestRoles(t *testing.T) {
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
		dev, err := e.Store.CreateUser(ctx, store.SystemActor, "dev@example.com", "Dev")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: e.Dev.AccountID, UserID: dev.ID,
			Developer: store.DeveloperRW, Team: store.TeamRO}); err != nil {
			t.Fatal(err)
		}
		roKey := cptest.Str(e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": ro.ID})), "token")
		devKey := cptest.Str(e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": dev.ID})), "token")

		e.Must(200, e.Call("GET", "/credentials", roKey, nil))
		cptest.WantError(t, e.Call("POST", "/credentials", roKey, map[string]any{}), 403, string(codes.APIForbidden))
		cptest.WantError(t, e.Call("DELETE", "/credentials/"+e.Dev.AuthtokenID, roKey, nil), 403, string(codes.APIForbidden))

		mine := e.Must(201, e.Call("POST", "/credentials", devKey, map[string]any{}))
		if cptest.Str(mine, "owner_id") != dev.ID {
			t.Fatalf("owner %v", mine["owner_id"])
		}
		cptest.WantError(t, e.Call("POST", "/credentials", devKey, map[string]any{"owner_id": e.Dev.UserID}), 403, string(codes.APIForbidden))
		cptest.WantError(t, e.Call("DELETE", "/credentials/"+e.Dev.AuthtokenID, devKey, nil), 403, string(codes.APIForbidden))
		cptest.WantError(t, e.Call("POST", "/bot_users", devKey, map[string]any{"name": "x"}), 403, string(codes.APIForbidden))
		e.Must(204, e.Call("DELETE", "/credentials/"+cptest.Str(mine, "id"), devKey, nil))

		// A bot may not create bot users, and owns what it creates.
		bot := e.Must(201, e.Call("POST", "/bot_users", e.Admin, map[string]any{"name": "b"}))
		botKey := cptest.Str(e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": cptest.Str(bot, "id")})), "token")
		cptest.WantError(t, e.Call("POST", "/bot_users", botKey, map[string]any{"name": "x"}), 403, string(codes.APIForbidden))

		// Removing a user from the account stops their key.
		if err := e.Store.RemoveMembership(ctx, store.SystemActor, e.Dev.AccountID, ro.ID); err != nil {
			t.Fatal(err)
		}
		cptest.WantError(t, e.Call("GET", "/credentials", roKey, nil), 401, string(codes.APIAuthInvalid))
	})
}
