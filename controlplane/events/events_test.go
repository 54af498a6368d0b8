package events

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
)

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	var ce *codes.Error
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

func TestCompileFilter(t *testing.T) {
	ev := map[string]any{"event_type": "api_key_created.v0", "object": map[string]any{"description": "ci-runner", "acl": []any{"bind:a.example"}}}
	for _, tc := range []struct {
		src  string
		pass bool
	}{
		{"", true},
		{`event_type == "api_key_created.v0"`, true},
		{`object.description.startsWith("ci-")`, true},
		{`object.description.startsWith("prod-")`, false},
		{`"bind:a.example" in object.acl`, true},
		{`object.missing == "x"`, false}, // an evaluation error does not pass
	} {
		f, err := CompileFilter(tc.src)
		if err != nil {
			t.Fatalf("%q: %v", tc.src, err)
		}
		if got := f.Match(ev); got != tc.pass {
			t.Errorf("%q on %v: %v, want %v", tc.src, ev, got, tc.pass)
		}
	}
	for _, bad := range []string{`object.description ==`, `event_type + 1`, `event_type`, `nosuchvar == 1`, strings.Repeat("a", MaxFilterBytes+1)} {
		_, err := CompileFilter(bad)
		wantCode(t, err, codes.EventFilterInvalid)
	}
}

func TestSelectFields(t *testing.T) {
	ev := map[string]any{"event_id": "ev_1", "event_type": "x.v0", "event_timestamp": "t", "account_id": "acct_1",
		"principal": map[string]any{"id": "usr_1"}, "object": map[string]any{"id": "ak_1", "description": "d"}, "details": map[string]any{}}
	got, _ := json.Marshal(selectFields(ev, []string{"object.id", "principal.id", "object.nope"}))
	want := `{"account_id":"acct_1","event_id":"ev_1","event_timestamp":"t","event_type":"x.v0","object":{"id":"ak_1"},"principal":{"id":"usr_1"}}`
	if string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if err := CheckFields([]string{"object.id", "details"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"nope.id"}, {"object..id"}, {"Object.ID"}, make([]string, MaxFields+1)} {
		wantCode(t, CheckFields(bad), codes.EventFieldsInvalid)
	}
}

// TestWebhookSignature checks the signature against the Standard Webhooks
// specification's example (standardwebhooks.com, its libraries' tests).
func TestWebhookSignature(t *testing.T) {
	key, err := webhookKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := WebhookSignature([][]byte{key}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	two := WebhookSignature([][]byte{key, key}, "m", 1, nil)
	if len(strings.Split(two, " ")) != 2 {
		t.Fatalf("two keys: %q", two)
	}
}

func TestParseTarget(t *testing.T) {
	o := TargetOptions{}
	good := []string{
		`{"nats":{"url":"nats://nats.example.com:4222","subject":"tollgate.events"}}`,
		`{"webhook":{"url":"https://hooks.example.com/x","secrets":["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}}`,
		`{"kinesis":{"auth":{"role":{"role_arn":"arn:aws:iam::123456789012:role/x"}},"stream_arn":"arn:aws:kinesis:us-east-1:123456789012:stream/x"}}`,
	}
	for _, g := range good {
		if _, err := ParseTarget(json.RawMessage(g), o); err != nil {
			t.Errorf("%s: %v", g, err)
		}
	}
	bad := []string{`{}`, `{"nats":{"url":"http://x","subject":"a"}}`, `{"nats":{"url":"nats://x:1","subject":"a.*"}}`,
		`{"webhook":{"url":"http://x/","secrets":["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}}`, `{"webhook":{"url":"https://x/","secrets":["nope"]}}`,
		`{"nats":{"url":"nats://x:1","subject":"a"},"file":{"path":"x"}}`, `{"nats":{"url":"nats://x:1","subject":"a","extra":1}}`,
		`{"kinesis":{"auth":{},"stream_arn":"arn:aws:kinesis:us-east-1:123456789012:stream/x"}}`}
	for _, b := range bad {
		_, err := ParseTarget(json.RawMessage(b), o)
		wantCode(t, err, codes.EventTargetInvalid)
	}
	_, err := ParseTarget(json.RawMessage(`{"file":{"path":"e.jsonl"}}`), o)
	wantCode(t, err, codes.EventTargetUnsupported)
	_, err = ParseTarget(json.RawMessage(`{"file":{"path":"../e"}}`), TargetOptions{FileDir: "/tmp"})
	wantCode(t, err, codes.EventTargetInvalid)
}

// TestTypesCoverAuditEvents keeps Types in step with the audit events the
// control plane records: every "<object>_<verb>.v0" literal in its code is
// an event type.
func TestTypesCoverAuditEvents(t *testing.T) {
	lit := regexp.MustCompile(`"([a-z_]+_(created|updated|deleted|accepted|stopped|restarted|members_changed|used|set|started|confirmed)\.v0)"`)
	found := 0
	err := filepath.Walk("..", func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			found++
			if err := CheckType(m[1]); err != nil {
				t.Errorf("%s records %s, which Types does not list", p, m[1])
			}
		}
		return nil
	})
	if err != nil || found < 30 {
		t.Fatalf("walked the control plane: %v, %d literals", err, found)
	}
}
