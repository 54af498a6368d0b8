package test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// stsUpstream answers every request with its own
// Strict-Transport-Security: max-age=1.
func stsUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=1")
		fmt.Fprint(w, "hello from upstream")
	}))
	t.Cleanup(up.Close)
	return up
}

// curlSTS fetches url with curl over HTTP/1.1 or HTTP/2 (--resolve to
// loopback, the dev CA) and returns the values of every
// Strict-Transport-Security field of the response.
func curlSTS(t *testing.T, dev *devServer, url string, h2 bool) []string {
	t.Helper()
	host := strings.TrimPrefix(url, "https://")
	host, _, _ = strings.Cut(host, ":")
	proto := "--http1.1"
	if h2 {
		proto = "--http2"
	}
	out, err := exec.Command("curl", "-sS", "--max-time", "20", proto, "--cacert", dev.info.CAFile, "-D", "-", "-o", "/dev/null",
		"--resolve", host+":"+dev.httpsPort()+":127.0.0.1", url+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v: %s", url, err, out)
	}
	if want := map[bool]string{false: "HTTP/1.1 200", true: "HTTP/2 200"}[h2]; !strings.HasPrefix(string(out), want) {
		t.Fatalf("curl %s: want %s:\n%s", url, want, out)
	}
	var vals []string
	for _, m := range regexp.MustCompile(`(?mi)^strict-transport-security:\s*(.*?)\r?$`).FindAllStringSubmatch(string(out), -1) {
		vals = append(vals, m[1])
	}
	return vals
}

// TestHSTSWithCurl: `tollgate http --hsts` puts the endpoint's
// Strict-Transport-Security on every HTTPS response (curl over HTTP/1.1
// and HTTP/2) in place of the upstream's; a reserved domain's hsts, set
// with `tollgate api reserved-domains`, wins over it while set; without
// either the upstream's field passes; the plain-HTTP redirect never
// carries one.
func TestHSTSWithCurl(t *testing.T) {
	dev := startDev(t, "")
	up := stsUpstream(t)
	env := []string{"TOLLGATE_API_KEY=" + dev.info.APIKey, "TOLLGATE_API_URL=" + dev.info.APIURL}
	name := "hsts." + dev.info.BaseDomain
	_, url := dev.agent(t, "http", upstreamPort(up), "--url", "https://"+name, "--hsts", "max-age=600;includesubdomains")
	_, plainURL := dev.agent(t, "http", upstreamPort(up), "--url", "https://plain."+dev.info.BaseDomain)

	want := func(url string, values ...string) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			for _, h2 := range []bool{false, true} {
				if got := curlSTS(t, dev, url, h2); strings.Join(got, "|") != strings.Join(values, "|") {
					return fmt.Errorf("%s (h2 %v): Strict-Transport-Security %q, want %q", url, h2, got, values)
				}
			}
			return nil
		})
	}
	want(url, "max-age=600; includeSubDomains")
	want(plainURL, "max-age=1")

	rd := apiCLIJSON(t, env, "reserved-domains", "create", "--domain", name, "--hsts", "max-age=31536000; includeSubDomains; preload")
	want(url, "max-age=31536000; includeSubDomains; preload")
	apiCLIJSON(t, env, "reserved-domains", "update", rd["id"].(string), "--hsts", "max-age=0")
	want(url, "max-age=0")
	apiCLIJSON(t, env, "reserved-domains", "update", rd["id"].(string), "--hsts", "none")
	want(url, "max-age=600; includeSubDomains")

	// A bad value is refused before any request: by the agent, and by the API.
	r := runTollgateCLI(t, nil, "http", "8080", "--url", "https://x."+dev.info.BaseDomain, "--hsts", "max-age=600; preload",
		"--authtoken", dev.info.Authtoken, "--server-addr", dev.info.AgentAddr)
	if r.code == 0 || !strings.Contains(r.stderr, "preload requires includeSubDomains") {
		t.Fatalf("tollgate http --hsts with a bad value: exit %d\n%s", r.code, r.stderr)
	}
	status, body := restJSON(t, dev.info.APIURL, dev.info.APIKey, http.MethodPatch, "/reserved_domains/"+rd["id"].(string),
		map[string]any{"hsts": map[string]any{"max_age": 63072001}})
	if status != http.StatusBadRequest || body["error_code"] != "TG_2634" {
		t.Fatalf("PATCH hsts over two years: %d %v", status, body)
	}

	// The plain-HTTP listener only redirects, without the field (RFC 6797 §7.2).
	out, err := exec.Command("curl", "-sS", "--max-time", "20", "-D", "-", "-o", "/dev/null", "-H", "Host: "+name,
		"http://"+dev.info.HTTPAddr+"/").CombinedOutput()
	if err != nil || !strings.Contains(string(out), " 308") || regexp.MustCompile(`(?i)strict-transport-security`).Match(out) {
		t.Fatalf("curl over plain HTTP: %v\n%s", err, out)
	}
}
