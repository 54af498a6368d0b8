package test

import (
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// freezeProxy forwards TCP connections to target until frozen: then every
// existing connection stops moving bytes without closing, as a connection
// does when a laptop sleeps or a NAT mapping silently expires. Connections
// made after the freeze flow normally.
type freezeProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*frozenPair
}

type frozenPair struct{ frozen atomic.Bool }

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *freezeProxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	pair := &frozenPair{}
	p.mu.Lock()
	p.conns = append(p.conns, pair)
	p.mu.Unlock()
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if pair.frozen.Load() {
				return // swallow: nothing more is delivered, nothing is closed
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	}
	go pipe(up, c)
	go pipe(c, up)
}

// freeze stops every connection made so far.
func (p *freezeProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.frozen.Store(true)
	}
}

// TestReconnectTakesEndpointBack freezes the agent's connection: the agent
// notices through its heartbeat and reconnects, while the edge still holds
// the old session (its own heartbeat would need 25 s to notice). The agent
// must get its endpoint back at once (it resumes with its ClientId and bind
// token), and the edge closes the old session rather than let requests hang
// on it.
func TestReconnectTakesEndpointBack(t *testing.T) {
	dev := startDev(t, "", "--log-level", "debug")
	up := echoUpstream(t)
	proxy := newFreezeProxy(t, dev.info.AgentAddr)
	full := []string{"http", upstreamPort(up), "--authtoken", dev.info.Authtoken, "--server-addr", proxy.ln.Addr().String(),
		"--root-ca", dev.info.CAFile, "--web-addr", "false", "--transport", "tcp",
		"--heartbeat-interval", "1s", "--heartbeat-tolerance", "1s", "--log-level", "debug"}
	agent := start(t, bins.tollgate, []string{"TOLLGATE_CONFIG=" + t.TempDir() + "/c.yml"}, full...)
	url := agent.waitFor(regexp.MustCompile(`Forwarding\s+(\S+)\s+->`), 30*time.Second)[1]
	oldSession := agent.waitFor(regexp.MustCompile(`Session\s+(ts_\w+)`), 5*time.Second)[1]
	c := dev.client(false)
	c.Timeout = 3 * time.Second
	if err := getOK(c, url+"/hello"); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now()
	proxy.freeze()
	eventually(t, 12*time.Second, func() error {
		c.CloseIdleConnections()
		return getOK(c, url+"/hello")
	})
	took := time.Since(frozenAt)
	if took > 15*time.Second {
		t.Fatalf("endpoint back after %s: that is the edge's heartbeat timeout, not a takeover", took)
	}
	// The edge closed the old session: as a takeover, or (if the agent's
	// close reached it first) because it ended; either way no request
	// waits on it.
	dev.waitFor(regexp.MustCompile(`closing agent session: the agent reconnected|"session_id": "`+oldSession+`".*agent session ended|agent session ended.*"session_id": "`+oldSession+`"`), 10*time.Second)
	t.Logf("endpoint served by the new session %s after the freeze", took.Round(time.Millisecond))
}
