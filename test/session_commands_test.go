package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.ngrok.com/ngrok/v2"
)

// callAPI makes a REST API call to the dev server with an API key and
// returns the status and the decoded JSON object (nil for an empty body).
func callAPI(t testing.TB, d *devServer, key, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimRight(d.info.APIURL, "/")+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return resp.StatusCode, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: %d, not a JSON object: %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// mustAPI is callAPI that fails the test on another status.
func mustAPI(t testing.TB, d *devServer, key, method, path string, body any, status int) map[string]any {
	t.Helper()
	got, m := callAPI(t, d, key, method, path, body)
	if got != status {
		t.Fatalf("%s %s: status %d, want %d: %v", method, path, got, status, m)
	}
	return m
}

// onlineSessions returns the IDs of the account's online agent sessions.
func onlineSessions(t testing.TB, d *devServer, key string) []string {
	t.Helper()
	list := mustAPI(t, d, key, "GET", "/tunnel_sessions", nil, 200)
	items, _ := list["tunnel_sessions"].([]any)
	var ids []string
	for _, it := range items {
		m, _ := it.(map[string]any)
		id, _ := m["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// waitSessions polls until the account has exactly one online session
// satisfying ok, and returns its ID.
func waitSession(t *testing.T, d *devServer, key string, ok func(id string) bool) string {
	t.Helper()
	var id string
	eventually(t, 20*time.Second, func() error {
		ids := onlineSessions(t, d, key)
		if len(ids) != 1 || !ok(ids[0]) {
			return fmt.Errorf("online sessions %v", ids)
		}
		id = ids[0]
		return nil
	})
	return id
}

// TestSessionCommands stops and restarts our agent through the REST API
// (POST /tunnel_sessions/{id}/restart and /stop): the command travels over
// the agent's session; on restart the agent reconnects with a new session
// and the same URL; on stop it exits 0 and says why.
func TestSessionCommands(t *testing.T) {
	dev := startDev(t, "")
	key := dev.info.APIKey
	up := echoUpstream(t)
	agent, url := dev.agent(t, "http", upstreamPort(up))
	c := dev.client(false)
	if err := getOK(c, url+"/hello"); err != nil {
		t.Fatal(err)
	}
	first := waitSession(t, dev, key, func(string) bool { return true })
	if m := agent.waitFor(regexp.MustCompile(`Session\s+(ts_\S+)`), 5*time.Second); m[1] != first {
		t.Fatalf("the agent says session %s, the API %s", m[1], first)
	}
	got := mustAPI(t, dev, key, "GET", "/tunnel_sessions/"+first, nil, 200)
	if got["region"] != dev.info.Region || got["transport"] == "" {
		t.Fatalf("session = %v", got)
	}

	// Restart: a new session, the same URL still serves.
	mustAPI(t, dev, key, "POST", "/tunnel_sessions/"+first+"/restart", nil, 204)
	agent.waitFor(regexp.MustCompile(`asked this agent to restart`), 10*time.Second)
	second := waitSession(t, dev, key, func(id string) bool { return id != first })
	eventually(t, 20*time.Second, func() error { return getOK(c, url+"/hello") })
	if st, _ := callAPI(t, dev, key, "POST", "/tunnel_sessions/"+first+"/stop", nil); st != 404 {
		t.Fatalf("stopping the replaced session: %d, want 404", st)
	}
	select {
	case <-agent.done:
		t.Fatalf("the agent exited on restart:\n%s", agent.output())
	default:
	}

	// Stop: the agent exits 0 with a message, and its session goes.
	mustAPI(t, dev, key, "POST", "/tunnel_sessions/"+second+"/stop", map[string]any{}, 204)
	code, exited := agent.wait(20 * time.Second)
	if !exited || code != 0 {
		t.Fatalf("after stop: exited %v with %d; output:\n%s", exited, code, agent.output())
	}
	if !strings.Contains(agent.output(), "the edge asked this agent to stop") {
		t.Fatalf("the agent did not say why it stopped:\n%s", agent.output())
	}
	eventually(t, 10*time.Second, func() error {
		if ids := onlineSessions(t, dev, key); len(ids) != 0 {
			return fmt.Errorf("still online: %v", ids)
		}
		return nil
	})
	if st, m := callAPI(t, dev, key, "POST", "/tunnel_sessions/"+second+"/restart", nil); st != 404 || m["error_code"] == "" {
		t.Fatalf("restarting a stopped session: %d %v", st, m)
	}

	// The audit log has both commands, attributed to the dev admin.
	evs := mustAPI(t, dev, key, "GET", "/audit_events?limit=10", nil, 200)
	seen := map[string]bool{}
	items, _ := evs["audit_events"].([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		if obj, _ := m["object"].(map[string]any); obj["id"] == first || obj["id"] == second {
			seen[m["type"].(string)] = true
		}
	}
	if !seen["tunnel_session_restarted.v0"] || !seen["tunnel_session_stopped.v0"] {
		t.Fatalf("audit events = %v", items)
	}
}

// TestSessionCommandUnsupported restarts a session of the hosted platform's
// Go SDK, which tells the edge at Auth that it does not restart: the API
// answers 409 with a code, and the session stays up.
func TestSessionCommandUnsupported(t *testing.T) {
	dev := startDev(t, "")
	key := dev.info.APIKey
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ag, err := ngrok.NewAgent(ngrok.WithAuthtoken(dev.info.Authtoken), ngrok.WithAgentConnectURL(dev.info.AgentAddr),
		ngrok.WithAgentConnectCAs(dev.pool))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.Disconnect() })
	up := echoUpstream(t)
	if _, err := ag.Forward(ctx, ngrok.WithUpstream(up.URL), ngrok.WithURL("https://sdk."+dev.info.BaseDomain)); err != nil {
		t.Fatalf("SDK Forward: %v", err)
	}
	id := waitSession(t, dev, key, func(string) bool { return true })
	st, m := callAPI(t, dev, key, "POST", "/tunnel_sessions/"+id+"/restart", nil)
	if st != 409 || m["error_code"] != "TG_2690" || !strings.Contains(fmt.Sprint(m["msg"]), "restart") {
		t.Fatalf("restarting an SDK session: %d %v", st, m)
	}
	if err := getOK(dev.client(false), "https://sdk."+dev.info.BaseDomain+":"+dev.httpsPort()+"/hello"); err != nil {
		t.Fatalf("the SDK's endpoint after a refused restart: %v", err)
	}
}
