package certs

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestInBase(t *testing.T) {
	tests := []struct {
		base, name string
		want       bool
	}{
		{"example.test", "example.test", true},
		{"example.test", "EXAMPLE.test", true},
		{"Example.Test", "example.test", true},
		{"example.test", "*.example.test", true},
		{"example.test", "app.example.test", true},
		{"example.test", "App-1.Example.Test", true},
		{"example.test", "xn--bcher-kva.example.test", true},
		{"example.test", strings.Repeat("a", 63) + ".example.test", true},
		{"localhost", "app.localhost", true},

		{"example.test", strings.Repeat("a", 64) + ".example.test", false},
		{"example.test", "a.b.example.test", false},
		{"example.test", "*.*.example.test", false},
		{"example.test", "*.a.example.test", false},
		{"example.test", "a*.example.test", false},
		{"example.test", "xexample.test", false},
		{"example.test", ".example.test", false},
		{"example.test", "..example.test", false},
		{"example.test", "example.test.", false},
		{"example.test", "app.example.test.", false},
		{"example.test", "example.test.evil", false},
		{"example.test", "app.example.test.evil", false},
		{"example.test", "test", false},
		{"example.test", "", false},
		{"example.test", "-a.example.test", false},
		{"example.test", "a-.example.test", false},
		{"example.test", "a_b.example.test", false},
		{"example.test", "a b.example.test", false},
		{"example.test", "bücher.example.test", false},
		{"example.test", "app.\u212aexample.test", false}, // KELVIN SIGN folds to k under strings.EqualFold
		{"kexample.test", "\u212aexample.test", false},
		{"example.test", "app.example.test\x00", false},
		{"", "", false},
		{"", "app", false},
		{"*.example.test", "a.*.example.test", false},
		{"127.0.0.1", "127.0.0.1", false},
		{"0.1", "127.0.1", false},
		{"example.test.", "app.example.test", false}, // InBase takes a normalised base
	}
	for _, tt := range tests {
		if got := InBase(tt.base, tt.name); got != tt.want {
			t.Errorf("InBase(%q, %q) = %v, want %v", tt.base, tt.name, got, tt.want)
		}
	}
}

func TestValidHostname(t *testing.T) {
	for _, s := range []string{"a", "localhost", "a.b", "xn--bcher-kva.de", "a-b.c1", "1.a", "A.B.C"} {
		if !validHostname(s) {
			t.Errorf("validHostname(%q) = false", s)
		}
	}
	long := strings.Repeat(strings.Repeat("a", 62)+".", 4) + "a" // 253 bytes
	if !validHostname(long[:253]) {
		t.Errorf("253-byte name refused")
	}
	for _, s := range []string{"", ".", "a.", ".a", "a..b", "1.2.3.4", "123", "a.123", "a_b", "*.a", "é.a", "a b", long + "a"} {
		if validHostname(s) {
			t.Errorf("validHostname(%q) = true", s)
		}
	}
}

func TestLowerASCII(t *testing.T) {
	for in, want := range map[string]string{"": "", "abc": "abc", "ABC.d": "abc.d", "Ü.A": "Ü.a"} {
		if got := lowerASCII(in); got != want {
			t.Errorf("lowerASCII(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = lowerASCII("app.example.test") }); n != 0 {
		t.Errorf("lowerASCII of a lower-case name allocates %v times", n)
	}
}

var (
	refLabelRE  = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	refDigitsRE = regexp.MustCompile(`^[0-9]+$`)
)

// refHostname and refInBase restate the rules with strings.Split and a
// regular expression, as an independent oracle for the fuzzer.
func refHostname(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if !refLabelRE.MatchString(l) {
			return false
		}
	}
	return !refDigitsRE.MatchString(labels[len(labels)-1])
}

func refInBase(base, name string) bool {
	if !refHostname(base) || len(name) > 253 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return false
		}
	}
	b := strings.Split(strings.ToLower(base), ".")
	n := strings.Split(strings.ToLower(name), ".")
	switch len(n) - len(b) {
	case 0:
		return slices.Equal(n, b)
	case 1:
		return slices.Equal(n[1:], b) && (n[0] == "*" || refLabelRE.MatchString(n[0]))
	}
	return false
}

// FuzzInBase checks the certificate name rule against an independent
// oracle and its invariants: an accepted name is ASCII, ends with the base
// after a dot (or is the base), has at most one extra label, and the answer
// does not depend on ASCII case.
func FuzzInBase(f *testing.F) {
	for _, s := range [][2]string{
		{"example.test", "app.example.test"},
		{"example.test", "*.example.test"},
		{"example.test", "a.b.example.test"},
		{"example.test", "xexample.test"},
		{"localhost", "app.localhost"},
		{"example.test", "bücher.example.test"},
		{"kexample.test", "\u212aexample.test"},
		{"example.test", "example.test."},
		{"1.2", "1.1.2"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, base, name string) {
		got := InBase(base, name)
		if want := refInBase(base, name); got != want {
			t.Fatalf("InBase(%q, %q) = %v, oracle says %v", base, name, got, want)
		}
		if validHostname(name) != refHostname(name) {
			t.Fatalf("validHostname(%q) = %v, oracle disagrees", name, validHostname(name))
		}
		if got != InBase(strings.ToUpper(base), strings.ToUpper(name)) && isASCII(base+name) {
			t.Fatalf("InBase(%q, %q) depends on case", base, name)
		}
		if !got {
			return
		}
		ln, lb := strings.ToLower(name), strings.ToLower(base)
		if !isASCII(name) {
			t.Fatalf("accepted non-ASCII %q", name)
		}
		if ln != lb {
			prefix, ok := strings.CutSuffix(ln, "."+lb)
			if !ok || prefix == "" || strings.Contains(prefix, ".") {
				t.Fatalf("accepted %q under %q", name, base)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
