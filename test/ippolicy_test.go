package test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The IP policy tests tell clients apart by their loopback source address:
// 127.0.0.1 and 127.0.0.2 (all of 127/8 is loopback on Linux) for IPv4, ::1
// for IPv6 against a dev edge listening on [::1]. IPv4-mapped IPv6 peers
// (a dual-stack wildcard listener) are covered in edge's unit tests with a
// loopback-only dual-stack socket, so nothing here listens beyond loopback.

// sourceClient returns an HTTP client (HTTP/2 when h2) whose connections
// leave from src and all go to the dev edge's HTTPS listener.
func (d *devServer) sourceClient(src string, h2 bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: d.pool},
		ForceAttemptHTTP2: h2,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", d.info.HTTPSAddr)
		},
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// status does one GET and returns the status, the TG_ code header and the
// body.
func status(c *http.Client, url string, hdr ...string) (int, string, string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, "", "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Tollgate-Error-Code"), string(b), nil
}

// wantStatus polls url from src until it answers want (a policy change
// travels through the snapshot feed), for at most 10 s.
func wantStatus(t *testing.T, d *devServer, src, url string, want int, hdr ...string) string {
	t.Helper()
	var body string
	eventually(t, 10*time.Second, func() error {
		for _, h2 := range []bool{false, true} {
			st, code, b, err := status(d.sourceClient(src, h2), url, hdr...)
			if err != nil {
				return err
			}
			body = b
			if st != want {
				return fmt.Errorf("h2=%v from %s: status %d (%s), want %d", h2, src, st, code, want)
			}
			if want == http.StatusForbidden && (code != "TG_3205" || !strings.Contains(b, "TG_3205")) {
				return fmt.Errorf("403 without TG_3205: code %q body %q", code, b)
			}
		}
		return nil
	})
	return body
}

// exitOutput waits up to d for p to exit and returns its exit code and its
// output once every one of want is in it (the output is read by another
// goroutine, so the last lines may land just after the exit), or after 2 s
// more.
func exitOutput(p *proc, d time.Duration, want ...string) (code int, exited bool, out string) {
	code, exited = p.wait(d)
	deadline := time.Now().Add(2 * time.Second)
	for {
		out = p.output()
		missing := false
		for _, w := range want {
			missing = missing || !strings.Contains(out, w)
		}
		if !missing || !exited || time.Now().After(deadline) {
			return code, exited, out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countingTCP is a TCP upstream that echoes and counts the connections
// that reach it.
type countingTCP struct {
	ln    net.Listener
	conns atomic.Int64
}

func startCountingTCP(t *testing.T) *countingTCP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	u := &countingTCP{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return u
}

func (u *countingTCP) port() string {
	_, p, _ := net.SplitHostPort(u.ln.Addr().String())
	return p
}

// tcpFrom connects to addr from src, sends a line and returns what came
// back before the connection ended (or the first line, for an echo).
func tcpFrom(src, addr string) (string, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return "", err
	}
	buf := make([]byte, 5)
	n, err := io.ReadFull(c, buf)
	return string(buf[:n]), err
}

// wantTCP polls until a TCP client from src is echoed (ok) or is closed
// without an answer (!ok), for at most 10 s.
func wantTCP(t *testing.T, src, addr string, ok bool) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		got, err := tcpFrom(src, addr)
		switch {
		case ok && (err != nil || got != "ping\n"):
			return fmt.Errorf("from %s: %q, %v; want the echo", src, got, err)
		case !ok && got != "":
			return fmt.Errorf("from %s: got %q, want the connection closed", src, got)
		case !ok && err == nil:
			return fmt.Errorf("from %s: no error", src)
		}
		return nil
	})
}

// TestIPPolicyEndpointCIDRs: --cidr-allow/--cidr-deny on HTTP (403 with
// TG_3205, HTTP/1.1 and HTTP/2) and TCP (closed, the upstream sees
// nothing); a client-sent X-Forwarded-For changes nothing; a deny-only list
// is refused with TG_393 and the way out.
func TestIPPolicyEndpointCIDRs(t *testing.T) {
	dev := startDev(t, "")
	up := echoUpstream(t)
	_, u := dev.agent(t, "http", upstreamPort(up), "--url", "https://cidr."+dev.info.BaseDomain,
		"--cidr-allow", "127.0.0.0/8", "--cidr-deny", "127.0.0.2")
	wantStatus(t, dev, "127.0.0.1", u+"/hello", 200)
	body := wantStatus(t, dev, "127.0.0.2", u+"/hello", 403)
	if strings.Contains(body, "hello from upstream") {
		t.Fatalf("a refused request reached the upstream: %q", body)
	}
	t.Run("X-Forwarded-For changes nothing", func(t *testing.T) {
		wantStatus(t, dev, "127.0.0.2", u+"/hello", 403, "X-Forwarded-For", "127.0.0.1")
		wantStatus(t, dev, "127.0.0.2", u+"/hello", 403, "Forwarded", "for=127.0.0.1")
		wantStatus(t, dev, "127.0.0.1", u+"/hello", 200, "X-Forwarded-For", "127.0.0.2")
	})
	t.Run("curl", func(t *testing.T) {
		out, err := exec.Command("curl", "-sS", "--max-time", "20", "--interface", "127.0.0.2", "--cacert", dev.info.CAFile,
			"-o", "/dev/null", "-w", "%{http_code}", "--resolve", "cidr."+dev.info.BaseDomain+":"+dev.httpsPort()+":127.0.0.1", u+"/hello").CombinedOutput()
		if err != nil || string(out) != "403" {
			t.Fatalf("curl from 127.0.0.2: %v: %s", err, out)
		}
	})

	t.Run("tcp", func(t *testing.T) {
		tu := startCountingTCP(t)
		_, tcpURL := dev.agent(t, "tcp", tu.port(), "--cidr-allow", "127.0.0.1/32")
		addr := tcpAddrOf(t, tcpURL)
		wantTCP(t, "127.0.0.1", addr, true)
		before := tu.conns.Load()
		for range 3 {
			if got, err := tcpFrom("127.0.0.2", addr); got != "" || err == nil {
				t.Fatalf("from 127.0.0.2: %q, %v; want closed", got, err)
			}
		}
		if n := tu.conns.Load() - before; n != 0 {
			t.Fatalf("the upstream saw %d connections from a refused client", n)
		}
	})

	t.Run("ip-policy-id", func(t *testing.T) {
		pol := ipPolicy(t, dev, "allow 127.0.0.0/8", "deny 127.0.0.2/32")
		_, pu := dev.agent(t, "http", upstreamPort(up), "--url", "https://named."+dev.info.BaseDomain, "--ip-policy-id", pol)
		wantStatus(t, dev, "127.0.0.1", pu+"/hello", 200)
		wantStatus(t, dev, "127.0.0.2", pu+"/hello", 403)
		// A rule added to the policy applies to the running endpoint.
		mustAPI(t, dev, dev.info.APIKey, http.MethodPost, "/ip_policy_rules",
			map[string]any{"ip_policy_id": pol, "cidr": "127.0.0.1/32", "action": "deny"}, http.StatusCreated)
		wantStatus(t, dev, "127.0.0.1", pu+"/hello", 403)

		p := start(t, bins.tollgate, []string{"TOLLGATE_CONFIG=" + t.TempDir() + "/c.yml"}, "http", "8080",
			"--ip-policy-id", "ipp_2nosuchpolicy000000000000000", "--authtoken", dev.info.Authtoken, "--server-addr", dev.info.AgentAddr,
			"--root-ca", dev.info.CAFile, "--web-addr", "false")
		if code, ok, out := exitOutput(p, 30*time.Second, "TG_2616"); !ok || code == 0 || !strings.Contains(out, "TG_2616") {
			t.Fatalf("unknown policy: exited %v with %d:\n%s", ok, code, out)
		}
	})

	t.Run("deny-only refused", func(t *testing.T) {
		for _, proto := range []string{"http", "tcp"} {
			p := start(t, bins.tollgate, []string{"TOLLGATE_CONFIG=" + t.TempDir() + "/c.yml"}, proto, "8080",
				"--cidr-deny", "10.0.0.0/8", "--authtoken", dev.info.Authtoken, "--server-addr", dev.info.AgentAddr,
				"--root-ca", dev.info.CAFile, "--web-addr", "false")
			const help = "add 0.0.0.0/0 and ::/0 to allow everything not denied"
			code, ok, out := exitOutput(p, 30*time.Second, "TG_393", help)
			if !ok || code == 0 || !strings.Contains(out, "TG_393") || !strings.Contains(out, help) {
				t.Fatalf("%s: exited %v with %d:\n%s", proto, ok, code, out)
			}
		}
	})
}

// TestIPPolicyIPv6: a dev edge on [::1]; an IPv6 client is admitted by an
// IPv6 allow, refused by an IPv4-only allow list and by an IPv6 deny; the
// same for a TCP endpoint.
func TestIPPolicyIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Fatalf("this test needs the IPv6 loopback ::1: %v", err)
	} else {
		ln.Close()
	}
	dev := startDev(t, "", "--https-addr", "[::1]:0")
	if !strings.HasPrefix(dev.info.HTTPSAddr, "[::1]:") {
		t.Fatalf("https_addr %q", dev.info.HTTPSAddr)
	}
	up := echoUpstream(t)
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"v6allow", []string{"--cidr-allow", "::1/128"}, 200},
		{"v4only", []string{"--cidr-allow", "127.0.0.0/8"}, 403},
		{"v6deny", []string{"--cidr-allow", "0.0.0.0/0", "--cidr-allow", "::/0", "--cidr-deny", "::1"}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"http", upstreamPort(up), "--url", "https://" + tc.name + "." + dev.info.BaseDomain}, tc.args...)
			_, u := dev.agent(t, args...)
			wantStatus(t, dev, "::1", u+"/hello", tc.want)
		})
	}
	t.Run("tcp", func(t *testing.T) {
		tu := startCountingTCP(t)
		_, allowURL := dev.agent(t, "tcp", tu.port(), "--cidr-allow", "::1")
		_, denyURL := dev.agent(t, "tcp", tu.port(), "--cidr-allow", "127.0.0.1")
		port := func(u string) string { return u[strings.LastIndexByte(u, ':')+1:] }
		wantTCP(t, "::1", "[::1]:"+port(allowURL), true)
		before := tu.conns.Load()
		wantTCP(t, "::1", "[::1]:"+port(denyURL), false)
		if n := tu.conns.Load() - before; n != 0 {
			t.Fatalf("the upstream saw %d connections from a refused client", n)
		}
	})
}

// ipPolicy creates an IP policy with rules ("allow 127.0.0.1/32") through
// the REST API and returns its ID.
func ipPolicy(t *testing.T, d *devServer, rules ...string) string {
	t.Helper()
	p := mustAPI(t, d, d.info.APIKey, http.MethodPost, "/ip_policies", map[string]any{"description": "e2e"}, http.StatusCreated)
	id, _ := p["id"].(string)
	for _, r := range rules {
		action, cidr, _ := strings.Cut(r, " ")
		mustAPI(t, d, d.info.APIKey, http.MethodPost, "/ip_policy_rules",
			map[string]any{"ip_policy_id": id, "cidr": cidr, "action": action}, http.StatusCreated)
	}
	return id
}

// TestIPPolicyRestrictions: an `endpoints` IP restriction made through the
// REST API refuses HTTP and TCP clients; made unenforced, it lets them
// through and the edge logs the dry-run event; an `agent` restriction
// refuses new agent sessions with TG_115 and closes running ones.
func TestIPPolicyRestrictions(t *testing.T) {
	dev := startDev(t, "")
	up := echoUpstream(t)
	_, u := dev.agent(t, "http", upstreamPort(up), "--url", "https://restricted."+dev.info.BaseDomain)
	tu := startCountingTCP(t)
	_, tcpURL := dev.agent(t, "tcp", tu.port())
	tcpAddr := tcpAddrOf(t, tcpURL)
	wantStatus(t, dev, "127.0.0.2", u+"/hello", 200)

	pol := ipPolicy(t, dev, "allow 127.0.0.1/32")
	x := mustAPI(t, dev, dev.info.APIKey, http.MethodPost, "/ip_restrictions",
		map[string]any{"type": "endpoints", "ip_policy_ids": []string{pol}, "enforced": true}, http.StatusCreated)
	xid, _ := x["id"].(string)
	wantStatus(t, dev, "127.0.0.2", u+"/hello", 403)
	wantStatus(t, dev, "127.0.0.1", u+"/hello", 200)
	wantStatus(t, dev, "127.0.0.2", u+"/hello", 403, "X-Forwarded-For", "127.0.0.1")
	wantTCP(t, "127.0.0.2", tcpAddr, false)
	wantTCP(t, "127.0.0.1", tcpAddr, true)

	t.Run("unenforced lets through and logs", func(t *testing.T) {
		mustAPI(t, dev, dev.info.APIKey, http.MethodPatch, "/ip_restrictions/"+xid, map[string]any{"enforced": false}, http.StatusOK)
		wantStatus(t, dev, "127.0.0.2", u+"/hello", 200)
		wantTCP(t, "127.0.0.2", tcpAddr, true)
		dev.waitFor(regexp.MustCompile(`ip_policy\.dry_run.*`+regexp.QuoteMeta(xid)+`|`+regexp.QuoteMeta(xid)+`.*ip_policy\.dry_run`), 10*time.Second)
		if !regexp.MustCompile(`(?m)^.*ip_policy\.dry_run.*127\.0\.0\.2.*$`).MatchString(dev.output()) {
			t.Fatalf("the dry-run log line does not name the client 127.0.0.2:\n%s", dev.output())
		}
	})

	t.Run("agent restriction", func(t *testing.T) {
		only2 := ipPolicy(t, dev, "allow 127.0.0.2/32")
		mustAPI(t, dev, dev.info.APIKey, http.MethodPost, "/ip_restrictions",
			map[string]any{"type": "agent", "ip_policy_ids": []string{only2}, "enforced": true}, http.StatusCreated)
		// The new agent connects from 127.0.0.1; poll until the snapshot
		// with the restriction reached the edge.
		deadline := time.Now().Add(15 * time.Second)
		for {
			p := start(t, bins.tollgate, []string{"TOLLGATE_CONFIG=" + t.TempDir() + "/c.yml"}, "http", upstreamPort(up),
				"--authtoken", dev.info.Authtoken, "--server-addr", dev.info.AgentAddr, "--root-ca", dev.info.CAFile, "--web-addr", "false")
			done := make(chan struct{})
			var code int
			var exited bool
			go func() { code, exited = p.wait(30 * time.Second); close(done) }()
			forwarding := false
			for !forwarding {
				select {
				case <-done:
				case <-time.After(50 * time.Millisecond):
					forwarding = strings.Contains(p.output(), "Forwarding")
					continue
				}
				break
			}
			if forwarding {
				p.stop(5 * time.Second)
				<-done
				if time.Now().After(deadline) {
					t.Fatalf("agents still start after the agent restriction:\n%s", p.output())
				}
				continue
			}
			out := p.output()
			for end := time.Now().Add(2 * time.Second); exited && !strings.Contains(out, "TG_115") && time.Now().Before(end); out = p.output() {
				time.Sleep(10 * time.Millisecond) // the last lines may land just after the exit
			}
			if !exited || code == 0 || !strings.Contains(out, "TG_115") || !strings.Contains(out, "127.0.0.1") {
				t.Fatalf("exited %v with %d:\n%s", exited, code, out)
			}
			break
		}
		// The running session from 127.0.0.1 is closed too (issue 12 §5;
		// agentiprecheck_test.go), and the REST API is another surface.
		wantStatus(t, dev, "127.0.0.1", u+"/hello", 404)
		callOK := mustAPI(t, dev, dev.info.APIKey, http.MethodGet, "/ip_restrictions", nil, http.StatusOK)
		if list, _ := callOK["ip_restrictions"].([]any); len(list) != 2 {
			t.Fatalf("ip_restrictions: %v", callOK)
		}
	})
}

// TestIPPolicySSH: `ssh -R ... http --cidr-allow` through the OpenSSH
// client, and an `agent` IP restriction refusing an SSH session with TG_115
// in the authentication banner.
func TestIPPolicySSH(t *testing.T) {
	requireSSH(t)
	dev := startDev(t, "")
	up := echoUpstream(t)
	key := newSSHKey(t)
	dev.addSSHCredential(t, key, nil)
	_, u := dev.sshForwarding(t, key, "443:localhost:"+upstreamPort(up), "http", "--cidr-allow", "127.0.0.1/32")
	wantStatus(t, dev, "127.0.0.1", u+"/hello", 200)
	wantStatus(t, dev, "127.0.0.2", u+"/hello", 403)

	t.Run("deny-only", func(t *testing.T) {
		p := dev.runSSH(t, key, "443:localhost:"+upstreamPort(up), "http", "--cidr-deny", "10.0.0.0/8")
		code, exited, out := exitOutput(p, 20*time.Second, "TG_393")
		if !exited || code == 0 || !strings.Contains(out, "TG_393") {
			t.Fatalf("exited %v with %d:\n%s", exited, code, out)
		}
	})

	t.Run("agent restriction", func(t *testing.T) {
		pol := ipPolicy(t, dev, "allow 127.0.0.2/32")
		mustAPI(t, dev, dev.info.APIKey, http.MethodPost, "/ip_restrictions",
			map[string]any{"type": "agent", "ip_policy_ids": []string{pol}, "enforced": true}, http.StatusCreated)
		host, port := dev.sshAddr(t)
		eventually(t, 15*time.Second, func() error {
			// LogLevel INFO (OpenSSH's default) shows the banner.
			out, err := exec.Command("/usr/bin/ssh", "-p", port, "-i", key.file, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
				"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=INFO",
				"-o", "ConnectTimeout=10", "-R", "443:localhost:"+upstreamPort(up), "tunnel@"+host, "http").CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 255 || !strings.Contains(string(out), "TG_115") {
				return fmt.Errorf("ssh: %v:\n%s", err, out)
			}
			return nil
		})
	})
}
