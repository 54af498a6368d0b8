package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
)

func TestParseUpstream(t *testing.T) {
	tests := []struct {
		kind, in string
		want     Upstream
		str      string
		err      string // substring of the error; "" = success
	}{
		{kind: "http", in: "8080", want: Upstream{"http", "localhost", "8080"}, str: "http://localhost:8080"},
		{kind: "https", in: " 8080 ", want: Upstream{"http", "localhost", "8080"}, str: "http://localhost:8080"},
		{kind: "tcp", in: "22", want: Upstream{"tcp", "localhost", "22"}, str: "localhost:22"},
		{kind: "tls", in: "443", want: Upstream{"tcp", "localhost", "443"}, str: "localhost:443"},
		{kind: "http", in: "example.internal:3000", want: Upstream{"http", "example.internal", "3000"}, str: "http://example.internal:3000"},
		{kind: "http", in: ":3000", want: Upstream{"http", "localhost", "3000"}, str: "http://localhost:3000"},
		{kind: "http", in: "[::1]:8080", want: Upstream{"http", "::1", "8080"}, str: "http://[::1]:8080"},
		{kind: "http", in: "127.0.0.1:8080", want: Upstream{"http", "127.0.0.1", "8080"}, str: "http://127.0.0.1:8080"},
		{kind: "http", in: "my_service:80", want: Upstream{"http", "my_service", "80"}, str: "http://my_service:80"},
		{kind: "http", in: "http://localhost", want: Upstream{"http", "localhost", "80"}, str: "http://localhost:80"},
		{kind: "http", in: "https://localhost", want: Upstream{"https", "localhost", "443"}, str: "https://localhost:443"},
		{kind: "http", in: "HTTPS://app.local:8443/", want: Upstream{"https", "app.local", "8443"}, str: "https://app.local:8443"},
		{kind: "tcp", in: "tcp://db.local:5432", want: Upstream{"tcp", "db.local", "5432"}, str: "db.local:5432"},

		{kind: "http", in: "", err: "upstream is missing"},
		{kind: "http", in: "0", err: "not valid"},
		{kind: "http", in: "65536", err: "not valid"},
		{kind: "http", in: "99999999999999999999", err: "not valid"},
		{kind: "http", in: "localhost", err: "has no port"},
		{kind: "http", in: "localhost:http", err: "invalid port"},
		{kind: "http", in: "localhost:0", err: "invalid port"},
		{kind: "http", in: "bad host:80", err: "invalid host"},
		{kind: "http", in: "http://localhost:8080/api", err: "must not have a path"},
		{kind: "http", in: "http://localhost:8080?x=1", err: "must not have a path"},
		{kind: "http", in: "http://user:pw@localhost:8080", err: "user info"},
		{kind: "http", in: "ftp://localhost:21", err: "must be a port"},
		{kind: "http", in: "tcp://localhost:21", err: "must be a port"},
		{kind: "tcp", in: "http://localhost:80", err: "tcp://HOST:PORT"},
		{kind: "tcp", in: "tcp://localhost", err: "has no port"},
		{kind: "http", in: "http://:8080", err: "has no host"},
		{kind: "http", in: "http://localhost:99999", err: "invalid port"},
		{kind: "http", in: "http://[::1", err: "cannot be parsed"},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.in, func(t *testing.T) {
			got, err := ParseUpstream(tt.kind, tt.in)
			if tt.err != "" {
				var ce *codes.Error
				if !errors.As(err, &ce) || ce.Code != codes.ConfigInvalid {
					t.Fatalf("ParseUpstream(%q) error = %v, want *codes.Error TG_9002", tt.in, err)
				}
				if !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseUpstream(%q) error = %q, want it to contain %q", tt.in, err, tt.err)
				}
				if !isUsageError(err) {
					t.Fatalf("isUsageError(%v) = false", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseUpstream(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseUpstream(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.str {
				t.Fatalf("String() = %q, want %q", got.String(), tt.str)
			}
		})
	}
}

func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{"8080", "localhost:80", "http://x:1", "https://[::1]:8443/", "tcp://a:2", "::::", "http://%zz"} {
		f.Add("http", s)
		f.Add("tcp", s)
	}
	f.Fuzz(func(t *testing.T, kind, s string) {
		u, err := ParseUpstream(kind, s)
		if err != nil {
			return
		}
		if u.Host == "" || checkPort(u.Port) != nil {
			t.Fatalf("ParseUpstream(%q, %q) = %+v: empty host or bad port", kind, s, u)
		}
		// The display form parses back to the same upstream.
		again, err := ParseUpstream(kind, u.String())
		if err != nil || again != u {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", u.String(), again, err, u)
		}
	})
}
