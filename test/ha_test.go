package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// agentLegs is GET /api/status of the agent's inspection API, the part
// about its HA connections.
type agentLegs struct {
	Connections int `json:"connections"`
	RegionEdges int `json:"region_edges"`
	Legs        []struct {
		Number     int    `json:"number"`
		State      string `json:"state"`
		EdgeID     string `json:"edge_id"`
		ServerAddr string `json:"server_addr"`
	} `json:"legs"`
}

// online returns the edge IDs of the online legs, sorted.
func (s agentLegs) online() []string {
	var out []string
	for _, l := range s.Legs {
		if l.State == "online" {
			out = append(out, l.EdgeID)
		}
	}
	slices.Sort(out)
	return out
}

func readLegs(web string) (agentLegs, error) {
	var s agentLegs
	resp, err := http.Get("http://" + web + "/api/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return s, fmt.Errorf("GET /api/status: %d", resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// TestAgentHAConnections (issue 13 item 1): three `tollgated edge` of one
// region; `tollgate http --ha-connections 2` holds two legs on two
// distinct edges and serves its URL through both. kill -9 of the first
// leg's edge: a bounded load through the other leg's edge fails no
// request, and the agent is back to two legs, on the two edges left, the
// third serving the same URL.
func TestAgentHAConnections(t *testing.T) {
	c := newCluster(t)
	// One public HTTPS port in URLs, as behind one load balancer: the
	// edges of a region serve one URL.
	var edges []*edgeProc
	for i, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		edges = append(edges, c.launchEdge(fmt.Sprintf("us-%d", i), "us", ip, "--public-https-port", "443"))
	}
	byID := map[string]*edgeProc{}
	for i, e := range edges {
		e.ready(t)
		c.edges[fmt.Sprintf("us-%d", i)] = e
		byID[e.info.EdgeID] = e
	}
	c.waitDirectories()

	up := echoUpstream(t)
	agent := c.startAgent(c.boot.Authtoken, edges[0].info.AgentAddr, "http", upstreamPort(up), "--transport", "tcp", "--ha-connections", "2")
	publicURL := agent.waitFor(forwardingLine, 30*time.Second)[1]
	web := agent.waitFor(regexp.MustCompile(`Web API\s+http://(\S+)/api/tunnels`), 5*time.Second)[1]
	var st agentLegs
	eventually(t, 20*time.Second, func() (err error) {
		if st, err = readLegs(web); err != nil {
			return err
		}
		if on := st.online(); len(on) != 2 || on[0] == on[1] {
			return fmt.Errorf("online legs on %v, want two distinct edges (status %+v)", on, st)
		}
		return nil
	})
	if st.RegionEdges != 3 {
		t.Fatalf("the agent knows %d edges of its region, want 3", st.RegionEdges)
	}
	var first, second *edgeProc
	for _, l := range st.Legs {
		e := byID[l.EdgeID]
		if e == nil {
			t.Fatalf("leg %d on an unknown edge %q", l.Number, l.EdgeID)
		}
		if l.Number == 0 {
			first = e
		} else {
			second = e
		}
	}
	if first != edges[0] {
		t.Fatalf("leg 0 is on %s, want the edge of --server-addr %s", first.info.EdgeID, edges[0].info.EdgeID)
	}
	var third *edgeProc
	for _, e := range edges {
		if e != first && e != second {
			third = e
		}
	}
	// Both legs' edges serve the URL.
	for _, e := range []*edgeProc{first, second} {
		waitHTTP(t, c.client(e), publicURL+"/hello", 10*time.Second)
	}
	agent.waitFor(regexp.MustCompile(`Connection\s+2/2 to edge `+second.info.EdgeID), 5*time.Second)

	// A bounded load through the second leg's edge while the first leg's
	// edge is killed: no request may fail.
	var stop atomic.Bool
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	client := c.client(second)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000 && !stop.Load(); i++ {
				sent.Add(1)
				if err := getOK(client, publicURL+"/hello"); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	waitSent := func(n int64) {
		t.Helper()
		eventually(t, 60*time.Second, func() error {
			if sent.Load() < n {
				return fmt.Errorf("%d requests sent", sent.Load())
			}
			return nil
		})
	}
	waitSent(40)
	_ = first.cmd.Process.Signal(syscall.SIGKILL)
	if _, ok := first.wait(10 * time.Second); !ok {
		t.Fatal("the edge did not die on SIGKILL")
	}
	killedAt := sent.Load()
	eventually(t, 30*time.Second, func() (err error) {
		if st, err = readLegs(web); err != nil {
			return err
		}
		want := []string{second.info.EdgeID, third.info.EdgeID}
		slices.Sort(want)
		if on := st.online(); !slices.Equal(on, want) {
			return fmt.Errorf("online legs on %v, want %v", on, want)
		}
		return nil
	})
	waitSent(sent.Load() + 40)
	stop.Store(true)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests through the surviving edge failed (%d sent before the kill); first: %v",
			n, sent.Load(), killedAt, firstErr.Load())
	}
	t.Logf("%d requests through the surviving edge, none failed; %d sent before the kill", sent.Load(), killedAt)
	// The third edge serves the same URL now, and so does the second.
	for _, e := range []*edgeProc{second, third} {
		waitHTTP(t, c.client(e), publicURL+"/hello", 10*time.Second)
	}
	if out := agent.output(); !strings.Contains(out, "Connection  1/2 to edge "+third.info.EdgeID) {
		t.Fatalf("the agent did not say it moved to %s:\n%s", third.info.EdgeID, out)
	}
}
