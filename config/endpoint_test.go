package config

import (
	"strings"
	"testing"
)

func TestParseEndpointURL(t *testing.T) {
	tests := []struct {
		proto, in       string
		wantProto, want string
		err             string
	}{
		{proto: "http", in: "", wantProto: "https", want: ""},
		{proto: "https", in: "", wantProto: "https", want: ""},
		{proto: "tcp", in: "", wantProto: "tcp", want: ""},
		{proto: "tls", in: "", wantProto: "tls", want: ""},
		{proto: "", in: "https://app.tollgate.localhost", wantProto: "https", want: "https://app.tollgate.localhost"},
		{proto: "", in: "HTTPS://App.Tollgate.Localhost/", wantProto: "https", want: "https://app.tollgate.localhost"},
		{proto: "http", in: "https://app.example.com:8443", wantProto: "https", want: "https://app.example.com:8443"},
		{proto: "http", in: "http://app.example.com", wantProto: "http", want: "http://app.example.com"},
		{proto: "http", in: "app.example.com", wantProto: "https", want: "https://app.example.com"},
		{proto: "http", in: "*.example.com", wantProto: "https", want: "https://*.example.com"},
		{proto: "http", in: "https://bücher.example", wantProto: "https", want: "https://xn--bcher-kva.example"},
		{proto: "tcp", in: "tcp://1.tcp.example.com:20002", wantProto: "tcp", want: "tcp://1.tcp.example.com:20002"},
		{proto: "", in: "tcp://192.0.2.1:20002", wantProto: "tcp", want: "tcp://192.0.2.1:20002"},
		{proto: "tcp", in: "1.tcp.example.com:20002", wantProto: "tcp", want: "tcp://1.tcp.example.com:20002"},
		{proto: "tls", in: "tls://app.example.com", wantProto: "tls", want: "tls://app.example.com"},
		{proto: "tls", in: "app.example.com:443", wantProto: "tls", want: "tls://app.example.com:443"},

		{proto: "", in: "", err: "proto"},
		{proto: "", in: "app.example.com", err: "no scheme"},
		{proto: "http", in: "tcp://a.example.com:1", err: "does not match proto http"},
		{proto: "tcp", in: "https://a.example.com", err: "does not match proto tcp"},
		{proto: "https", in: "http://a.example.com", err: "does not match proto https"},
		{proto: "tls", in: "tcp://a.example.com:1", err: "does not match"},
		{proto: "", in: "ftp://a.example.com", err: "unsupported scheme"},
		{proto: "http", in: "https://a.example.com/path", err: "path"},
		{proto: "http", in: "https://a.example.com?q", err: "path, query"},
		{proto: "http", in: "https://a.example.com#frag", err: "path, query"},
		{proto: "http", in: "https://u:p@a.example.com", err: "user info"},
		{proto: "http", in: "https://", err: "no host"},
		{proto: "http", in: "https://a.example.com:", err: "empty port"},
		{proto: "http", in: "https://a.example.com:0", err: "invalid port"},
		{proto: "http", in: "https://a.example.com:70000", err: "invalid port"},
		{proto: "tcp", in: "tcp://a.example.com", err: "no port"},
		{proto: "http", in: "https://192.0.2.1", err: "not an IP address"},
		{proto: "http", in: "https://-bad.example.com", err: "invalid host"},
		{proto: "http", in: "https://a_b.example.com", err: "invalid host"},
		{proto: "http", in: "https://a..example.com", err: "invalid host"},
		{proto: "tcp", in: "tcp://*.example.com:1", err: "wildcard"},
		{proto: "http", in: "https://[::1", err: "cannot be parsed"},
	}
	for _, tt := range tests {
		t.Run(tt.proto+"/"+tt.in, func(t *testing.T) {
			p, u, err := ParseEndpointURL(tt.proto, tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !isUsageError(err) {
					t.Fatalf("ParseEndpointURL(%q, %q) = %q, %q, %v; want usage error containing %q", tt.proto, tt.in, p, u, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEndpointURL(%q, %q): %v", tt.proto, tt.in, err)
			}
			if p != tt.wantProto || u != tt.want {
				t.Fatalf("ParseEndpointURL(%q, %q) = %q, %q; want %q, %q", tt.proto, tt.in, p, u, tt.wantProto, tt.want)
			}
		})
	}
}

func FuzzParseEndpointURL(f *testing.F) {
	for _, s := range []string{"https://a.example.com", "tcp://a:1", "tls://x", "a.b", "*.x.y", "https://[::1]:1", "http://%41"} {
		f.Add("", s)
		f.Add("http", s)
		f.Add("tcp", s)
	}
	f.Fuzz(func(t *testing.T, proto, s string) {
		p, u, err := ParseEndpointURL(proto, s)
		if err != nil || u == "" {
			return
		}
		// The normalised form is stable.
		p2, u2, err := ParseEndpointURL(p, u)
		if err != nil || p2 != p || u2 != u {
			t.Fatalf("normalised %q (proto %q) reparses as %q, %q, %v", u, p, p2, u2, err)
		}
	})
}

func TestEndpointValidate(t *testing.T) {
	ok := Endpoint{Name: "web", Upstream: "8080", Proto: "http"}
	tests := []struct {
		name string
		mut  func(*Endpoint)
		err  string
	}{
		{"ok", func(*Endpoint) {}, ""},
		{"no name", func(c *Endpoint) { c.Name = " " }, "needs a name"},
		{"bad proto", func(c *Endpoint) { c.Proto = "udp" }, `Endpoint "web": unknown proto`},
		{"bad upstream", func(c *Endpoint) { c.Upstream = "nope" }, `Endpoint "web": The upstream "nope" has no port`},
		{"min tls ok", func(c *Endpoint) { c.MinTLS = "1.3" }, ""},
		{"min tls bad", func(c *Endpoint) { c.MinTLS = "1.1" }, `Endpoint "web": the minimum TLS version "1.1" is not supported`},
		{"min tls tcp", func(c *Endpoint) { c.Proto = "tcp"; c.MinTLS = "1.2" }, "not tcp"},
		{"hsts ok", func(c *Endpoint) { c.HSTS = "max-age=31536000; includeSubDomains; preload" }, ""},
		{"hsts bad", func(c *Endpoint) { c.HSTS = "max-age=99999999999" }, `Endpoint "web": the HSTS value is not valid: invalid HSTS max-age`},
		{"hsts preload short", func(c *Endpoint) { c.HSTS = "max-age=600; includeSubDomains; preload" }, "preload requires"},
		{"hsts tls", func(c *Endpoint) { c.Proto = "tls"; c.HSTS = "max-age=60" }, "http endpoints only"},
		{"cidr ok", func(c *Endpoint) { c.CIDRAllow = []string{"10.0.0.0/8", "192.0.2.7"} }, ""},
		{"cidr bad", func(c *Endpoint) { c.CIDRDeny = []string{"10.0.0.0/33"} }, "cidr_deny"},
		{"basic auth bad", func(c *Endpoint) { c.BasicAuth = []string{"user-only"} }, "USER:PASSWORD"},
		{"basic auth tcp", func(c *Endpoint) { c.Proto = "tcp"; c.BasicAuth = []string{"u:p"} }, "http endpoints only"},
		{"crt on http", func(c *Endpoint) { c.TerminateCert, c.TerminateKey = "c.pem", "k.pem" }, "tls endpoints only"},
		{"crt without key", func(c *Endpoint) { c.Proto = "tls"; c.Upstream = "443"; c.TerminateCert = "c.pem" }, "both a certificate"},
		{"crt unreadable", func(c *Endpoint) {
			c.Proto, c.Upstream, c.TerminateCert, c.TerminateKey = "tls", "443", "/nonexistent/c.pem", "/nonexistent/k.pem"
		}, "could not be read"},
		{"command line no prefix", func(c *Endpoint) { c.Name = CommandLineEndpoint; c.Proto = "udp" }, "Unknown proto"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mut(&c)
			_, err := c.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !isUsageError(err) {
				t.Fatalf("validate = %v, want usage error containing %q", err, tt.err)
			}
			if strings.Contains(err.Error(), "p]") && strings.Contains(tt.name, "basic") {
				t.Fatalf("error echoes a password: %v", err)
			}
		})
	}
}
