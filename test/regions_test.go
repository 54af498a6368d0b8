package test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRegions runs a control plane and three edges in three regions on
// 127.0.0.1, .2 and .3: GET /regions lists them; --region picks a region
// wherever the agent first connects; a domain reserved in one region is
// refused at another's edge with an error naming both; without --region
// the agent moves to the region whose edge answers fastest; the API's stop
// and restart reach agents on remote edges; and with the control plane
// killed, agents and public traffic go on, an edge restarts from its
// persisted snapshot, and once the control plane is back a credential
// deletion reaches the edges again.
func TestRegions(t *testing.T) {
	began := time.Now()
	c := newCluster(t)
	t.Cleanup(func() { t.Logf("cleanup started %s after the start", time.Since(began)) })
	// us and ap are reachable for agents only through a proxy that adds
	// 30 ms to every connection; eu directly.
	const delay = 30 * time.Millisecond
	usProxy, apProxy := newDelayProxy(t, delay), newDelayProxy(t, delay)
	us := c.startEdge("us", "127.0.0.1", "--advertise-agent-addr", usProxy.addr())
	usProxy.setTarget(us.info.AgentAddr)
	eu := c.startEdge("eu", "127.0.0.2")
	ap := c.startEdge("ap", "127.0.0.3", "--advertise-agent-addr", apProxy.addr())
	apProxy.setTarget(ap.info.AgentAddr)
	for _, e := range []*edgeProc{us, eu, ap} {
		if !strings.HasPrefix(e.info.EdgeID, "edge_") || !hasLine(e.output(), "edge starting", e.info.Region, c.cp.apiURL) {
			t.Fatalf("edge %s: info %+v; its start log does not name region and control URL:\n%s", e.info.Region, e.info, e.output())
		}
	}

	eventually(t, 10*time.Second, func() error {
		got := c.regions()
		want := map[string][]string{"us": {usProxy.addr()}, "eu": {eu.info.AgentAddr}, "ap": {apProxy.addr()}}
		for r, addrs := range want {
			if !slices.Equal(got[r], addrs) {
				return fmt.Errorf("GET /regions = %v, want %v", got, want)
			}
		}
		return nil
	})

	// Each edge tells agents where the others are.
	c.waitDirectories()
	t.Logf("cluster of three regions ready in %s", time.Since(began))
	up := echoUpstream(t)
	port := upstreamPort(up)
	// The agents use TLS over TCP: the delaying proxies relay TCP only.
	tcp := []string{"--transport", "tcp"}

	t.Run("region flag", func(t *testing.T) {
		// First contact at the us edge; --region eu moves the agent.
		a, sid, region, url := c.agent(c.boot.Authtoken, us.info.AgentAddr, append([]string{"http", port, "--region", "eu"}, tcp...)...)
		if region != "eu" {
			t.Fatalf("agent with --region eu got a session in %s:\n%s", region, a.output())
		}
		eventually(t, 10*time.Second, func() error {
			if r := c.sessionRegions()[sid]; r != "eu" {
				return fmt.Errorf("GET /tunnel_sessions: session %s in region %q, want eu", sid, r)
			}
			return nil
		})
		if err := getOK(c.client(eu), url+"/hello"); err != nil {
			t.Fatalf("through the eu edge: %v", err)
		}
		// The endpoint is reported per region (the edge reports after the
		// bind, asynchronously).
		eventually(t, 10*time.Second, func() error {
			if m := c.mustAPI("GET", "/endpoints", nil, 200); !strings.Contains(fmt.Sprint(m), url) {
				return fmt.Errorf("GET /endpoints lacks %s: %v", url, m)
			}
			return nil
		})
		// Stop through the API travels to the remote edge and the agent.
		c.mustAPI("POST", "/tunnel_sessions/"+sid+"/stop", nil, 204)
		a.waitFor(regexp.MustCompile(`the edge asked this agent to stop`), 10*time.Second)
		if code, ok := a.wait(10 * time.Second); !ok || code != 0 {
			t.Fatalf("agent after stop: exited %v code %d", ok, code)
		}
	})

	t.Run("region mismatch", func(t *testing.T) {
		const name = "pinned.tollgate.localhost"
		c.mustAPI("POST", "/reserved_domains", map[string]any{"domain": name, "region": "eu"}, 201)
		a := c.startAgent(c.boot.Authtoken, us.info.AgentAddr, append([]string{"http", port, "--url", "https://" + name, "--region", "us"}, tcp...)...)
		code, exited := a.wait(30 * time.Second)
		out := a.output()
		if !exited || code == 0 || !hasLine(out, "TG_322", "region eu", "region us", "--region eu") {
			t.Fatalf("binding an eu reservation at the us edge: exited %v code %d; want TG_322 naming both regions and where to connect:\n%s", exited, code, out)
		}
		// At an eu edge the same name binds and serves.
		b, _, region, url := c.agent(c.boot.Authtoken, eu.info.AgentAddr, append([]string{"http", port, "--url", "https://" + name, "--region", "eu"}, tcp...)...)
		if region != "eu" || !strings.Contains(url, name) {
			t.Fatalf("eu agent: region %s url %s", region, url)
		}
		waitHTTP(t, c.client(eu), url+"/hello", 10*time.Second)
		b.stop(10 * time.Second)
	})

	t.Run("fastest region", func(t *testing.T) {
		// First contact through the delayed us address, no --region: the
		// agent measures us, eu and ap and moves to eu, the undelayed one.
		a, sid, region, _ := c.agent(c.boot.Authtoken, usProxy.addr(), append([]string{"http", port}, tcp...)...)
		if region != "eu" {
			t.Fatalf("agent without --region ended in %s, want eu (the only edge without %s of delay):\n%s", region, delay, a.output())
		}
		// Restart through the API: the agent reconnects with a new session.
		// The edge reports the session first (the agent prints its ID as
		// soon as it is bound).
		eventually(t, 10*time.Second, func() error {
			if r := c.sessionRegions()[sid]; r != "eu" {
				return fmt.Errorf("GET /tunnel_sessions: session %s in region %q, want eu", sid, r)
			}
			return nil
		})
		c.mustAPI("POST", "/tunnel_sessions/"+sid+"/restart", nil, 204)
		a.waitFor(regexp.MustCompile(`the edge asked this agent to restart`), 10*time.Second)
		a.stop(10 * time.Second)
	})

	t.Run("control plane down", func(t *testing.T) {
		credID, token := c.newAuthtoken(map[string]any{"description": "outage"})
		euAgent, _, _, euURL := c.agent(c.boot.Authtoken, eu.info.AgentAddr, append([]string{"http", port, "--region", "eu"}, tcp...)...)
		waitHTTP(t, c.client(eu), euURL+"/hello", 10*time.Second)
		c.waitPersisted(credID) // every edge holds the new credential
		c.killControl()

		// Existing agents keep serving.
		if err := getOK(c.client(eu), euURL+"/hello"); err != nil {
			t.Fatalf("existing endpoint while the control plane is down: %v", err)
		}
		// A new agent with a valid authtoken connects and serves.
		apAgent, _, region, apURL := c.agent(token, ap.info.AgentAddr, append([]string{"http", port, "--region", "ap"}, tcp...)...)
		if region != "ap" {
			t.Fatalf("new agent while the control plane is down: region %s", region)
		}
		waitHTTP(t, c.client(ap), apURL+"/hello", 10*time.Second)
		// An edge restarted now serves from its persisted snapshot.
		if err := us.stop(15 * time.Second); err != nil {
			t.Fatalf("us edge SIGTERM: %v", err)
		}
		us2 := c.startEdge("us", "127.0.0.1", "--advertise-agent-addr", usProxy.addr())
		usProxy.setTarget(us2.info.AgentAddr)
		us2.waitFor(regexp.MustCompile(`serving from the persisted snapshot`), 10*time.Second)
		usAgent, _, _, usURL := c.agent(token, us2.info.AgentAddr, append([]string{"http", port, "--region", "us"}, tcp...)...)
		waitHTTP(t, c.client(us2), usURL+"/hello", 10*time.Second)

		// The control plane comes back: edges report again, and a
		// credential deletion closes the sessions that used it.
		c.restartControl()
		eventually(t, 15*time.Second, func() error {
			regions := c.sessionRegions()
			got := []string{}
			for _, r := range regions {
				got = append(got, r)
			}
			slices.Sort(got)
			if !slices.Equal(got, []string{"ap", "eu", "us"}) {
				return fmt.Errorf("sessions after the restart by region: %v", got)
			}
			return nil
		})
		c.mustAPI("DELETE", "/credentials/"+credID, nil, 204)
		for _, a := range []*proc{apAgent, usAgent} {
			a.waitFor(regexp.MustCompile(`TG_107`), 15*time.Second)
		}
		if err := getOK(c.client(eu), euURL+"/hello"); err != nil {
			t.Fatalf("the agent of another credential after the deletion: %v", err)
		}
		if strings.Contains(euAgent.output(), "TG_107") {
			t.Fatalf("the deletion closed an agent of another credential:\n%s", euAgent.output())
		}
	})
}

// TestEdgeCommandFlags checks that `tollgated edge` refuses to start
// without what it needs, naming the flag, with exit status 2.
func TestEdgeCommandFlags(t *testing.T) {
	dir := t.TempDir()
	secret := dir + "/secret"
	if err := os.WriteFile(secret, []byte(clusterEdgeSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"edge", "--data-dir", dir + "/data", "--agent-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--http-addr", "off"}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no region", []string{"--control", "http://127.0.0.1:1", "--control-secret-file", secret}, "--region"},
		{"bad region", []string{"--region", "mars", "--control", "http://127.0.0.1:1", "--control-secret-file", secret}, "--region"},
		{"no control URL", []string{"--region", "eu", "--control-secret-file", secret}, "--control"},
		{"no secret", []string{"--region", "eu", "--control", "http://127.0.0.1:1"}, "TOLLGATE_EDGE_SECRET"},
		{"bad control URL", []string{"--region", "eu", "--control", "ftp://x", "--control-secret-file", secret}, "--control"},
		{"unreadable secret file", []string{"--region", "eu", "--control", "http://127.0.0.1:1", "--control-secret-file", secret + ".missing"}, "Cannot read --control-secret-file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := start(t, bins.tollgated, []string{"TOLLGATE_EDGE_SECRET="}, append(append([]string{}, base...), c.args...)...)
			code, ok := p.wait(20 * time.Second)
			if !ok || code != 2 || !strings.Contains(p.output(), c.want) {
				t.Fatalf("exit %d (exited %v), want 2 and a message naming %s:\n%s", code, ok, c.want, p.output())
			}
		})
	}
}
