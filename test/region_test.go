package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.ngrok.com/ngrok/v2"
)

// TestRegionServesAsOne is issue 13's combined test: a region of three
// `tollgated edge` processes, which follow two `tollgated control` on one
// PostgreSQL, serves as one.
//
//   - Our agent with --ha-connections 2 and an SDK agent with one
//     connection (HTTPS and TCP endpoints): requests sent round-robin to
//     the three edges all succeed.
//   - The same hostname from a second account is refused (TG_334) on
//     every edge.
//   - An `ssh -R` endpoint on one edge is reachable through the others.
//   - A pool of two agents (ours and the SDK's) on two edges is balanced
//     across them and keeps serving when one member dies.
//   - A credential deleted through either control plane closes its
//     sessions on every edge.
//   - kill -9 of an edge that holds one of our agent's legs under a
//     bounded round-robin load: no request fails but those sent to the
//     killed edge and those in flight through it, and the agent is back
//     to two legs on the two edges left.
func TestRegionServesAsOne(t *testing.T) {
	requireSSH(t)
	dsn := freshPostgres(t)
	c := newClusterOn(t, dsn)
	accountB := createAccount(t, dsn, "other", "b@tollgate.localhost")
	cpA := c.cp
	cpB := startControl(t, dsn, "--edge-secret-file", c.secretFile, "--rate-limit", "0")
	// us-0 and us-2 follow control plane A, us-1 follows B. One public
	// HTTPS port in URLs, as behind one load balancer.
	var edges []*edgeProc
	for i, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		cp := cpA
		if i == 1 {
			cp = cpB
		}
		edges = append(edges, c.launchEdgeVia(cp, fmt.Sprintf("us-%d", i), "us", ip,
			"--peer-addr", ip+":0", "--ssh-addr", ip+":0", "--public-https-port", "443"))
	}
	byID := map[string]int{}
	for i, e := range edges {
		e.ready(t)
		c.edges[fmt.Sprintf("us-%d", i)] = e
		byID[e.info.EdgeID] = i
	}
	c.waitDirectories()
	c.waitPeerLinks()
	clients := make([]*http.Client, len(edges))
	for i, e := range edges {
		clients[i] = c.client(e)
	}
	// bodyVia sends GET url to edge i and returns the body of a 200.
	bodyVia := func(i int, url string) (string, error) {
		resp, err := clients[i].Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		return string(b), nil
	}
	// roundRobin checks that each URL answers its body through each edge
	// of live, rounds times in turn.
	roundRobin := func(live []int, rounds int, want map[string]string) {
		t.Helper()
		for r := 0; r < rounds; r++ {
			for _, i := range live {
				for url, body := range want {
					if got, err := bodyVia(i, url); err != nil || got != body {
						t.Fatalf("round %d, %s through %s: %q, %v (want %q)", r, url, edges[i].info.EdgeID, got, err, body)
					}
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Our agent: two legs, the first on us-0 (its --server-addr).
	const haURL = "https://ha.tollgate.localhost"
	agent := c.startAgent(c.boot.Authtoken, edges[0].info.AgentAddr, "http", upstreamPort(namedUpstream(t, "ours")),
		"--url", haURL, "--transport", "tcp", "--ha-connections", "2")
	// The SDK agent, one connection to us-1: an HTTPS and a TCP endpoint.
	sdk := c.sdkAgent(c.boot.Authtoken, edges[1])
	const sdkURL = "https://sdk.tollgate.localhost"
	if _, err := sdk.Forward(ctx, ngrok.WithUpstream(namedUpstream(t, "sdk").URL), ngrok.WithURL(sdkURL)); err != nil {
		t.Fatalf("SDK HTTPS endpoint: %v", err)
	}
	echo := startTCPEcho(t, false)
	tcpFwd, err := sdk.Forward(ctx, ngrok.WithUpstream("tcp://"+echo.ln.Addr().String()), ngrok.WithURL("tcp://"))
	if err != nil {
		t.Fatalf("SDK TCP endpoint: %v", err)
	}
	tcpPort := tcpFwd.URL().Port()
	if got := agent.waitFor(forwardingLine, 30*time.Second)[1]; got != haURL {
		t.Fatalf("our agent forwards %s, want %s", got, haURL)
	}
	web := agent.waitFor(regexp.MustCompile(`Web API\s+http://(\S+)/api/tunnels`), 5*time.Second)[1]
	legEdges := func() ([]int, error) {
		st, err := readLegs(web)
		if err != nil {
			return nil, err
		}
		var on []int
		for _, id := range st.online() {
			i, ok := byID[id]
			if !ok {
				return nil, fmt.Errorf("a leg on an unknown edge %q", id)
			}
			on = append(on, i)
		}
		slices.Sort(on)
		return on, nil
	}
	var legs []int
	eventually(t, 20*time.Second, func() (err error) {
		if legs, err = legEdges(); err != nil {
			return err
		}
		if len(legs) != 2 || legs[0] == legs[1] || legs[0] != 0 {
			return fmt.Errorf("online legs on edges %v, want us-0 and one other", legs)
		}
		return nil
	})
	// The edge without a leg, which forwards our agent's requests.
	noLeg := 3 - legs[1]

	// Every edge serves both agents' HTTPS endpoints, and the TCP one.
	all := []int{0, 1, 2}
	want := map[string]string{haURL + "/": "ours", sdkURL + "/": "sdk"}
	eventually(t, 10*time.Second, func() error {
		for _, i := range all {
			for url, body := range want {
				if got, err := bodyVia(i, url); err != nil || got != body {
					return fmt.Errorf("%s through %s: %q, %v", url, edges[i].info.EdgeID, got, err)
				}
			}
		}
		return nil
	})
	roundRobin(all, 3, want)
	tcpVia := func(i int, msg string) error {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(strings.Split(edges[i].info.HTTPSAddr, ":")[0], tcpPort), 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, msg); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
			return fmt.Errorf("TCP echo through %s: %q, %v", edges[i].info.EdgeID, buf, err)
		}
		return nil
	}
	// The other edges open the port at most 250 ms after their route
	// table has the endpoint.
	eventually(t, 10*time.Second, func() error {
		for _, i := range all {
			if err := tcpVia(i, "ready"); err != nil {
				return err
			}
		}
		return nil
	})
	for r := 0; r < 3; r++ {
		for _, i := range all {
			if err := tcpVia(i, fmt.Sprintf("round %d via %d", r, i)); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("another account is refused on every edge", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, len(edges))
		for i, e := range edges {
			ag := c.sdkAgent(accountB, e)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = ag.Forward(ctx, ngrok.WithUpstream(namedUpstream(t, "hijack").URL), ngrok.WithURL(haURL))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "TG_334") {
				t.Errorf("account B binding %s on %s: %v, want TG_334", haURL, edges[i].info.EdgeID, err)
			}
		}
		roundRobin(all, 1, want)
	})

	t.Run("ssh -R on one edge is served by every edge", func(t *testing.T) {
		key := newSSHKey(t)
		c.mustAPI("POST", "/ssh_credentials", map[string]any{"public_key": key.authorized, "description": "region"}, 201)
		const sshURL = "https://viassh.tollgate.localhost"
		_, got := sshForwardingAt(t, edges[2].info.SSHAddr, key, "443:localhost:"+upstreamPort(namedUpstream(t, "ssh")), "http", "--url", sshURL)
		if got != sshURL {
			t.Fatalf("ssh -R forwards %s, want %s", got, sshURL)
		}
		eventually(t, 10*time.Second, func() error {
			for _, i := range []int{1, 0} {
				if got, err := bodyVia(i, sshURL+"/"); err != nil || got != "ssh" {
					return fmt.Errorf("through %s: %q, %v", edges[i].info.EdgeID, got, err)
				}
			}
			return nil
		})
		roundRobin(all, 2, map[string]string{sshURL + "/": "ssh"})
	})

	t.Run("a pool across two edges", func(t *testing.T) {
		// Member one: our agent on us-1, one leg; member two: the SDK on
		// us-2.
		const poolURL = "https://pool.tollgate.localhost"
		one := c.startAgent(c.boot.Authtoken, edges[1].info.AgentAddr, "http", upstreamPort(namedUpstream(t, "one")),
			"--url", poolURL, "--pooling-enabled", "--ha-connections", "1", "--transport", "tcp")
		one.waitFor(forwardingLine, 30*time.Second)
		two := c.sdkAgent(c.boot.Authtoken, edges[2])
		if _, err := two.Forward(ctx, ngrok.WithUpstream(namedUpstream(t, "two").URL), ngrok.WithURL(poolURL), ngrok.WithPoolingEnabled(true)); err != nil {
			t.Fatalf("the SDK joining the pool: %v", err)
		}
		// Each member is served through its own edge; us-0, which has
		// none, forwards to one of them.
		eventually(t, 10*time.Second, func() error {
			for i, body := range map[int]string{1: "one", 2: "two"} {
				if got, err := bodyVia(i, poolURL+"/"); err != nil || got != body {
					return fmt.Errorf("through %s: %q, %v (want %q)", edges[i].info.EdgeID, got, err, body)
				}
			}
			_, err := bodyVia(0, poolURL+"/")
			return err
		})
		seen := map[string]int{}
		for r := 0; r < 12; r++ {
			got, err := bodyVia(r%3, poolURL+"/")
			if err != nil {
				t.Fatalf("pool request %d through %s: %v", r, edges[r%3].info.EdgeID, err)
			}
			seen[got]++
		}
		if seen["one"] < 4 || seen["two"] < 4 || seen["one"]+seen["two"] != 12 {
			t.Fatalf("12 pool requests round-robin across the edges reached %v", seen)
		}
		// Member one dies (kill -9): once its edge has seen the session
		// go, every edge serves the pool from member two.
		_ = one.cmd.Process.Signal(syscall.SIGKILL)
		if _, ok := one.wait(10 * time.Second); !ok {
			t.Fatal("the pool member did not die on SIGKILL")
		}
		eventually(t, 10*time.Second, func() error {
			for _, i := range all {
				if got, err := bodyVia(i, poolURL+"/"); err != nil || got != "two" {
					return fmt.Errorf("through %s after member one died: %q, %v", edges[i].info.EdgeID, got, err)
				}
			}
			return nil
		})
		roundRobin(all, 3, map[string]string{poolURL + "/": "two"})
	})

	t.Run("a credential deleted through either control plane", func(t *testing.T) {
		key := c.boot.APIKey
		port := upstreamPort(namedUpstream(t, "doomed"))
		// Through B: one agent of ours per edge, one leg each.
		idX, tokX := c.newAuthtoken(map[string]any{"description": "deleted through B"})
		var doomed []*proc
		for _, e := range edges {
			doomed = append(doomed, c.startAgent(tokX, e.info.AgentAddr, "http", port, "--ha-connections", "1", "--transport", "tcp"))
		}
		for i, p := range doomed {
			if !forwardsOrExits(p, 30*time.Second) {
				t.Fatalf("agent with a new credential on %s exited:\n%s", edges[i].info.EdgeID, p.output())
			}
		}
		if st, m := restJSON(t, cpB.apiURL, key, "DELETE", "/credentials/"+idX, nil); st != 204 {
			t.Fatalf("DELETE through B: %d %v", st, m)
		}
		for i, p := range doomed {
			p.waitFor(regexp.MustCompile(`TG_107`), 10*time.Second)
			if code, ok := p.wait(15 * time.Second); !ok || code == 0 {
				t.Fatalf("agent on %s after its credential was deleted: exited %v with %d:\n%s", edges[i].info.EdgeID, ok, code, p.output())
			}
		}
		// Through A: one SDK agent per edge.
		st, m := restJSON(t, cpB.apiURL, key, "POST", "/credentials", map[string]any{"description": "deleted through A"})
		idY, _ := m["id"].(string)
		tokY, _ := m["token"].(string)
		if st != 201 || tokY == "" {
			t.Fatalf("POST /credentials through B: %d %v", st, m)
		}
		dropped := make(chan string, 16)
		var sessions []ngrok.Agent
		for _, e := range edges {
			id := e.info.EdgeID
			ag := c.sdkAgent(tokY, e, ngrok.WithEventHandler(func(ev ngrok.Event) {
				if d, ok := ev.(*ngrok.EventAgentDisconnected); ok {
					select {
					case dropped <- fmt.Sprintf("%s: %v", id, d.Error):
					default:
					}
				}
			}))
			// The edge waits up to 2 s for a credential it does not
			// know yet; past that, try again.
			eventually(t, 10*time.Second, func() error { return ag.Connect(ctx) })
			sessions = append(sessions, ag)
		}
		if st, m := restJSON(t, cpA.apiURL, key, "DELETE", "/credentials/"+idY, nil); st != 204 {
			t.Fatalf("DELETE through A: %d %v", st, m)
		}
		var got []string
		timeout := time.After(10 * time.Second)
		for len(got) < len(sessions) {
			select {
			case d := <-dropped:
				got = append(got, d)
			case <-timeout:
				t.Fatalf("after the delete through A, %d of %d SDK sessions were closed: %v", len(got), len(sessions), got)
			}
		}
		t.Logf("SDK sessions closed: %v", got)
		// Neither control plane lists a session of either credential.
		eventually(t, 10*time.Second, func() error {
			for _, base := range []string{cpA.apiURL, cpB.apiURL} {
				_, m := restJSON(t, base, key, "GET", "/tunnel_sessions", nil)
				if s := fmt.Sprint(m); strings.Contains(s, idX) || strings.Contains(s, idY) {
					return fmt.Errorf("%s still lists a session of a deleted credential: %v", base, s)
				}
			}
			return nil
		})
	})

	// kill -9 of us-0, which holds our agent's first leg, under a bounded
	// load sent round-robin to every edge, alternately to our agent and
	// to the SDK's.
	type outcome struct {
		edge       int
		ours       bool
		start, end time.Time
		err        error
	}
	const workers, perWorker = 3, 1500
	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     atomic.Bool
		sent     atomic.Int64
		wg       sync.WaitGroup
	)
	loadDeadline := time.Now().Add(45 * time.Second)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perWorker && !stop.Load() && time.Now().Before(loadDeadline); n++ {
				o := outcome{edge: (w + n) % 3, ours: n%2 == 0, start: time.Now()}
				url, body := sdkURL+"/", "sdk"
				if o.ours {
					url, body = haURL+"/", "ours"
				}
				got, err := bodyVia(o.edge, url)
				if err == nil && got != body {
					err = fmt.Errorf("answered %q", got)
				}
				o.end, o.err = time.Now(), err
				sent.Add(1)
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			}
		}()
	}
	waitSent := func(n int64) {
		t.Helper()
		eventually(t, 30*time.Second, func() error {
			if sent.Load() < n {
				return fmt.Errorf("%d requests done, want %d", sent.Load(), n)
			}
			return nil
		})
	}
	waitSent(60)
	killStart := time.Now()
	_ = edges[0].cmd.Process.Signal(syscall.SIGKILL)
	if _, ok := edges[0].wait(10 * time.Second); !ok {
		t.Fatal("us-0 did not die on SIGKILL")
	}
	killDone := time.Now()
	sentAtKill := sent.Load()
	left := []int{1, 2}
	eventually(t, 30*time.Second, func() (err error) {
		if legs, err = legEdges(); err != nil {
			return err
		}
		if !slices.Equal(legs, left) {
			return fmt.Errorf("online legs on edges %v, want %v", legs, left)
		}
		return nil
	})
	waitSent(sent.Load() + 90)
	stop.Store(true)
	wg.Wait()
	var toKilled, inFlight int
	for _, o := range outcomes {
		switch {
		case o.err == nil:
		case o.edge == 0:
			toKilled++ // sent to the killed edge itself
		case o.ours && o.edge == noLeg && o.start.Before(killDone) && o.end.After(killStart):
			inFlight++ // forwarded to the killed edge while it died
		default:
			t.Errorf("a request to %s through %s, sent %s after the kill began, failed: %v", map[bool]string{true: "our agent", false: "the SDK"}[o.ours],
				edges[o.edge].info.EdgeID, o.start.Sub(killStart).Round(time.Millisecond), o.err)
		}
	}
	t.Logf("%d requests (%d before the kill): %d failed at the killed edge, %d in flight through it", len(outcomes), sentAtKill, toKilled, inFlight)
	if t.Failed() {
		return
	}
	if out := agent.output(); !strings.Contains(out, "to edge "+edges[noLeg].info.EdgeID) {
		t.Fatalf("the agent did not say it moved to %s:\n%s", edges[noLeg].info.EdgeID, out)
	}
	roundRobin(left, 3, want)
	for _, i := range left {
		if err := tcpVia(i, "after the kill"); err != nil {
			t.Fatal(err)
		}
	}
}
