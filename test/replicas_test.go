package test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// newPostgresCluster is newCluster on a fresh PostgreSQL schema: the
// cluster's control plane (A) and a second `tollgated control` (B) on the
// same database and edge secret. Edges follow A only.
func newPostgresCluster(t *testing.T) (c *cluster, b *controlServer) {
	t.Helper()
	dsn := freshPostgres(t)
	c = newClusterOn(t, dsn)
	b = startControl(t, dsn, "--edge-secret-file", c.secretFile, "--rate-limit", "0")
	return c, b
}

// TestControlReplicasAgree: two `tollgated control` on one PostgreSQL and
// a standalone edge that reports to one of them (A). The other (B) lists
// the same tunnel sessions, endpoints and regions, and a stop issued
// through B reaches the agent on A's edge (issue 13, item 4).
func TestControlReplicasAgree(t *testing.T) {
	c, b := newPostgresCluster(t)
	us := c.startEdge("us", "127.0.0.1")
	up := echoUpstream(t)
	agent, sid, _, publicURL := c.agent(c.boot.Authtoken, us.info.AgentAddr, "http", upstreamPort(up), "--transport", "tcp")
	if err := getOK(c.client(us), publicURL+"/hello"); err != nil {
		t.Fatalf("through the edge: %v", err)
	}
	key := c.boot.APIKey
	// What each replica answers, without the parts that differ by the URL
	// asked (uri fields).
	answer := func(base, path string) (map[string]any, error) {
		st, m := restJSON(t, base, key, "GET", path, nil)
		if st != 200 {
			return nil, fmt.Errorf("GET %s at %s: %d %v", path, base, st, m)
		}
		return stripURIs(m).(map[string]any), nil
	}
	eventually(t, 10*time.Second, func() error {
		for _, path := range []string{"/tunnel_sessions", "/endpoints", "/regions", "/tunnel_sessions/" + sid} {
			atA, err := answer(c.cp.apiURL, path)
			if err != nil {
				return err
			}
			atB, err := answer(b.apiURL, path)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(atA, atB) {
				return fmt.Errorf("GET %s differs:\nA: %v\nB: %v", path, atA, atB)
			}
			if s := fmt.Sprint(atB); path != "/regions" && !strings.Contains(s, sid) {
				return fmt.Errorf("GET %s at B lacks session %s: %v", path, sid, s)
			}
		}
		return nil
	})
	st, m := restJSON(t, b.apiURL, key, "GET", "/endpoints", nil)
	if st != 200 || !strings.Contains(fmt.Sprint(m), publicURL) {
		t.Fatalf("GET /endpoints at B lacks %s: %d %v", publicURL, st, m)
	}
	st, m = restJSON(t, b.apiURL, key, "GET", "/regions", nil)
	if st != 200 || !strings.Contains(fmt.Sprint(m), us.info.EdgeID) || !strings.Contains(fmt.Sprint(m), us.info.AgentAddr) {
		t.Fatalf("GET /regions at B lacks edge %s at %s: %d %v", us.info.EdgeID, us.info.AgentAddr, st, m)
	}

	// A stop through B (which no edge polls) reaches the agent through A.
	// Until the edge's first command poll has reached the store, the
	// replicas answer 503 TG_2693 ("takes no commands"); under load that
	// poll can come after the report that listed the session.
	eventually(t, 15*time.Second, func() error {
		st, m := restJSON(t, b.apiURL, key, "POST", "/tunnel_sessions/"+sid+"/stop", map[string]any{})
		if st != 204 {
			return fmt.Errorf("stop through B: %d %v", st, m)
		}
		return nil
	})
	code, exited := agent.wait(20 * time.Second)
	if !exited || code != 0 || !strings.Contains(agent.output(), "the edge asked this agent to stop") {
		t.Fatalf("after a stop through B: exited %v with %d; output:\n%s", exited, code, agent.output())
	}
	// Both replicas see the session go.
	eventually(t, 10*time.Second, func() error {
		for _, base := range []string{c.cp.apiURL, b.apiURL} {
			m, err := answer(base, "/tunnel_sessions")
			if err != nil {
				return err
			}
			if list, _ := m["tunnel_sessions"].([]any); len(list) != 0 {
				return fmt.Errorf("still online at %s: %v", base, list)
			}
		}
		return nil
	})
	// The stopped session is gone for commands too, at both.
	for _, base := range []string{c.cp.apiURL, b.apiURL} {
		if st, m := restJSON(t, base, key, "POST", "/tunnel_sessions/"+sid+"/restart", nil); st != 404 {
			t.Fatalf("restart of a stopped session at %s: %d %v", base, st, m)
		}
	}
	// The audit log, shared, records the stop.
	evs := c.mustAPI("GET", "/audit_events?limit=10", nil, 200)
	if !strings.Contains(fmt.Sprint(evs), "tunnel_session_stopped.v0") {
		t.Fatalf("audit events lack the stop: %v", evs)
	}
}

// stripURIs returns v without its "uri" fields, recursively.
func stripURIs(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			if k != "uri" && k != "next_page_uri" {
				out[k] = stripURIs(x)
			}
		}
		return out
	case []any:
		return slices.Collect(func(yield func(any) bool) {
			for _, x := range v {
				if !yield(stripURIs(x)) {
					return
				}
			}
		})
	}
	return v
}
