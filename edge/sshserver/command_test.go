package sshserver

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/tunnel"
)

func TestParseSSHCommand(t *testing.T) {
	cases := []struct {
		line string
		want *command
		code codes.Code
	}{
		{"http", &command{proto: "http"}, ""},
		{"HTTPS", &command{proto: "http"}, ""},
		{"tcp --proxy-proto 2", &command{proto: "tcp", proxyProto: 2}, ""},
		{"tls --url=tls://a.example.com", &command{proto: "tls", url: "tls://a.example.com"}, ""},
		{`http --url https://a.b --basic-auth 'al ice:pa"ss' --cidr-allow 10.1.2.3/8 --cidr-deny 192.0.2.1`,
			&command{proto: "http", url: "https://a.b", basicAuth: []string{`al ice:pa"ss`}, cidrAllow: []string{"10.0.0.0/8"}, cidrDeny: []string{"192.0.2.1/32"}}, ""},
		{"help", &command{help: true}, ""},
		{"http --help", &command{proto: "http", help: true}, ""},
		{"", nil, codes.BindProto},
		{"ftp", nil, codes.BindProto},
		{"http --url", nil, codes.BindOption},
		{"http extra", nil, codes.BindOption},
		{"http --nope 1", nil, codes.BindOption},
		{"http --basic-auth nopass", nil, codes.BindOption},
		{"tcp --basic-auth a:b", nil, codes.BindOption},
		{"http --proxy-proto 1", nil, codes.BindOption},
		{"tcp --proxy-proto 3", nil, codes.BindOption},
		{"tcp --cidr-allow banana", nil, codes.BindOption},
		{"http --url 'unterminated", nil, codes.BindOption},
	}
	for _, tc := range cases {
		t.Run(tc.line, func(t *testing.T) {
			got, err := parseCommand(tc.line)
			if tc.code != "" {
				if err == nil || err.Code != tc.code {
					t.Fatalf("err = %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestSplitWords(t *testing.T) {
	cases := map[string][]string{
		`a b  c`:            {"a", "b", "c"},
		`a 'b c' "d e"`:     {"a", "b c", "d e"},
		`a\ b "x\"y" 'p\q'`: {"a b", `x"y`, `p\q`},
		`''`:                {""},
		`   `:               nil,
	}
	for in, want := range cases {
		got, err := splitWords(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestNormalizeSSHBindAddr(t *testing.T) {
	const base = "tollgate.localhost"
	cases := []struct {
		in, want string
		bad      bool
	}{
		{"", "", false},
		{"localhost", "", false},
		{"LOCALHOST", "", false},
		{"0.0.0.0", "", false},
		{"*", "", false},
		{"::", "", false},
		{"[::1]", "", false},
		{"127.0.0.2", "", false},
		{"app", "app.tollgate.localhost", false},
		{"App.Example.COM.", "app.example.com", false},
		{"bücher.example.com", "xn--bcher-kva.example.com", false},
		// A wildcard name is kept; the edge decides whether it may be bound.
		{"*.Example.com", "*.example.com", false},
		{"'*.ci.tollgate.localhost.'", "", true},
		{"203.0.113.9", "", true},
		{"a b", "", true},
	}
	for _, tc := range cases {
		got, err := normalizeBindAddr(tc.in, base)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("normalizeBindAddr(%q) = %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestSSHBindRequest(t *testing.T) {
	const tcpHost = "tcp.example"
	cases := []struct {
		cmd     command
		name    string
		port    uint32
		proto   string
		wantURL string
		code    codes.Code
	}{
		{command{proto: "http"}, "", 443, "https", "", ""},
		{command{proto: "http"}, "app.tollgate.localhost", 80, "https", "https://app.tollgate.localhost", ""},
		{command{proto: "http", url: "https://APP.tollgate.localhost"}, "app.tollgate.localhost", 443, "https", "https://APP.tollgate.localhost", ""},
		{command{proto: "http", url: "https://b.tollgate.localhost"}, "app.tollgate.localhost", 443, "", "", codes.BindURL},
		{command{proto: "http"}, "", 8080, "", "", codes.BindURL},
		{command{proto: "http"}, "*.example.com", 443, "https", "https://*.example.com", ""},
		{command{proto: "http", url: "https://*.Example.com"}, "*.example.com", 443, "https", "https://*.Example.com", ""},
		{command{proto: "http", url: "https://app.example.com"}, "*.example.com", 443, "", "", codes.BindURL},
		{command{proto: "tls"}, "*.example.com", 443, "tls", "tls://*.example.com", ""},
		{command{proto: "tls"}, "", 0, "tls", "", ""},
		{command{proto: "tls"}, "", 80, "", "", codes.BindURL},
		{command{proto: "tcp"}, "", 0, "tcp", "", ""},
		{command{proto: "tcp"}, "", 20002, "tcp", "tcp://tcp.example:20002", ""},
		{command{proto: "tcp"}, "x.example", 0, "", "", codes.BindURL},
	}
	for _, tc := range cases {
		req, err := tc.cmd.bindRequest(tc.name, tc.port, tcpHost)
		if tc.code != "" {
			if err == nil || err.Code != tc.code {
				t.Errorf("%+v %q %d: err = %v, want %s", tc.cmd, tc.name, tc.port, err, tc.code)
			}
			continue
		}
		if err != nil || req.Proto != tc.proto {
			t.Errorf("%+v: %+v, %v", tc.cmd, req, err)
			continue
		}
		var o struct{ URL string }
		_ = json.Unmarshal(req.Opts, &o)
		if o.URL != tc.wantURL {
			t.Errorf("%+v %q %d: URL %q, want %q", tc.cmd, tc.name, tc.port, o.URL, tc.wantURL)
		}
	}
	// Options reach the decoders the agent path uses.
	cmd := command{proto: "http", basicAuth: []string{"u:p:q"}, cidrAllow: []string{"10.0.0.0/8"}}
	req, err := cmd.bindRequest("", 443, tcpHost)
	if err != nil {
		t.Fatal(err)
	}
	o, derr := tunnel.DecodeHTTPOptions(req.Opts)
	if derr != nil || len(o.Unsupported) > 0 || o.BasicAuth == nil || o.BasicAuth.Credentials[0].Username != "u" ||
		o.BasicAuth.Credentials[0].CleartextPassword != "p:q" || o.IPRestriction == nil || o.IPRestriction.AllowCIDRs[0] != "10.0.0.0/8" {
		t.Fatalf("decoded %+v, %v", o, derr)
	}
}

// FuzzParseSSHCommand: the command parser never panics, and what it
// accepts has a known proto or is a help request.
func FuzzParseSSHCommand(f *testing.F) {
	for _, s := range []string{"http", "tcp --proxy-proto 1", `http --basic-auth 'a:b' --url="https://x"`, `tls "\`, "help"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := parseCommand(line)
		if err != nil {
			return
		}
		if !c.help && c.proto != "http" && c.proto != "tcp" && c.proto != "tls" {
			t.Fatalf("accepted %q with proto %q", line, c.proto)
		}
	})
}
