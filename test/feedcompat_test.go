package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// futureFeed is a reverse proxy in front of the control plane's edge API
// that makes it look like a newer control plane: every feed message gains
// fields this version does not know, at the top, in the delta or snapshot,
// in each collection and in each object.
type futureFeed struct {
	srv      *httptest.Server
	messages atomic.Int64 // feed messages rewritten
}

func newFutureFeed(t *testing.T, target string) *futureFeed {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f := &futureFeed{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Header.Del("Accept-Encoding") // plain JSON to rewrite
	}}
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != "/edge/v1/snapshot" || resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var msg map[string]any
		if err := json.Unmarshal(b, &msg); err != nil {
			return fmt.Errorf("feed message: %w", err)
		}
		msg["version"] = 99
		msg["edge_routes"] = map[string]any{"upsert": []any{map[string]any{"id": "rt_future"}}}
		for _, k := range []string{"delta", "snapshot"} {
			if body, ok := msg[k].(map[string]any); ok {
				addFutureFields(body)
			}
		}
		out, err := json.Marshal(msg)
		if err != nil {
			return err
		}
		f.messages.Add(1)
		resp.Body = io.NopCloser(bytes.NewReader(out))
		resp.ContentLength = int64(len(out))
		resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
		resp.Header.Del("Content-Encoding")
		return nil
	}
	f.srv = httptest.NewServer(rp)
	t.Cleanup(f.srv.Close)
	return f
}

// addFutureFields adds unknown fields to a delta or snapshot body, to each
// of its collections and to each object in them.
func addFutureFields(body map[string]any) {
	body["compression"] = "none"
	for _, v := range body {
		switch c := v.(type) {
		case map[string]any: // a delta's collection
			c["tombstone_ttl"] = 3600
			if ups, ok := c["upsert"].([]any); ok {
				for _, o := range ups {
					if m, ok := o.(map[string]any); ok {
						m["labels"] = map[string]any{"tier": "gold"}
					}
				}
			}
		case []any: // a snapshot's collection
			for _, o := range c {
				if m, ok := o.(map[string]any); ok {
					m["labels"] = map[string]any{"tier": "gold"}
				}
			}
		}
	}
}

// TestFeedFromNewerControlPlane: an edge following a control plane that
// sends fields the edge does not know (a newer version) keeps applying its
// snapshots and deltas, and a credential deleted there closes the agent
// session that used it.
func TestFeedFromNewerControlPlane(t *testing.T) {
	c := newCluster(t)
	ff := newFutureFeed(t, c.cp.apiURL)
	// The later --control wins: the edge follows the proxy.
	e := c.startEdge("eu", "127.0.0.2", "--control", ff.srv.URL)
	// The edge may say it is ready before its first snapshot arrives: wait
	// for that through the proxy, so that the authtoken comes as a delta.
	for deadline := time.Now().Add(15 * time.Second); ff.messages.Load() < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the edge fetched no snapshot through the proxy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	credID, token := c.newAuthtoken(map[string]any{"description": "future"})
	up := echoUpstream(t)
	agent, _, _, url := c.agent(token, e.info.AgentAddr, "http", upstreamPort(up), "--region", "eu")
	waitHTTP(t, c.client(e), url+"/hello", 15*time.Second)
	if ff.messages.Load() < 2 {
		t.Fatalf("the edge got %d rewritten feed messages, want a snapshot and deltas", ff.messages.Load())
	}
	c.mustAPI("DELETE", "/credentials/"+credID, nil, 204)
	agent.waitFor(regexp.MustCompile(`TG_107`), 15*time.Second)
	if hasLine(e.output(), "snapshot feed unavailable") {
		t.Fatalf("the edge failed to decode the newer feed:\n%s", e.output())
	}
}
