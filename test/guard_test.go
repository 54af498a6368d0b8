package test

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestBasicAuthThrottleCurl: with curl, wrong passwords from one address
// get 401 until the budget (10) is spent, then 429 with Retry-After and
// TG_3240 — the right password too, from that address; the right password
// from another loopback address gets 200 at once; from the first address,
// once Retry-After has passed, it gets 200.
func TestBasicAuthThrottleCurl(t *testing.T) {
	dev := startDev(t, "")
	up := authUpstream(t)
	const pass = "correct-horse-9"
	host := "guarded." + dev.info.BaseDomain
	_, u := dev.agent(t, "http", upstreamPort(up), "--url", "https://"+host, "--basic-auth", "alice:"+pass)
	curl := func(src, creds string) (code, retryAfter, tgCode string) {
		t.Helper()
		out, err := exec.Command("curl", "-sS", "--max-time", "20", "--interface", src, "--cacert", dev.info.CAFile, "-u", creds,
			"-D", "-", "-o", "/dev/null", "--resolve", host+":"+dev.httpsPort()+":127.0.0.1", u+"/").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			line = strings.TrimSpace(line)
			lower := strings.ToLower(line)
			switch {
			case strings.HasPrefix(line, "HTTP/"):
				if f := strings.Fields(line); len(f) > 1 {
					code = f[1]
				}
			case strings.HasPrefix(lower, "retry-after:"):
				retryAfter = strings.TrimSpace(line[len("retry-after:"):])
			case strings.HasPrefix(lower, "tollgate-error-code:"):
				tgCode = strings.TrimSpace(line[len("tollgate-error-code:"):])
			}
		}
		return code, retryAfter, tgCode
	}
	var codes []string
	for i := 0; i < 12; i++ {
		code, _, _ := curl("127.0.0.1", "alice:wrong-guess")
		codes = append(codes, code)
	}
	if got := strings.Join(codes, " "); got != strings.Repeat("401 ", 10)+"429 429" {
		t.Fatalf("12 wrong guesses: %s, want ten 401 then 429", got)
	}
	code, retry, tg := curl("127.0.0.1", "alice:"+pass)
	if code != "429" || retry == "" || tg != "TG_3240" {
		t.Fatalf("right password from the guessing address: %s Retry-After %q %s, want 429 with Retry-After and TG_3240", code, retry, tg)
	}
	if code, _, _ := curl("127.0.0.2", "alice:"+pass); code != "200" {
		t.Fatalf("right password from another address: %s, want 200", code)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _, _ := curl("127.0.0.1", "alice:"+pass)
		if code == "200" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the right password from the guessing address still gets %s after 20 s", code)
		}
		time.Sleep(200 * time.Millisecond) // the budget refills one per second
	}
	if !strings.Contains(dev.output(), "basic auth throttled") {
		t.Fatalf("no throttle log line:\n%s", dev.output())
	}
}
