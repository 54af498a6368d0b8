package test

import (
	"errors"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// TestAgentIPRestrictionClosesLiveSessions: an `agent` IP restriction
// created through the REST API while an agent (over TLS/TCP and over QUIC)
// and an `ssh -R` session are connected from 127.0.0.1 closes all three
// with TG_115, because it allows only 127.0.0.2; their endpoints go. The
// time from the API's answer to each close is logged (target: within a
// second, as a revocation).
func TestAgentIPRestrictionClosesLiveSessions(t *testing.T) {
	requireSSH(t)
	dev := startDev(t, "")
	up := echoUpstream(t)
	tcpAgent, tcpURL := dev.agent(t, "http", upstreamPort(up), "--transport", "tcp")
	quicAgent, _ := dev.agent(t, "http", upstreamPort(up), "--transport", "quic")
	key := newSSHKey(t)
	dev.addSSHCredential(t, key, nil)
	sshProc, _ := dev.sshForwarding(t, key, "443:localhost:"+upstreamPort(up), "http")
	c := dev.client(false)
	eventually(t, 10*time.Second, func() error { return getOK(c, tcpURL+"/hello") })

	pol := ipPolicy(t, dev, "allow 127.0.0.2/32")
	mustAPI(t, dev, dev.info.APIKey, http.MethodPost, "/ip_restrictions",
		map[string]any{"type": "agent", "ip_policy_ids": []string{pol}, "enforced": true}, http.StatusCreated)
	created := time.Now()
	tg115 := regexp.MustCompile(`TG_115`)
	for _, p := range []struct {
		name string
		proc *proc
	}{{"agent over TCP", tcpAgent}, {"agent over QUIC", quicAgent}, {"ssh -R", sshProc}} {
		p.proc.waitFor(tg115, 10*time.Second)
		t.Logf("%s: session closed with TG_115 %s after the API created the restriction", p.name, time.Since(created).Round(time.Millisecond))
	}
	eventually(t, 10*time.Second, func() error {
		if err := getOK(c, tcpURL+"/hello"); err == nil {
			return errors.New("the closed agent's endpoint still answers")
		}
		return nil
	})
}
