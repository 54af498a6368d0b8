package events

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tollgate/tollgate/codes"
)

func TestForbidden(t *testing.T) {
	for ip, want := range map[string]string{
		"127.0.0.1": "loopback", "127.9.9.9": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
		"169.254.169.254": "link-local (cloud metadata)", "fe80::1": "link-local (cloud metadata)",
		"10.1.2.3": "private", "172.16.0.1": "private", "192.168.1.1": "private", "fd00::1": "private",
		"100.64.0.1": "private", "fec0::1": "private", "64:ff9b::a01:203": "private", // NAT64 of 10.1.2.3
		"0.0.0.0": "unspecified", "::": "unspecified", "0.1.2.3": "unspecified",
		"224.0.0.1": "multicast or broadcast", "ff02::1": "multicast or broadcast", "255.255.255.255": "multicast or broadcast",
		"93.184.216.34": "", "2606:2800:220:1::1": "", "64:ff9b::5db8:d822": "", "172.32.0.1": "",
	} {
		if got := Forbidden(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Forbidden(%s) = %q, want %q", ip, got, want)
		}
	}
	allow, err := ParseEgressAllow([]string{"10.1.0.0/16", " 192.168.7.7 ", "", "::1/128"})
	if err != nil {
		t.Fatal(err)
	}
	e := Egress{Allow: allow}
	for _, ok := range []string{"10.1.2.3", "192.168.7.7", "::1", "::ffff:10.1.9.9", "93.184.216.34"} {
		if err := e.Check(netip.MustParseAddr(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, no := range []string{"10.2.0.1", "192.168.7.8", "127.0.0.1", "169.254.169.254"} {
		wantCode(t, e.Check(netip.MustParseAddr(no)), codes.EventEgressForbidden)
	}
	if _, err := ParseEgressAllow([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad range was accepted")
	}
}

// TestParseTargetEgress: a URL whose host is a forbidden IP literal is
// refused when the destination is created (TG_5418), unless its range is
// allowed; a host name is left to the dial-time check.
func TestParseTargetEgress(t *testing.T) {
	creds := `"auth":{"creds":{"aws_access_key_id":"AKID","aws_secret_access_key":"s"}}`
	role := `"auth":{"role":{"role_arn":"arn:aws:iam::123456789012:role/x"}}`
	stream := `"stream_arn":"arn:aws:kinesis:us-east-1:123456789012:stream/x"`
	sec := `"secrets":["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]`
	forbidden := []string{
		`{"webhook":{"url":"https://169.254.169.254/latest/meta-data/",` + sec + `}}`,
		`{"webhook":{"url":"https://[::1]:8443/",` + sec + `}}`,
		`{"webhook":{"url":"https://[::ffff:10.0.0.1]/",` + sec + `}}`,
		`{"nats":{"url":"nats://10.0.0.5:4222","subject":"a"}}`,
		`{"nats":{"url":"tls://127.0.0.1:4222","subject":"a"}}`,
		`{"kinesis":{` + creds + `,` + stream + `,"endpoint":"https://192.168.0.10"}}`,
		`{"kinesis":{` + role + `,` + stream + `,"sts_endpoint":"https://0.0.0.0:443"}}`,
	}
	for _, f := range forbidden {
		_, err := ParseTarget(json.RawMessage(f), TargetOptions{})
		wantCode(t, err, codes.EventEgressForbidden)
	}
	all := TargetOptions{Egress: Egress{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}}
	for _, f := range forbidden {
		if _, err := ParseTarget(json.RawMessage(f), all); err != nil {
			t.Errorf("%s with everything allowed: %v", f, err)
		}
	}
	if _, err := ParseTarget(json.RawMessage(`{"webhook":{"url":"https://localhost:8443/",`+sec+`}}`), TargetOptions{}); err != nil {
		t.Errorf("a host name is checked when dialled, not when created: %v", err)
	}
}

// TestEgressAtDial: deliveries to a host name that resolves to a forbidden
// address (localhost) fail with TG_5418 before any connection is made —
// webhook, NATS and an AWS endpoint — and succeed once loopback is
// allowed.
func TestEgressAtDial(t *testing.T) {
	var hits int
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	t.Cleanup(hook.Close)
	port := hook.URL[strings.LastIndex(hook.URL, ":")+1:]
	ev := []outgoing{{ID: "ev_1", Type: TestEventType, Body: []byte(`{}`)}}
	deny := sinkOptions{timeout: 5e9, egress: Egress{}}
	allowHTTP := TargetOptions{AllowHTTP: true}

	parse := func(kind string, config map[string]any) *Target {
		raw, _ := json.Marshal(map[string]any{kind: config})
		tg, err := ParseTarget(raw, allowHTTP)
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	web := parse("webhook", map[string]any{"url": "http://localhost:" + port + "/hook", "secrets": []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}})
	s, err := newSink(web, deny)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Send(context.Background(), ev)
	s.Close()
	if n != 0 || !isEgressRefusal(err) || hits != 0 {
		t.Fatalf("webhook to localhost: %d sent, %v, %d requests received", n, err, hits)
	}

	_, err = newSink(parse("nats", map[string]any{"url": "nats://localhost:4222", "subject": "tollgate.egress"}), deny)
	if !isEgressRefusal(err) {
		t.Fatalf("NATS at localhost: %v", err)
	}

	isolateAWSEnv(t, aws.Credentials{AccessKeyID: "AKIDNOTUSED", SecretAccessKey: "x"})
	kin := parse("kinesis", map[string]any{"auth": map[string]any{"creds": map[string]any{"aws_access_key_id": "AKID", "aws_secret_access_key": "s"}},
		"stream_arn": "arn:aws:kinesis:us-east-1:123456789012:stream/x", "endpoint": "http://localhost:" + port})
	deny.log = testSinkOptions().log
	s, err = newSink(kin, deny)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Send(context.Background(), ev)
	s.Close()
	if !isEgressRefusal(err) || hits != 0 {
		t.Fatalf("kinesis endpoint at localhost: %v, %d requests received", err, hits)
	}

	// Loopback allowed: the same webhook is delivered.
	s, err = newSink(web, sinkOptions{timeout: 5e9, egress: Egress{Allow: LoopbackPrefixes}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.Send(context.Background(), ev); n != 1 || err != nil || hits != 1 {
		t.Fatalf("webhook with loopback allowed: %d, %v, %d requests", n, err, hits)
	}
}

// isEgressRefusal reports whether err is (or says it is) the egress rule's
// refusal: some clients keep only the text of the dial error.
func isEgressRefusal(err error) bool {
	var ce *codes.Error
	return err != nil && (errors.As(err, &ce) && ce.Code == codes.EventEgressForbidden || strings.Contains(err.Error(), string(codes.EventEgressForbidden)))
}
