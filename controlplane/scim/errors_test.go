package scim_test

import (
	"net/http"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/store"
)

// TestRefusals: every refusal is a SCIM error response with its scimType
// and TG code, and changes nothing.
func TestRefusals(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		_, devKey := e.MemberKey("dev@example.com", store.Membership{Developer: store.DeveloperRW, Team: store.TeamManager})
		x := &replay{t: t, e: e}
		user := x.do("POST", "/scim/v2/Users", `{"userName":"carol@example.com","active":true}`, 201)
		x.user = cptest.Str(user, "id")
		group := x.do("POST", "/scim/v2/Groups", `{"displayName":"Ops"}`, 201)
		x.group = cptest.Str(group, "id")
		patch := func(ops string) string { return `{"schemas":["` + patchSchema + `"],"Operations":[` + ops + `]}` }
		cases := []struct {
			name, method, path, key, body string
			status                        int
			scimType                      string
			code                          codes.Code
		}{
			{"no key", "GET", "/scim/v2/Users", "-", "", 401, "", codes.APIAuthMissing},
			{"wrong key", "GET", "/scim/v2/Users", "3N8K6DJhvHH60ITcsmCvo0Vjlew_mGRwNhcbARPvU7jUXrTDW00gw4uj5NWn", "", 401, "", codes.APIAuthInvalid},
			{"not an administrator", "GET", "/scim/v2/Users", devKey, "", 403, "", codes.SCIMForbidden},
			{"no such endpoint", "GET", "/scim/v2/Things", "", "", 404, "", codes.SCIMNotFound},
			{"method", "DELETE", "/scim/v2/Users", "", "", 405, "", codes.SCIMMethod},
			{"unknown user", "GET", "/scim/v2/Users/usr_3N8K6DJhvHH60ITcsmCvo0Vjlew", "", "", 404, "", codes.SCIMNotFound},
			{"not a user ID", "GET", "/scim/v2/Users/42", "", "", 404, "", codes.SCIMNotFound},
			{"filter operator", "GET", filterPath("/scim/v2/Users", `userName co "carol"`, ""), "", "", 400, "invalidFilter", codes.SCIMInvalidFilter},
			{"filter attribute", "GET", filterPath("/scim/v2/Users", `title eq "x"`, ""), "", "", 400, "invalidFilter", codes.SCIMInvalidFilter},
			{"filter syntax", "GET", filterPath("/scim/v2/Users", `userName eq`, ""), "", "", 400, "invalidFilter", codes.SCIMInvalidFilter},
			{"paging", "GET", "/scim/v2/Users?count=many", "", "", 400, "invalidValue", codes.SCIMInvalidValue},
			{"not JSON", "POST", "/scim/v2/Users", "", `{"userName":`, 400, "invalidSyntax", codes.SCIMInvalidSyntax},
			{"userName missing", "POST", "/scim/v2/Users", "", `{"displayName":"x"}`, 400, "invalidValue", codes.SCIMUserName},
			{"userName not an address", "POST", "/scim/v2/Users", "", `{"userName":"carol"}`, 400, "invalidValue", codes.SCIMUserName},
			{"member already", "POST", "/scim/v2/Users", "", `{"userName":"Carol@example.com"}`, 409, "uniqueness", codes.SCIMUniqueness},
			{"unknown attribute", "POST", "/scim/v2/Users", "", `{"userName":"d@example.com","colour":"red"}`, 400, "invalidPath", codes.SCIMInvalidPath},
			{"op", "PATCH", "/scim/v2/Users/{{user}}", "", patch(`{"op":"move","path":"active","value":false}`), 400, "invalidPath", codes.SCIMInvalidPath},
			{"no operations", "PATCH", "/scim/v2/Users/{{user}}", "", patch(``), 400, "invalidSyntax", codes.SCIMInvalidSyntax},
			{"remove without path", "PATCH", "/scim/v2/Users/{{user}}", "", patch(`{"op":"remove"}`), 400, "invalidPath", codes.SCIMInvalidPath},
			{"path syntax", "PATCH", "/scim/v2/Users/{{user}}", "", patch(`{"op":"replace","path":"emails[type eq","value":"x"}`), 400, "invalidPath", codes.SCIMInvalidPath},
			{"boolean", "PATCH", "/scim/v2/Users/{{user}}", "", patch(`{"op":"replace","path":"active","value":"no"}`), 400, "invalidValue", codes.SCIMInvalidValue},
			{"a later op fails: none applies", "PATCH", "/scim/v2/Users/{{user}}", "", patch(`{"op":"replace","path":"active","value":false},{"op":"replace","path":"userName","value":7}`), 400, "invalidValue", codes.SCIMInvalidValue},
			{"member unknown", "PATCH", "/scim/v2/Groups/{{group}}", "", patch(`{"op":"add","path":"members","value":[{"value":"usr_3N8K6DJhvHH60ITcsmCvo0Vjlew"}]}`), 400, "invalidValue", codes.SCIMMemberUnknown},
			{"group role", "PATCH", "/scim/v2/Groups/{{group}}", "", patch(`{"op":"replace","path":"urn:tollgate:params:scim:schemas:extension:2.0:Group:team","value":"owner"}`), 400, "invalidValue", codes.SCIMGroupRoles},
			{"group name taken", "POST", "/scim/v2/Groups", "", `{"displayName":"Ops"}`, 409, "uniqueness", codes.SCIMUniqueness},
			{"last administrator", "PATCH", "/scim/v2/Users/" + e.Dev.UserID, "", patch(`{"op":"replace","path":"active","value":false}`), 409, "", codes.LastAdmin},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				key := tc.key
				switch key {
				case "":
					key = e.Admin
				case "-":
					key = ""
				}
				var body any
				if tc.body != "" {
					body = x.expand(tc.body)
				}
				before := e.Revision()
				scimError(t, e.Call(tc.method, x.expand(tc.path), key, body), tc.status, tc.scimType, tc.code)
				if e.Revision() != before {
					t.Fatal("a refused request changed the store")
				}
			})
		}
		if got := x.do("GET", "/scim/v2/Users/{{user}}", "", 200); got["active"] != true {
			t.Fatalf("user after refusals: %v", got)
		}

		// The account's api IP restriction applies to SCIM as to the API.
		pid := cptest.Str(e.Must(201, e.Call("POST", "/ip_policies", e.Admin, map[string]any{})), "id")
		e.Must(201, e.Call("POST", "/ip_policy_rules", e.Admin, map[string]any{"ip_policy_id": pid, "cidr": "192.0.2.0/24", "action": "allow"}))
		e.Must(201, e.Call("POST", "/ip_restrictions", e.Admin, map[string]any{"type": "api", "enforced": true, "ip_policy_ids": []string{pid}}))
		scimError(t, e.Call("GET", "/scim/v2/Users", e.Admin, nil), http.StatusForbidden, "", codes.APIIPRestricted)
	})
}

// TestDiscovery: the discovery endpoints describe what is served.
func TestDiscovery(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		x := &replay{t: t, e: e}
		cfg := x.do("GET", "/scim/v2/ServiceProviderConfig", "", 200)
		if p, _ := cfg["patch"].(map[string]any); p["supported"] != true {
			t.Fatalf("ServiceProviderConfig %v", cfg)
		}
		x.do("GET", "/scim/v2/ResourceTypes", "", 200)
		if rt := x.do("GET", "/scim/v2/ResourceTypes/Group", "", 200); cptest.Str(rt, "endpoint") != "/Groups" {
			t.Fatalf("Group resource type %v", rt)
		}
		wantTotal(3)(x, x.do("GET", "/scim/v2/Schemas", "", 200))
		x.do("GET", "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", "", 200)
		x.do("GET", "/scim/v2/Schemas/urn:tollgate:params:scim:schemas:extension:2.0:Group", "", 200)
	})
}
