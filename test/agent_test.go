package test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.ngrok.com/ngrok/v2"
)

// eventually polls f until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("not true after %s: %v", d, err)
}

func getOK(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return &statusError{resp.StatusCode, string(b)}
	}
	return nil
}

type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return http.StatusText(e.code) + ": " + e.body }

// TestGoSDKAgent connects the hosted platform's Go SDK, unmodified, as a
// second agent on the same edge as our own agent.
func TestGoSDKAgent(t *testing.T) {
	dev := startDev(t, "")
	up := echoUpstream(t)
	_, ours := dev.agent(t, "http", upstreamPort(up), "--url", "https://ours."+dev.info.BaseDomain)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ag, err := ngrok.NewAgent(ngrok.WithAuthtoken(dev.info.Authtoken), ngrok.WithAgentConnectURL(dev.info.AgentAddr),
		ngrok.WithAgentConnectCAs(dev.pool))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.Disconnect() })
	fwd, err := ag.Forward(ctx, ngrok.WithUpstream(up.URL), ngrok.WithURL("https://sdk."+dev.info.BaseDomain))
	if err != nil {
		t.Fatalf("SDK Forward: %v", err)
	}
	if got := fwd.URL().Hostname(); got != "sdk."+dev.info.BaseDomain {
		t.Fatalf("SDK endpoint host %q", got)
	}
	c := dev.client(false)
	for _, u := range []string{ours, "https://sdk." + dev.info.BaseDomain + ":" + dev.httpsPort()} {
		resp, body := get(t, c, u+"/hello")
		if resp.StatusCode != 200 || !strings.Contains(body, "hello from upstream") {
			t.Fatalf("%s: %d %q", u, resp.StatusCode, body)
		}
	}
	// The SDK also gets a clear refusal for a name outside the base domain.
	_, err = ag.Forward(ctx, ngrok.WithUpstream(up.URL), ngrok.WithURL("https://app.example.com"))
	if err == nil || !strings.Contains(err.Error(), "TG_402") {
		t.Fatalf("binding outside the base domain: %v", err)
	}
}

// TestReconnectAfterEdgeRestart restarts `tollgated dev` on the same data dir
// and addresses: the agent reconnects by itself and gets the same (random)
// URL back.
func TestReconnectAfterEdgeRestart(t *testing.T) {
	dir := t.TempDir()
	dev := startDev(t, dir)
	up := echoUpstream(t)
	agent, url := dev.agent(t, "http", upstreamPort(up))
	c := dev.client(false)
	if err := getOK(c, url+"/hello"); err != nil {
		t.Fatal(err)
	}
	info := dev.info
	if err := dev.stop(20 * time.Second); err != nil {
		t.Fatalf("dev did not stop cleanly: %v", err)
	}
	dev2 := startDev(t, dir, "--api-addr", hostPort(info.APIURL), "--agent-addr", info.AgentAddr,
		"--https-addr", info.HTTPSAddr, "--http-addr", info.HTTPAddr)
	eventually(t, 30*time.Second, func() error { return getOK(dev2.client(false), url+"/hello") })
	if !regexp.MustCompile(`Forwarding\s+` + regexp.QuoteMeta(url)).MatchString(agent.output()) {
		t.Fatalf("agent output does not show %s:\n%s", url, agent.output())
	}
}

func hostPort(u string) string {
	u = strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	return strings.TrimSuffix(u, "/")
}

// TestUDPBlockedFallsBackToTCP black-holes UDP on the agent port (as a
// firewall that drops UDP would): --transport auto must still connect, over
// TCP, within a few seconds; --transport quic works when UDP is open.
func TestUDPBlockedFallsBackToTCP(t *testing.T) {
	dev := startDev(t, "", "--agent-quic=false")
	pc, err := net.ListenPacket("udp", dev.info.AgentAddr) // swallows every datagram, answers none
	if err != nil {
		t.Fatalf("binding the UDP black hole: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	up := echoUpstream(t)
	start := time.Now()
	agent, url := dev.agent(t, "http", upstreamPort(up), "--transport", "auto")
	took := time.Since(start)
	agent.waitFor(regexp.MustCompile(`transport[=: ]+tcp`), 5*time.Second)
	if err := getOK(dev.client(false), url+"/hello"); err != nil {
		t.Fatal(err)
	}
	t.Logf("connected over TCP after %s with UDP black-holed", took)

	dev2 := startDev(t, "")
	agent2, url2 := dev2.agent(t, "http", upstreamPort(up), "--transport", "quic")
	agent2.waitFor(regexp.MustCompile(`transport[=: ]+quic`), 5*time.Second)
	if err := getOK(dev2.client(false), url2+"/hello"); err != nil {
		t.Fatal(err)
	}
}

// TestDevRestartKeepsState checks that a restart keeps the account,
// credentials and CA, and that a busy port is a clear startup error.
func TestDevRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	dev := startDev(t, dir)
	first := dev.info
	// dev.json has exactly the documented keys.
	raw, err := os.ReadFile(filepath.Join(dir, "dev.json"))
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(maps.Keys(keys))
	want := []string{"agent_addr", "api_key", "api_url", "authtoken", "base_domain", "ca_file", "http_addr", "https_addr", "region"}
	if !slices.Equal(got, want) {
		t.Fatalf("dev.json keys = %v, want exactly %v", got, want)
	}
	ca1, _ := os.ReadFile(first.CAFile)
	dev.stop(20 * time.Second)
	dev2 := startDev(t, dir)
	if dev2.info.Authtoken != first.Authtoken || dev2.info.APIKey != first.APIKey {
		t.Fatal("credentials changed across a restart")
	}
	ca2, _ := os.ReadFile(dev2.info.CAFile)
	if string(ca1) != string(ca2) || len(ca1) == 0 {
		t.Fatal("CA changed across a restart")
	}

	t.Run("port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		p := start(t, bins.tollgated, nil, "dev", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0",
			"--agent-addr", "127.0.0.1:0", "--https-addr", ln.Addr().String(), "--http-addr", "127.0.0.1:0", "--dashboard-addr", "127.0.0.1:0")
		code, ok := p.wait(30 * time.Second)
		if !ok || code == 0 || !strings.Contains(p.output(), "TG_9001") {
			t.Fatalf("exit %d (exited %v); output:\n%s", code, ok, p.output())
		}
	})
}
