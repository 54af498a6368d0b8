package scim_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/store"
)

// replay is the state of one identity provider's request sequence: the
// IDs the service answered, and the provisioned user's credentials.
type replay struct {
	t                    *testing.T
	e                    *cptest.Env
	user, group          string
	apiKey, authtoken    string
	otherKey             string // the same user's key in another account
	otherAccount, otherA string // that account and its administrator's key
}

// step is one request an identity provider sends, or a check of what it
// did to the user's access.
type step struct {
	name   string
	method string
	path   string // {{user}}, {{group}} replaced; a query is URL-encoded here
	body   string // JSON as the provider sends it, {{user}} replaced
	status int
	check  func(x *replay, res map[string]any)
}

const (
	userSchema  = "urn:ietf:params:scim:schemas:core:2.0:User"
	patchSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

func (x *replay) expand(s string) string {
	return strings.NewReplacer("{{user}}", x.user, "{{group}}", x.group).Replace(s)
}

// do sends a SCIM request with the dev administrator's key and checks
// its status and content type.
func (x *replay) do(method, path, body string, status int) map[string]any {
	x.t.Helper()
	var b any
	if body != "" {
		b = x.expand(body)
	}
	r := x.e.Call(method, x.expand(path), x.e.Admin, b, "Content-Type", "application/scim+json")
	if r.Status != status {
		x.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, status, r.Body)
	}
	if r.Status == 204 {
		return nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/scim+json" {
		x.t.Fatalf("Content-Type %q", ct)
	}
	return r.Obj(x.t)
}

// filterPath is path?filter=<f>&extra, encoded.
func filterPath(path, f, extra string) string {
	q := "filter=" + url.QueryEscape(f)
	if extra != "" {
		q += "&" + extra
	}
	return path + "?" + q
}

// --- checks ---

func wantTotal(n int) func(x *replay, res map[string]any) {
	return func(x *replay, res map[string]any) {
		x.t.Helper()
		items, _ := res["Resources"].([]any)
		if res["totalResults"] != float64(n) || len(items) != n {
			x.t.Fatalf("list: totalResults %v, %d resources; want %d", res["totalResults"], len(items), n)
		}
	}
}

func wantAttr(name string, want any) func(x *replay, res map[string]any) {
	return func(x *replay, res map[string]any) {
		x.t.Helper()
		if res[name] != want {
			x.t.Fatalf("%s = %v, want %v: %v", name, res[name], want, res)
		}
	}
}

// created records the new user and gives them an API key and an authtoken
// in the account, and a key in a second account they also belong to.
func created(x *replay, res map[string]any) {
	x.t.Helper()
	x.user = cptest.Str(res, "id")
	if !strings.HasPrefix(x.user, "usr_") || res["active"] != true {
		x.t.Fatalf("created user %v", res)
	}
	ctx := cptest.Ctx(x.t)
	x.apiKey = x.e.KeyFor(x.e.Dev.AccountID, x.user)
	_, tok, err := x.e.Store.CreateAuthtoken(ctx, store.Actor{AccountID: x.e.Dev.AccountID, PrincipalID: x.user},
		x.e.Dev.AccountID, store.AuthtokenCreate{OwnerID: x.user})
	if err != nil {
		x.t.Fatal(err)
	}
	x.authtoken = tok.Reveal()
	if err := x.e.Store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: x.otherAccount, UserID: x.user,
		Developer: store.DeveloperRW, Team: store.TeamRO}); err != nil {
		x.t.Fatal(err)
	}
	x.otherKey = x.e.KeyFor(x.otherAccount, x.user)
}

func groupCreated(x *replay, res map[string]any) {
	x.t.Helper()
	x.group = cptest.Str(res, "id")
	if !strings.HasPrefix(x.group, "grp_") {
		x.t.Fatalf("created group %v", res)
	}
}

// canAct checks the user's credentials: their API key in this account
// (GET /api_keys), their authtoken at the edge (the snapshot), and their
// key in the other account, which SCIM in this account never touches.
func canAct(active bool) func(x *replay, _ map[string]any) {
	return func(x *replay, _ map[string]any) {
		x.t.Helper()
		if active {
			x.e.Must(200, x.e.Call("GET", "/api_keys", x.apiKey, nil))
		} else {
			cptest.WantError(x.t, x.e.Call("GET", "/api_keys", x.apiKey, nil), 403, string(codes.APIPrincipalInactive))
		}
		snap, err := x.e.Core.Snapshot(cptest.Ctx(x.t), 0)
		if err != nil {
			x.t.Fatal(err)
		}
		_, err = authn.VerifyAuthtoken(snap, x.authtoken)
		if active && err != nil || !active && !errors.Is(err, authn.ErrCredentialRevoked) {
			x.t.Fatalf("authtoken with the user active %v: %v", active, err)
		}
		x.e.Must(200, x.e.Call("GET", "/api_keys", x.otherKey, nil))
		if u := x.e.Must(200, x.e.Call("GET", "/users/"+x.user, x.e.Admin, nil)); u["active"] != active {
			x.t.Fatalf("GET /users/%s: %v, want active %v", x.user, u, active)
		}
	}
}

// canWrite checks the user's developer role through the API's RBAC.
func canWrite(yes bool) func(x *replay, _ map[string]any) {
	return func(x *replay, _ map[string]any) {
		x.t.Helper()
		r := x.e.Call("POST", "/credentials", x.apiKey, map[string]any{"description": "by scim user"})
		if yes {
			x.e.Must(201, r)
		} else {
			cptest.WantError(x.t, r, 403, string(codes.APIForbidden))
		}
	}
}

// canAudit checks the administrator flag (or team manager) through the API.
func canAudit(yes bool) func(x *replay, _ map[string]any) {
	return func(x *replay, _ map[string]any) {
		x.t.Helper()
		r := x.e.Call("GET", "/audit_events", x.apiKey, nil)
		if yes {
			x.e.Must(200, r)
		} else {
			cptest.WantError(x.t, r, 403, string(codes.APIForbidden))
		}
	}
}

func deleted(x *replay, _ map[string]any) {
	x.t.Helper()
	x.do("GET", "/scim/v2/Users/{{user}}", "", 404)
	cptest.WantError(x.t, x.e.Call("GET", "/api_keys", x.apiKey, nil), 401, string(codes.APIAuthInvalid))
	x.e.Must(200, x.e.Call("GET", "/api_keys", x.otherKey, nil)) // still a user of the other account
}

// entraSteps is the sequence Microsoft Entra ID's provisioning service
// sends (its documented request shapes: capitalised ops, string booleans,
// emails[type eq "work"].value, the enterprise extension, members
// added and removed by value lists).
func entraSteps() []step {
	return []step{
		{"probe by userName", "GET", filterPath("/scim/v2/Users", `userName eq "alice@example.com"`, ""), "", 200, wantTotal(0)},
		{"create", "POST", "/scim/v2/Users", `{"schemas":["` + userSchema + `","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			"externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"alice@example.com","active":true,
			"emails":[{"primary":true,"type":"work","value":"alice@example.com"}],"meta":{"resourceType":"User"},
			"name":{"formatted":"Alice Smith","familyName":"Smith","givenName":"Alice"},"roles":[],
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Eng"}}`, 201, created},
		{"new users act with the default roles", "", "", "", 0, canWrite(false)},
		{"get", "GET", "/scim/v2/Users/{{user}}", "", 200, wantAttr("displayName", "Alice Smith")},
		{"probe finds", "GET", filterPath("/scim/v2/Users", `userName eq "alice@example.com"`, ""), "", 200, wantTotal(1)},
		{"probe by externalId", "GET", filterPath("/scim/v2/Users", `externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`, ""), "", 200, wantTotal(1)},
		{"patch with paths", "PATCH", "/scim/v2/Users/{{user}}", `{"schemas":["` + patchSchema + `"],"Operations":[
			{"op":"Replace","path":"displayName","value":"Alice S."},
			{"op":"Replace","path":"emails[type eq \"work\"].value","value":"alice@example.com"},
			{"op":"Add","path":"name.givenName","value":"Alice"},
			{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"R&D"}]}`,
			200, wantAttr("displayName", "Alice S.")},
		{"credentials work", "", "", "", 0, canAct(true)},
		{"deactivate with a string boolean", "PATCH", "/scim/v2/Users/{{user}}", `{"schemas":["` + patchSchema + `"],
			"Operations":[{"op":"Replace","path":"active","value":"False"}]}`, 200, wantAttr("active", false)},
		{"credentials stop", "", "", "", 0, canAct(false)},
		{"reactivate", "PATCH", "/scim/v2/Users/{{user}}", `{"schemas":["` + patchSchema + `"],
			"Operations":[{"op":"Replace","path":"active","value":"True"}]}`, 200, wantAttr("active", true)},
		{"credentials work again", "", "", "", 0, canAct(true)},
		{"probe group", "GET", filterPath("/scim/v2/Groups", `displayName eq "Engineers"`, "excludedAttributes=members"), "", 200, wantTotal(0)},
		{"create group", "POST", "/scim/v2/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
			"externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"Engineers","members":[]}`, 201, groupCreated},
		{"the administrator maps the group to developer rw", "PATCH", "/scim/v2/Groups/{{group}}", `{"schemas":["` + patchSchema + `"],
			"Operations":[{"op":"replace","path":"urn:tollgate:params:scim:schemas:extension:2.0:Group:developer","value":"rw"}]}`, 200, nil},
		{"add member", "PATCH", "/scim/v2/Groups/{{group}}", `{"schemas":["` + patchSchema + `"],
			"Operations":[{"op":"Add","path":"members","value":[{"value":"{{user}}"}]}]}`, 200, nil},
		{"the group's role applies", "", "", "", 0, canWrite(true)},
		{"group lists its member", "GET", filterPath("/scim/v2/Groups", `displayName eq "Engineers"`, ""), "", 200, wantMembers(1)},
		{"remove member", "PATCH", "/scim/v2/Groups/{{group}}", `{"schemas":["` + patchSchema + `"],
			"Operations":[{"op":"Remove","path":"members","value":[{"value":"{{user}}"}]}]}`, 200, nil},
		{"back to the default roles", "", "", "", 0, canWrite(false)},
		{"delete", "DELETE", "/scim/v2/Users/{{user}}", "", 204, deleted},
	}
}

// oktaSteps is the sequence Okta's SCIM 2.0 app sends (its documented
// shapes: probe with paging, PUT for profile updates, path-less PATCH for
// deactivation, members removed by a value filter).
func oktaSteps() []step {
	return []step{
		{"probe by userName", "GET", filterPath("/scim/v2/Users", `userName eq "bob@example.com"`, "startIndex=1&count=100"), "", 200, wantTotal(0)},
		{"create", "POST", "/scim/v2/Users", `{"schemas":["` + userSchema + `"],"userName":"bob@example.com",
			"name":{"givenName":"Bob","familyName":"Jones"},"emails":[{"primary":true,"value":"bob@example.com","type":"work"}],
			"displayName":"Bob Jones","locale":"en-US","externalId":"00u1abcd2EFGhijk3l4","groups":[],
			"password":"t1meMa$heen","active":true}`, 201, created},
		{"get", "GET", "/scim/v2/Users/{{user}}", "", 200, wantAttr("userName", "bob@example.com")},
		{"replace", "PUT", "/scim/v2/Users/{{user}}", `{"schemas":["` + userSchema + `"],"id":"{{user}}","userName":"bob@example.com",
			"name":{"givenName":"Robert","familyName":"Jones"},"emails":[{"primary":true,"value":"bob@example.com","type":"work"}],
			"displayName":"Robert Jones","active":true,"externalId":"00u1abcd2EFGhijk3l4"}`, 200, wantAttr("displayName", "Robert Jones")},
		{"credentials work", "", "", "", 0, canAct(true)},
		{"deactivate without a path", "PATCH", "/scim/v2/Users/{{user}}", `{"schemas":["` + patchSchema + `"],
			"Operations":[{"op":"replace","value":{"active":false}}]}`, 200, wantAttr("active", false)},
		{"credentials stop", "", "", "", 0, canAct(false)},
		{"reactivate without a path", "PATCH", "/scim/v2/Users/{{user}}", `{"schemas":["` + patchSchema + `"],
			"Operations":[{"op":"replace","value":{"active":true}}]}`, 200, wantAttr("active", true)},
		{"credentials work again", "", "", "", 0, canAct(true)},
		{"push group", "POST", "/scim/v2/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Admins","members":[]}`, 201, groupCreated},
		{"the administrator maps the group to administrator (PUT with the extension)", "PUT", "/scim/v2/Groups/{{group}}",
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Admins",
			"urn:tollgate:params:scim:schemas:extension:2.0:Group":{"admin":true,"developer":"rw","team":"manager"}}`, 200, nil},
		{"not yet an administrator", "", "", "", 0, canAudit(false)},
		{"add member", "PATCH", "/scim/v2/Groups/{{group}}", `{"schemas":["` + patchSchema + `"],
			"Operations":[{"op":"add","path":"members","value":[{"value":"{{user}}","display":"bob@example.com"}]}]}`, 200, wantMembers(1)},
		{"an administrator now", "", "", "", 0, canAudit(true)},
		{"rename group (PUT without members keeps them)", "PUT", "/scim/v2/Groups/{{group}}",
			`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"{{group}}","displayName":"Tollgate Admins"}`, 200, wantMembers(1)},
		{"remove member by filter", "PATCH", "/scim/v2/Groups/{{group}}", `{"schemas":["` + patchSchema + `"],
			"Operations":[{"op":"remove","path":"members[value eq \"{{user}}\"]"}]}`, 200, wantMembers(0)},
		{"no longer an administrator", "", "", "", 0, canAudit(false)},
		{"delete group", "DELETE", "/scim/v2/Groups/{{group}}", "", 204, nil},
		{"delete", "DELETE", "/scim/v2/Users/{{user}}", "", 204, deleted},
	}
}

func wantMembers(n int) func(x *replay, res map[string]any) {
	return func(x *replay, res map[string]any) {
		x.t.Helper()
		if items, ok := res["Resources"].([]any); ok && len(items) == 1 {
			res = items[0].(map[string]any)
		}
		members, _ := res["members"].([]any)
		if len(members) != n {
			x.t.Fatalf("members %v, want %d", res["members"], n)
		}
		if n == 1 && members[0].(map[string]any)["value"] != x.user {
			x.t.Fatalf("member %v, want %s", members[0], x.user)
		}
	}
}

// TestProviderSequences replays the request sequences of Microsoft Entra
// ID and Okta against the API listener's real handler, in both store
// dialects, and checks what each step does to the user's access.
func TestProviderSequences(t *testing.T) {
	for _, p := range []struct {
		name  string
		steps []step
	}{{"entra", entraSteps()}, {"okta", oktaSteps()}} {
		t.Run(p.name, func(t *testing.T) {
			cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
				x := &replay{t: t, e: e}
				x.otherAccount, x.otherA = e.OtherAccount("other")
				for _, s := range p.steps {
					ok := t.Run(s.name, func(t *testing.T) {
						x.t = t
						var res map[string]any
						if s.method != "" {
							res = x.do(s.method, s.path, s.body, s.status)
						}
						if s.check != nil {
							s.check(x, res)
						}
					})
					if !ok {
						t.FailNow() // later steps depend on this one
					}
				}
				x.t = t
				// Every change is in the audit log, attributed to the SCIM key.
				evs, _, err := e.Store.ListAuditEvents(cptest.Ctx(t), e.Dev.AccountID, store.Page{})
				if err != nil {
					t.Fatal(err)
				}
				seen := map[string]bool{}
				for _, ev := range evs {
					if ev.ActorCredentialID == e.Dev.APIKeyID {
						seen[ev.Type] = true
					}
				}
				for _, typ := range []string{"membership_created.v0", "membership_updated.v0", "scim_group_created.v0",
					"scim_group_members_changed.v0", "membership_deleted.v0"} {
					if !seen[typ] {
						t.Errorf("no %s audit event by the SCIM key; saw %v", typ, seen)
					}
				}
			})
		})
	}
}

// scimError decodes a SCIM error response (RFC 7644 §3.12) and checks its
// status, scimType and code.
func scimError(t *testing.T, r cptest.Response, status int, scimType string, code codes.Code) {
	t.Helper()
	var body struct {
		Schemas  []string `json:"schemas"`
		Status   string   `json:"status"`
		ScimType string   `json:"scimType"`
		Detail   string   `json:"detail"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("error body %s: %v", r.Body, err)
	}
	if r.Status != status || body.Status != strconv.Itoa(status) ||
		body.ScimType != scimType || !strings.HasPrefix(body.Detail, string(code)+": ") ||
		len(body.Schemas) != 1 || body.Schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
		t.Fatalf("status %d, body %s; want %d %q %s", r.Status, r.Body, status, scimType, code)
	}
}
