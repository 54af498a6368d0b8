package tunnel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// readGolden returns testdata/sdk/<name>.json, the SDK's own encoding.
func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "sdk", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// TestGoldenMessages decodes each message as the SDK encodes it into our
// type, refusing unknown fields (so we model every field the SDK sends),
// and checks that our encoding is the same JSON.
func TestGoldenMessages(t *testing.T) {
	cases := []struct {
		name string
		new  func() any
	}{
		{"auth", func() any { return &Auth{} }},
		{"auth_resp", func() any { return &AuthResp{} }},
		{"auth_resp_error", func() any { return &AuthResp{} }},
		{"bind_http", func() any { return &Bind{} }},
		{"bind_tcp", func() any { return &Bind{} }},
		{"bind_tls", func() any { return &Bind{} }},
		{"bind_resp", func() any { return &BindResp{} }},
		{"unbind", func() any { return &Unbind{} }},
		{"unbind_resp", func() any { return &UnbindResp{} }},
		{"proxy_header", func() any { return &ProxyHeader{} }},
		{"stop_tunnel", func() any { return &StopTunnel{} }},
		{"stop", func() any { return &Stop{} }},
		{"stop_resp", func() any { return &StopResp{} }},
		{"restart", func() any { return &Restart{} }},
		{"restart_resp", func() any { return &RestartResp{} }},
		{"update", func() any { return &Update{} }},
		{"update_resp", func() any { return &UpdateResp{} }},
		{"srv_info", func() any { return &SrvInfo{} }},
		{"srv_info_resp", func() any { return &SrvInfoResp{} }},
		{"start_tunnel_with_label", func() any { return &StartTunnelWithLabel{} }},
		{"start_tunnel_with_label_resp", func() any { return &StartTunnelWithLabelResp{} }},
		{"patch_tunnel_state", func() any { return &PatchTunnelState{} }},
		{"patch_tunnel_state_resp", func() any { return &PatchTunnelStateResp{} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			golden := readGolden(t, tc.name)
			v := tc.new()
			dec := json.NewDecoder(bytes.NewReader(golden))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("decode: %v", err)
			}
			ours, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, golden, ours) {
				t.Errorf("encoding differs\n sdk: %s\nours: %s", bytes.TrimSpace(golden), ours)
			}
		})
	}
}

func TestGoldenAuthValues(t *testing.T) {
	var a Auth
	if err := json.Unmarshal(readGolden(t, "auth"), &a); err != nil {
		t.Fatal(err)
	}
	if a.Extra.Authtoken.Reveal() != "2abc_secret" || a.ClientID != "prev-id" || a.Extra.LegNumber != 1 {
		t.Fatalf("auth decoded wrong: %+v", a)
	}
	if time.Duration(a.Extra.HeartbeatInterval) != 10*time.Second {
		t.Fatalf("interval %v", a.Extra.HeartbeatInterval)
	}
	if a.Extra.StopUnsupportedError == nil || *a.Extra.StopUnsupportedError != "" {
		t.Fatal("stop should be supported")
	}
	if a.Extra.RestartUnsupportedError != nil {
		t.Fatal("restart should be nil (too old)")
	}
}

// TestMessagesCaseInsensitive decodes the casing the JS SDK may use.
func TestMessagesCaseInsensitive(t *testing.T) {
	var h ProxyHeader
	if err := json.Unmarshal([]byte(`{"id":"b","clientAddr":"1.2.3.4:5","proto":"tcp","edgeType":"1","passthroughTls":true}`), &h); err != nil {
		t.Fatal(err)
	}
	want := ProxyHeader{ID: "b", ClientAddr: "1.2.3.4:5", Proto: "tcp", EdgeType: "1", PassthroughTLS: true}
	if h != want {
		t.Fatalf("got %+v", h)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	a := Auth{Extra: AuthExtra{Authtoken: "2abc_topsecret", Cookie: "c"}}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		if s := fmt.Sprintf(format, a); strings.Contains(s, "topsecret") {
			t.Errorf("%s leaked the secret: %s", format, s)
		}
	}
	if s := Secret("").String(); s != "" {
		t.Errorf("empty secret prints %q", s)
	}
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	log.Info("auth", zap.Object("auth", &a), zap.Any("token", a.Extra.Authtoken), zap.Stringer("t2", a.Extra.Authtoken))
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if strings.Contains(fmt.Sprint(v), "topsecret") {
				t.Errorf("zap field %s leaked the secret", k)
			}
		}
	}
	js, _ := json.Marshal(a)
	if !strings.Contains(string(js), "2abc_topsecret") {
		t.Error("the wire encoding must carry the secret")
	}
}

func TestStreamTypeString(t *testing.T) {
	if StreamHeartbeat.String() != "heartbeat" || StreamType(77).String() != "type_77" {
		t.Fatal("names")
	}
}
