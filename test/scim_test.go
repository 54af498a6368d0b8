package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSCIMDeactivationReachesEdges provisions a user through SCIM on the
// real tollgated, runs an agent with an authtoken the user owns, and
// deactivates the user through SCIM as Entra ID does ("active": "False"):
// the edge closes the agent's session (TG_300) and the endpoint stops;
// reactivating lets the same authtoken bind again; deleting the user
// through SCIM deletes it (docs/scim.md#deactivation).
func TestSCIMDeactivationReachesEdges(t *testing.T) {
	dev := startDev(t, "")
	admin := dev.info.APIKey
	user := mustAPI(t, dev, admin, "POST", "/scim/v2/Users", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "erin@example.com",
		"displayName": "Erin", "active": true, "externalId": "entra-erin"}, 201)
	userID, _ := user["id"].(string)
	if !strings.HasPrefix(userID, "usr_") {
		t.Fatalf("SCIM user = %v", user)
	}
	cred := mustAPI(t, dev, admin, "POST", "/credentials", map[string]any{"owner_id": userID, "description": "erin's agent"}, 201)
	credID, authtoken := cred["id"].(string), cred["token"].(string)

	up := echoUpstream(t)
	agent, url := agentWithToken(t, dev, authtoken, "http", upstreamPort(up))
	c := dev.client(false)
	if err := getOK(c, url+"/hello"); err != nil {
		t.Fatalf("through the SCIM user's agent: %v", err)
	}

	active := func(v string) {
		t.Helper()
		got := mustAPI(t, dev, admin, "PATCH", "/scim/v2/Users/"+userID, map[string]any{
			"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
			"Operations": []any{map[string]any{"op": "Replace", "path": "active", "value": v}}}, 200)
		if fmt.Sprint(got["active"]) != strings.ToLower(v) {
			t.Fatalf("after active %s: %v", v, got)
		}
	}
	active("False")
	agent.waitFor(regexp.MustCompile(`TG_300`), 10*time.Second)
	eventually(t, 10*time.Second, func() error {
		if err := getOK(c, url+"/hello"); err == nil {
			return fmt.Errorf("%s still serves after the user was deactivated", url)
		}
		return nil
	})
	if code, exited := agent.wait(30 * time.Second); !exited || code == 0 {
		t.Fatalf("agent after deactivation: exited %v, code %d:\n%s", exited, code, agent.output())
	}

	active("True")
	_, url2 := agentWithToken(t, dev, authtoken, "http", upstreamPort(up))
	if err := getOK(c, url2+"/hello"); err != nil {
		t.Fatalf("through the reactivated user's agent: %v", err)
	}

	mustAPI(t, dev, admin, "DELETE", "/scim/v2/Users/"+userID, nil, 204)
	wantAPIError(t, dev, admin, "GET", "/credentials/"+credID, 404, "TG_250")
	eventually(t, 10*time.Second, func() error {
		if err := getOK(c, url2+"/hello"); err == nil {
			return fmt.Errorf("%s still serves after the user was deleted", url2)
		}
		return nil
	})
}
