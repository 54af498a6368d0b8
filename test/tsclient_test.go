package test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// tsClientResources are the @ngrok/ngrok-api services tsclient/check.js
// runs through create, get, update, list (paged) and delete.
var tsClientResources = []string{"botUsers", "apiKeys", "credentials", "sshCredentials",
	"reservedDomains", "reservedAddrs", "ipPolicies", "ipPolicyRules", "ipRestrictions",
	"eventDestinations", "eventSubscriptions", "eventSources"}

// TestTSClientCompatibility runs the hosted platform's TypeScript API
// client, unmodified but for its base URL, against `tollgated dev`
// (tsclient/check.js). It needs Node.js and npm (.ci/run installs them).
func TestTSClientCompatibility(t *testing.T) {
	dir, node := nodeProject(t, "tsclient", "@ngrok/ngrok-api/package.json")

	d := startDev(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "check.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TOLLGATE_API_URL="+d.info.APIURL, "TOLLGATE_API_KEY="+d.info.APIKey,
		"TSCLIENT_RESOURCES="+strings.Join(tsClientResources, ","))
	out, err := cmd.CombinedOutput()
	t.Logf("node check.js:\n%s", out)
	if err != nil {
		t.Fatalf("the TypeScript client found mismatches (%v); see the FAIL lines above", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var summary struct {
		Passed []string `json:"passed"`
		Failed []string `json:"failed"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &summary); err != nil {
		t.Fatalf("check.js did not end with its JSON summary: %v", err)
	}
	for _, r := range append([]string{"errors"}, tsClientResources...) {
		if !slices.Contains(summary.Passed, r) {
			t.Errorf("check.js did not pass %s: %+v", r, summary)
		}
	}
}
