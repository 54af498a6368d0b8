package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeHostnameRefusesWildcards(t *testing.T) {
	if h, err := NormalizeHostname("*.example.com"); err == nil {
		t.Errorf("NormalizeHostname(wildcard) = %q, want an error", h)
	}
}

func TestNormalizeDomainPattern(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"app.example.com", "app.example.com", true},
		{"App.Example.COM", "app.example.com", true},
		{"app.example.com.", "app.example.com", true},
		{"*.example.com", "*.example.com", true},
		{"*.Example.com.", "*.example.com", true},
		{"bücher.example", "xn--bcher-kva.example", true},
		{"BÜCHER.example", "xn--bcher-kva.example", true},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", true},
		{"localhost", "localhost", true},
		{long63 + ".com", long63 + ".com", true},
		{"", "", false},
		{".", "", false},
		{"*.", "", false},
		{"*", "", false},
		{"a..b", "", false},
		{"-a.example", "", false},
		{"a-.example", "", false},
		{"a_b.example", "", false},
		{"a b.example", "", false},
		{" app.example.com", "", false},
		{"a.*.example", "", false},
		{"app.example.com..", "", false},
		{"xn--zz.example", "", false},
		{long63 + "a.com", "", false},
		{strings.Repeat("a.", 127) + "a", "", false},
	}
	for _, tt := range tests {
		got, err := NormalizeDomainPattern(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("NormalizeDomainPattern(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrHostname) {
			t.Errorf("NormalizeDomainPattern(%q) error %v does not wrap ErrHostname", tt.in, err)
		}
	}
}

func TestNormalizeHostPort(t *testing.T) {
	tests := []struct {
		in, host, port string
		ok             bool
	}{
		{"App.Example.com", "app.example.com", "", true},
		{"App.Example.com.:443", "app.example.com", "443", true},
		{"app.example.com:", "app.example.com", "", true},
		{"127.0.0.1:8080", "127.0.0.1", "8080", true},
		{"[::1]:8443", "::1", "8443", true},
		{"[::ffff:10.0.0.1]", "10.0.0.1", "", true},
		{"::1", "::1", "", true},
		{"app.example.com:0", "", "", false},
		{"app.example.com:65536", "", "", false},
		{"app.example.com:080", "", "", false},
		{"app.example.com:x", "", "", false},
		{"*.example.com", "", "", false},
		{"[fe80::1%eth0]:1", "", "", false},
		{"[::1", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		h, p, err := NormalizeHostPort(tt.in)
		if tt.ok != (err == nil) || h != tt.host || p != tt.port {
			t.Errorf("NormalizeHostPort(%q) = %q, %q, %v; want %q, %q, ok=%v", tt.in, h, p, err, tt.host, tt.port, tt.ok)
		}
	}
}

func TestNormalizeHostnameFastPathAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		if _, err := NormalizeHostname("app.tollgate.localhost"); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("normal name: %v allocs, want 0", n)
	}
}

// FuzzNormalizeHostname checks that the fast path and the IDNA path agree
// and that a result is a fixed point.
func FuzzNormalizeHostname(f *testing.F) {
	for _, s := range []string{"app.example.com", "A.B.", "*.x.y", "bücher.de", "xn--bcher-kva.de", "a..b", "-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeDomainPattern(s)
		if fast, ok := asciiNormal(s); ok {
			slow, serr := normalizeIDNA(s)
			if serr != nil || slow != fast {
				t.Fatalf("fast path gives %q for %q, IDNA path %q, %v", fast, s, slow, serr)
			}
		}
		if err != nil {
			return
		}
		again, err := NormalizeDomainPattern(got)
		if err != nil || again != got {
			t.Fatalf("NormalizeHostname(%q) = %q, but normalising that gives %q, %v", s, got, again, err)
		}
		if len(got) > MaxHostnameBytes || strings.ToLower(got) != got || strings.HasSuffix(got, ".") {
			t.Fatalf("NormalizeHostname(%q) = %q is not normal", s, got)
		}
	})
}

func BenchmarkNormalizeHostname(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = NormalizeHostname("app.tollgate.localhost")
	}
}
