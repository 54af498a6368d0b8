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

	"github.com/chromedp/chromedp"
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

// TestInspectorInBrowser drives the agent's inspector page in Chromium: a
// request through the tunnel listed, its page opened from the list, Replay
// (the upstream sees it again and the replay's page links the original),
// then Replay with changes from the form; the stylesheet applies under the
// page's CSP.
func TestInspectorInBrowser(t *testing.T) {
	dev := startDev(t, "")
	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+string(body))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"received":true}`)
	}))
	t.Cleanup(up.Close)
	upstreamSaw := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
	p, url := dev.agent(t, "http", upstreamPort(up), "--url", "https://hooks."+dev.info.BaseDomain)
	web := "http://" + p.waitFor(regexp.MustCompile(`Inspect\s+http://(\S+)/inspect`), 10*time.Second)[1]
	resp, err := dev.client(false).Post(url+"/webhooks/stripe", "application/json", strings.NewReader(`{"event":"payment.succeeded"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var id string
	for deadline := time.Now().Add(20 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if l := inspectorList(t, web[len("http://"):]); len(l) == 1 {
			id = l[0].ID
		}
	}
	if id == "" {
		t.Fatal("the request was not recorded")
	}

	ctx := chromium(t)
	var list, headerBG, replayOf, loc string
	run(t, ctx, "list",
		chromedp.Navigate(web+"/inspect"),
		chromedp.WaitVisible(chromedp.ID("requests")),
		into(chromedp.Text(chromedp.ID("requests")), &list),
		into(chromedp.Evaluate[string](`getComputedStyle(document.querySelector("header")).backgroundColor`), &headerBG),
	)
	if !strings.Contains(list, "/webhooks/stripe") || !strings.Contains(list, "200 OK") {
		t.Fatalf("list: %q", list)
	}
	if headerBG != "rgb(17, 24, 39)" {
		t.Fatalf("the stylesheet did not apply under the CSP: header background %q", headerBG)
	}
	shot(t, ctx, "inspector-list.png")
	run(t, ctx, "replay",
		chromedp.Click(chromedp.CSS(`#requests a[href="/inspect/`+id+`"]`)),
		chromedp.WaitVisible(chromedp.ID("replay")),
		chromedp.Click(chromedp.ID("replay")),
		chromedp.WaitVisible(chromedp.ID("replay-of")),
		into(chromedp.Text(chromedp.ID("replay-of")), &replayOf),
	)
	if got := upstreamSaw(); replayOf != id || len(got) != 2 || got[1] != `POST /webhooks/stripe {"event":"payment.succeeded"}` {
		t.Fatalf("replay: page links %q; upstream saw %q", replayOf, got)
	}
	shot(t, ctx, "inspector-replay.png")
	run(t, ctx, "replay with changes",
		chromedp.Navigate(web+"/inspect/"+id),
		chromedp.WaitVisible(chromedp.ID("send")),
		chromedp.SetValue(chromedp.ID("method"), "PUT"),
		chromedp.SetValue(chromedp.ID("uri"), "/webhooks/edited?try=2"),
		chromedp.SetValue(chromedp.ID("body"), `{"event":"payment.refunded"}`),
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.ID("replay-of")),
		into(chromedp.Location(), &loc),
	)
	if got := upstreamSaw(); len(got) != 3 || got[2] != `PUT /webhooks/edited?try=2 {"event":"payment.refunded"}` || !strings.Contains(loc, "/inspect/req_") {
		t.Fatalf("edited replay at %s: upstream saw %q", loc, got)
	}
}

// shot saves a screenshot to $TOLLGATE_SCREENSHOT_DIR when it is set.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if dir := os.Getenv("TOLLGATE_SCREENSHOT_DIR"); dir != "" {
		var png []byte
		run(t, ctx, "screenshot", into(chromedp.FullScreenshot(100), &png))
		_ = os.WriteFile(filepath.Join(dir, name), png, 0o644)
	}
}
