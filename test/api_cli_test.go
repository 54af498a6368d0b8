package test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cliResult is one run of the tollgate binary.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runTollgateCLI runs `tollgate args...` to completion (at most 60s) with
// env added to a private config file's environment.
func runTollgateCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.tollgate, args...)
	cmd.Env = append(cmd.Environ(), "TOLLGATE_CONFIG="+filepath.Join(t.TempDir(), "tollgate.yml"),
		"TOLLGATE_API_KEY=", "TOLLGATE_API_URL=")
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running tollgate %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// apiCLIJSON runs `tollgate api args...`, requires exit 0 and returns
// stdout decoded as a JSON object.
func apiCLIJSON(t *testing.T, env []string, args ...string) map[string]any {
	t.Helper()
	r := runTollgateCLI(t, env, append([]string{"api"}, args...)...)
	if r.code != 0 {
		t.Fatalf("tollgate api %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("tollgate api %s: not a JSON object: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
	return m
}

// restJSON calls the REST API directly: method path with an optional JSON
// body; it returns the status and the decoded body (nil for none).
func restJSON(t testing.TB, base, key, method, path string, body any) (int, map[string]any) {
	t.Helper()
	status, data, err := restCall(context.Background(), http.DefaultClient, base, key, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	var m map[string]any
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s %s: %d with a body that is not a JSON object: %q", method, path, status, data)
		}
	}
	return status, m
}

// restCall is restJSON without a testing.TB, for goroutines.
func restCall(ctx context.Context, c *http.Client, base, key, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Ngrok-Version", "2")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

func TestAPICLIAgainstDev(t *testing.T) {
	d := startDev(t, "")
	env := []string{"TOLLGATE_API_KEY=" + d.info.APIKey, "TOLLGATE_API_URL=" + d.info.APIURL}

	// Bot users: create, get, update, list.
	bot := apiCLIJSON(t, env, "bot-users", "create", "--name", "ci")
	botID, _ := bot["id"].(string)
	if !strings.HasPrefix(botID, "bot_") || bot["name"] != "ci" || bot["active"] != true ||
		bot["uri"] != d.info.APIURL+"/bot_users/"+botID {
		t.Fatalf("bot user: %v", bot)
	}
	if got := apiCLIJSON(t, env, "bot-users", "get", botID); got["id"] != botID || got["name"] != "ci" {
		t.Fatalf("get bot user: %v", got)
	}
	if got := apiCLIJSON(t, env, "bot-users", "update", botID, "--name", "ci-renamed"); got["name"] != "ci-renamed" || got["active"] != true {
		t.Fatalf("update bot user: %v", got)
	}

	// API keys and credentials owned by the bot user.
	ak := apiCLIJSON(t, env, "api-keys", "create", "--owner-id", botID, "--description", "ci key")
	akID, _ := ak["id"].(string)
	akToken, _ := ak["token"].(string)
	if !strings.HasPrefix(akID, "ak_") || ak["owner_id"] != botID || akToken == "" {
		t.Fatalf("api key: %v", ak)
	}
	if got := apiCLIJSON(t, env, "api-keys", "get", akID); got["token"] != nil || got["description"] != "ci key" {
		t.Fatalf("get api key shows the token or lost the description: %v", got)
	}
	if got := apiCLIJSON(t, env, "api-keys", "update", akID, "--metadata", `{"team":"ci"}`); got["metadata"] != `{"team":"ci"}` {
		t.Fatalf("update api key: %v", got)
	}
	cr := apiCLIJSON(t, env, "credentials", "create", "--owner-id", botID, "--acl", "bind:ci.tollgate.localhost", "--description", "ci")
	crID, _ := cr["id"].(string)
	if !strings.HasPrefix(crID, "cr_") || cr["owner_id"] != botID || cr["token"] == nil {
		t.Fatalf("credential: %v", cr)
	}
	cr = apiCLIJSON(t, env, "credentials", "update", crID, "--acl", "bind:*.tollgate.localhost", "--acl", "bind:x.tollgate.localhost")
	if acl, _ := cr["acl"].([]any); len(acl) != 2 || acl[0] != "bind:*.tollgate.localhost" {
		t.Fatalf("update credential: %v", cr)
	}

	// The bot user's key, from a config file saved by add-api-key.
	cfg := filepath.Join(t.TempDir(), "bot.yml")
	if r := runTollgateCLI(t, []string{"TOLLGATE_CONFIG=" + cfg}, "config", "add-api-key", akToken, "--api-url", d.info.APIURL); r.code != 0 {
		t.Fatalf("add-api-key: %d %s", r.code, r.stderr)
	}
	list := apiCLIJSON(t, []string{"TOLLGATE_CONFIG=" + cfg}, "credentials", "list")
	found := false
	for _, it := range list["credentials"].([]any) {
		found = found || it.(map[string]any)["id"] == crID
	}
	if !found || list["next_page_uri"] != nil {
		t.Fatalf("the bot's key does not list its credential %s: %v", crID, list)
	}

	// Paging: --limit 1 leaves a next page; --all gathers every key (the
	// dev admin's and the bot's).
	page := apiCLIJSON(t, env, "api-keys", "list", "--limit", "1")
	if keys, _ := page["keys"].([]any); len(keys) != 1 || page["next_page_uri"] == nil {
		t.Fatalf("api-keys list --limit 1: %v", page)
	}
	all := apiCLIJSON(t, env, "api-keys", "list", "--limit", "1", "--all")
	if keys, _ := all["keys"].([]any); len(keys) != 2 || all["next_page_uri"] != nil {
		t.Fatalf("api-keys list --all: %v", all)
	}

	// Delete, then the objects are gone.
	for _, c := range [][]string{{"credentials", crID}, {"api-keys", akID}, {"bot-users", botID}} {
		r := runTollgateCLI(t, env, "api", c[0], "delete", c[1])
		if r.code != 0 || r.stdout != "" {
			t.Fatalf("delete %s: %d %q %q", c[1], r.code, r.stdout, r.stderr)
		}
		if status, _ := restJSON(t, d.info.APIURL, d.info.APIKey, "GET", "/"+strings.ReplaceAll(c[0], "-", "_")+"/"+c[1], nil); status != 404 {
			t.Fatalf("GET %s after delete: %d", c[1], status)
		}
	}

	// Errors: the API's message and code on stderr, exit status 1.
	tests := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"not found", env, []string{"bot-users", "get", botID}, []string{"HTTP 404", "[TG_250]", botID}},
		{"bad acl", env, []string{"credentials", "create", "--acl", "nobind:x"}, []string{"HTTP 400", "[TG_"}},
		{"unknown owner", env, []string{"api-keys", "create", "--owner-id", botID}, []string{"HTTP 400", "owner_id"}},
		{"revoked key", []string{"TOLLGATE_API_KEY=" + akToken, "TOLLGATE_API_URL=" + d.info.APIURL}, []string{"bot-users", "list"}, []string{"HTTP 401", "[TG_"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runTollgateCLI(t, tc.env, append([]string{"api"}, tc.args...)...)
			if r.code != 1 || r.stdout != "" {
				t.Fatalf("exit %d, stdout %q; want 1 and nothing", r.code, r.stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Fatalf("stderr %q lacks %q", r.stderr, w)
				}
			}
		})
	}

	// A usage error exits 2 before calling the API.
	if r := runTollgateCLI(t, nil, "api", "bot-users", "list"); r.code != 2 || !strings.Contains(r.stderr, "No API key") {
		t.Fatalf("no key: %d %q", r.code, r.stderr)
	}
	if r := runTollgateCLI(t, env, "api", "bot-users", "list", "--limit", "0"); r.code != 2 {
		t.Fatalf("--limit 0: %d %q", r.code, r.stderr)
	}
}
