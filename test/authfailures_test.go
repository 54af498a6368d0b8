package test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFailedLoginsDoNotFreezeRevocation is issue 12 §1 end to end: an
// attacker sends bad API keys from the address the edge shares with it
// (loopback) fast enough to spend the address's failure budget, while an
// operator deletes an authtoken. The operator's valid key is served, the
// edge's snapshot feed keeps flowing, and the edge closes the agent
// session of the deleted credential within a second.
func TestFailedLoginsDoNotFreezeRevocation(t *testing.T) {
	c := newCluster(t)
	us := c.startEdge("us", "127.0.0.1")
	up := echoUpstream(t)
	credID, token := c.newAuthtoken(map[string]any{"description": "to be revoked under attack"})
	agent, _, _, publicURL := c.agent(token, us.info.AgentAddr, "http", upstreamPort(up), "--region", "us", "--transport", "tcp")
	waitHTTP(t, c.client(us), publicURL+"/hello", 10*time.Second)

	// The attacker: well-formed API keys with wrong secrets, from loopback,
	// at most 40/s for at most 30 s (1,200 requests), until the test stops it.
	kid, _, _ := strings.Cut(c.boot.APIKey, "_")
	bad := "Bearer " + kid + "_" + strings.Repeat("A", 32)
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	var wg sync.WaitGroup
	var sent, throttled atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 1200; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", c.cp.apiURL+"/api_keys", nil)
			req.Header.Set("Authorization", bad)
			res, err := client.Do(req)
			if err != nil {
				continue
			}
			res.Body.Close()
			sent.Add(1)
			if res.StatusCode == http.StatusTooManyRequests {
				throttled.Add(1)
			}
		}
	}()
	t.Cleanup(func() { stop(); wg.Wait() })

	// Wait until the address's failure budget (30) is spent: from here on
	// the old control plane refused every request from loopback.
	deadline := time.Now().Add(20 * time.Second)
	for throttled.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the attacker's bad keys were never throttled: %d sent", sent.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The operator's valid key is served from the same address.
	c.mustAPI("GET", "/credentials", nil, 200)
	c.mustAPI("DELETE", "/credentials/"+credID, nil, 204)
	deleted := time.Now()
	const closed = "closing agent session: its credential is no longer valid"
	for !strings.Contains(us.output(), closed) {
		if time.Since(deleted) > time.Second {
			t.Fatalf("the edge had not closed the revoked credential's session 1 s after the deletion (attacker: %d sent, %d throttled):\n%s",
				sent.Load(), throttled.Load(), us.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("session closed %s after the deletion; attacker sent %d bad keys, %d answered 429", time.Since(deleted), sent.Load(), throttled.Load())
	agent.waitFor(regexp.MustCompile(`TG_107`), 10*time.Second)
	eventually(t, 5*time.Second, func() error {
		if err := getOK(c.client(us), publicURL+"/hello"); err == nil {
			return errors.New("the revoked credential's URL still answers")
		}
		return nil
	})
}
