package controlplane

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// addUser creates a user who is a member of accountID with roles, and an
// API key the user created themselves (so it proves who they are across
// accounts). It returns the user's ID and the key's token.
func (e *env) addUser(accountID, email string, roles store.Membership) (string, string) {
	e.t.Helper()
	ctx := testCtx(e.t)
	u, err := e.store.CreateUser(ctx, store.SystemActor, email, "User "+email)
	if err != nil {
		e.t.Fatal(err)
	}
	roles.AccountID, roles.UserID = accountID, u.ID
	if err := e.store.PutMembership(ctx, store.SystemActor, roles); err != nil {
		e.t.Fatal(err)
	}
	return u.ID, e.keyFor(accountID, u.ID)
}

// keyFor makes an API key that userID creates themselves in accountID.
func (e *env) keyFor(accountID, userID string) string {
	e.t.Helper()
	_, tok, err := e.store.CreateAPIKey(testCtx(e.t), store.Actor{AccountID: accountID, PrincipalID: userID},
		accountID, store.APIKeyCreate{OwnerID: userID})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.Reveal()
}

// lastEvent returns the newest audit event of the account.
func (e *env) lastEvent(accountID string) store.AuditEvent {
	e.t.Helper()
	evs, _, err := e.store.ListAuditEvents(testCtx(e.t), accountID, store.Page{Limit: 1})
	if err != nil || len(evs) != 1 {
		e.t.Fatalf("audit events: %v, %v", evs, err)
	}
	return evs[0]
}

func TestUsersAPI(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		acct := e.dev.AccountID
		me := e.must(200, e.call("GET", "/users/"+e.dev.UserID, e.admin, nil))
		if str(me, "email") != DevAdminEmail || me["admin"] != true || str(me, "developer") != "rw" ||
			str(me, "team") != "manager" || me["billing"] != true || str(me, "uri") != e.http.URL+"/users/"+e.dev.UserID {
			t.Fatalf("GET /users/{admin} = %v", me)
		}
		devID, devKey := e.addUser(acct, "dev@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO})
		list := e.must(200, e.call("GET", "/users", devKey, nil))
		if users, _ := list["users"].([]any); len(users) != 2 || list["next_page_uri"] != nil {
			t.Fatalf("GET /users = %v", list)
		}
		page := e.must(200, e.call("GET", "/users?limit=1", e.admin, nil))
		if users, _ := page["users"].([]any); len(users) != 1 || page["next_page_uri"] == nil {
			t.Fatalf("GET /users?limit=1 = %v", page)
		}

		// PATCH changes the roles given, keeps the others, and is audited.
		upd := e.must(200, e.call("PATCH", "/users/"+devID, e.admin, map[string]any{"developer": "rw", "billing": true}))
		if str(upd, "developer") != "rw" || str(upd, "team") != "ro" || upd["billing"] != true || upd["admin"] != false {
			t.Fatalf("PATCH = %v", upd)
		}
		if ev := e.lastEvent(acct); ev.Type != "membership_updated.v0" || ev.ObjectID != devID ||
			ev.ActorID != e.dev.UserID || ev.ActorCredentialID != e.dev.APIKeyID {
			t.Fatalf("audit event = %+v", ev)
		}
		before := e.revision()
		wantError(t, e.call("PATCH", "/users/"+devID, e.admin, map[string]any{"team": "owner"}), 400, string(codes.RoleInvalid))
		wantError(t, e.call("PATCH", "/users/"+devID, e.admin, map[string]any{"email": "x@example.com"}), 400, string(codes.APIUnknownParam))
		wantError(t, e.call("PATCH", "/users/"+devID, devKey, map[string]any{"developer": "ro"}), 403, string(codes.APIForbidden))
		wantError(t, e.call("GET", "/users/bot_"+strings.Repeat("x", 27), e.admin, nil), 400, string(codes.APIInvalidID))
		wantError(t, e.call("GET", "/users/"+ids.New(ids.PrefixUser), e.admin, nil), 404, string(codes.APINotFound))

		// The last administrator stays one, and stays.
		wantError(t, e.call("PATCH", "/users/"+e.dev.UserID, e.admin, map[string]any{"admin": false}), 409, string(codes.LastAdmin))
		wantError(t, e.call("DELETE", "/users/"+e.dev.UserID, e.admin, nil), 409, string(codes.LastAdmin))
		if r := e.revision(); r != before {
			t.Fatalf("refused requests moved the revision from %d to %d", before, r)
		}
		// With a second administrator, the first may step down.
		e.must(200, e.call("PATCH", "/users/"+devID, e.admin, map[string]any{"admin": true}))
		down := e.must(200, e.call("PATCH", "/users/"+e.dev.UserID, e.admin, map[string]any{"admin": false}))
		if down["admin"] != false {
			t.Fatalf("PATCH admin=false = %v", down)
		}
		wantError(t, e.call("DELETE", "/users/"+devID, devKey, nil), 409, string(codes.LastAdmin))

		// A bot user sees no users.
		bot := e.must(201, e.call("POST", "/bot_users", devKey, map[string]any{"name": "ci"}))
		botKey := str(e.must(201, e.call("POST", "/api_keys", devKey, map[string]any{"owner_id": str(bot, "id")})), "token")
		wantError(t, e.call("GET", "/users", botKey, nil), 403, string(codes.APIForbidden))
		wantError(t, e.call("GET", "/users/"+devID, botKey, nil), 403, string(codes.APIForbidden))
	})
}

// Removing a user from the account deletes every credential they own there
// at once (API keys stop, authtokens leave the snapshot), attributed to the
// caller; joining again brings none of them back.
func TestRemoveUserDeletesCredentials(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		acct := e.dev.AccountID
		inv := e.must(201, e.call("POST", "/invitations", e.admin, map[string]any{"email": "leaver@example.com", "developer": "rw"}))
		acc := e.must(201, e.call("POST", "/invitations/accept", "", map[string]any{"token": str(inv, "accept_token"), "name": "Leaver"}))
		user, _ := acc["user"].(map[string]any)
		uid := str(user, "id")
		key, _ := acc["api_key"].(map[string]any)
		userKey := str(key, "token")
		at := e.must(201, e.call("POST", "/credentials", userKey, map[string]any{"description": "laptop"}))
		k2 := e.must(201, e.call("POST", "/api_keys", userKey, map[string]any{}))
		snap, err := e.srv.Snapshot(testCtx(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := authn.VerifyAuthtoken(snap, str(at, "token")); err != nil {
			t.Fatalf("the user's authtoken before removal: %v", err)
		}

		before := e.revision()
		e.must(204, e.call("DELETE", "/users/"+uid, e.admin, nil))
		if r := e.revision(); r != before+1 {
			t.Fatalf("removal took revisions %d..%d, want one", before, r)
		}
		wantError(t, e.call("GET", "/credentials", userKey, nil), 401, string(codes.APIAuthInvalid))
		wantError(t, e.call("GET", "/credentials", str(k2, "token"), nil), 401, string(codes.APIAuthInvalid))
		wantError(t, e.call("GET", "/credentials/"+str(at, "id"), e.admin, nil), 404, string(codes.APINotFound))
		wantError(t, e.call("GET", "/users/"+uid, e.admin, nil), 404, string(codes.APINotFound))
		snap, err = e.srv.Snapshot(testCtx(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := authn.VerifyAuthtoken(snap, str(at, "token")); err == nil {
			t.Fatal("the removed user's authtoken still verifies")
		}
		evs, _, err := e.store.ListAuditEvents(testCtx(t), acct, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, ev := range evs {
			if ev.Revision == before+1 {
				if ev.ActorID != e.dev.UserID || ev.ActorCredentialID != e.dev.APIKeyID {
					t.Errorf("event %s attributed to %s/%s", ev.Type, ev.ActorID, ev.ActorCredentialID)
				}
				seen[ev.Type+" "+ev.ObjectID] = true
			}
		}
		for _, w := range []string{"membership_deleted.v0 " + uid, "credential_deleted.v0 " + str(at, "id"),
			"api_key_deleted.v0 " + str(key, "id"), "api_key_deleted.v0 " + str(k2, "id")} {
			if !seen[w] {
				t.Errorf("missing audit event %s: %v", w, seen)
			}
		}

		// Invited again, the address joins without its old credentials.
		inv2 := e.must(201, e.call("POST", "/invitations", e.admin, map[string]any{"email": "leaver@example.com"}))
		acc2 := e.must(201, e.call("POST", "/invitations/accept", "", map[string]any{"token": str(inv2, "accept_token"), "name": "Back"}))
		key2, _ := acc2["api_key"].(map[string]any)
		e.must(200, e.call("GET", "/credentials", str(key2, "token"), nil))
		wantError(t, e.call("GET", "/credentials", userKey, nil), 401, string(codes.APIAuthInvalid))
		wantError(t, e.call("GET", "/credentials/"+str(at, "id"), e.admin, nil), 404, string(codes.APINotFound))
		if snap, err = e.srv.Snapshot(testCtx(t), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := authn.VerifyAuthtoken(snap, str(at, "token")); err == nil {
			t.Fatal("the old authtoken came back")
		}
		// A member may leave by themselves.
		user2, _ := acc2["user"].(map[string]any)
		e.must(204, e.call("DELETE", "/users/"+str(user2, "id"), str(key2, "token"), nil))
	})
}

func TestInvitationsAPI(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		acct := e.dev.AccountID
		inv := e.must(201, e.call("POST", "/invitations", e.admin, map[string]any{"email": "Ann@Example.com"}))
		id, tok := str(inv, "id"), str(inv, "accept_token")
		if !strings.HasPrefix(id, "inv_") || tok == "" || str(inv, "email") != "ann@example.com" ||
			str(inv, "developer") != "ro" || str(inv, "team") != "ro" || inv["billing"] != false || inv["admin"] != false ||
			str(inv, "invited_by") != e.dev.UserID || str(inv, "expires_at") <= str(inv, "created_at") {
			t.Fatalf("created invitation = %v", inv)
		}
		if ev := e.lastEvent(acct); ev.Type != "invitation_created.v0" || ev.ObjectID != id || ev.ActorID != e.dev.UserID ||
			strings.Contains(string(ev.Payload), tok) {
			t.Fatalf("audit event = %+v", ev)
		}
		got := e.must(200, e.call("GET", "/invitations/"+id, e.admin, nil))
		if got["accept_token"] != nil || str(got, "id") != id {
			t.Fatalf("GET shows %v", got)
		}
		list := e.must(200, e.call("GET", "/invitations", e.admin, nil))
		if items, _ := list["invitations"].([]any); len(items) != 1 {
			t.Fatalf("GET /invitations = %v", list)
		}
		wantError(t, e.call("POST", "/invitations", e.admin, map[string]any{"email": "ann@example.com"}), 409, string(codes.InvitationExists))
		wantError(t, e.call("POST", "/invitations", e.admin, map[string]any{"email": DevAdminEmail}), 409, string(codes.InvitationExists))
		wantError(t, e.call("POST", "/invitations", e.admin, map[string]any{"email": "b@example.com", "team": "boss"}), 400, string(codes.RoleInvalid))
		wantError(t, e.call("POST", "/invitations", e.admin, map[string]any{"email": "nope"}), 400, string(codes.APIInvalidParam))

		// Invite-only members grant no more than they hold; managers
		// anything but administrator.
		_, invKey := e.addUser(acct, "inviter@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamInvite})
		_, mgrKey := e.addUser(acct, "manager@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamManager})
		for _, body := range []map[string]any{
			{"email": "c@example.com", "admin": true},
			{"email": "c@example.com", "team": "manager"},
			{"email": "c@example.com", "developer": "rw"},
			{"email": "c@example.com", "billing": true},
		} {
			wantError(t, e.call("POST", "/invitations", invKey, body), 403, string(codes.APIForbidden))
		}
		wantError(t, e.call("POST", "/invitations", mgrKey, map[string]any{"email": "c@example.com", "admin": true}), 403, string(codes.APIForbidden))
		e.must(201, e.call("POST", "/invitations", mgrKey, map[string]any{"email": "c@example.com", "team": "manager", "developer": "rw", "billing": true}))
		own := e.must(201, e.call("POST", "/invitations", invKey, map[string]any{"email": "d@example.com", "team": "invite"}))
		// Invite-only members revoke their own invitations, not others'.
		wantError(t, e.call("DELETE", "/invitations/"+id, invKey, nil), 403, string(codes.APIForbidden))
		e.must(204, e.call("DELETE", "/invitations/"+str(own, "id"), invKey, nil))
		wantError(t, e.call("POST", "/invitations/accept", "", map[string]any{"token": str(own, "accept_token"), "name": "D"}),
			404, string(codes.InvitationInvalid))

		// Accepting: the wrong method, a bad token, no name.
		r := e.call("GET", "/invitations/accept", "", nil)
		wantError(t, r, 405, string(codes.APIMethodNotAllowed))
		if r.header.Get("Allow") != "POST" {
			t.Fatalf("Allow = %q", r.header.Get("Allow"))
		}
		wantError(t, e.call("POST", "/invitations/accept", "", map[string]any{"token": "junk", "name": "A"}), 404, string(codes.InvitationInvalid))
		wantError(t, e.call("POST", "/invitations/accept", "", map[string]any{"token": tok}), 400, string(codes.APIInvalidParam))
		wantError(t, e.call("POST", "/invitations/accept", "", map[string]any{"token": tok, "name": "A", "role": "x"}), 400, string(codes.APIUnknownParam))

		acc := e.must(201, e.call("POST", "/invitations/accept", "", map[string]any{"token": tok, "name": "Ann"}))
		user, _ := acc["user"].(map[string]any)
		account, _ := acc["account"].(map[string]any)
		key, _ := acc["api_key"].(map[string]any)
		if str(user, "email") != "ann@example.com" || str(user, "developer") != "ro" || str(account, "id") != acct ||
			str(key, "token") == "" || str(key, "owner_id") != str(user, "id") {
			t.Fatalf("accept = %v", acc)
		}
		me := e.must(200, e.call("GET", "/users/"+str(user, "id"), str(key, "token"), nil))
		if str(me, "name") != "Ann" {
			t.Fatalf("the new member = %v", me)
		}
		wantError(t, e.call("POST", "/invitations/accept", "", map[string]any{"token": tok, "name": "Ann"}), 404, string(codes.InvitationInvalid))
		wantError(t, e.call("GET", "/invitations/"+id, e.admin, nil), 404, string(codes.APINotFound))
	})
}

// An existing user accepts an invitation only with one of their own API
// keys; a key an administrator created for them does not prove who they are.
func TestInvitationAcceptExistingUser(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		other, err := e.store.CreateAccount(ctx, store.SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		otherAdmin, otherKey := e.addUser(other.ID, "boss@other.example", store.Membership{Developer: store.DeveloperRW, Team: store.TeamManager, Admin: true})
		// A member of the dev account, whose admin also makes them a key.
		uid, ownKey := e.addUser(e.dev.AccountID, "sam@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO})
		adminMade := str(e.must(201, e.call("POST", "/api_keys", e.admin, map[string]any{"owner_id": uid})), "token")

		inv := e.must(201, e.call("POST", "/invitations", otherKey, map[string]any{"email": "sam@example.com", "developer": "rw"}))
		tok := str(inv, "accept_token")
		body := map[string]any{"token": tok}
		wantError(t, e.call("POST", "/invitations/accept", "", body), 401, string(codes.APIAuthMissing))
		wantError(t, e.call("POST", "/invitations/accept", adminMade, body), 403, string(codes.APIForbidden))
		wantError(t, e.call("POST", "/invitations/accept", e.admin, body), 404, string(codes.InvitationInvalid)) // someone else
		acc := e.must(201, e.call("POST", "/invitations/accept", ownKey, body))
		user, _ := acc["user"].(map[string]any)
		key, _ := acc["api_key"].(map[string]any)
		if str(user, "id") != uid || str(user, "developer") != "rw" {
			t.Fatalf("accept = %v", acc)
		}
		if ev := e.lastEvent(other.ID); ev.ActorID != uid {
			t.Fatalf("acceptance attributed to %s", ev.ActorID)
		}
		// The new key acts in the other account.
		accts := e.must(200, e.call("GET", "/accounts", str(key, "token"), nil))
		items, _ := accts["accounts"].([]any)
		if len(items) != 2 {
			t.Fatalf("GET /accounts = %v", accts)
		}
		for _, it := range items {
			a, _ := it.(map[string]any)
			if (str(a, "id") == other.ID) != (a["current"] == true) {
				t.Fatalf("current account wrong: %v", accts)
			}
		}
		_ = otherAdmin
	})
}

func TestAccountsAPI(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		acct := e.dev.AccountID
		other, err := e.store.CreateAccount(ctx, store.SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		third, err := e.store.CreateAccount(ctx, store.SystemActor, "third")
		if err != nil {
			t.Fatal(err)
		}
		uid, key := e.addUser(acct, "multi@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO})
		if err := e.store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: other.ID, UserID: uid,
			Developer: store.DeveloperRW, Team: store.TeamManager, Admin: true}); err != nil {
			t.Fatal(err)
		}

		list := e.must(200, e.call("GET", "/accounts", key, nil))
		items, _ := list["accounts"].([]any)
		if len(items) != 2 {
			t.Fatalf("GET /accounts = %v", list)
		}
		byID := map[string]map[string]any{}
		for _, it := range items {
			a, _ := it.(map[string]any)
			byID[str(a, "id")] = a
		}
		mine, theirs := byID[acct], byID[other.ID]
		mr, _ := mine["roles"].(map[string]any)
		tr, _ := theirs["roles"].(map[string]any)
		if mine["current"] != true || str(mr, "developer") != "ro" || mr["admin"] != false ||
			theirs["current"] != false || str(tr, "team") != "manager" || tr["admin"] != true || str(theirs, "name") != "other" {
			t.Fatalf("GET /accounts = %v", list)
		}
		e.must(200, e.call("GET", "/accounts/"+other.ID, key, nil))
		wantError(t, e.call("GET", "/accounts/"+third.ID, key, nil), 404, string(codes.APINotFound))

		// Switching: a key of the user in the other account.
		before := e.revision()
		sw := e.must(201, e.call("POST", "/accounts/"+other.ID+"/api_keys", key, map[string]any{"description": "switch"}))
		if str(sw, "owner_id") != uid || str(sw, "token") == "" || str(sw, "description") != "switch" {
			t.Fatalf("switch key = %v", sw)
		}
		if ev := e.lastEvent(other.ID); ev.Type != "api_key_created.v0" || ev.ActorID != uid || ev.ObjectID != str(sw, "id") {
			t.Fatalf("audit event in the target account = %+v", ev)
		}
		if r := e.revision(); r != before+1 {
			t.Fatalf("switch took revisions %d..%d", before, r)
		}
		otherKey := str(sw, "token")
		got := e.must(200, e.call("GET", "/api_keys/"+str(sw, "id"), otherKey, nil))
		if str(got, "id") != str(sw, "id") {
			t.Fatalf("GET own key in the other account = %v", got)
		}
		// It acts with the user's roles there: an administrator's.
		e.must(200, e.call("PATCH", "/accounts/"+other.ID, otherKey, map[string]any{"name": "renamed"}))
		if a, _ := e.store.GetAccount(ctx, other.ID); a.Name != "renamed" {
			t.Fatalf("account name %q", a.Name)
		}
		// ...and back: the other key switches to the first account.
		e.must(201, e.call("POST", "/accounts/"+acct+"/api_keys", otherKey, nil))

		wantError(t, e.call("POST", "/accounts/"+acct+"/api_keys", key, nil), 400, string(codes.APIInvalidParam))
		wantError(t, e.call("POST", "/accounts/"+third.ID+"/api_keys", key, nil), 404, string(codes.APINotFound))
		wantError(t, e.call("POST", "/accounts/"+other.ID+"/api_keys", key, map[string]any{"owner_id": e.dev.UserID}), 403, string(codes.APIForbidden))
		// A key an administrator made for the user does not reach their
		// other accounts.
		adminMade := str(e.must(201, e.call("POST", "/api_keys", e.admin, map[string]any{"owner_id": uid})), "token")
		wantError(t, e.call("POST", "/accounts/"+other.ID+"/api_keys", adminMade, nil), 403, string(codes.APIForbidden))
		// PATCH: administrators of the key's own account only.
		wantError(t, e.call("PATCH", "/accounts/"+acct, key, map[string]any{"name": "x"}), 403, string(codes.APIForbidden))
		wantError(t, e.call("PATCH", "/accounts/"+other.ID, key, map[string]any{"name": "x"}), 403, string(codes.APIForbidden))
		wantError(t, e.call("PATCH", "/accounts/"+acct, e.admin, map[string]any{"name": strings.Repeat("n", 300)}), 400, string(codes.APIInvalidParam))
		// A suspended account takes no switch.
		if err := e.store.SetAccountActive(ctx, store.SystemActor, other.ID, false); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.call("POST", "/accounts/"+other.ID+"/api_keys", key, nil), 403, string(codes.APIAccountSuspended))

		// A bot user sees its own account only and cannot switch.
		bot := e.must(201, e.call("POST", "/bot_users", e.admin, map[string]any{"name": "b"}))
		botKey := str(e.must(201, e.call("POST", "/api_keys", e.admin, map[string]any{"owner_id": str(bot, "id")})), "token")
		bl := e.must(200, e.call("GET", "/accounts", botKey, nil))
		bitems, _ := bl["accounts"].([]any)
		if len(bitems) != 1 {
			t.Fatalf("bot's GET /accounts = %v", bl)
		}
		ba, _ := bitems[0].(map[string]any)
		br, _ := ba["roles"].(map[string]any)
		if str(ba, "id") != acct || str(br, "developer") != "rw" || str(br, "team") != "" || br["admin"] != false {
			t.Fatalf("bot's account = %v", ba)
		}
		wantError(t, e.call("GET", "/accounts/"+other.ID, botKey, nil), 404, string(codes.APINotFound))
		wantError(t, e.call("POST", "/accounts/"+other.ID+"/api_keys", botKey, nil), 403, string(codes.APIForbidden))
		wantError(t, e.call("POST", "/invitations/accept", botKey, map[string]any{"token": "x"}), 403, string(codes.APIForbidden))
		if r := e.call("DELETE", "/accounts/"+acct, e.admin, nil); r.status != http.StatusMethodNotAllowed {
			t.Fatalf("DELETE /accounts/{id} = %d", r.status)
		}
	})
}
