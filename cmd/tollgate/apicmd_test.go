package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/restapi"
	"github.com/tollgate/tollgate/controlplane/store"
)

// realAPI starts the REST API (restapi.Server) on an SQLite store in a temporary
// directory and returns its URL and a bootstrap admin API key.
func realAPI(t *testing.T) (baseURL, apiKey string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "tollgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	creds, created, err := controlplane.Bootstrap(ctx, st)
	if err != nil || !created {
		t.Fatalf("bootstrap: %v %v", created, err)
	}
	srv := httptest.NewServer(restapi.New(restapi.Config{}, controlplane.New(controlplane.Config{}, st)).Handler())
	t.Cleanup(srv.Close)
	return srv.URL, creds.APIKey.Reveal()
}

// apiJSON runs `tollgate api ...` expecting success and decodes stdout.
func apiJSON(t *testing.T, env map[string]string, args ...string) map[string]any {
	t.Helper()
	code, out, errOut := runCLI(t, env, append([]string{"api"}, args...)...)
	if code != 0 {
		t.Fatalf("tollgate api %s: exit %d\nstderr: %s", strings.Join(args, " "), code, errOut)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("tollgate api %s: stdout is not a JSON object: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !strings.Contains(out, "\n  \"") {
		t.Fatalf("output is not indented:\n%s", out)
	}
	return m
}

func TestAPICRUDAgainstControlPlane(t *testing.T) {
	base, key := realAPI(t)
	env := map[string]string{"TOLLGATE_API_KEY": key, "TOLLGATE_API_URL": base}

	bot := apiJSON(t, env, "bot-users", "create", "--name", "ci")
	botID, _ := bot["id"].(string)
	if !strings.HasPrefix(botID, "bot_") || bot["name"] != "ci" || bot["active"] != true {
		t.Fatalf("created bot user: %v", bot)
	}
	got := apiJSON(t, env, "bot-users", "get", botID)
	if got["id"] != botID || got["name"] != "ci" {
		t.Fatalf("get: %v", got)
	}
	upd := apiJSON(t, env, "bot_users", "update", botID, "--name", "ci-2", "--active=false")
	if upd["name"] != "ci-2" || upd["active"] != false {
		t.Fatalf("update: %v", upd)
	}

	cred := apiJSON(t, env, "credentials", "create", "--owner-id", botID, "--acl", "bind:a.example.com,bind:*.b.example.com", "--description", "deploy")
	acl, _ := cred["acl"].([]any)
	if cred["owner_id"] != botID || len(acl) != 2 || acl[1] != "bind:*.b.example.com" || cred["token"] == nil {
		t.Fatalf("credential: %v", cred)
	}
	cred = apiJSON(t, env, "credentials", "update", cred["id"].(string), "--acl", "bind:c.example.com")
	if acl, _ := cred["acl"].([]any); len(acl) != 1 || acl[0] != "bind:c.example.com" || cred["token"] != nil {
		t.Fatalf("updated credential: %v", cred)
	}

	ak := apiJSON(t, env, "api-keys", "create", "--owner-id", botID, "--body", `{"metadata":"m1","description":"from body"}`, "--description", "flag wins")
	if ak["owner_id"] != botID || ak["metadata"] != "m1" || ak["description"] != "flag wins" {
		t.Fatalf("api key: %v", ak)
	}
	// The new key belongs to the deactivated bot user: refused with the
	// API's code; once reactivated it works, given through the flag.
	botKey := []string{"bot-users", "list", "--api-key", ak["token"].(string), "--api-url", base}
	code, _, errOut := runCLI(t, map[string]string{}, append([]string{"api"}, botKey...)...)
	if code != exitError || !strings.Contains(errOut, "HTTP 403") || !strings.Contains(errOut, "deactivated") {
		t.Fatalf("key of a deactivated bot: %d %q", code, errOut)
	}
	apiJSON(t, env, "bot-users", "update", botID, "--active")
	list := apiJSON(t, map[string]string{}, botKey...)
	if items, _ := list["bot_users"].([]any); len(items) != 1 {
		t.Fatalf("list with the bot's key: %v", list)
	}

	// A reserved domain's HSTS: given as the header's value, shown as the
	// API's object; "none" removes it; a bad value never reaches the API.
	rd := apiJSON(t, env, "reserved-domains", "create", "--domain", "hsts.example.com", "--hsts", "max-age=31536000; includeSubDomains; preload")
	if h, _ := rd["hsts"].(map[string]any); h["max_age"] != float64(31536000) || h["include_subdomains"] != true || h["preload"] != true {
		t.Fatalf("reserved domain with hsts: %v", rd)
	}
	rd = apiJSON(t, env, "reserved-domains", "update", rd["id"].(string), "--hsts", "none", "--min-tls-version", "1.3")
	if rd["hsts"] != nil || rd["min_tls_version"] != "1.3" {
		t.Fatalf("reserved domain after --hsts none: %v", rd)
	}
	if code, _, errOut := runCLI(t, env, "api", "reserved-domains", "update", rd["id"].(string), "--hsts", "max-age=600; preload"); code != exitError ||
		!strings.Contains(errOut, "TG_2634") || !strings.Contains(errOut, "preload requires includeSubDomains") {
		t.Fatalf("bad --hsts: %d %q", code, errOut)
	}

	code, out, _ := runCLI(t, env, "api", "bot-users", "delete", botID)
	if code != 0 || out != "" {
		t.Fatalf("delete: %d %q", code, out)
	}
	code, out, errOut = runCLI(t, env, "api", "bot-users", "get", botID)
	if code != exitError || out != "" || !strings.Contains(errOut, "HTTP 404") || !strings.Contains(errOut, "[TG_") ||
		!strings.Contains(errOut, "was not found") {
		t.Fatalf("get after delete: %d %q %q", code, out, errOut)
	}
}

func TestAPIListPaging(t *testing.T) {
	base, key := realAPI(t)
	env := map[string]string{"TOLLGATE_API_KEY": key, "TOLLGATE_API_URL": base}
	var ids []string
	for i := 0; i < 5; i++ {
		b := apiJSON(t, env, "bot-users", "create", "--name", fmt.Sprintf("bot-%d", i))
		ids = append(ids, b["id"].(string))
	}
	// Newest first is descending ID order (IDs sort by creation second,
	// then at random within a second).
	sort.Strings(ids)
	page := apiJSON(t, env, "bot-users", "list", "--limit", "2")
	items, _ := page["bot_users"].([]any)
	if len(items) != 2 || page["next_page_uri"] == nil {
		t.Fatalf("first page: %v", page)
	}
	if items[0].(map[string]any)["id"] != ids[4] {
		t.Fatalf("not newest first: %v", items)
	}
	page = apiJSON(t, env, "bot-users", "list", "--limit", "2", "--before-id", ids[1])
	if items, _ := page["bot_users"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != ids[0] || page["next_page_uri"] != nil {
		t.Fatalf("last page: %v", page)
	}
	all := apiJSON(t, env, "bot-users", "list", "--limit", "2", "--all")
	items, _ = all["bot_users"].([]any)
	if len(items) != 5 || all["next_page_uri"] != nil {
		t.Fatalf("--all: %d items, %v", len(items), all["next_page_uri"])
	}
	for i, it := range items {
		if it.(map[string]any)["id"] != ids[4-i] {
			t.Fatalf("--all item %d: %v", i, it)
		}
	}
	code, _, errOut := runCLI(t, env, "api", "bot-users", "list", "--limit", "101")
	if code != exitUsage || !strings.Contains(errOut, "--limit") {
		t.Fatalf("--limit 101: %d %q", code, errOut)
	}
	// The server's own check, reached with a before_id of the wrong kind.
	code, _, errOut = runCLI(t, env, "api", "bot-users", "list", "--before-id", "cr_nope")
	if code != exitError || !strings.Contains(errOut, "HTTP 400") || !strings.Contains(errOut, "[TG_") {
		t.Fatalf("bad before_id: %d %q", code, errOut)
	}
}

func TestAPIKeySources(t *testing.T) {
	var gotAuth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization") + " " + r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"bot_users":[],"uri":"x","next_page_uri":null}`)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.yml")
	env := map[string]string{"TOLLGATE_CONFIG": cfg}

	code, _, errOut := runCLI(t, env, "api", "bot-users", "list")
	if code != exitUsage || !strings.Contains(errOut, "No API key") {
		t.Fatalf("no key: %d %q", code, errOut)
	}
	code, out, errOut := runCLI(t, env, "config", "add-api-key", "filekey_secret", "--api-url", srv.URL+"/")
	if code != 0 || !strings.Contains(out, cfg) {
		t.Fatalf("add-api-key: %d %q %q", code, out, errOut)
	}
	f, err := config.LoadAgentFile(cfg)
	if err != nil || f.APIKey != "filekey_secret" || f.APIURL != srv.URL {
		t.Fatalf("config file: %+v %v", f, err)
	}
	if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file mode: %v %v", fi, err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"file", nil, nil, "Bearer filekey_secret /bot_users"},
		{"env", map[string]string{"TOLLGATE_API_KEY": "envkey_s"}, nil, "Bearer envkey_s /bot_users"},
		{"flag", map[string]string{"TOLLGATE_API_KEY": "envkey_s"}, []string{"--api-key", "flagkey_s"}, "Bearer flagkey_s /bot_users"},
		{"url path prefix", map[string]string{"TOLLGATE_API_URL": srv.URL + "/v2"}, nil, "Bearer filekey_secret /v2/bot_users"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := map[string]string{"TOLLGATE_CONFIG": cfg}
			for k, v := range tc.env {
				e[k] = v
			}
			code, _, errOut := runCLI(t, e, append([]string{"api", "bot-users", "list"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if got, _ := gotAuth.Load().(string); got != tc.want {
				t.Fatalf("server saw %q, want %q", got, tc.want)
			}
		})
	}
	code, _, errOut = runCLI(t, env, "config", "add-api-key", "k_s", "--api-url", "ftp://x")
	if code != exitUsage || !strings.Contains(errOut, "not valid") {
		t.Fatalf("bad --api-url: %d %q", code, errOut)
	}
}

func TestAPIErrorsAndPagingGuards(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch r.URL.Path {
		case "/credentials":
			// A server that points next_page_uri at itself forever.
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"credentials":[{"id":"cr_1"}],"uri":"http://%s/credentials","next_page_uri":"http://elsewhere.example/credentials?before_id=cr_1"}`, r.Host)
		case "/bot_users":
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>bad gateway</html>")
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"error_code":"TG_409","status_code":409,"msg":"It exists.","details":{"operation_id":"op_x"}}`)
		}
	}))
	t.Cleanup(srv.Close)
	env := map[string]string{"TOLLGATE_API_KEY": "k_s", "TOLLGATE_API_URL": srv.URL}

	code, _, errOut := runCLI(t, env, "api", "credentials", "list", "--all")
	if code != exitError || !strings.Contains(errOut, "twice") || calls.Load() != 2 {
		t.Fatalf("looping next_page_uri: %d %q after %d calls", code, errOut, calls.Load())
	}
	code, _, errOut = runCLI(t, env, "api", "bot-users", "list")
	if code != exitError || !strings.Contains(errOut, "HTTP 502: <html>bad gateway</html>") {
		t.Fatalf("non-JSON error: %d %q", code, errOut)
	}
	code, _, errOut = runCLI(t, env, "api", "reserved-domains", "create", "--domain", "a.example.com")
	if code != exitError || !strings.Contains(errOut, "HTTP 409: It exists. [TG_409] (operation op_x)") {
		t.Fatalf("error body: %d %q", code, errOut)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing id", []string{"bot-users", "get"}, "accepts 1 arg"},
		{"slash in id", []string{"bot-users", "get", "../x"}, "not an object ID"},
		{"bad body", []string{"bot-users", "create", "--body", "[1]"}, "--body must be a JSON object"},
		{"field not updatable", []string{"api-keys", "update", "ak_x", "--owner-id", "bot_x"}, "unknown flag"},
		{"unknown resource", []string{"nope", "list"}, "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := calls.Load()
			code, _, errOut := runCLI(t, env, append([]string{"api"}, tc.args...)...)
			if code != exitUsage || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errOut, tc.want)
			}
			if calls.Load() != before {
				t.Fatalf("a usage error reached the server")
			}
		})
	}
}

func TestAPIHelp(t *testing.T) {
	code, out, _ := runCLI(t, nil, "api", "--help")
	if code != 0 || !strings.Contains(out, "TOLLGATE_API_KEY") || !strings.Contains(out, "bot-users") || !strings.Contains(out, "ip-policies") {
		t.Fatalf("api --help: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, nil, "api", "ip-policies", "create", "--help")
	if code != 0 || !strings.Contains(out, "Create an ip policy (POST /ip_policies)") || !strings.Contains(out, "--description") {
		t.Fatalf("create --help: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, nil, "config", "add-api-key", "--help")
	if code != 0 || !strings.Contains(out, "Examples:") {
		t.Fatalf("add-api-key --help: %d\n%s", code, out)
	}
}
