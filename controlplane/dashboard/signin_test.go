package dashboard

import (
	"strings"
	"testing"
)

// TestSafeNext: the post-sign-in redirect stays on the dashboard, whatever
// a browser's URL parser (WHATWG URL Standard) would make of it: it drops
// TAB/LF/CR anywhere and C0 controls and spaces at the ends, and reads
// "\" as "/", so each of the refused forms below would become
// "//evil.example" — another site — in a browser or a later hop.
func TestSafeNext(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/credentials", "/credentials"},
		{"/bot-users?page=2&x=a%20b", "/bot-users?page=2&x=a%20b"},
		{"/users/usr_2abc:x@y", "/users/usr_2abc:x@y"},
		{"credentials", "/"},
		{"https://evil.example/", "/"},
		{"javascript:alert(1)", "/"},
		{"//evil.example/", "/"},
		{"///evil.example/", "/"},
		{"/\\evil.example", "/"},
		{"\\/evil.example", "/"},
		{"/\t/evil.example", "/"}, // issue 12 §5: the TAB is dropped
		{"/\n/evil.example", "/"},
		{"/\r/evil.example", "/"},
		{"/\x00/evil.example", "/"},
		{"/\x0b/evil.example", "/"},
		{"/\x7f/evil.example", "/"},
		{" //evil.example", "/"},
		{"/ /evil.example", "/"},
		{"\t//evil.example", "/"},
		{"//\tevil.example", "/"},
		{"/%09/evil.example", "/"},
		{"/%0a/evil.example", "/"},
		{"/%2F/evil.example", "/"},
		{"/%2f%2fevil.example", "/"},
		{"/%5Cevil.example", "/"},
		{"/%5c%5cevil.example", "/"},
		{"/%zz", "/"},
		{"/x\r\nSet-Cookie: a=b", "/"},
		{"/credentials#top", "/"},
		{"/\u3002evil.example", "/"},
		{"/\uff0f\uff0fevil.example", "/"},
		{"/%E3%80%82", "/"},
		{"/" + strings.Repeat("a", maxNext), "/"},
	} {
		if got := safeNext(tc.in); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzSafeNext: whatever next is, what safeNext returns is a path of this
// origin by Go's URL parser after a browser's preprocessing (TAB/LF/CR
// removed, controls and spaces trimmed, "\" read as "/").
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/credentials", "/\t/evil.example", "/%2F/x", "//x", "/\\x", " /x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := safeNext(in)
		browser := strings.Map(func(r rune) rune {
			switch r {
			case '\t', '\n', '\r':
				return -1
			case '\\':
				return '/'
			}
			return r
		}, out)
		browser = strings.Trim(browser, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
		if !strings.HasPrefix(browser, "/") || strings.HasPrefix(browser, "//") {
			t.Fatalf("safeNext(%q) = %q, which a browser reads as %q", in, out, browser)
		}
		if out != "/" && out != in {
			t.Fatalf("safeNext(%q) = %q: neither the input nor /", in, out)
		}
	})
}
