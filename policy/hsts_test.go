package policy

import (
	"errors"
	"testing"
)

func TestParseHSTS(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // canonical form; "" when err is set
		err  error
	}{
		{"max-age=31536000", "max-age=31536000", nil},
		{"max-age=0", "max-age=0", nil},
		{`MAX-AGE="600" ; includesubdomains`, "max-age=600; includeSubDomains", nil},
		{"includeSubDomains; max-age=63072000; preload;", "max-age=63072000; includeSubDomains; preload", nil},
		{" max-age = 10 ", "max-age=10", nil},
		{"max-age=31536000; includeSubDomains; preload", "max-age=31536000; includeSubDomains; preload", nil},
		{"", "", ErrHSTSMaxAge},
		{"includeSubDomains", "", ErrHSTSMaxAge},
		{"max-age", "", ErrHSTSMaxAge},
		{"max-age=", "", ErrHSTSMaxAge},
		{"max-age=-1", "", ErrHSTSMaxAge},
		{"max-age=1e6", "", ErrHSTSMaxAge},
		{"max-age=63072001", "", ErrHSTSMaxAge},
		{"max-age=99999999999999999999999999", "", ErrHSTSMaxAge},
		{"max-age=1; max-age=2", "", ErrHSTSSyntax},
		{"max-age=1; includeSubdomain", "", ErrHSTSSyntax},
		{"max-age=1; includeSubDomains=yes", "", ErrHSTSSyntax},
		{"max-age=31536000; preload", "", ErrHSTSPreload},
		{"max-age=31535999; includeSubDomains; preload", "", ErrHSTSPreload},
	} {
		h, err := ParseHSTS(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ParseHSTS(%q) = %+v, %v; want %v", tc.in, h, err, tc.err)
			}
			continue
		}
		if err != nil || h.String() != tc.want {
			t.Errorf("ParseHSTS(%q) = %q, %v; want %q", tc.in, h.String(), err, tc.want)
		}
	}
	if s, err := CanonicalHSTS("  "); s != "" || err != nil {
		t.Errorf(`CanonicalHSTS("  ") = %q, %v`, s, err)
	}
}

// FuzzParseHSTS: whatever parses has a canonical form that parses back to
// the same policy, within the limits.
func FuzzParseHSTS(f *testing.F) {
	for _, s := range []string{"max-age=31536000; includeSubDomains; preload", `max-age="5"`, "max-age=0;;", "preload", "max-age=1;x=y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHSTS(s)
		if err != nil {
			return
		}
		if h.Validate() != nil {
			t.Fatalf("%q parsed to an invalid %+v", s, h)
		}
		again, err := ParseHSTS(h.String())
		if err != nil || again != h {
			t.Fatalf("%q → %q → %+v, %v", s, h.String(), again, err)
		}
	})
}
