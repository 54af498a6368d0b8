package test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the drain test: requests in flight at SIGTERM, the bytes of
// each response, and the edge's --shutdown-timeout.
const (
	drainRequests = 4
	drainBodySize = 512 << 10
	drainTimeout  = 20 * time.Second
)

// heldUpstream is a local service whose /held/ requests wait until release
// is closed, then answer 200 with drainBodySize bytes: requests that are in
// flight, upstream-side, for as long as the test wants.
type heldUpstream struct {
	*httptest.Server
	arrived chan struct{} // one value per /held/ request received
	release chan struct{}
	once    sync.Once
}

func newHeldUpstream(t *testing.T) *heldUpstream {
	t.Helper()
	u := &heldUpstream{arrived: make(chan struct{}, 64), release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/held/", func(w http.ResponseWriter, r *http.Request) {
		u.arrived <- struct{}{}
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		case <-time.After(60 * time.Second):
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(drainBodySize))
		w.Header().Set("X-Upstream", "held")
		_, _ = w.Write(drainBody())
	})
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	u.Server = httptest.NewServer(mux)
	t.Cleanup(func() { u.releaseAll(); u.Close() })
	return u
}

func (u *heldUpstream) releaseAll() { u.once.Do(func() { close(u.release) }) }

// waitArrived waits until n held requests reached the upstream.
func (u *heldUpstream) waitArrived(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-u.arrived:
		case <-deadline:
			t.Fatalf("only %d of %d requests reached the upstream", i, n)
		}
	}
}

// drainBody is the body every held request answers with.
func drainBody() []byte {
	b := make([]byte, drainBodySize)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

// TestSIGTERMDrains sends SIGTERM to `tollgated dev` while requests are in
// flight at the upstream (no response head yet), over HTTP/1.1 through an
// agent on TLS/TCP and one on QUIC, and over HTTP/2: every request gets the
// upstream's status and all its bytes, new connections are refused while
// the edge drains, and the process exits 0 within --shutdown-timeout.
func TestSIGTERMDrains(t *testing.T) {
	for _, tc := range []struct {
		name      string
		h2        bool
		transport string
	}{
		{"http1-tcp", false, "tcp"},
		{"http1-quic", false, "quic"},
		{"http2-tcp", true, "tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := startDev(t, "", "--shutdown-timeout", drainTimeout.String())
			up := newHeldUpstream(t)
			_, url := dev.agent(t, "http", upstreamPort(up.Server), "--transport", tc.transport)
			c := dev.client(tc.h2)
			eventually(t, 10*time.Second, func() error { return getOK(c, url+"/hello") })

			type result struct {
				status int
				proto  string
				body   []byte
				err    error
			}
			results := make(chan result, drainRequests)
			for i := 0; i < drainRequests; i++ {
				go func() {
					resp, err := c.Get(fmt.Sprintf("%s/held/%d", url, i))
					if err != nil {
						results <- result{err: err}
						return
					}
					defer resp.Body.Close()
					b, err := io.ReadAll(resp.Body)
					results <- result{status: resp.StatusCode, proto: resp.Proto, body: b, err: err}
				}()
			}
			up.waitArrived(t, drainRequests)

			sent := time.Now()
			if err := dev.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			dev.waitFor(regexp.MustCompile(`draining: no new connections`), 10*time.Second) // the edge's line, after its listeners closed
			if conn, err := net.DialTimeout("tcp", dev.info.HTTPSAddr, 2*time.Second); err == nil {
				conn.Close()
				t.Errorf("a new connection to %s was accepted while the edge drains", dev.info.HTTPSAddr)
			}
			up.releaseAll()

			want := drainBody()
			for i := 0; i < drainRequests; i++ {
				r := <-results
				if r.err != nil {
					t.Errorf("request in flight at SIGTERM failed: %v", r.err)
					continue
				}
				if wantProto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[tc.h2]; r.proto != wantProto {
					t.Errorf("response over %s, want %s", r.proto, wantProto)
				}
				if r.status != http.StatusOK || !bytes.Equal(r.body, want) {
					t.Errorf("request in flight at SIGTERM: status %d, %d bytes (want 200, the upstream's %d bytes)", r.status, len(r.body), len(want))
				}
			}
			code, ok := dev.wait(drainTimeout + 5*time.Second)
			if !ok {
				t.Fatalf("tollgated did not exit within --shutdown-timeout %s of SIGTERM", drainTimeout)
			}
			if code != 0 {
				t.Errorf("tollgated exited %d after SIGTERM, want 0", code)
			}
			t.Logf("SIGTERM to exit with %d requests in flight (released after drain began): %s", drainRequests, time.Since(sent).Round(time.Millisecond))
			if out := dev.output(); regexp.MustCompile(`context canceled`).MatchString(out) {
				t.Errorf("shutdown logged context.Canceled:\n%s", out)
			}
		})
	}
}

// TestSIGTERMIdleExitsPromptly sends SIGTERM to `tollgated dev` with an
// agent connected and nothing in flight: it exits 0 well within
// --shutdown-timeout, and the agent is told why its session closed.
func TestSIGTERMIdleExitsPromptly(t *testing.T) {
	dev := startDev(t, "", "--shutdown-timeout", drainTimeout.String())
	up := newHeldUpstream(t)
	agent, url := dev.agent(t, "http", upstreamPort(up.Server))
	eventually(t, 10*time.Second, func() error { return getOK(dev.client(false), url+"/hello") })
	if err := dev.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Nothing is in flight: the drain ends at once, and only the closing of
	// agent sessions may take a moment. Half the timeout is a generous
	// bound that an edge waiting out its timeout would not meet.
	code, ok := dev.wait(drainTimeout / 2)
	if !ok {
		t.Fatalf("tollgated with nothing in flight did not exit within %s of SIGTERM", drainTimeout/2)
	}
	if code != 0 {
		t.Errorf("tollgated exited %d after SIGTERM, want 0", code)
	}
	agent.waitFor(regexp.MustCompile(`TG_151|shutting down`), 10*time.Second)
}

// TestSIGTERMDrainsSSH sends SIGTERM to `tollgated dev` while a request
// through an `ssh -R` tunnel is in flight at the upstream: the SSH
// listener refuses new connections at once (the real OpenSSH client sees
// "Connection refused"), the request completes with the upstream's bytes,
// and the SSH session is closed only after it, with a message.
func TestSIGTERMDrainsSSH(t *testing.T) {
	requireSSH(t)
	dev := startDev(t, "", "--shutdown-timeout", drainTimeout.String())
	key := newSSHKey(t)
	dev.addSSHCredential(t, key, nil)
	up := newHeldUpstream(t)
	tunnelProc, url := dev.sshForwarding(t, key, "443:localhost:"+upstreamPort(up.Server), "http", "--url", "https://drainssh."+dev.info.BaseDomain)
	c := dev.client(false)
	eventually(t, 10*time.Second, func() error { return getOK(c, url+"/hello") })

	type result struct {
		status int
		body   []byte
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := c.Get(url + "/held/ssh")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{status: resp.StatusCode, body: b, err: err}
	}()
	up.waitArrived(t, 1)

	if err := dev.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	dev.waitFor(regexp.MustCompile(`draining: no new connections`), 10*time.Second) // the edge's line, once its own listeners closed
	host, port := dev.sshAddr(t)
	// The SSH listener closes with the edge's (on the ingress's own
	// goroutine): within a few polls a connection is refused.
	refused := false
	for i := 0; i < 100 && !refused; i++ {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 2*time.Second)
		if err != nil {
			refused = true
			break
		}
		conn.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if !refused {
		t.Fatal("new SSH connections are still accepted while the edge drains")
	}
	late := dev.runSSH(t, key, "", "help")
	if code, exited := late.wait(15 * time.Second); !exited || code == 0 || !strings.Contains(late.output(), "Connection refused") {
		t.Errorf("ssh during the drain: exited %v with %d:\n%s", exited, code, late.output())
	}
	if _, exited := tunnelProc.wait(0); exited {
		t.Fatalf("the ssh -R client exited before its request was answered:\n%s", tunnelProc.output())
	}
	up.releaseAll()

	r := <-res
	if want := drainBody(); r.err != nil || r.status != http.StatusOK || !bytes.Equal(r.body, want) {
		t.Fatalf("request in flight through ssh -R at SIGTERM: %v, status %d, %d bytes (want 200, %d bytes)", r.err, r.status, len(r.body), len(want))
	}
	if code, ok := dev.wait(drainTimeout + 5*time.Second); !ok || code != 0 {
		t.Fatalf("tollgated after SIGTERM: exited %v with %d", ok, code)
	}
	if _, exited := tunnelProc.wait(10 * time.Second); !exited || !strings.Contains(tunnelProc.output(), "shutting down") {
		t.Errorf("the ssh -R client after the drain: exited %v:\n%s", exited, tunnelProc.output())
	}
}
