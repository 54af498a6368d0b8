package store

import (
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

func TestParseACL(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
		ok   bool
	}{
		{nil, nil, true},
		{[]string{"*"}, []string{"*"}, true},
		{[]string{"bind:*"}, []string{"bind:*"}, true},
		{[]string{"bind:App.Example.COM", "bind:app.example.com"}, []string{"bind:app.example.com"}, true},
		{[]string{"bind:*.example.com"}, []string{"bind:*.example.com"}, true},
		{[]string{"bind:1.tcp.example.com:20002"}, []string{"bind:1.tcp.example.com:20002"}, true},
		{[]string{"bind:1.tcp.example.com:0"}, nil, false},
		{[]string{"bind:1.tcp.example.com:65536"}, nil, false},
		{[]string{"bind:"}, nil, false},
		{[]string{"bind:foo..bar"}, nil, false},
		{[]string{"bind:a.example.com\nbind:b.example.com"}, nil, false},
		{[]string{"bind:*.*.example.com"}, nil, false},
		{[]string{"connect:x"}, nil, false},
		{[]string{""}, nil, false},
		{[]string{"bind:-x.example.com"}, nil, false},
	} {
		got, err := ParseACL(tc.in)
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("ParseACL(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	many := make([]string, MaxACLRules+1)
	for i := range many {
		many[i] = "*"
	}
	if _, err := ParseACL(many); err == nil {
		t.Error("an ACL over the rule limit was accepted")
	}
}

// FuzzParseACL checks that whatever ParseACL accepts is normalised: parsing
// it again changes nothing, it survives the "\n"-joined storage form, and a
// rule for a concrete name allows that name.
func FuzzParseACL(f *testing.F) {
	for _, s := range []string{"*", "bind:*", "bind:App.example.com", "bind:*.example.com",
		"bind:1.tcp.example.com:20002", "bind:x\nbind:y", "bind:[::1]:80", "bind:a:b:c", "bind:é.example.com",
		"bind:*.", "bind:" + strings.Repeat("a.", 130)} {
		f.Add(s, "bind:other.example.com")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		out, err := ParseACL([]string{a, b})
		if err != nil {
			return
		}
		again, err := ParseACL(out)
		if err != nil || !slices.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", []string{a, b}, out, again, err)
		}
		if got := splitACL(joinACL(out)); !slices.Equal(got, out) {
			t.Fatalf("storage round trip: %q -> %q", out, got)
		}
		for _, r := range out {
			if r != strings.ToLower(r) || strings.ContainsAny(r, " \t\r\n") {
				t.Fatalf("rule %q is not normalised", r)
			}
			name, ok := strings.CutPrefix(r, "bind:")
			if ok && !strings.HasPrefix(name, "*") && !policy.BindAllowed([]string{r}, name) {
				t.Fatalf("rule %q does not allow its own name", r)
			}
		}
	})
}
