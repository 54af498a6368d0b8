package test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// inspectedRequest is the part of GET /api/requests/http the test reads.
type inspectedRequest struct {
	ID         string `json:"id"`
	TunnelName string `json:"tunnel_name"`
	ReplayOf   string `json:"replay_of"`
	Upgraded   bool   `json:"upgraded"`
	Request    struct {
		Method  string      `json:"method"`
		URI     string      `json:"uri"`
		Headers http.Header `json:"headers"`
		Body    string      `json:"body"`
	} `json:"request"`
	Response *struct {
		StatusCode int    `json:"status_code"`
		Body       string `json:"body"`
	} `json:"response"`
}

// The request inspector through a real edge: HTTP/1.1 and HTTP/2 clients'
// requests appear in /api/requests/http with their bodies, a WebSocket
// upgrade is shown, and a replay reaches the upstream again.
func TestInspectorE2E(t *testing.T) {
	dev := startDev(t, "")
	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			if typ, msg, err := c.Read(r.Context()); err == nil {
				_ = c.Write(r.Context(), typ, msg)
			}
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+string(body))
		mu.Unlock()
		_, _ = io.WriteString(w, "got "+string(body))
	}))
	t.Cleanup(up.Close)
	p, url := dev.agent(t, "http", upstreamPort(up), "--url", "https://inspect."+dev.info.BaseDomain)
	web := p.waitFor(regexp.MustCompile(`Inspect\s+http://(\S+)/inspect`), 10*time.Second)[1]

	for _, h2 := range []bool{false, true} {
		body := map[bool]string{false: "h1-body", true: "h2-body"}[h2]
		resp, err := dev.client(h2).Post(url+"/hook?n=1", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] || string(b) != "got "+body {
			t.Fatalf("h2=%v: %s %q", h2, resp.Proto, b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(url, "https://", "wss://", 1)+"/ws", &websocket.DialOptions{HTTPClient: dev.client(false)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte("secret-frame")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "secret-frame" {
		t.Fatalf("websocket echo: %q %v", msg, err)
	}
	ws.Close(websocket.StatusNormalClosure, "")

	var list []inspectedRequest
	deadline := time.Now().Add(20 * time.Second)
	for {
		list = inspectorList(t, web)
		if len(list) == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(list) != 3 {
		t.Fatalf("%d requests recorded, want 3: %+v", len(list), list)
	}
	wsEntry, h2Entry, h1Entry := list[0], list[1], list[2] // newest first
	for i, e := range []inspectedRequest{h1Entry, h2Entry} {
		want := []string{"h1-body", "h2-body"}[i]
		if e.TunnelName != "command_line" || e.Request.Method != "POST" || e.Request.URI != "/hook?n=1" ||
			e.Request.Body != want || e.Response == nil || e.Response.StatusCode != 200 || e.Response.Body != "got "+want {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	if !wsEntry.Upgraded || wsEntry.Response == nil || wsEntry.Response.StatusCode != 101 || wsEntry.Request.URI != "/ws" {
		t.Fatalf("websocket entry: %+v", wsEntry)
	}
	raw, _ := json.Marshal(list)
	if bytes.Contains(raw, []byte("secret-frame")) {
		t.Fatalf("WebSocket frames were recorded: %s", raw)
	}

	// Replay the HTTP/2 request: the upstream sees it again.
	req, _ := http.NewRequest("POST", "http://"+web+"/api/requests/http", strings.NewReader(`{"id":"`+h2Entry.ID+`","tunnel_name":"command_line"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	got := append([]string(nil), seen...)
	mu.Unlock()
	if resp.StatusCode != 204 || len(got) != 3 || got[2] != "POST /hook?n=1 h2-body" {
		t.Fatalf("replay: %d; upstream saw %q", resp.StatusCode, got)
	}
	if l := inspectorList(t, web); len(l) != 4 || l[0].ReplayOf != h2Entry.ID || l[0].Response == nil || l[0].Response.Body != "got h2-body" {
		t.Fatalf("replay not recorded: %+v", l[0])
	}

	// The page lists them.
	resp, err = http.Get("http://" + web + "/inspect")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte("/hook?n=1")) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("/inspect: %d\n%s", resp.StatusCode, page)
	}
}

func inspectorList(t *testing.T, web string) []inspectedRequest {
	t.Helper()
	resp, err := http.Get("http://" + web + "/api/requests/http")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l struct {
		Requests []inspectedRequest `json:"requests"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /api/requests/http: %d %v", resp.StatusCode, err)
	}
	return l.Requests
}

// Startup refusals a new user meets: no --root-ca against the dev CA, and
// an http:// URL. Each exits 2 at once with its code and what to do.
func TestAgentStartupRefusals(t *testing.T) {
	dev := startDev(t, "")
	cfgFile := filepath.Join(t.TempDir(), "tollgate.yml")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no root CA", []string{"http", "8080", "--authtoken", dev.info.Authtoken, "--server-addr", dev.info.AgentAddr},
			[]string{"TG_9006", "Pass --root-ca FILE", "signed by"}},
		{"http URL", []string{"http", "8080", "--url", "http://plain." + dev.info.BaseDomain, "--authtoken", dev.info.Authtoken,
			"--server-addr", dev.info.AgentAddr, "--root-ca", dev.info.CAFile},
			[]string{"TG_9007", "--url https://plain." + dev.info.BaseDomain}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, bins.tollgate, []string{"TOLLGATE_CONFIG=" + cfgFile, "HOME=" + t.TempDir()},
				append(tc.args, "--web-addr", "false")...)
			code, ok := p.wait(30 * time.Second)
			if !ok || code != 2 {
				t.Fatalf("exit %d (ended %v), want 2:\n%s", code, ok, p.output())
			}
			for _, w := range tc.want {
				if !strings.Contains(p.output(), w) {
					t.Fatalf("output lacks %q:\n%s", w, p.output())
				}
			}
		})
	}
	_ = os.Remove(cfgFile)
}
