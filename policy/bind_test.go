package policy

import (
	"crypto/tls"
	"strings"
	"testing"
)

func TestBindAllowed(t *testing.T) {
	cases := []struct {
		acl    []string
		target string
		want   bool
	}{
		{nil, "anything.example.com", true},
		{[]string{"*"}, "x.example.com", true},
		{[]string{"bind:*"}, "x.example.com", true},
		{[]string{"bind:app.example.com"}, "app.example.com", true},
		{[]string{"bind:app.example.com"}, "other.example.com", false},
		{[]string{"bind:app.example.com"}, "x.app.example.com", false},
		{[]string{"bind:*.example.com"}, "x.example.com", true},
		{[]string{"bind:*.example.com"}, "a.b.example.com", true}, // multi-label: decided, documented
		{[]string{"bind:*.example.com"}, "*.example.com", true},   // the literal wildcard
		{[]string{"bind:*.example.com"}, "example.com", false},    // never the apex
		{[]string{"bind:*.example.com"}, "badexample.com", false}, // suffix on a label boundary only
		{[]string{"bind:*.example.com"}, "x.example.com.evil", false},
		{[]string{"bind:1.tcp.example.com:20002"}, "1.tcp.example.com:20002", true},
		{[]string{"bind:1.tcp.example.com:20002"}, "1.tcp.example.com:20003", false},
		{[]string{"bind:a.example.com", "bind:b.example.com"}, "b.example.com", true},
		{[]string{"bind:APP.Example.com"}, "app.example.com", true},
	}
	for _, tc := range cases {
		if got := BindAllowed(tc.acl, tc.target); got != tc.want {
			t.Errorf("BindAllowed(%q, %q) = %v, want %v", tc.acl, tc.target, got, tc.want)
		}
	}
}

func TestParseBindRule(t *testing.T) {
	good := map[string]string{
		"*": "*", "bind:*": "bind:*", "bind:App.Example.com": "bind:app.example.com",
		"bind:*.example.com": "bind:*.example.com", "bind:1.tcp.example.com:20002": "bind:1.tcp.example.com:20002",
		// One normaliser for ACLs, binds and reservations: IDNs as punycode, a trailing dot dropped.
		"bind:Bücher.Example.com.": "bind:xn--bcher-kva.example.com", "bind:*.bücher.example": "bind:*.xn--bcher-kva.example",
		"bind:TCP.Example.com.:22": "bind:tcp.example.com:22",
	}
	for in, want := range good {
		got, err := ParseBindRule(in)
		if err != nil || got != want {
			t.Errorf("ParseBindRule(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "bind:", "app.example.com", "bind:a..b", "bind:-a.com", "bind:a.com:0",
		"bind:a.com:70000", "bind:a.*.com", "allow:x.com", "bind:a_b.com", "bind:" + strings.Repeat("a", 64) + ".com",
		"bind:*.example.com:22", "bind:[::1]:22"} {
		if _, err := ParseBindRule(bad); err == nil {
			t.Errorf("ParseBindRule(%q) accepted", bad)
		}
	}
}

func FuzzParseBindRule(f *testing.F) {
	for _, s := range []string{"*", "bind:*", "bind:a.example.com", "bind:*.example.com", "bind:h:1", "bind:", "x"} {
		f.Add(s, "a.example.com")
	}
	f.Fuzz(func(t *testing.T, rule, target string) {
		norm, err := ParseBindRule(rule)
		if err != nil {
			return
		}
		again, err := ParseBindRule(norm)
		if err != nil || again != norm {
			t.Fatalf("normalised rule %q does not parse to itself: %q %v", norm, again, err)
		}
		_ = BindAllowed([]string{norm}, strings.ToLower(target)) // must not panic
	})
}

func TestMinTLSVersion(t *testing.T) {
	if v, err := MinTLSVersion("", tls.VersionTLS12, tls.VersionTLS12); err != nil || v != tls.VersionTLS12 {
		t.Fatal(v, err)
	}
	if v, err := MinTLSVersion("1.3", tls.VersionTLS12, tls.VersionTLS12); err != nil || v != tls.VersionTLS13 {
		t.Fatal(v, err)
	}
	if _, err := MinTLSVersion("1.1", tls.VersionTLS12, tls.VersionTLS12); err == nil {
		t.Fatal("1.1 accepted below a 1.2 floor")
	}
	if v, err := MinTLSVersion("1.0", tls.VersionTLS12, tls.VersionTLS10); err != nil || v != tls.VersionTLS10 {
		t.Fatal(v, err)
	}
	if _, err := MinTLSVersion("1.4", tls.VersionTLS12, tls.VersionTLS12); err == nil {
		t.Fatal("1.4 accepted")
	}
}
