package test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver, for schema setup and checks
	_ "modernc.org/sqlite"             // "sqlite" driver, for checks
)

// controlServer is a running `tollgated control`.
type controlServer struct {
	*proc
	apiURL string
}

// controlBootstrap is the --bootstrap-file `tollgated control` writes.
type controlBootstrap struct {
	APIURL    string `json:"api_url"`
	APIKey    string `json:"api_key"`
	Authtoken string `json:"authtoken"`
	AccountID string `json:"account_id"`
	UserID    string `json:"user_id"`
}

var controlReady = regexp.MustCompile(`(?m)^Tollgate control plane is ready.*\n\s+API\s+(http://\S+)`)

// startControl starts `tollgated control --store dsn` on an ephemeral port
// and waits until it serves.
func startControl(t testing.TB, dsn string, extra ...string) *controlServer {
	t.Helper()
	return launchControl(t, dsn, extra...).ready()
}

// launchControl starts `tollgated control --store dsn` without waiting.
func launchControl(t testing.TB, dsn string, extra ...string) *controlServer {
	t.Helper()
	args := append([]string{"control", "--store", dsn, "--api-addr", "127.0.0.1:0", "--dashboard-addr", "127.0.0.1:0", "--log-level", "warn"}, extra...)
	return &controlServer{proc: start(t, bins.tollgated, nil, args...)}
}

// ready waits until the process serves and records its API URL.
func (c *controlServer) ready() *controlServer {
	c.t.Helper()
	c.apiURL = c.waitFor(controlReady, 60*time.Second)[1]
	return c
}

// readBootstrap reads a --bootstrap-file, checking its mode.
func readBootstrap(t testing.TB, path string) controlBootstrap {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("bootstrap file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap file %s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cb controlBootstrap
	if err := json.Unmarshal(b, &cb); err != nil || cb.APIKey == "" || cb.Authtoken == "" {
		t.Fatalf("bootstrap file %s: %v %q", path, err, b)
	}
	return cb
}

// postgresURL is the test PostgreSQL (trust auth), as the store tests use.
func postgresURL() string {
	return envOr("TOLLGATE_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
}

// freshPostgres creates an empty schema in the test PostgreSQL, dropped at
// cleanup, and returns a DSN whose search_path selects it. An unreachable
// PostgreSQL fails the test: CI provides one.
func freshPostgres(t testing.TB) string {
	t.Helper()
	base := postgresURL()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("PostgreSQL at %s: %v", base, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		t.Fatalf("PostgreSQL at %s is not reachable: %v (set TOLLGATE_TEST_POSTGRES)", base, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "tg_e2e_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		db.Close()
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	// Registered before the processes' cleanups, so it runs after them.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
		db.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func TestControlTwoProcessesSharePostgres(t *testing.T) {
	dsn := freshPostgres(t)
	dir := t.TempDir()
	files := []string{filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")}

	// Both start at once on the empty schema: exactly one bootstraps.
	cps := []*controlServer{
		launchControl(t, dsn, "--bootstrap-file", files[0]),
		launchControl(t, dsn, "--bootstrap-file", files[1]),
	}
	for _, c := range cps {
		c.ready()
	}
	var boot controlBootstrap
	made := 0
	for i, f := range files {
		if _, err := os.Stat(f); err == nil {
			boot = readBootstrap(t, f)
			made++
			if boot.APIURL != cps[i].apiURL {
				t.Errorf("bootstrap file api_url %q, want %q", boot.APIURL, cps[i].apiURL)
			}
		}
	}
	if made != 1 {
		t.Fatalf("%d processes bootstrapped the shared store, want exactly 1", made)
	}
	a, b := cps[0], cps[1]
	key := boot.APIKey

	// A write through one is read through the other, both ways.
	status, bot := restJSON(t, a.apiURL, key, "POST", "/bot_users", map[string]any{"name": "shared"})
	if status != 201 {
		t.Fatalf("create through A: %d %v", status, bot)
	}
	id, _ := bot["id"].(string)
	status, got := restJSON(t, b.apiURL, key, "GET", "/bot_users/"+id, nil)
	if status != 200 || got["name"] != "shared" {
		t.Fatalf("read through B: %d %v", status, got)
	}
	if status, got = restJSON(t, b.apiURL, key, "PATCH", "/bot_users/"+id, map[string]any{"name": "renamed", "active": false}); status != 200 {
		t.Fatalf("update through B: %d %v", status, got)
	}
	status, got = restJSON(t, a.apiURL, key, "GET", "/bot_users/"+id, nil)
	if status != 200 || got["name"] != "renamed" || got["active"] != false {
		t.Fatalf("read the update through A: %d %v", status, got)
	}
	// A key issued through B authenticates at A.
	status, ak := restJSON(t, b.apiURL, key, "POST", "/api_keys", map[string]any{"description": "made at B"})
	if status != 201 {
		t.Fatalf("create api key through B: %d %v", status, ak)
	}
	status, got = restJSON(t, a.apiURL, ak["token"].(string), "GET", "/api_keys/"+ak["id"].(string), nil)
	if status != 200 || got["description"] != "made at B" {
		t.Fatalf("B's key at A: %d %v", status, got)
	}
	// A delete through A is seen by B, in get and list.
	if status, _ = restJSON(t, a.apiURL, key, "DELETE", "/bot_users/"+id, nil); status != 204 {
		t.Fatalf("delete through A: %d", status)
	}
	if status, _ = restJSON(t, b.apiURL, key, "GET", "/bot_users/"+id, nil); status != 404 {
		t.Fatalf("read the delete through B: %d", status)
	}
	status, list := restJSON(t, b.apiURL, key, "GET", "/api_keys", nil)
	if keys, _ := list["keys"].([]any); status != 200 || len(keys) != 2 {
		t.Fatalf("list through B: %d %v", status, list)
	}

	// SIGTERM: a clean exit; the other keeps serving.
	if err := a.stop(15 * time.Second); err != nil {
		t.Fatalf("control A after SIGTERM: %v", err)
	}
	if status, _ = restJSON(t, b.apiURL, key, "GET", "/api_keys/"+ak["id"].(string), nil); status != 200 {
		t.Fatalf("B after A stopped: %d", status)
	}
	// A restart on the same schema does not bootstrap again.
	again := filepath.Join(dir, "again.json")
	c := startControl(t, dsn, "--bootstrap-file", again)
	if _, err := os.Stat(again); err == nil {
		t.Fatalf("a restart on a bootstrapped store wrote %s", again)
	}
	if status, _ = restJSON(t, c.apiURL, key, "GET", "/api_keys", nil); status != 200 {
		t.Fatalf("the bootstrap key after a restart: %d", status)
	}
}

func TestControlSQLiteBootstrapPrintsKeyOnce(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "cp.db")
	c := startControl(t, dbPath)
	m := c.waitFor(regexp.MustCompile(`(?m)^\s+API key\s+(\S+)$`), 10*time.Second)
	key := m[1]
	status, bot := restJSON(t, c.apiURL, key, "POST", "/bot_users", map[string]any{"name": "kept"})
	if status != 201 {
		t.Fatalf("create: %d %v", status, bot)
	}
	if err := c.stop(15 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if code, _ := c.wait(time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}

	secretFile := filepath.Join(t.TempDir(), "edge-secret")
	const edgeSecret = "edge-secret-0123456789abcdef"
	if err := os.WriteFile(secretFile, []byte(edgeSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c2 := startControl(t, dbPath, "--rate-limit=0.5", "--rate-burst=4", "--edge-secret-file", secretFile,
		"--tcp-addr-pool", "eu=localhost:20000-20009")
	if regexp.MustCompile(`(?m)^\s+API key\s`).MatchString(c2.output()) || strings.Contains(c2.output(), key) {
		t.Fatalf("a restart printed an API key again:\n%s", c2.output())
	}
	status, got := restJSON(t, c2.apiURL, key, "GET", "/bot_users/"+bot["id"].(string), nil)
	if status != 200 || got["name"] != "kept" {
		t.Fatalf("after restart: %d %v", status, got)
	}
	// --tcp-addr-pool: an address is assigned from the region's pool.
	status, ra := restJSON(t, c2.apiURL, key, "POST", "/reserved_addrs", map[string]any{"region": "eu"})
	if addr, _ := ra["addr"].(string); status != 201 || !regexp.MustCompile(`^localhost:2000\d$`).MatchString(addr) {
		t.Fatalf("reserved addr from the pool: %d %v", status, ra)
	}
	// --rate-burst 4: of six quick requests, the last ones are refused.
	limited := 0
	for i := 0; i < 4; i++ {
		status, body := restJSON(t, c2.apiURL, key, "GET", "/bot_users", nil)
		if status == 429 {
			limited++
			if body["error_code"] != "TG_226" {
				t.Fatalf("429 with body %v", body)
			}
		}
	}
	if limited == 0 {
		t.Fatalf("--rate-burst 4 let 6 requests through")
	}
	// The edge API takes the secret from --edge-secret-file.
	if status, _ := restJSON(t, c2.apiURL, edgeSecret, "GET", "/edge/v1/snapshot?after=0", nil); status != 200 {
		t.Fatalf("edge API with the secret: %d", status)
	}
	if status, _ := restJSON(t, c2.apiURL, "wrong-secret-0123456789", "GET", "/edge/v1/snapshot?after=0", nil); status != 401 {
		t.Fatalf("edge API with a wrong secret: %d", status)
	}

	// Bad flags exit 2 with a message.
	for _, bad := range [][]string{{"--base-url", "ftp://x"}, {"--tcp-addr-pool", "us=localhost:9-1"}, {"--edge-secret-file", secretFile + ".missing"}} {
		args := append([]string{"control", "--store", dbPath, "--api-addr", "127.0.0.1:0", "--dashboard-addr", "127.0.0.1:0"}, bad...)
		p := start(t, bins.tollgated, nil, args...)
		if code, ok := p.wait(30 * time.Second); !ok || code != 2 || !strings.Contains(p.output(), bad[0]) {
			t.Fatalf("%v: exit %d (%v)\n%s", bad, code, ok, p.output())
		}
	}
}
