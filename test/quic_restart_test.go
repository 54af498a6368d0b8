package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// TestAgentsComeBackAfterEdgeCrash kills `tollgated dev` with SIGKILL and
// starts it again on the same data dir and ports, with our agent
// connected over QUIC, then over --transport auto.
//
// QUIC: the crashed edge sends no CONNECTION_CLOSE. Its successor holds
// the same stateless-reset key (<data-dir>/quic_stateless_reset_key), so
// the agent's next packet (a heartbeat, every 10 s) gets a stateless
// reset and the agent reconnects. Without the key the connection stays
// open until QUIC's 30 s idle timeout: the agent runs with a 40 s
// heartbeat tolerance so that only the reset can bring it back within the
// deadline below.
//
// auto: the agent may land on QUIC while TCP is refused during the
// restart; it must be back on TCP (the preferred transport) soon after.
func TestAgentsComeBackAfterEdgeCrash(t *testing.T) {
	const deadline = 20 * time.Second // generous: a heartbeat interval plus a restart
	dataDir := t.TempDir()
	dev := startDev(t, dataDir)
	info := dev.info
	up := echoUpstream(t)
	parent := t
	// restart kills the edge, keeps it down for outage (the length of the
	// failure, not a wait for a condition) and starts it again; the new
	// process belongs to the parent test, which outlives each subtest.
	restart := func(outage time.Duration) (began time.Time, upAfter time.Duration) {
		began = time.Now()
		_ = dev.cmd.Process.Signal(syscall.SIGKILL)
		dev.wait(10 * time.Second)
		<-time.After(outage)
		dev = startDev(parent, dataDir, "--api-addr", hostPort(info.APIURL), "--agent-addr", info.AgentAddr,
			"--https-addr", info.HTTPSAddr, "--http-addr", info.HTTPAddr)
		return began, time.Since(began)
	}
	for _, tc := range []struct {
		transport string
		outage    time.Duration
	}{
		{"quic", 0},
		// Down long enough that the agent's reconnect finds TCP refused
		// and falls back to QUIC, whose handshake retries until the edge
		// is back.
		{"auto", 2 * time.Second},
	} {
		transport := tc.transport
		t.Run(transport, func(t *testing.T) {
			agent, url := dev.agent(t, "http", upstreamPort(up), "--transport", transport, "--heartbeat-tolerance", "40s")
			web := agent.waitFor(regexp.MustCompile(`Web API\s+http://(\S+)/api/tunnels`), 10*time.Second)[1]
			if got := agentTransport(t, web); transport == "quic" && got != "quic" {
				t.Fatalf("transport %q before the crash, want quic", got)
			}
			if err := getOK(dev.client(false), url+"/hello"); err != nil {
				t.Fatalf("before the crash: %v", err)
			}
			began, upAfter := restart(tc.outage)
			c := dev.client(false)
			c.Timeout = 5 * time.Second
			defer c.CloseIdleConnections()
			// Poll past the deadline so that a slow reconnect is measured,
			// not only refused.
			eventually(t, 45*time.Second, func() error { return getOK(c, url+"/hello") })
			back := time.Since(began)
			landed := agentTransport(t, web) // auto: quic when the fallback won
			t.Logf("%s: URL served again %s after the kill (edge up after %s), over %s",
				transport, back.Round(time.Millisecond), upAfter.Round(time.Millisecond), landed)
			if back > upAfter+deadline {
				t.Fatalf("the agent came back %s after the edge restarted; want within %s", back-upAfter, deadline)
			}
			if transport == "auto" {
				eventually(t, deadline, func() error {
					if got := agentTransport(t, web); got != "tcp" {
						return fmt.Errorf("transport %q, want tcp", got)
					}
					return nil
				})
				t.Logf("auto: on tcp %s after the kill", time.Since(began).Round(time.Millisecond))
				if err := getOK(c, url+"/hello"); err != nil {
					t.Fatalf("after the move to tcp: %v", err)
				}
			}
			agent.stop(10 * time.Second)
		})
	}
}

// agentTransport reads the transport of the agent's online session from
// its inspection API; "" when no session is online. A session that has
// authenticated but not yet bound its endpoints (the move back to TCP
// binds after the new session replaces the old one) is not online yet:
// its URL may still answer 404.
func agentTransport(t *testing.T, webAddr string) string {
	t.Helper()
	resp, err := http.Get("http://" + webAddr + "/api/status")
	if err != nil {
		t.Fatalf("inspection API: %v", err)
	}
	defer resp.Body.Close()
	var st struct {
		State     string `json:"state"`
		Transport string `json:"transport"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("inspection API: %v", err)
	}
	if st.State != "online" {
		return ""
	}
	return st.Transport
}
