package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type fakeStatus struct {
	eps []EndpointStatus
	st  Status
}

func (f *fakeStatus) Endpoints() []EndpointStatus { return f.eps }
func (f *fakeStatus) Status() Status              { return f.st }

func getJSON(t *testing.T, method, url string, wantStatus int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, wantStatus, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, url, ct)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s %s: %v: %s", method, url, err, body)
	}
	return m
}

func TestInspectionAPI(t *testing.T) {
	src := &fakeStatus{
		eps: []EndpointStatus{
			{Name: "web app", Proto: "https", PublicURL: "https://app.tollgate.localhost:8443", Upstream: "http://localhost:8080",
				State: StateOnline, TunnelID: "ep_1", ConnsTotal: 5, ConnsOpen: 2, BytesIn: 10, BytesOut: 20},
			{Name: "pending", Proto: "tcp", Upstream: "localhost:22", State: StateStarting},
		},
		st: Status{State: SessionOnline, SessionID: "ts_1", Region: "eu", Transport: "quic", ServerAddr: "edge:4443",
			Latency: 1500 * time.Microsecond, ConnectedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Version: "1.0.0"},
	}
	srv := httptest.NewServer(newInspectHandler(src, nil, nil))
	t.Cleanup(srv.Close)

	list := getJSON(t, "GET", srv.URL+"/api/tunnels", 200)
	if list["uri"] != "/api/tunnels" {
		t.Fatalf("uri = %v", list["uri"])
	}
	tunnels := list["tunnels"].([]any)
	if len(tunnels) != 1 {
		t.Fatalf("%d tunnels listed, want only the bound one: %v", len(tunnels), tunnels)
	}
	tun := tunnels[0].(map[string]any)
	want := map[string]any{
		"name":       "web app",
		"uri":        "/api/tunnels/web%20app",
		"public_url": "https://app.tollgate.localhost:8443",
		"proto":      "https",
	}
	for k, v := range want {
		if tun[k] != v {
			t.Fatalf("tunnel[%q] = %v, want %v (tunnel %v)", k, tun[k], v, tun)
		}
	}
	cfg := tun["config"].(map[string]any)
	if cfg["addr"] != "http://localhost:8080" || cfg["inspect"] != false {
		t.Fatalf("config = %v", cfg)
	}
	conns := tun["metrics"].(map[string]any)["conns"].(map[string]any)
	if conns["count"] != 5.0 || conns["gauge"] != 2.0 {
		t.Fatalf("metrics.conns = %v", conns)
	}

	one := getJSON(t, "GET", srv.URL+"/api/tunnels/web%20app", 200)
	if one["public_url"] != "https://app.tollgate.localhost:8443" {
		t.Fatalf("one = %v", one)
	}
	nf := getJSON(t, "GET", srv.URL+"/api/tunnels/nope", 404)
	if nf["status_code"] != 404.0 || nf["error_code"] != "TG_250" || !strings.Contains(nf["msg"].(string), "not found") {
		t.Fatalf("404 body = %v", nf)
	}
	// Every error carries a code, 405s included.
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"DELETE", "/api/tunnels/web%20app", 405, "TG_9008"},
		{"POST", "/api/tunnels", 405, "TG_9008"},
		{"PUT", "/api/status", 405, "TG_9008"},
		{"PATCH", "/api/requests/http", 405, "TG_9008"},
		{"GET", "/elsewhere", 404, "TG_250"},
		{"GET", "/api/requests/http", 409, "TG_9010"}, // inspection off
	} {
		m := getJSON(t, c.method, srv.URL+c.path, c.status)
		if m["error_code"] != c.code || m["status_code"] != float64(c.status) {
			t.Fatalf("%s %s: %v, want error_code %s", c.method, c.path, m, c.code)
		}
	}

	st := getJSON(t, "GET", srv.URL+"/api/status", 200)
	for k, v := range map[string]any{"state": "online", "session_id": "ts_1", "region": "eu", "transport": "quic",
		"latency_ms": 1.5, "connected_at": "2026-01-02T03:04:05Z", "tunnels": 2.0} {
		if st[k] != v {
			t.Fatalf("status[%q] = %v, want %v", k, st[k], v)
		}
	}

	// No endpoints bound yet: an empty list, not null.
	src.eps = nil
	empty := getJSON(t, "GET", srv.URL+"/api/tunnels", 200)
	if l, ok := empty["tunnels"].([]any); !ok || len(l) != 0 {
		t.Fatalf("tunnels = %#v, want []", empty["tunnels"])
	}
}

func TestHostGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	for _, tc := range []struct {
		listen, host string
		want         int
	}{
		{"127.0.0.1", "127.0.0.1:4040", 204},
		{"127.0.0.1", "localhost:4040", 204},
		{"127.0.0.1", "[::1]:4040", 204},
		{"127.0.0.1", "app.localhost:4040", 204},
		{"127.0.0.1", "rebind.attacker.example:4040", 403},
		{"localhost", "rebind.attacker.example", 403},
		{"0.0.0.0", "myhost.lan:4040", 204}, // put on the network on purpose
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/requests/http", nil)
		req.Host = tc.host
		hostGuard(ok, tc.listen, isLoopbackHost(tc.listen)).ServeHTTP(rec, req)
		if rec.Code != tc.want || tc.want == 403 && !strings.Contains(rec.Body.String(), "TG_9013") {
			t.Fatalf("listen %s, Host %s: %d %s, want %d", tc.listen, tc.host, rec.Code, rec.Body, tc.want)
		}
	}
}
