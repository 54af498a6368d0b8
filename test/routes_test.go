package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/controlplane/store"
)

// namedUpstream answers every request with its name.
func namedUpstream(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
	t.Cleanup(srv.Close)
	return srv
}

var bindTakenLine = regexp.MustCompile(`[^\n]*TG_334[^\n]*`)

// endpointIDs returns the IDs of the online endpoints whose public URL is
// publicURL with any port (each edge of the test has its own HTTPS port),
// as GET /endpoints at base lists them with key.
func endpointIDs(t *testing.T, base, key, publicURL string) []string {
	t.Helper()
	st, m := restJSON(t, base, key, "GET", "/endpoints", nil)
	if st != 200 {
		t.Fatalf("GET /endpoints: %d %v", st, m)
	}
	var out []string
	list, _ := m["endpoints"].([]any)
	for _, e := range list {
		e, _ := e.(map[string]any)
		if u, _ := e["public_url"].(string); u == publicURL || strings.HasPrefix(u, publicURL+":") {
			id, _ := e["id"].(string)
			out = append(out, id)
		}
	}
	return out
}

// createAccount opens the store at dsn and creates an account with an
// admin user and an authtoken, which it returns.
func createAccount(t *testing.T, dsn, name, email string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, created, err := st.Bootstrap(ctx, store.BootstrapSpec{AccountName: name, Email: email, UserName: name, Description: "test"})
	if err != nil || !created {
		t.Fatalf("creating account %s: %v (created %v)", name, err, created)
	}
	return res.Authtoken.Reveal()
}

// TestOneOwnerRegionWide: two edges of one region, each following its own
// `tollgated control` on one PostgreSQL. A name bound by account A's agent
// on edge 1 reaches edge 2's route table, and account B's agent binding
// it is refused with TG_334 on edge 2 (through the other control plane)
// and on edge 1. Two agents of A with --pooling-enabled share one URL:
// both get requests, a third joins the pool from edge 2, and after one is
// killed every request still succeeds (issue 13, item 3).
func TestOneOwnerRegionWide(t *testing.T) {
	dsn := freshPostgres(t)
	c := newClusterOn(t, dsn)
	// Account B, created in the store (the API manages one account), and a
	// second control plane on the same database.
	accountB := createAccount(t, dsn, "other", "b@tollgate.localhost")
	cpB := startControl(t, dsn, "--edge-secret-file", c.secretFile, "--rate-limit", "0")
	e1 := c.launchEdge("us1", "us", "127.0.0.1").ready(t)
	cpA := c.cp
	c.cp = cpB // edge 2 follows the other control plane
	e2 := c.launchEdge("us2", "us", "127.0.0.2").ready(t)
	c.cp = cpA
	c.edges["us1"], c.edges["us2"] = e1, e2

	const appURL = "https://app.tollgate.localhost"
	up := namedUpstream(t, "account-a")
	_, _, _, got := c.agent(c.boot.Authtoken, e1.info.AgentAddr, "http", upstreamPort(up), "--url", appURL, "--transport", "tcp")
	if !strings.HasPrefix(got, appURL) {
		t.Fatalf("account A's agent forwards %s, want %s", got, appURL)
	}
	var ids []string
	eventually(t, 10*time.Second, func() error {
		if ids = endpointIDs(t, c.cp.apiURL, c.boot.APIKey, appURL); len(ids) != 1 {
			return fmt.Errorf("endpoints at %s: %v", got, ids)
		}
		return nil
	})
	// The bind is in edge 2's route table (its snapshot, as persisted).
	c.waitPersisted(ids[0])

	// Account B, on edge 2 (through control plane B) and on edge 1: refused.
	upB := namedUpstream(t, "account-b")
	for _, e := range []*edgeProc{e2, e1} {
		p := c.startAgent(accountB, e.info.AgentAddr, "http", upstreamPort(upB), "--url", appURL, "--transport", "tcp")
		line := p.waitFor(bindTakenLine, 30*time.Second)[0]
		if e == e2 && !strings.Contains(line, "another account") {
			t.Errorf("the refusal on edge 2 does not say what to do: %s", line)
		}
	}
	if err := getOK(c.client(e1), appURL+"/"); err != nil {
		t.Fatalf("account A's endpoint after the refusals: %v", err)
	}
	body := func(e *edgeProc, url string) (string, error) {
		resp, err := c.client(e).Get(url)
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
	if b, err := body(e1, appURL+"/"); err != nil || b != "account-a" {
		t.Fatalf("app served %q, %v", b, err)
	}

	// A pool: two agents of A on edge 1, and a third on edge 2.
	const poolURL = "https://pool.tollgate.localhost"
	one, two, three := namedUpstream(t, "one"), namedUpstream(t, "two"), namedUpstream(t, "three")
	p1, _, _, _ := c.agent(c.boot.Authtoken, e1.info.AgentAddr, "http", upstreamPort(one), "--url", poolURL, "--pooling-enabled", "--transport", "tcp")
	c.agent(c.boot.Authtoken, e1.info.AgentAddr, "http", upstreamPort(two), "--url", poolURL, "--pooling-enabled", "--transport", "tcp")
	c.agent(c.boot.Authtoken, e2.info.AgentAddr, "http", upstreamPort(three), "--url", poolURL, "--pooling-enabled", "--transport", "tcp")
	seen := map[string]int{}
	for range 10 {
		b, err := body(e1, poolURL+"/")
		if err != nil {
			t.Fatal(err)
		}
		seen[b]++
	}
	if seen["one"] == 0 || seen["two"] == 0 || seen["one"]+seen["two"] != 10 {
		t.Fatalf("requests through edge 1 per pool member: %v", seen)
	}
	if b, err := body(e2, poolURL+"/"); err != nil || b != "three" {
		t.Fatalf("the pool member on edge 2 served %q, %v", b, err)
	}
	eventually(t, 10*time.Second, func() error {
		if n := len(endpointIDs(t, cpB.apiURL, c.boot.APIKey, poolURL)); n != 3 {
			return fmt.Errorf("GET /endpoints lists %d entries for the pool, want one per member (3)", n)
		}
		return nil
	})

	// Member one dies; once its session is gone, every request through
	// edge 1 reaches member two.
	if err := p1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if n := len(endpointIDs(t, c.cp.apiURL, c.boot.APIKey, poolURL)); n != 2 {
			return fmt.Errorf("%d pool members listed after the kill, want 2", n)
		}
		return nil
	})
	for range 6 {
		if b, err := body(e1, poolURL+"/"); err != nil || b != "two" {
			t.Fatalf("after member one died: %q, %v", b, err)
		}
	}
}
