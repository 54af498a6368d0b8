package scim

import (
	"encoding/json"
	"testing"

	"github.com/tollgate/tollgate/controlplane/store"
)

// FuzzPatch feeds arbitrary PATCH bodies to the User and Group appliers:
// they return an error or a change, and never panic.
func FuzzPatch(f *testing.F) {
	for _, seed := range []string{
		`{"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
		`{"Operations":[{"op":"replace","value":{"active":false,"displayName":"x"}}]}`,
		`{"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"a@b.c"}]}`,
		`{"Operations":[{"op":"remove","path":"members[value eq \"usr_1\" or value eq \"usr_2\"]"}]}`,
		`{"Operations":[{"op":"add","path":"members","value":[{"value":"usr_1"}]}]}`,
		`{"Operations":[{"op":"replace","value":{"urn:tollgate:params:scim:schemas:extension:2.0:Group":{"admin":"True"}}}]}`,
		`{"Operations":[{"op":"replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:userName","value":null}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req patchRequest
		if json.Unmarshal(body, &req) != nil {
			return
		}
		u := store.SCIMUserInput{Email: "a@example.com", Active: true}
		var hint string
		_ = applyOps(req.Operations, schemaUser, userSetter(&u, &hint))
		g := store.SCIMGroup{DisplayName: "g", Members: []string{"usr_1", "usr_2"}}
		_ = applyOps(req.Operations, schemaGroup, groupSetter(&g))
	})
}

// TestPatchShapes: the request shapes of Entra ID and Okta give the
// change they mean.
func TestPatchShapes(t *testing.T) {
	cases := []struct {
		name string
		ops  string
		want store.SCIMUserInput
	}{
		{"entra string boolean", `[{"op":"Replace","path":"active","value":"False"}]`, store.SCIMUserInput{Email: "a@example.com"}},
		{"okta path-less", `[{"op":"replace","value":{"active":false,"displayName":"Bo"}}]`, store.SCIMUserInput{Email: "a@example.com", DisplayName: "Bo"}},
		{"core schema URN", `[{"op":"replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:displayName","value":"Al"}]`,
			store.SCIMUserInput{Email: "a@example.com", DisplayName: "Al", Active: true}},
		{"ignored attributes", `[{"op":"Add","path":"name.givenName","value":"x"},{"op":"Replace","path":"emails[type eq \"work\"].value","value":"z@example.com"},
			{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]`, store.SCIMUserInput{Email: "a@example.com", Active: true}},
		{"remove externalId", `[{"op":"remove","path":"externalId"}]`, store.SCIMUserInput{Email: "a@example.com", Active: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ops []patchOp
			if err := json.Unmarshal([]byte(tc.ops), &ops); err != nil {
				t.Fatal(err)
			}
			u := store.SCIMUserInput{Email: "a@example.com", Active: true, ExternalID: "x"}
			if tc.name != "remove externalId" {
				tc.want.ExternalID = "x"
			}
			var hint string
			if err := applyOps(ops, schemaUser, userSetter(&u, &hint)); err != nil || u != tc.want {
				t.Fatalf("got %+v, %v; want %+v", u, err, tc.want)
			}
		})
	}
}
