package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/tunnel"
)

// echoUpstream answers "METHOD PATH BODY" and records what it saw; /ws
// switches to a byte echo after a 101.
type echoUpstream struct {
	mu   sync.Mutex
	seen []string
}

func (u *echoUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	line := r.Method + " " + r.URL.RequestURI() + " " + string(body)
	u.mu.Lock()
	u.seen = append(u.seen, line)
	u.mu.Unlock()
	if r.URL.Path == "/ws" {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		_ = brw.Flush()
		buf := make([]byte, 9)
		if _, err := io.ReadFull(brw, buf); err == nil {
			_, _ = conn.Write(buf)
		}
		return
	}
	if r.URL.Path == "/bin" {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write([]byte{0, 1, 2, 0xff})
		return
	}
	_, _ = io.WriteString(w, "echo: "+line)
}

func (u *echoUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

// streamRequests sends reqs on one proxy stream (keep-alive) and returns
// the response bodies.
func streamRequests(t *testing.T, s *tunnel.ServerSession, bindID string, reqs ...*http.Request) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.OpenProxy(ctx, &tunnel.ProxyHeader{ID: bindID, ClientAddr: "203.0.113.9:5555", Proto: "https"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(st)
	var out []string
	for _, req := range reqs {
		if err := req.Write(st); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, string(b))
	}
	return out
}

func newReq(method, target, body string) *http.Request {
	r, _ := http.NewRequest(method, "https://web.tollgate.localhost"+target, strings.NewReader(body))
	if body == "" {
		r.Body, r.ContentLength = nil, 0
	}
	return r
}

type apiReqList struct {
	Requests []apiRequest `json:"requests"`
}

// webDo sends a request to the agent's web address and returns the
// status, the headers and the body.
func webDo(t *testing.T, method, u, ctype, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func listRequests(t *testing.T, web, query string) []apiRequest {
	t.Helper()
	status, _, b := webDo(t, "GET", "http://"+web+"/api/requests/http"+query, "", "")
	var l apiReqList
	if status != 200 || json.Unmarshal(b, &l) != nil {
		t.Fatalf("GET /api/requests/http%s: %d %s", query, status, b)
	}
	return l.Requests
}

// startInspected runs an agent with one HTTP endpoint "web" to up and
// inspection on, and returns it, the edge's session and the bind ID.
func startInspected(t *testing.T, up http.Handler, inspect InspectConfig) (*runningAgent, *tunnel.ServerSession, string) {
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	e := newFakeEdge(t, edgeOpts{tcp: true})
	cfg := baseConfig(t, e, "tcp", config.Endpoint{Name: "web", Proto: "http", URL: "https://web.tollgate.localhost",
		Upstream: strings.TrimPrefix(srv.URL, "http://")})
	cfg.WebAddr, cfg.Inspect = "127.0.0.1:0", inspect
	ra := startAgent(t, cfg)
	sess := e.waitSession(t)
	ra.waitReady(t)
	return ra, sess, ra.Endpoints()[0].BindID
}

func TestInspectorThroughTunnel(t *testing.T) {
	up := &echoUpstream{}
	ra, sess, bindID := startInspected(t, up, InspectConfig{})
	web := ra.WebAddr()

	got := streamRequests(t, sess, bindID, newReq("POST", "/echo?x=1", "ping-body"), newReq("GET", "/bin", ""))
	if got[0] != "echo: POST /echo?x=1 ping-body" {
		t.Fatalf("proxied: %q", got)
	}
	var list []apiRequest
	waitFor(t, "two recorded requests", func() bool { list = listRequests(t, web, ""); return len(list) == 2 })
	post, bin := list[1], list[0] // newest first
	if post.TunnelName != "web" || post.RemoteAddr != "203.0.113.9:5555" || post.Request.Method != "POST" ||
		post.Request.URI != "/echo?x=1" || post.Request.Body != "ping-body" || post.Request.Headers.Get("Host") != "web.tollgate.localhost" ||
		post.Response == nil || post.Response.StatusCode != 200 || post.Response.Body != "echo: POST /echo?x=1 ping-body" ||
		post.Duration <= 0 || post.URI != "/api/requests/http/"+post.ID {
		t.Fatalf("POST exchange: %+v", post)
	}
	if bin.Response == nil || !bin.Response.BodyBinary || bin.Response.Body != "AAEC/w==" {
		t.Fatalf("binary response: %+v", bin.Response)
	}
	status, _, b := webDo(t, "GET", "http://"+web+"/api/requests/http/"+post.ID, "", "")
	if status != 200 || !bytes.Contains(b, []byte(`"ping-body"`)) {
		t.Fatalf("GET one: %d %s", status, b)
	}
	if l := listRequests(t, web, "?limit=1&tunnel_name=web"); len(l) != 1 || l[0].ID != bin.ID {
		t.Fatalf("limit=1: %+v", l)
	}
	if l := listRequests(t, web, "?tunnel_name=other"); len(l) != 0 {
		t.Fatalf("tunnel_name=other: %d", len(l))
	}

	// Replay as sent: the upstream sees the request again, and the replay
	// is recorded.
	status, hdr, b := webDo(t, "POST", "http://"+web+"/api/requests/http", "application/json", `{"id":"`+post.ID+`","tunnel_name":"web"}`)
	if status != 204 || hdr.Get("Tollgate-Replay-Id") == "" {
		t.Fatalf("replay: %d %s", status, b)
	}
	if seen := up.requests(); len(seen) != 3 || seen[2] != "POST /echo?x=1 ping-body" {
		t.Fatalf("upstream saw %q", seen)
	}
	l := listRequests(t, web, "?limit=1")
	if len(l) != 1 || l[0].ID != hdr.Get("Tollgate-Replay-Id") || l[0].ReplayOf != post.ID || l[0].Response.Body != "echo: POST /echo?x=1 ping-body" {
		t.Fatalf("replay entry: %+v", l)
	}

	// Replay edited.
	status, _, b = webDo(t, "POST", "http://"+web+"/api/requests/http", "application/json",
		`{"id":"`+post.ID+`","method":"PUT","uri":"/echo/edited","headers":{"Host":["web.tollgate.localhost"],"X-Edit":["1"]},"body":"changed"}`)
	if seen := up.requests(); status != 204 || len(seen) != 4 || seen[3] != "PUT /echo/edited changed" {
		t.Fatalf("edited replay: %d %s; upstream saw %q", status, b, seen)
	}

	// Errors carry codes and change nothing.
	for _, c := range []struct{ ctype, body, code string }{
		{"application/json", `{"id":"req_nope"}`, "TG_250"},
		{"text/plain", `{"id":"` + post.ID + `"}`, "TG_9009"},
		{"application/json", `{"id":"` + post.ID + `","method":"GET /"}`, "TG_9009"},
		{"application/json", `{"id":"` + post.ID + `","tunnel_name":"ssh"}`, "TG_250"},
		{"application/json", `{"id":"` + post.ID + `","bogus":1}`, "TG_9009"},
	} {
		_, _, b := webDo(t, "POST", "http://"+web+"/api/requests/http", c.ctype, c.body)
		if !bytes.Contains(b, []byte(`"error_code":"`+c.code+`"`)) {
			t.Fatalf("%s %s: %s, want %s", c.ctype, c.body, b, c.code)
		}
	}
	if seen := up.requests(); len(seen) != 4 {
		t.Fatalf("a refused replay reached the upstream: %q", seen)
	}

	// A WebSocket upgrade is shown, its frames are not recorded.
	ws := newReq("GET", "/ws", "")
	ws.Header.Set("Connection", "Upgrade")
	ws.Header.Set("Upgrade", "websocket")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := sess.OpenProxy(ctx, &tunnel.ProxyHeader{ID: bindID, ClientAddr: "203.0.113.9:5555", Proto: "https"})
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	_ = ws.Write(st)
	br := bufio.NewReader(st)
	resp, err := http.ReadResponse(br, ws)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	_, _ = st.Write([]byte("frame-abc"))
	echo := make([]byte, 9)
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != "frame-abc" {
		t.Fatalf("echo %q %v", echo, err)
	}
	st.Close()
	waitFor(t, "the upgrade recorded", func() bool {
		l := listRequests(t, web, "?limit=1")
		return len(l) == 1 && l[0].Request.URI == "/ws"
	})
	wsEntry := listRequests(t, web, "?limit=1")[0]
	if !wsEntry.Upgraded || wsEntry.Response == nil || wsEntry.Response.StatusCode != 101 ||
		wsEntry.Request.Body != "" || wsEntry.Response.Body != "" || wsEntry.Request.Headers.Get("Upgrade") != "websocket" {
		t.Fatalf("upgrade entry: %+v", wsEntry)
	}

	// The tunnel says it is inspected; DELETE clears.
	_, _, b = webDo(t, "GET", "http://"+web+"/api/tunnels/web", "", "")
	if !bytes.Contains(b, []byte(`"inspect":true`)) {
		t.Fatalf("/api/tunnels/web: %s", b)
	}
	if status, _, _ := webDo(t, "DELETE", "http://"+web+"/api/requests/http", "", ""); status != 204 || len(listRequests(t, web, "")) != 0 {
		t.Fatalf("DELETE: %d", status)
	}
}

func TestInspectorPage(t *testing.T) {
	up := &echoUpstream{}
	ra, sess, bindID := startInspected(t, up, InspectConfig{})
	web := "http://" + ra.WebAddr()
	streamRequests(t, sess, bindID, newReq("POST", "/form?q=<b>", "<script>x</script>"))
	waitFor(t, "a recorded request", func() bool { return len(listRequests(t, ra.WebAddr(), "")) == 1 })
	id := listRequests(t, ra.WebAddr(), "")[0].ID

	status, hdr, page := webDo(t, "GET", web+"/inspect", "", "")
	if status != 200 || !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") ||
		hdr.Get("Cache-Control") != "no-store" || !bytes.Contains(page, []byte("/inspect/"+id)) {
		t.Fatalf("list page: %d %v\n%s", status, hdr, page)
	}
	status, _, page = webDo(t, "GET", web+"/inspect/"+id, "", "")
	if status != 200 || bytes.Contains(page, []byte("<script>x")) || !bytes.Contains(page, []byte("&lt;script&gt;x&lt;/script&gt;")) {
		t.Fatalf("detail page (escaping): %d\n%s", status, page)
	}
	m := regexp.MustCompile(`name="token" value="([0-9a-f]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no form token in\n%s", page)
	}
	// Without the token (another site's form) nothing is replayed.
	status, _, b := webDo(t, "POST", web+"/inspect/replay", "application/x-www-form-urlencoded", "id="+id)
	if status != 403 || !bytes.Contains(b, []byte("TG_9014")) || len(up.requests()) != 1 {
		t.Fatalf("no token: %d %s", status, b)
	}
	form := url.Values{"token": {string(m[1])}, "id": {id}, "edit": {"1"}, "method": {"PATCH"}, "uri": {"/edited"},
		"headers": {"Host: web.tollgate.localhost\nX-From-Form: yes"}, "body": {"from the form"}, "tunnel_name": {"web"}}
	status, hdr, b = webDo(t, "POST", web+"/inspect/replay", "application/x-www-form-urlencoded", form.Encode())
	if seen := up.requests(); status != 303 || !strings.HasPrefix(hdr.Get("Location"), "/inspect/req_") || len(seen) != 2 || seen[1] != "PATCH /edited from the form" {
		t.Fatalf("form replay: %d %v %s; upstream saw %q", status, hdr, b, up.requests())
	}
	// Another host name (DNS rebinding) is refused.
	req, _ := http.NewRequest("GET", web+"/api/requests/http", nil)
	req.Host = "attacker.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !bytes.Contains(b, []byte("TG_9013")) {
		t.Fatalf("foreign host: %d %s", resp.StatusCode, b)
	}
}

func TestInspectorOff(t *testing.T) {
	up := &echoUpstream{}
	ra, sess, bindID := startInspected(t, up, InspectConfig{Off: true})
	if got := streamRequests(t, sess, bindID, newReq("GET", "/x", "")); got[0] != "echo: GET /x " {
		t.Fatalf("proxied: %q", got)
	}
	status, _, b := webDo(t, "GET", "http://"+ra.WebAddr()+"/api/requests/http", "", "")
	if status != 409 || !bytes.Contains(b, []byte(`"error_code":"TG_9010"`)) {
		t.Fatalf("requests with inspection off: %d %s", status, b)
	}
	_, _, b = webDo(t, "GET", "http://"+ra.WebAddr()+"/api/tunnels/web", "", "")
	if !bytes.Contains(b, []byte(`"inspect":false`)) {
		t.Fatalf("/api/tunnels/web: %s", b)
	}
	if ra.rec != nil || ra.eps.list[0].fwd.rec != nil {
		t.Fatal("a ring exists with inspection off")
	}
}
