package test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Bounds of the crash test: workers per burst, requests per worker, and
// acknowledged writes to wait for before the kill.
const (
	crashWorkers       = 6
	crashMaxOps        = 300
	crashKillAfterAcks = 60
	crashRounds        = 2
)

// ackedBot is a bot user whose creation was acknowledged; name is its last
// acknowledged name and pending a rename sent but not acknowledged.
type ackedBot struct {
	id, name, pending string
}

// ackedCred is an API key or credential whose creation was acknowledged.
type ackedCred struct {
	kind, id, owner, desc, token string
	acl                          []string
}

// ackLog records every write the API acknowledged.
type ackLog struct {
	mu    sync.Mutex
	bots  []*ackedBot
	creds []ackedCred
	n     atomic.Int64 // acknowledged writes in the current burst
}

func TestCrashControlPlaneDuringWrites(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			var dsn string
			if dialect == "sqlite" {
				dsn = filepath.Join(t.TempDir(), "crash.db")
			} else {
				dsn = freshPostgres(t)
			}
			bootFile := filepath.Join(t.TempDir(), "boot.json")
			// No API rate limit: the burst is far over it by design.
			cp := startControl(t, dsn, "--bootstrap-file", bootFile, "--rate-limit=-1")
			key := readBootstrap(t, bootFile).APIKey
			log := &ackLog{}
			for round := 0; round < crashRounds; round++ {
				crashBurst(t, cp, key, log, round)
				cp = startControl(t, dsn, "--rate-limit=-1")
				checkAcknowledged(t, cp.apiURL, key, log)
			}
			checkStoreConsistent(t, dialect, dsn)
		})
	}
}

// crashBurst runs concurrent writers against cp and kills it with SIGKILL
// once crashKillAfterAcks writes were acknowledged, while they still write.
func crashBurst(t *testing.T, cp *controlServer, key string, log *ackLog, round int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: crashWorkers}}
	defer client.CloseIdleConnections()
	log.n.Store(0)
	var wg sync.WaitGroup
	for w := 0; w < crashWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			crashWriter(ctx, client, cp.apiURL, key, log, fmt.Sprintf("r%d-w%d", round, w))
		}()
	}
	deadline := time.Now().Add(45 * time.Second)
	for log.n.Load() < crashKillAfterAcks && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	acks := log.n.Load()
	if err := cp.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	<-cp.done
	cancel()
	wg.Wait()
	if acks < 10 {
		t.Fatalf("only %d writes acknowledged before the kill", acks)
	}
	t.Logf("round %d: killed after %d acknowledged writes (%d in all)", round, acks, log.n.Load())
}

// crashWriter creates a bot user, an API key and a credential owned by it,
// and renames it, over and over, recording each acknowledged write. It
// stops at the first transport error (the process is gone), or after
// crashMaxOps requests.
func crashWriter(ctx context.Context, c *http.Client, base, key string, log *ackLog, name string) {
	ops := 0
	call := func(method, path string, body any, want int) (map[string]any, bool) {
		if ops++; ops > crashMaxOps || ctx.Err() != nil {
			return nil, false
		}
		status, data, err := restCall(ctx, c, base, key, method, path, body)
		if err != nil || status != want {
			return nil, false
		}
		var m map[string]any
		if json.Unmarshal(data, &m) != nil {
			return nil, false
		}
		return m, true
	}
	for i := 0; ; i++ {
		botName := fmt.Sprintf("%s-%d", name, i)
		m, ok := call("POST", "/bot_users", map[string]any{"name": botName}, 201)
		if !ok {
			return
		}
		bot := &ackedBot{id: m["id"].(string), name: botName}
		log.mu.Lock()
		log.bots = append(log.bots, bot)
		log.mu.Unlock()
		log.n.Add(1)

		desc := "key of " + botName
		if m, ok = call("POST", "/api_keys", map[string]any{"owner_id": bot.id, "description": desc}, 201); !ok {
			return
		}
		log.add(ackedCred{kind: "api_keys", id: m["id"].(string), owner: bot.id, desc: desc, token: m["token"].(string)})

		acl := []string{"bind:" + botName + ".tollgate.localhost"}
		if m, ok = call("POST", "/credentials", map[string]any{"owner_id": bot.id, "description": desc, "acl": acl}, 201); !ok {
			return
		}
		log.add(ackedCred{kind: "credentials", id: m["id"].(string), owner: bot.id, desc: desc, acl: acl})

		renamed := botName + "-renamed"
		log.mu.Lock()
		bot.pending = renamed
		log.mu.Unlock()
		if _, ok = call("PATCH", "/bot_users/"+bot.id, map[string]any{"name": renamed}, 200); !ok {
			return
		}
		log.mu.Lock()
		bot.name, bot.pending = renamed, ""
		log.mu.Unlock()
		log.n.Add(1)
	}
}

func (l *ackLog) add(c ackedCred) {
	l.mu.Lock()
	l.creds = append(l.creds, c)
	l.mu.Unlock()
	l.n.Add(1)
}

// checkAcknowledged checks, through the restarted API, that every
// acknowledged write is there as acknowledged, and that every acknowledged
// API key still authenticates.
func checkAcknowledged(t *testing.T, base, key string, log *ackLog) {
	t.Helper()
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, b := range log.bots {
		status, got := restJSON(t, base, key, "GET", "/bot_users/"+b.id, nil)
		if status != 200 {
			t.Fatalf("acknowledged bot user %s: GET answered %d after the crash", b.id, status)
		}
		if got["name"] != b.name && (b.pending == "" || got["name"] != b.pending) {
			t.Fatalf("bot user %s is named %q after the crash; acknowledged %q (pending %q)", b.id, got["name"], b.name, b.pending)
		}
		if b.pending != "" && got["name"] == b.pending {
			b.name = b.pending // the unacknowledged rename committed
		}
		b.pending = ""
	}
	for _, c := range log.creds {
		status, got := restJSON(t, base, key, "GET", "/"+c.kind+"/"+c.id, nil)
		if status != 200 {
			t.Fatalf("acknowledged %s %s: GET answered %d after the crash", c.kind, c.id, status)
		}
		if got["owner_id"] != c.owner || got["description"] != c.desc {
			t.Fatalf("%s %s after the crash: %v; acknowledged owner %s, description %q", c.kind, c.id, got, c.owner, c.desc)
		}
		if c.kind == "credentials" {
			acl, _ := got["acl"].([]any)
			if len(acl) != len(c.acl) || acl[0] != c.acl[0] {
				t.Fatalf("credential %s acl %v after the crash; acknowledged %v", c.id, acl, c.acl)
			}
		}
		if c.token != "" {
			if status, _ := restJSON(t, base, c.token, "GET", "/bot_users/"+c.owner, nil); status != 200 {
				t.Fatalf("acknowledged API key %s does not authenticate after the crash: %d", c.id, status)
			}
		}
	}
	t.Logf("%d bot users and %d credentials acknowledged, all present", len(log.bots), len(log.creds))
}

// checkStoreConsistent reads the database directly: the revision equals
// the number of committed units of work (each wrote audit events under its
// revision, with no gaps), no credential lacks an owner, no principal is
// half-made, and created objects and their audit events match one to one.
func checkStoreConsistent(t *testing.T, dialect, dsn string) {
	t.Helper()
	driver := "sqlite"
	if dialect == "postgres" {
		driver = "pgx"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	count := func(q string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	rev := count(`SELECT value FROM revision WHERE id = 1`)
	units := count(`SELECT COUNT(DISTINCT revision) FROM audit_events`)
	maxRev := count(`SELECT COALESCE(MAX(revision), 0) FROM audit_events`)
	minRev := count(`SELECT COALESCE(MIN(revision), 0) FROM audit_events`)
	if rev != units || rev != maxRev || minRev != 1 {
		t.Errorf("store revision %d, but audit events cover %d units of work, revisions %d..%d", rev, units, minRev, maxRev)
	}
	checks := []struct{ what, q string }{
		{"API keys without an owner", `SELECT COUNT(*) FROM api_keys WHERE owner_id NOT IN (SELECT id FROM principals)`},
		{"authtokens without an owner", `SELECT COUNT(*) FROM authtokens WHERE owner_id NOT IN (SELECT id FROM principals)`},
		{"bot users without a principal", `SELECT COUNT(*) FROM bot_users WHERE id NOT IN (SELECT id FROM principals)`},
		{"bot principals without a bot user", `SELECT COUNT(*) FROM principals WHERE kind = 'bot' AND id NOT IN (SELECT id FROM bot_users)`},
		{"units of work with several actors", `SELECT COUNT(*) FROM (SELECT revision FROM audit_events GROUP BY revision HAVING COUNT(DISTINCT actor_id) > 1) x`},
	}
	for _, o := range []struct{ table, event string }{
		{"bot_users", "bot_user_created.v0"},
		{"api_keys", "api_key_created.v0"},
		{"authtokens", "credential_created.v0"},
	} {
		checks = append(checks,
			struct{ what, q string }{o.table + " without their " + o.event,
				`SELECT COUNT(*) FROM ` + o.table + ` o WHERE (SELECT COUNT(*) FROM audit_events e WHERE e.object_id = o.id AND e.type = '` + o.event + `') != 1`},
			struct{ what, q string }{o.event + " events without their object",
				`SELECT COUNT(*) FROM audit_events e WHERE e.type = '` + o.event + `' AND e.object_id NOT IN (SELECT id FROM ` + o.table + `)`})
	}
	checks = append(checks, struct{ what, q string }{"bot_user_updated.v0 events without their object",
		`SELECT COUNT(*) FROM audit_events e WHERE e.type = 'bot_user_updated.v0' AND e.object_id NOT IN (SELECT id FROM bot_users)`})
	for _, c := range checks {
		if n := count(c.q); n != 0 {
			t.Errorf("%d %s", n, c.what)
		}
	}
	bots := count(`SELECT COUNT(*) FROM bot_users`)
	keys := count(`SELECT COUNT(*) FROM api_keys`)
	if bots == 0 || keys <= 1 {
		t.Fatalf("the store holds %d bot users and %d API keys: the burst wrote nothing", bots, keys)
	}
	t.Logf("revision %d; %d bot users, %d API keys; every invariant holds", rev, bots, keys)
}
