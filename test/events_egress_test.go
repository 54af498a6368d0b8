package test

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestEventsEgressRefused: a control plane without --events-egress-allow
// refuses destinations on loopback, private and link-local addresses — an
// IP literal when the destination is created (400 TG_5418, nothing
// stored), a name that resolves to one when delivering (the test event
// and the destination's status say TG_5418, and the receiver sees
// nothing).
func TestEventsEgressRefused(t *testing.T) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	rcv := newWebhookReceiver(t, secret)
	boot := filepath.Join(t.TempDir(), "boot.json")
	cp := startControl(t, filepath.Join(t.TempDir(), "cp.db"), "--bootstrap-file", boot, "--rate-limit=-1",
		"--events-poll-interval=200ms", "--events-min-backoff=100ms", "--events-max-backoff=400ms", "--events-send-timeout=2s",
		"--events-ca-file", rcv.caFile(t))
	base, key := cp.apiURL, readBootstrap(t, boot).APIKey

	hook := func(url string) map[string]any {
		return map[string]any{"format": "JSON", "target": map[string]any{"webhook": map[string]any{"url": url, "secrets": []string{whsec(secret)}}}}
	}
	for _, body := range []map[string]any{
		hook(rcv.srv.URL + "/hook"), // https://127.0.0.1:PORT
		hook("https://169.254.169.254/latest/meta-data/"),
		{"target": map[string]any{"nats": map[string]any{"url": "nats://127.0.0.1:4222", "subject": "tollgate.egress"}}},
		{"target": map[string]any{"kinesis": map[string]any{"auth": map[string]any{"creds": map[string]any{"aws_access_key_id": "AKID", "aws_secret_access_key": "s"}},
			"stream_arn": "arn:aws:kinesis:us-east-1:123456789012:stream/x", "endpoint": "https://10.0.0.1"}}},
	} {
		r := apiStatus(t, base, key, "POST", "/event_destinations", body)
		if r.status != 400 || r.body["error_code"] != "TG_5418" || !strings.Contains(fmt.Sprint(r.body["msg"]), "--events-egress-allow") {
			t.Errorf("POST %v: %d %v, want 400 TG_5418", body["target"], r.status, r.body)
		}
	}
	if got := api(t, base, key, "GET", "/event_destinations", nil, 200)["event_destinations"].([]any); len(got) != 0 {
		t.Fatalf("refused destinations were stored: %v", got)
	}

	// A name is accepted, and refused when it resolves to loopback.
	port := rcv.srv.URL[strings.LastIndex(rcv.srv.URL, ":")+1:]
	dest := api(t, base, key, "POST", "/event_destinations", hook("https://localhost:"+port+"/hook"), 201)["id"].(string)
	r := apiStatus(t, base, key, "POST", "/event_destinations/"+dest+"/test", nil)
	if r.status != 502 || r.body["error_code"] != "TG_5417" || !strings.Contains(fmt.Sprint(r.body["msg"]), "TG_5418") {
		t.Errorf("test event to localhost: %d %v, want 502 naming TG_5418", r.status, r.body)
	}
	api(t, base, key, "POST", "/event_subscriptions", map[string]any{
		"sources": []any{map[string]any{"type": "bot_user_created.v0"}}, "destination_ids": []string{dest}}, 201)
	api(t, base, key, "POST", "/bot_users", map[string]any{"name": "b"}, 201)
	var st map[string]any
	poll(t, "the destination's status to show the refusal", func() bool {
		st = api(t, base, key, "GET", "/event_destinations/"+dest, nil, 200)["tollgate_delivery"].(map[string]any)
		return st["failures"].(float64) >= 1
	})
	if e := fmt.Sprint(st["last_error"]); !strings.Contains(e, "TG_5418") || !strings.Contains(e, "loopback") {
		t.Errorf("last_error %q does not say the address is refused", e)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.received)+len(rcv.badSigs) > 0 {
		t.Errorf("the receiver got requests: %v", rcv.received)
	}
}
