package test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// authUpstream answers 200 and reports the Authorization field it saw.
func authUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Authorization", r.Header.Get("Authorization"))
		io.WriteString(w, "secret area")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// checkBasicAuth asserts, over HTTP/1.1 and HTTP/2: no credentials and
// wrong ones get 401 with a Basic challenge and TG_3207; the right ones get
// the upstream, which does not see the Authorization field.
func checkBasicAuth(t *testing.T, dev *devServer, url, user, pass string) {
	t.Helper()
	for _, h2 := range []bool{false, true} {
		c := dev.client(h2)
		for _, tc := range []struct {
			name       string
			user, pass string
			ok         bool
		}{
			{"missing", "", "", false},
			{"wrong password", user, pass + "x", false},
			{"wrong user", user + "x", pass, false},
			{"right", user, pass, true},
		} {
			req, _ := http.NewRequest("GET", url+"/", nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("h2=%v %s: %v", h2, tc.name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.ok {
				if resp.StatusCode != 200 || string(body) != "secret area" {
					t.Fatalf("h2=%v %s: %d %q", h2, tc.name, resp.StatusCode, body)
				}
				if seen := resp.Header.Get("X-Seen-Authorization"); seen != "" {
					t.Fatalf("h2=%v: the upstream saw Authorization %q", h2, seen)
				}
				continue
			}
			if resp.StatusCode != 401 || resp.Header.Get("Tollgate-Error-Code") != "TG_3207" ||
				!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Basic realm=`) || strings.Contains(string(body), "secret area") {
				t.Fatalf("h2=%v %s: %d %q %q %q", h2, tc.name, resp.StatusCode, resp.Header.Get("Tollgate-Error-Code"), resp.Header.Get("WWW-Authenticate"), body)
			}
		}
	}
}

// TestBasicAuth: `tollgate http --basic-auth`: 401 without or with wrong
// credentials, 200 with them (two users, curl too), the upstream never sees
// the password, nothing logs it; passwords outside 8–128 characters are
// refused with TG_360.
func TestBasicAuth(t *testing.T) {
	dev := startDev(t, "")
	up := authUpstream(t)
	const pass = "correct-horse-9"
	agent, u := dev.agent(t, "http", upstreamPort(up), "--url", "https://locked."+dev.info.BaseDomain,
		"--basic-auth", "alice:"+pass, "--basic-auth", "bob:battery:staple")
	checkBasicAuth(t, dev, u, "alice", pass)
	checkBasicAuth(t, dev, u, "bob", "battery:staple")

	t.Run("curl", func(t *testing.T) {
		for _, tc := range []struct{ creds, want string }{{"alice:" + pass, "200"}, {"alice:nope-nope", "401"}} {
			out, err := exec.Command("curl", "-sS", "--max-time", "20", "--cacert", dev.info.CAFile, "-u", tc.creds,
				"-o", "/dev/null", "-w", "%{http_code}", "--resolve", "locked."+dev.info.BaseDomain+":"+dev.httpsPort()+":127.0.0.1", u+"/").CombinedOutput()
			if err != nil || string(out) != tc.want {
				t.Fatalf("curl -u %s: %v: %s, want %s", strings.SplitN(tc.creds, ":", 2)[0], err, out, tc.want)
			}
		}
	})

	t.Run("password rules", func(t *testing.T) {
		for _, pw := range []string{"short", strings.Repeat("p", 129)} {
			p := start(t, bins.tollgate, []string{"TOLLGATE_CONFIG=" + t.TempDir() + "/c.yml"}, "http", "8080",
				"--basic-auth", "alice:"+pw, "--authtoken", dev.info.Authtoken, "--server-addr", dev.info.AgentAddr,
				"--root-ca", dev.info.CAFile, "--web-addr", "false")
			code, ok, out := exitOutput(p, 30*time.Second, "TG_360", "8 to 128")
			if !ok || code == 0 || !strings.Contains(out, "TG_360") || !strings.Contains(out, "8 to 128") {
				t.Fatalf("password of %d characters: exited %v with %d:\n%s", len(pw), ok, code, out)
			}
			if strings.Contains(out, pw) {
				t.Fatalf("the agent printed the password:\n%s", p.output())
			}
		}
	})

	for name, out := range map[string]string{"tollgated dev": dev.output(), "agent": agent.output()} {
		if strings.Contains(out, pass) || strings.Contains(out, "battery:staple") {
			t.Fatalf("%s logged a password:\n%s", name, out)
		}
	}
}

// TestBasicAuthSSH: `ssh -R ... http --basic-auth USER:PASS` through the
// OpenSSH client.
func TestBasicAuthSSH(t *testing.T) {
	requireSSH(t)
	dev := startDev(t, "")
	up := authUpstream(t)
	key := newSSHKey(t)
	dev.addSSHCredential(t, key, nil)
	const pass = "ssh-secret-42"
	_, u := dev.sshForwarding(t, key, "443:localhost:"+upstreamPort(up), "http", "--basic-auth", "carol:"+pass)
	checkBasicAuth(t, dev, u, "carol", pass)

	p := dev.runSSH(t, key, "443:localhost:"+upstreamPort(up), "http", "--basic-auth", "carol:short")
	code, exited, out := exitOutput(p, 20*time.Second, "TG_360")
	if !exited || code == 0 || !strings.Contains(out, "TG_360") {
		t.Fatalf("short password: exited %v with %d:\n%s", exited, code, out)
	}
	if strings.Contains(dev.output(), pass) {
		t.Fatalf("tollgated dev logged the password:\n%s", dev.output())
	}
}
