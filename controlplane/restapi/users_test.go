package restapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

func TestUsersAPI(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		acct := e.Dev.AccountID
		me := e.Must(200, e.Call("GET", "/users/"+e.Dev.UserID, e.Admin, nil))
		if cptest.Str(me, "email") != controlplane.DevAdminEmail || me["admin"] != true || cptest.Str(me, "developer") != "rw" ||
			cptest.Str(me, "team") != "manager" || me["billing"] != true || cptest.Str(me, "uri") != e.HTTP.URL+"/users/"+e.Dev.UserID {
			t.Fatalf("GET /users/{admin} = %v", me)
		}
		devID, devKey := e.AddUser(acct, "dev@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO})
		list := e.Must(200, e.Call("GET", "/users", devKey, nil))
		if users, _ := list["users"].([]any); len(users) != 2 || list["next_page_uri"] != nil {
			t.Fatalf("GET /users = %v", list)
		}
		page := e.Must(200, e.Call("GET", "/users?limit=1", e.Admin, nil))
		if users, _ := page["users"].([]any); len(users) != 1 || page["next_page_uri"] == nil {
			t.Fatalf("GET /users?limit=1 = %v", page)
		}

		// PATCH changes the roles given, keeps the others, and is audited.
		upd := e.Must(200, e.Call("PATCH", "/users/"+devID, e.Admin, map[string]any{"developer": "rw", "billing": true}))
		if cptest.Str(upd, "developer") != "rw" || cptest.Str(upd, "team") != "ro" || upd["billing"] != true || upd["admin"] != false {
			t.Fatalf("PATCH = %v", upd)
		}
		if ev := e.LastEvent(acct); ev.Type != "membership_updated.v0" || ev.ObjectID != devID ||
			ev.ActorID != e.Dev.UserID || ev.ActorCredentialID != e.Dev.APIKeyID {
			t.Fatalf("audit event = %+v", ev)
		}
		before := e.Revision()
		cptest.WantError(t, e.Call("PATCH", "/users/"+devID, e.Admin, map[string]any{"team": "owner"}), 400, string(codes.RoleInvalid))
		cptest.WantError(t, e.Call("PATCH", "/users/"+devID, e.Admin, map[string]any{"email": "x@example.com"}), 400, string(codes.APIUnknownParam))
		cptest.WantError(t, e.Call("PATCH", "/users/"+devID, devKey, map[string]any{"developer": "ro"}), 403, string(codes.APIForbidden))
		cptest.WantError(t, e.Call("GET", "/users/bot_"+strings.Repeat("x", 27), e.Admin, nil), 400, string(codes.APIInvalidID))
		cptest.WantError(t, e.Call("GET", "/users/"+ids.New(ids.PrefixUser), e.Admin, nil), 404, string(codes.APINotFound))

		// The last administrator stays one, and stays.
		cptest.WantError(t, e.Call("PATCH", "/users/"+e.Dev.UserID, e.Admin, map[string]any{"admin": false}), 409, string(codes.LastAdmin))
		cptest.WantError(t, e.Call("DELETE", "/users/"+e.Dev.UserID, e.Admin, nil), 409, string(codes.LastAdmin))
		if r := e.Revision(); r != before {
			t.Fatalf("refused requests moved the revision from %d to %d", before, r)
		}
		// With a second administrator, the first may step down.
		e.Must(200, e.Call("PATCH", "/users/"+devID, e.Admin, map[string]any{"admin": true}))
		down := e.Must(200, e.Call("PATCH", "/users/"+e.Dev.UserID, e.Admin, map[string]any{"admin": false}))
		if down["admin"] != false {
			t.Fatalf("PATCH admin=false = %v", down)
		}
		cptest.WantError(t, e.Call("DELETE", "/users/"+devID, devKey, nil), 409, string(codes.LastAdmin))

		// A bot user sees no users.
		bot := e.Must(201, e.Call("POST", "/bot_users", devKey, map[string]any{"name": "ci"}))
		botKey := cptest.Str(e.Must(201, e.Call("POST", "/api_keys", devKey, map[string]any{"owner_id": cptest.Str(bot, "id")})), "token")
		cptest.WantError(t, e.Call("GET", "/users", botKey, nil), 403, string(codes.APIForbidden))
		cptest.WantError(t, e.Call("GET", "/users/"+devID, botKey, nil), 403, string(codes.APIForbidden))
	})
}

// Removing a user from the account deletes every credential they own there
// at once (API keys stop, authtokens leave the snapshot), attributed to the
// caller; joining again brings none of them back.
func TestRemoveUserDeletesCredentials(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		acct := e.Dev.AccountID
		inv := e.Must(201, e.Call("POST", "/invitations", e.Admin, map[string]any{"email": "leaver@example.com", "developer": "rw"}))
		acc := e.Must(201, e.Call("POST", "/invitations/accept", "", map[string]any{"token": cptest.Str(inv, "accept_token"), "name": "Leaver"}))
		user, _ := acc["user"].(map[string]any)
		uid := cptest.Str(user, "id")
		key, _ := acc["api_key"].(map[string]any)
		userKey := cptest.Str(key, "token")
		at := e.Must(201, e.Call("POST", "/credentials", userKey, map[string]any{"description": "laptop"}))
		k2 := e.Must(201, e.Call("POST", "/api_keys", userKey, map[string]any{}))
		snap, err := e.Core.Snapshot(cptest.Ctx(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := authn.VerifyAuthtoken(snap, cptest.Str(at, "token")); err != nil {
			t.Fatalf("the user's authtoken before removal: %v", err)
		}

		before := e.Revision()
		e.Must(204, e.Call("DELETE", "/users/"+uid, e.Admin, nil))
		if r := e.Revision(); r != before+1 {
			t.Fatalf("removal took revisions %d..%d, want one", before, r)
		}
		cptest.WantError(t, e.Call("GET", "/credentials", userKey, nil), 401, string(codes.APIAuthInvalid))
		cptest.WantError(t, e.Call("GET", "/credentials", cptest.Str(k2, "token"), nil), 401, string(codes.APIAuthInvalid))
		cptest.WantError(t, e.Call("GET", "/credentials/"+cptest.Str(at, "id"), e.Admin, nil), 404, string(codes.APINotFound))
		cptest.WantError(t, e.Call("GET", "/users/"+uid, e.Admin, nil), 404, string(codes.APINotFound))
		snap, err = e.Core.Snapshot(cptest.Ctx(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := authn.VerifyAuthtoken(snap, cptest.Str(at, "token")); err == nil {
			t.Fatal("the removed user's authtoken still verifies")
		}
		evs, _, err := e.Store.ListAuditEvents(cptest.Ctx(t), acct, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, ev := range evs {
			if ev.Revision == before+1 {
				if ev.ActorID != e.Dev.UserID || ev.ActorCredentialID != e.Dev.APIKeyID {
					t.Errorf("event %s attributed to %s/%s", ev.Type, ev.ActorID, ev.ActorCredentialID)
				}
				seen[ev.Type+" "+ev.ObjectID] = true
			}
		}
		for _, w := range []string{"membership_deleted.v0 " + uid, "credential_deleted.v0 " + cptest.Str(at, "id"),
			"api_key_deleted.v0 " + cptest.Str(key, "id"), "api_key_deleted.v0 " + cptest.Str(k2, "id")} {
			if !seen[w] {
				t.Errorf("missing audit event %s: %v", w, seen)
			}
		}

		// Invited again, the address joins without its old credentials.
		inv2 := e.Must(201, e.Call("POST", "/invitations", e.Admin, map[string]any{"email": "leaver@example.com"}))
		acc2 := e.Must(201, e.Call("POST", "/invitations/accept", "", map[string]any{"token": cptest.Str(inv2, "accept_token"), "name": "Back"}))
		key2, _ := acc2["api_key"].(map[string]any)
		e.Must(200, e.Call("GET", "/credentials", cptest.Str(key2, "token"), nil))
		cptest.WantError(t, e.Call("GET", "/credentials", userKey, nil), 401, string(codes.APIAuthInvalid))
		cptest.WantError(t, e.Call("GET", "/credentials/"+cptest.Str(at, "id"), e.Admin, nil), 404, string(codes.APINotFound))
		if snap, err = e.Core.Snapshot(cptest.Ctx(t), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := authn.VerifyAuthtoken(snap, cptest.Str(at, "token")); err == nil {
			t.Fatal("the old authtoken came back")
		}
		// A member may leave by themselves.
		user2, _ := acc2["user"].(map[string]any)
		e.Must(204, e.Call("DELETE", "/users/"+cptest.Str(user2, "id"), cptest.Str(key2, "token"), nil))
	})
}

func TestInvitationsAPI(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		acct := e.Dev.AccountID
		inv := e.Must(201, e.Call("POST", "/invitations", e.Admin, map[string]any{"email": "Ann@Example.com"}))
		id, tok := cptest.Str(inv, "id"), cptest.Str(inv, "accept_token")
		if !strings.HasPrefix(id, "inv_") || tok == "" || cptest.Str(inv, "email") != "ann@example.com" ||
			cptest.Str(inv, "developer") != "ro" || cptest.Str(inv, "team") != "ro" || inv["billing"] != false || inv["admin"] != false ||
			cptest.Str(inv, "invited_by") != e.Dev.UserID || cptest.Str(inv, "expires_at") <= cptest.Str(inv, "created_at") {
			t.Fatalf("created invitation = %v", inv)
		}
		if ev := e.LastEvent(acct); ev.Type != "invitation_created.v0" || ev.ObjectID != id || ev.ActorID != e.Dev.UserID ||
			strings.Contains(string(ev.Payload), tok) {
			t.Fatalf("audit event = %+v", ev)
		}
		got := e.Must(200, e.Call("GET", "/invitations/"+id, e.Admin, nil))
		if got["accept_token"] != nil || cptest.Str(got, "id") != id {
			t.Fatalf("GET shows %v", got)
		}
		list := e.Must(200, e.Call("GET", "/invitations", e.Admin, nil))
		if items, _ := list["invitations"].([]any); len(items) != 1 {
			t.Fatalf("GET /invitations = %v", list)
		}
		cptest.WantError(t, e.Call("POST", "/invitations", e.Admin, map[string]any{"email": "ann@example.com"}), 409, string(codes.InvitationExists))
		cptest.WantError(t, e.Call("POST", "/invitations", e.Admin, map[string]any{"email": controlplane.DevAdminEmail}), 409, string(codes.InvitationExists))
		cptest.WantError(t, e.Call("POST", "/invitations", e.Admin, map[string]any{"email": "b@example.com", "team": "boss"}), 400, string(codes.RoleInvalid))
		cptest.WantError(t, e.Call("POST", "/invitations", e.Admin, map[string]any{"email": "nope"}), 400, string(codes.APIInvalidParam))

		// Invite-only members grant no more than they hold; managers
		// anything but administrator.
		_, invKey := e.AddUser(acct, "inviter@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamInvite})
		_, mgrKey := e.AddUser(acct, "manager@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamManager})
		for _, body := range []map[string]any{
			{"email": "c@example.com", "admin": true},
			{"email": "c@example.com", "team": "manager"},
			{"email": "c@example.com", "developer": "rw"},
			{"email": "c@example.com", "billing": true},
		} {
			cptest.WantError(t, e.Call("POST", "/invitations", invKey, body), 403, string(codes.APIForbidden))
		}
		cptest.WantError(t, e.Call("POST", "/invitations", mgrKey, map[string]any{"email": "c@example.com", "admin": true}), 403, string(codes.APIForbidden))
		e.Must(201, e.Call("POST", "/invitations", mgrKey, map[string]any{"email": "c@example.com", "team": "manager", "developer": "rw", "billing": true}))
		own := e.Must(201, e.Call("POST", "/invitations", invKey, map[string]any{"email": "d@example.com", "team": "invite"}))
		// Invite-only members revoke their own invitations, not others'.
		cptest.WantError(t, e.Call("DELETE", "/invitations/"+id, invKey, nil), 403, string(codes.APIForbidden))
		e.Must(204, e.Call("DELETE", "/invitations/"+cptest.Str(own, "id"), invKey, nil))
		cptest.WantError(t, e.Call("POST", "/invitations/accept", "", map[string]any{"token": cptest.Str(own, "accept_token"), "name": "D"}),
			404, string(codes.InvitationInvalid))

		// Accepting: the wrong method, a bad token, no name.
		r := e.Call("GET", "/invitations/accept", "", nil)
		cptest.WantError(t, r, 405, string(codes.APIMethodNotAllowed))
		if r.Header.Get("Allow") != "POST" {
			t.Fatalf("Allow = %q", r.Header.Get("Allow"))
		}
		cptest.WantError(t, e.Call("POST", "/invitations/accept", "", map[string]any{"token": "junk", "name": "A"}), 404, string(codes.InvitationInvalid))
		cptest.WantError(t, e.Call("POST", "/invitations/accept", "", map[string]any{"token": tok}), 400, string(codes.APIInvalidParam))
		cptest.WantError(t, e.Call("POST", "/invitations/accept", "", map[string]any{"token": tok, "name": "A", "role": "x"}), 400, string(codes.APIUnknownParam))

		acc := e.Must(201, e.Call("POST", "/invitations/accept", "", map[string]any{"token": tok, "name": "Ann"}))
		user, _ := acc["user"].(map[string]any)
		account, _ := acc["account"].(map[string]any)
		key, _ := acc["api_key"].(map[string]any)
		if cptest.Str(user, "email") != "ann@example.com" || cptest.Str(user, "developer") != "ro" || cptest.Str(account, "id") != acct ||
			cptest.Str(key, "token") == "" || cptest.Str(key, "owner_id") != cptest.Str(user, "id") {
			t.Fatalf("accept = %v", acc)
		}
		me := e.Must(200, e.Call("GET", "/users/"+cptest.Str(user, "id"), cptest.Str(key, "token"), nil))
		if cptest.Str(me, "name") != "Ann" {
			t.Fatalf("the new member = %v", me)
		}
		cptest.WantError(t, e.Call("POST", "/invitations/accept", "", map[string]any{"token": tok, "name": "Ann"}), 404, string(codes.InvitationInvalid))
		cptest.WantError(t, e.Call("GET", "/invitations/"+id, e.Admin, nil), 404, string(codes.APINotFound))
	})
}

// An existing user accepts an invitation only with one of their own API
// keys; a key an administrator created for them does not prove who they are.
func TestInvitationAcceptExistingUser(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		ctx := cptest.Ctx(t)
		other, err := e.Store.CreateAccount(ctx, store.SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		otherAdmin, otherKey := e.AddUser(other.ID, "boss@other.example", store.Membership{Developer: store.DeveloperRW, Team: store.TeamManager, Admin: true})
		// A member of the dev account, whose admin also makes them a key.
		uid, ownKey := e.AddUser(e.Dev.AccountID, "sam@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO})
		adminMade := cptest.Str(e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": uid})), "token")

		inv := e.Must(201, e.Call("POST", "/invitations", otherKey, map[string]any{"email": "sam@example.com", "developer": "rw"}))
		tok := cptest.Str(inv, "accept_token")
		body := map[string]any{"token": tok}
		cptest.WantError(t, e.Call("POST", "/invitations/accept", "", body), 401, string(codes.APIAuthMissing))
		cptest.WantError(t, e.Call("POST", "/invitations/accept", adminMade, body), 403, string(codes.APIForbidden))
		cptest.WantError(t, e.Call("POST", "/invitations/accept", e.Admin, body), 404, string(codes.InvitationInvalid)) // someone else
		acc := e.Must(201, e.Call("POST", "/invitations/accept", ownKey, body))
		user, _ := acc["user"].(map[string]any)
		key, _ := acc["api_key"].(map[string]any)
		if cptest.Str(user, "id") != uid || cptest.Str(user, "developer") != "rw" {
			t.Fatalf("accept = %v", acc)
		}
		if ev := e.LastEvent(other.ID); ev.ActorID != uid {
			t.Fatalf("acceptance attributed to %s", ev.ActorID)
		}
		// The new key acts in the other account.
		accts := e.Must(200, e.Call("GET", "/accounts", cptest.Str(key, "token"), nil))
		items, _ := accts["accounts"].([]any)
		if len(items) != 2 {
			t.Fatalf("GET /accounts = %v", accts)
		}
		for _, it := range items {
			a, _ := it.(map[string]any)
			if (cptest.Str(a, "id") == other.ID) != (a["current"] == true) {
				t.Fatalf("current account wrong: %v", accts)
			}
		}
		_ = otherAdmin
	})
}

func TestAccountsAPI(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		ctx := cptest.Ctx(t)
		acct := e.Dev.AccountID
		other, err := e.Store.CreateAccount(ctx, store.SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		third, err := e.Store.CreateAccount(ctx, store.SystemActor, "third")
		if err != nil {
			t.Fatal(err)
		}
		uid, key := e.AddUser(acct, "multi@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO})
		if err := e.Store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: other.ID, UserID: uid,
			Developer: store.DeveloperRW, Team: store.TeamManager, Admin: true}); err != nil {
			t.Fatal(err)
		}

		list := e.Must(200, e.Call("GET", "/accounts", key, nil))
		items, _ := list["accounts"].([]any)
		if len(items) != 2 {
			t.Fatalf("GET /accounts = %v", list)
		}
		byID := map[string]map[string]any{}
		for _, it := range items {
			a, _ := it.(map[string]any)
			byID[cptest.Str(a, "id")] = a
		}
		mine, theirs := byID[acct], byID[other.ID]
		mr, _ := mine["roles"].(map[string]any)
		tr, _ := theirs["roles"].(map[string]any)
		if mine["current"] != true || cptest.Str(mr, "developer") != "ro" || mr["admin"] != false ||
			theirs["current"] != false || cptest.Str(tr, "team") != "manager" || tr["admin"] != true || cptest.Str(theirs, "name") != "other" {
			t.Fatalf("GET /accounts = %v", list)
		}
		e.Must(200, e.Call("GET", "/accounts/"+other.ID, key, nil))
		cptest.WantError(t, e.Call("GET", "/accounts/"+third.ID, key, nil), 404, string(codes.APINotFound))

		// Switching: a key of the user in the other account.
		before := e.Revision()
		sw := e.Must(201, e.Call("POST", "/accounts/"+other.ID+"/api_keys", key, map[string]any{"description": "switch"}))
		if cptest.Str(sw, "owner_id") != uid || cptest.Str(sw, "token") == "" || cptest.Str(sw, "description") != "switch" {
			t.Fatalf("switch key = %v", sw)
		}
		if ev := e.LastEvent(other.ID); ev.Type != "api_key_created.v0" || ev.ActorID != uid || ev.ObjectID != cptest.Str(sw, "id") {
			t.Fatalf("audit event in the target account = %+v", ev)
		}
		if r := e.Revision(); r != before+1 {
			t.Fatalf("switch took revisions %d..%d", before, r)
		}
		otherKey := cptest.Str(sw, "token")
		got := e.Must(200, e.Call("GET", "/api_keys/"+cptest.Str(sw, "id"), otherKey, nil))
		if cptest.Str(got, "id") != cptest.Str(sw, "id") {
			t.Fatalf("GET own key in the other account = %v", got)
		}
		// It acts with the user's roles there: an administrator's.
		e.Must(200, e.Call("PATCH", "/accounts/"+other.ID, otherKey, map[string]any{"name": "renamed"}))
		if a, _ := e.Store.GetAccount(ctx, other.ID); a.Name != "renamed" {
			t.Fatalf("account name %q", a.Name)
		}
		// ...and back: the other key switches to the first account.
		e.Must(201, e.Call("POST", "/accounts/"+acct+"/api_keys", otherKey, nil))

		cptest.WantError(t, e.Call("POST", "/accounts/"+acct+"/api_keys", key, nil), 400, string(codes.APIInvalidParam))
		cptest.WantError(t, e.Call("POST", "/accounts/"+third.ID+"/api_keys", key, nil), 404, string(codes.APINotFound))
		cptest.WantError(t, e.Call("POST", "/accounts/"+other.ID+"/api_keys", key, map[string]any{"owner_id": e.Dev.UserID}), 403, string(codes.APIForbidden))
		// A key an administrator made for the user does not reach their
		// other accounts.
		adminMade := cptest.Str(e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": uid})), "token")
		cptest.WantError(t, e.Call("POST", "/accounts/"+other.ID+"/api_keys", adminMade, nil), 403, string(codes.APIForbidden))
		// PATCH: administrators of the key's own account only.
		cptest.WantError(t, e.Call("PATCH", "/accounts/"+acct, key, map[string]any{"name": "x"}), 403, string(codes.APIForbidden))
		cptest.WantError(t, e.Call("PATCH", "/accounts/"+other.ID, key, map[string]any{"name": "x"}), 403, string(codes.APIForbidden))
		cptest.WantError(t, e.Call("PATCH", "/accounts/"+acct, e.Admin, map[string]any{"name": strings.Repeat("n", 300)}), 400, string(codes.APIInvalidParam))
		// A suspended account takes no switch.
		if err := e.Store.SetAccountActive(ctx, store.SystemActor, other.ID, false); err != nil {
			t.Fatal(err)
		}
		cptest.WantError(t, e.Call("POST", "/accounts/"+other.ID+"/api_keys", key, nil), 403, string(codes.APIAccountSuspended))

		// A bot user sees its own account only and cannot switch.
		bot := e.Must(201, e.Call("POST", "/bot_users", e.Admin, map[string]any{"name": "b"}))
		botKey := cptest.Str(e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": cptest.Str(bot, "id")})), "token")
		bl := e.Must(200, e.Call("GET", "/accounts", botKey, nil))
		bitems, _ := bl["accounts"].([]any)
		if len(bitems) != 1 {
			t.Fatalf("bot's GET /accounts = %v", bl)
		}
		ba, _ := bitems[0].(map[string]any)
		br, _ := ba["roles"].(map[string]any)
		if cptest.Str(ba, "id") != acct || cptest.Str(br, "developer") != "rw" || cptest.Str(br, "team") != "" || br["admin"] != false {
			t.Fatalf("bot's account = %v", ba)
		}
		cptest.WantError(t, e.Call("GET", "/accounts/"+other.ID, botKey, nil), 404, string(codes.APINotFound))
		cptest.WantError(t, e.Call("POST", "/accounts/"+other.ID+"/api_keys", botKey, nil), 403, string(codes.APIForbidden))
		cptest.WantError(t, e.Call("POST", "/invitations/accept", botKey, map[string]any{"token": "x"}), 403, string(codes.APIForbidden))
		if r := e.Call("DELETE", "/accounts/"+acct, e.Admin, nil); r.Status != http.StatusMethodNotAllowed {
			t.Fatalf("DELETE /accounts/{id} = %d", r.Status)
		}
	})
}
