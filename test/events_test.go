package test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsURL is the NATS server with JetStream the event tests publish to;
// CI runs one there (scripts/test), as this machine does.
func natsURL() string { return envOr("TOLLGATE_TEST_NATS", "nats://127.0.0.1:4222") }

// testStream creates a JetStream stream of its own on natsURL, deleted at
// cleanup, and returns it with its subject.
func testStream(t *testing.T) (jetstream.Stream, string) {
	t.Helper()
	nc, err := nats.Connect(natsURL(), nats.Timeout(10*time.Second))
	if err != nil {
		t.Fatalf("NATS at %s: %v (CI starts nats-server -js; set TOLLGATE_TEST_NATS)", natsURL(), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	subject := "tollgate.test." + suffix
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TG_EVENTS_" + suffix, Subjects: []string{subject},
		Duplicates: 10 * time.Minute, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatalf("creating a JetStream stream: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, "TG_EVENTS_"+suffix)
	})
	return st, subject
}

// streamEvent is one message of a test stream.
type streamEvent struct {
	msgID, typ string
	body       map[string]any
}

// readStream returns every message of the stream, in order.
func readStream(t *testing.T, st jetstream.Stream) []streamEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []streamEvent
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		var body map[string]any
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Fatalf("message %d is not JSON: %v", seq, err)
		}
		out = append(out, streamEvent{msgID: m.Header.Get("Nats-Msg-Id"), typ: m.Header.Get("Tollgate-Event-Type"), body: body})
	}
	return out
}

// waitStream polls the stream until some message satisfies done.
func waitStream(t *testing.T, st jetstream.Stream, what string, done func(streamEvent) bool) []streamEvent {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		evs := readStream(t, st)
		for _, e := range evs {
			if done(e) {
				return evs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: the stream has %d messages: %+v", what, len(evs), evs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// api calls the REST API and decodes the answer; it fails the test on a
// transport error or a status other than want.
func api(t *testing.T, base, key, method, path string, body any, want int) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, data, err := restCall(ctx, http.DefaultClient, base, key, method, path, body)
	if err != nil || status != want {
		t.Fatalf("%s %s: %d %s (%v), want %d", method, path, status, data, err, want)
	}
	var m map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return m
}

// startEventsControl starts `tollgated control` on SQLite with fast event
// polling and backoff and returns it with its admin API key.
func startEventsControl(t *testing.T, dsn string, extra ...string) (*controlServer, string) {
	t.Helper()
	boot := filepath.Join(t.TempDir(), "boot.json")
	args := append([]string{"--bootstrap-file", boot, "--rate-limit=-1", "--events-poll-interval=200ms",
		"--events-min-backoff=100ms", "--events-max-backoff=400ms", "--events-send-timeout=2s",
		"--events-egress-allow=127.0.0.0/8,::1/128"}, extra...)
	cp := startControl(t, dsn, args...)
	return cp, readBootstrap(t, boot).APIKey
}

func TestEventsToNATS(t *testing.T) {
	st, subject := testStream(t)
	cp, key := startEventsControl(t, filepath.Join(t.TempDir(), "cp.db"))
	base := cp.apiURL

	dest := api(t, base, key, "POST", "/event_destinations", map[string]any{"description": "nats",
		"format": "JSON", "target": map[string]any{"nats": map[string]any{"url": natsURL(), "subject": subject}}}, 201)
	destID := dest["id"].(string)
	sub := api(t, base, key, "POST", "/event_subscriptions", map[string]any{"description": "all keys",
		"sources": []any{
			map[string]any{"type": "api_key_created.v0"},
			map[string]any{"type": "credential_created.v0", "filter": `object.description.startsWith("ship")`,
				"fields": []string{"object.id", "object.description", "principal.id"}},
			map[string]any{"type": "bot_user_created.v0"},
		},
		"destination_ids": []string{destID}}, 201)
	subID := sub["id"].(string)

	// A filter that does not compile is a 400 with the compiler's message,
	// and nothing is stored.
	bad := apiStatus(t, base, key, "POST", "/event_subscriptions/"+subID+"/sources",
		map[string]any{"type": "api_key_deleted.v0", "filter": `object.description ==`})
	if bad.status != 400 || bad.body["error_code"] != "TG_5410" || !strings.Contains(fmt.Sprint(bad.body["msg"]), "Syntax error") {
		t.Fatalf("bad filter: %d %v", bad.status, bad.body)
	}
	bad = apiStatus(t, base, key, "POST", "/event_subscriptions", map[string]any{"destination_ids": []string{destID},
		"sources": []any{map[string]any{"type": "api_key_deleted.v0", "filter": `object.description + 1`}}})
	if bad.status != 400 || bad.body["error_code"] != "TG_5410" {
		t.Fatalf("ill-typed filter: %d %v", bad.status, bad.body)
	}
	if srcs := api(t, base, key, "GET", "/event_subscriptions/"+subID+"/sources", nil, 200)["sources"].([]any); len(srcs) != 3 {
		t.Fatalf("a refused source was stored: %v", srcs)
	}
	if subs := api(t, base, key, "GET", "/event_subscriptions", nil, 200)["event_subscriptions"].([]any); len(subs) != 1 {
		t.Fatalf("a refused subscription was stored: %v", subs)
	}

	k := api(t, base, key, "POST", "/api_keys", map[string]any{"description": "k1"}, 201)
	token := k["token"].(string)
	var shipIDs []string
	for _, d := range []string{"ship-1", "skip-1", "ship-2"} {
		c := api(t, base, key, "POST", "/credentials", map[string]any{"description": d}, 201)
		if strings.HasPrefix(d, "ship") {
			shipIDs = append(shipIDs, c["id"].(string))
		}
	}
	sentinel := api(t, base, key, "POST", "/bot_users", map[string]any{"name": "sentinel"}, 201)["id"].(string)
	// Delivery is in commit order: once the sentinel is there, so is
	// everything before it.
	evs := waitStream(t, st, "the sentinel bot user's event", func(e streamEvent) bool {
		obj, _ := e.body["object"].(map[string]any)
		return e.typ == "bot_user_created.v0" && obj["id"] == sentinel
	})
	var types []string
	seen := map[string]bool{}
	for _, e := range evs {
		types = append(types, e.typ)
		if e.msgID == "" || e.msgID != e.body["event_id"] || !strings.HasPrefix(e.msgID, "ev_") {
			t.Errorf("Nats-Msg-Id %q is not the event ID %v", e.msgID, e.body["event_id"])
		}
		if seen[e.msgID] {
			t.Errorf("event %s delivered twice", e.msgID)
		}
		seen[e.msgID] = true
		if e.typ != e.body["event_type"] {
			t.Errorf("header type %s, body type %v", e.typ, e.body["event_type"])
		}
	}
	want := "api_key_created.v0 credential_created.v0 credential_created.v0 bot_user_created.v0"
	if strings.Join(types, " ") != want {
		t.Fatalf("event types %v, want %s", types, want)
	}
	keyObj := evs[0].body["object"].(map[string]any)
	if keyObj["id"] != k["id"] || keyObj["description"] != "k1" || keyObj["uri"] != base+"/api_keys/"+k["id"].(string) {
		t.Errorf("api_key_created object %v", keyObj)
	}
	for _, e := range evs {
		b, _ := json.Marshal(e.body)
		if strings.Contains(string(b), token) || strings.Contains(string(b), strings.SplitN(token, "_", 2)[1]) {
			t.Fatalf("an event carries the API key's secret: %s", b)
		}
	}
	for i, e := range evs[1:3] {
		obj := e.body["object"].(map[string]any)
		if obj["id"] != shipIDs[i] || len(obj) != 2 || e.body["principal"].(map[string]any)["id"] == nil {
			t.Errorf("credential event %d: %v (want only object.id, object.description, principal.id)", i, e.body)
		}
		if _, ok := e.body["details"]; ok {
			t.Errorf("an unselected field was sent: %v", e.body)
		}
	}

	// Send test event.
	res := api(t, base, key, "POST", "/event_destinations/"+destID+"/test", nil, 200)
	waitStream(t, st, "the test event", func(e streamEvent) bool { return e.msgID == res["event_id"] && e.typ == "test_event.v0" })

	got := api(t, base, key, "GET", "/event_destinations/"+destID, nil, 200)
	del := got["tollgate_delivery"].(map[string]any)
	if del["delivered"].(float64) < 4 || del["last_success_at"] == nil || del["pending"].(float64) != 0 {
		t.Errorf("delivery status %v", del)
	}
}

type statusBody struct {
	status int
	body   map[string]any
}

func apiStatus(t *testing.T, base, key, method, path string, body any) statusBody {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, data, err := restCall(ctx, http.DefaultClient, base, key, method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return statusBody{status, m}
}

// webhookReceiver is an HTTPS Standard Webhooks receiver that verifies
// every request's signature with one key and can be down (503).
type webhookReceiver struct {
	srv  *httptest.Server
	key  []byte
	down atomic.Bool

	mu       sync.Mutex
	received []map[string]any
	ids      map[string]int
	refused  int
	badSigs  []string
}

func newWebhookReceiver(t *testing.T, key []byte) *webhookReceiver {
	w := &webhookReceiver{key: key, ids: map[string]int{}}
	w.srv = httptest.NewTLSServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhookReceiver) serve(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	m := hmac.New(sha256.New, w.key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	ok := false
	for _, sig := range strings.Split(r.Header.Get("webhook-signature"), " ") {
		ok = ok || hmac.Equal([]byte(sig), []byte(want))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !ok {
		w.badSigs = append(w.badSigs, id)
		rw.WriteHeader(http.StatusUnauthorized)
		return
	}
	if w.down.Load() {
		w.refused++
		rw.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var ev map[string]any
	_ = json.Unmarshal(body, &ev)
	w.received = append(w.received, ev)
	w.ids[id]++
	rw.WriteHeader(http.StatusNoContent)
}

func (w *webhookReceiver) caFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func whsec(key []byte) string { return "whsec_" + base64.StdEncoding.EncodeToString(key) }

// TestEventsWebhookAndFile: a signed webhook that is down receives every
// event once it is back, each once; a JSON-lines file receives them too.
func TestEventsWebhookAndFile(t *testing.T) {
	oldKey, newKey := make([]byte, 32), make([]byte, 32)
	_, _ = rand.Read(oldKey)
	_, _ = rand.Read(newKey)
	// The receiver knows only the old key: during a rotation the control
	// plane signs with both.
	rcv := newWebhookReceiver(t, oldKey)
	rcv.down.Store(true)
	fileDir := t.TempDir()
	cp, key := startEventsControl(t, filepath.Join(t.TempDir(), "cp.db"), "--events-ca-file", rcv.caFile(t), "--events-file-dir", fileDir)
	base := cp.apiURL

	hook := api(t, base, key, "POST", "/event_destinations", map[string]any{"format": "JSON",
		"target": map[string]any{"webhook": map[string]any{"url": rcv.srv.URL + "/hook", "secrets": []string{whsec(newKey), whsec(oldKey)}}}}, 201)
	if strings.Contains(fmt.Sprint(hook), "whsec_") {
		t.Fatalf("the API shows a webhook secret: %v", hook)
	}
	file := api(t, base, key, "POST", "/event_destinations", map[string]any{"format": "JSON",
		"target": map[string]any{"file": map[string]any{"path": "events.jsonl"}}}, 201)
	if r := apiStatus(t, base, key, "POST", "/event_destinations", map[string]any{"target": map[string]any{"file": map[string]any{"path": "../escape"}}}); r.status != 400 {
		t.Fatalf("a file path outside the directory: %v", r)
	}
	api(t, base, key, "POST", "/event_subscriptions", map[string]any{
		"sources":         []any{map[string]any{"type": "bot_user_created.v0"}, map[string]any{"type": "bot_user_updated.v0"}},
		"destination_ids": []string{hook["id"].(string), file["id"].(string)}}, 201)

	var bots []string
	for i := 0; i < 5; i++ {
		bots = append(bots, api(t, base, key, "POST", "/bot_users", map[string]any{"name": fmt.Sprintf("b%d", i)}, 201)["id"].(string))
	}
	// The webhook is down: its status shows the failures while the file
	// destination, unaffected, has all five.
	poll(t, "the webhook's delivery failures and the file's five events", func() bool {
		d := api(t, base, key, "GET", "/event_destinations/"+hook["id"].(string), nil, 200)["tollgate_delivery"].(map[string]any)
		f := api(t, base, key, "GET", "/event_destinations/"+file["id"].(string), nil, 200)["tollgate_delivery"].(map[string]any)
		return d["failures"].(float64) >= 2 && strings.Contains(d["last_error"].(string), "503") && d["pending"].(float64) == 5 &&
			f["delivered"].(float64) == 5
	})
	rcv.down.Store(false)
	api(t, base, key, "PATCH", "/bot_users/"+bots[0], map[string]any{"name": "renamed"}, 200)
	poll(t, "six webhook events", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return len(rcv.received) >= 6
	})
	rcv.mu.Lock()
	if len(rcv.badSigs) > 0 {
		t.Errorf("requests with a signature that does not verify: %v", rcv.badSigs)
	}
	for id, n := range rcv.ids {
		if n != 1 {
			t.Errorf("event %s received %d times", id, n)
		}
	}
	for i, ev := range rcv.received[:5] {
		if ev["event_type"] != "bot_user_created.v0" || ev["object"].(map[string]any)["id"] != bots[i] {
			t.Errorf("webhook event %d: %v", i, ev)
		}
	}
	if last := rcv.received[5]; last["event_type"] != "bot_user_updated.v0" || last["object"].(map[string]any)["name"] != "renamed" {
		t.Errorf("last webhook event: %v", last)
	}
	if rcv.refused == 0 {
		t.Error("the webhook was never tried while down")
	}
	rcv.mu.Unlock()

	poll(t, "six lines in the events file", func() bool {
		b, _ := os.ReadFile(filepath.Join(fileDir, "events.jsonl"))
		return strings.Count(string(b), "\n") >= 6
	})
	b, _ := os.ReadFile(filepath.Join(fileDir, "events.jsonl"))
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[:5] {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev["object"].(map[string]any)["id"] != bots[i] {
			t.Errorf("file line %d: %s (%v)", i, line, err)
		}
	}
}

// poll waits until cond holds, for at most a minute.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// subscribeBotUsersToNATS creates a NATS destination publishing to subject
// at url and a subscription of bot_user_created.v0 to it, and returns the
// destination's ID.
func subscribeBotUsersToNATS(t *testing.T, cp *controlServer, key, url, subject string) string {
	t.Helper()
	dest := api(t, cp.apiURL, key, "POST", "/event_destinations", map[string]any{"format": "JSON",
		"target": map[string]any{"nats": map[string]any{"url": url, "subject": subject}}}, 201)
	destID := dest["id"].(string)
	api(t, cp.apiURL, key, "POST", "/event_subscriptions", map[string]any{
		"sources": []any{map[string]any{"type": "bot_user_created.v0"}}, "destination_ids": []string{destID}}, 201)
	return destID
}

// botUserWriters is a burst of API writes: four writers creating bot
// users until ctx ends, each at most perWriter times, pausing pause after
// each. A writer stops at its first failed write; with strict, a failure
// before ctx ends also fails the test. acked holds the IDs of the bot
// users whose creation was acknowledged.
type botUserWriters struct {
	wg    sync.WaitGroup
	mu    sync.Mutex
	acked []string
}

func startBotUserWriters(ctx context.Context, t *testing.T, apiURL, key string, perWriter int, pause time.Duration, strict bool) *botUserWriters {
	b := &botUserWriters{}
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 4; w++ {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for i := 0; i < perWriter && ctx.Err() == nil; i++ {
				status, data, err := restCall(ctx, client, apiURL, key, "POST", "/bot_users", map[string]any{"name": fmt.Sprintf("w%d-%d", w, i)})
				var m map[string]any
				if err == nil && status == 201 {
					err = json.Unmarshal(data, &m)
				}
				if err != nil || status != 201 {
					if strict && ctx.Err() == nil {
						t.Errorf("POST /bot_users: %d %s %v", status, data, err)
					}
					return
				}
				b.mu.Lock()
				b.acked = append(b.acked, m["id"].(string))
				b.mu.Unlock()
				time.Sleep(pause)
			}
		}()
	}
	return b
}

// n returns how many writes were acknowledged so far.
func (b *botUserWriters) n() int { b.mu.Lock(); defer b.mu.Unlock(); return len(b.acked) }

// wait waits for the writers (end ctx first) and returns the acknowledged IDs.
func (b *botUserWriters) wait() []string {
	b.wg.Wait()
	return b.acked
}

// TestEventsSurviveKill kills `tollgated control` with SIGKILL during a
// burst of writes; after a restart every acknowledged write's event is in
// the stream, and no event twice.
func TestEventsSurviveKill(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			st, subject := testStream(t)
			dsn := filepath.Join(t.TempDir(), "cp.db")
			if dialect == "postgres" {
				dsn = freshPostgres(t)
			}
			cp, key := startEventsControl(t, dsn)
			subscribeBotUsersToNATS(t, cp, key, natsURL(), subject)

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			writers := startBotUserWriters(ctx, t, cp.apiURL, key, 200, 0, false)
			poll(t, "40 acknowledged writes", func() bool { return writers.n() >= 40 })
			if err := cp.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-cp.done
			cancel()
			acked := writers.wait()
			t.Logf("killed after %d acknowledged writes", len(acked))

			// The killed process's lease ends within 4 × --events-send-timeout.
			cp = startControl(t, dsn, "--rate-limit=-1", "--events-poll-interval=200ms", "--events-send-timeout=2s", "--events-egress-allow=127.0.0.0/8,::1/128")
			sentinel := api(t, cp.apiURL, key, "POST", "/bot_users", map[string]any{"name": "sentinel"}, 201)["id"].(string)
			evs := waitStream(t, st, "the sentinel's event", func(e streamEvent) bool {
				return e.body["object"].(map[string]any)["id"] == sentinel
			})
			byObject := map[string]int{}
			byID := map[string]int{}
			for _, e := range evs {
				byObject[e.body["object"].(map[string]any)["id"].(string)]++
				byID[e.msgID]++
			}
			for _, id := range acked {
				if byObject[id] != 1 {
					t.Errorf("bot user %s: %d events, want 1", id, byObject[id])
				}
			}
			for id, n := range byID {
				if n != 1 {
					t.Errorf("event %s delivered %d times", id, n)
				}
			}
		})
	}
}
