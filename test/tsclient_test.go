package test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// tsClientResources are the @ngrok/ngrok-api services tsclient/check.js
// runs through create, get, update, list (paged) and delete.
var tsClientResources = []string{"botUsers", "apiKeys", "credentials", "sshCredentials",
	"reservedDomains", "reservedAddrs", "ipPolicies", "ipPolicyRules", "ipRestrictions"}

// TestTSClientCompatibility runs the hosted platform's TypeScript API
// client, unmodified but for its base URL, against `tollgated dev`
// (tsclient/check.js). It needs Node.js and npm (.ci/run installs them).
func TestTSClientCompatibility(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("this test needs Node.js ≥ 18 and npm: apt-get install nodejs npm (.ci/run does)")
	}
	dir, err := filepath.Abs("tsclient")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@ngrok", "ngrok-api", "package.json")); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Fatalf("test/tsclient/node_modules is missing and npm is not installed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}

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
