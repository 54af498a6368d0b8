package test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREADMEWildcardACLExample runs the README's bind ACL example as
// written against tollgated dev: reserve *.ci.tollgate.localhost, create a
// bot user and an authtoken with `bind:*.ci.tollgate.localhost`, bind
// https://*.ci.tollgate.localhost with it and call pr-7.ci.tollgate.localhost
// over HTTP/1.1 and HTTP/2 (the upstream sees the concrete Host). The same
// token is refused app.tollgate.localhost (TG_619). Before wildcard
// endpoints, that token could bind nothing in dev (TG_402).
func TestREADMEWildcardACLExample(t *testing.T) {
	d := startDev(t, "")
	env := []string{"TOLLGATE_API_KEY=" + d.info.APIKey, "TOLLGATE_API_URL=" + d.info.APIURL}

	rd := apiCLIJSON(t, env, "reserved-domains", "create", "--domain", "*.ci.tollgate.localhost")
	if rd["domain"] != "*.ci.tollgate.localhost" || rd["cname_target"] != nil {
		t.Fatalf("reserved domain: %v (under the base domain it needs no CNAME)", rd)
	}
	bot := apiCLIJSON(t, env, "bot-users", "create", "--name", "ci")
	cr := apiCLIJSON(t, env, "credentials", "create", "--owner-id", bot["id"].(string), "--acl", "bind:*.ci.tollgate.localhost")
	token, _ := cr["token"].(string)
	if token == "" {
		t.Fatalf("credential: %v", cr)
	}
	if r := runTollgateCLI(t, env, "api", "credentials", "list", "--all"); r.code != 0 || !strings.Contains(r.stdout, "bind:*.ci.tollgate.localhost") {
		t.Fatalf("credentials list: %d %s %s", r.code, r.stdout, r.stderr)
	}

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ci upstream for %s", r.Host)
	}))
	t.Cleanup(up.Close)
	agent := func(url string) *proc {
		return start(t, bins.tollgate, []string{"TOLLGATE_CONFIG=" + filepath.Join(t.TempDir(), "tollgate.yml")},
			"http", upstreamPort(up), "--url", url, "--authtoken", token, "--server-addr", d.info.AgentAddr,
			"--root-ca", d.info.CAFile, "--web-addr", "127.0.0.1:0")
	}
	p := agent("https://*.ci.tollgate.localhost")
	m := p.waitFor(regexp.MustCompile(`Forwarding\s+(\S+)\s+->`), 30*time.Second)
	if want := "https://*.ci.tollgate.localhost:" + d.httpsPort(); m[1] != want {
		t.Fatalf("forwarding %s, want %s", m[1], want)
	}
	name := "pr-7.ci.tollgate.localhost:" + d.httpsPort()
	for _, h2 := range []bool{false, true} {
		resp, err := d.client(h2).Get("https://" + name + "/")
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "ci upstream for "+name {
			t.Fatalf("h2=%v: %d %q", h2, resp.StatusCode, body)
		}
	}

	refused := agent("https://app.tollgate.localhost")
	if _, ok := refused.wait(30 * time.Second); !ok || !strings.Contains(refused.output(), "TG_619") {
		t.Fatalf("binding app.tollgate.localhost with the ci token: exited %v, output:\n%s", ok, refused.output())
	}
}
