package policy

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func TestParseCIDR(t *testing.T) {
	ok := map[string]string{
		"10.0.0.0/8":          "10.0.0.0/8",
		" 192.168.1.0/24 ":    "192.168.1.0/24",
		"10.1.2.3":            "10.1.2.3/32",
		"0.0.0.0/0":           "0.0.0.0/0",
		"::/0":                "::/0",
		"2001:db8::/32":       "2001:db8::/32",
		"2001:db8::1":         "2001:db8::1/128",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"::ffff:10.1.2.3":     "10.1.2.3/32",
	}
	for in, want := range ok {
		p, err := ParseCIDR(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseCIDR(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	p, err := ParseCIDR("10.1.2.3/8")
	if !errors.Is(err, ErrCIDRNotNetwork) || !strings.Contains(err.Error(), "use 10.0.0.0/8") || p.String() != "10.0.0.0/8" {
		t.Errorf("host bits: got %v, %v; want ErrCIDRNotNetwork suggesting 10.0.0.0/8", p, err)
	}
	if _, err := ParseCIDR("2001:db8::1/32"); !errors.Is(err, ErrCIDRNotNetwork) || !strings.Contains(err.Error(), "2001:db8::/32") {
		t.Errorf("IPv6 host bits: %v", err)
	}
	for _, bad := range []string{"", "10.0.0.0/33", "10.0.0/8", "fe80::1%eth0", "example.com", "10.0.0.0/-1"} {
		if _, err := ParseCIDR(bad); err == nil {
			t.Errorf("ParseCIDR(%q) accepted", bad)
		} else if errors.Is(err, ErrCIDRNotNetwork) {
			t.Errorf("ParseCIDR(%q): %v is not a host-bits error", bad, err)
		}
	}
}

func rules(t *testing.T, specs ...string) []IPRule {
	t.Helper()
	var out []IPRule
	for _, s := range specs {
		action, cidr, _ := strings.Cut(s, " ")
		p, err := ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, IPRule{Prefix: p, Deny: action == "deny"})
	}
	return out
}

// The examples of docs/access-control.md#ip-policy-evaluation.
func TestIPMatcherSemantics(t *testing.T) {
	cases := []struct {
		name  string
		rules []string
		addr  string
		want  bool
	}{
		{"allow-only admits its range", []string{"allow 10.0.0.0/8"}, "10.9.9.9", true},
		{"allow-only denies the rest", []string{"allow 10.0.0.0/8"}, "11.0.0.1", false},
		{"deny-only admits nobody", []string{"deny 10.0.0.0/8"}, "11.0.0.1", false},
		{"empty admits nobody", nil, "10.0.0.1", false},
		{"deny inside allow", []string{"allow 10.0.0.0/8", "deny 10.1.2.3/32"}, "10.1.2.3", false},
		{"rest of allow", []string{"allow 10.0.0.0/8", "deny 10.1.2.3/32"}, "10.1.2.4", true},
		{"deny wins over more specific allow", []string{"deny 10.0.0.0/8", "allow 10.1.2.3/32"}, "10.1.2.3", false},
		{"mapped address counts as IPv4", []string{"allow 10.0.0.0/8"}, "::ffff:10.1.1.1", true},
		{"mapped address denied as IPv4", []string{"allow 0.0.0.0/0", "deny 10.0.0.0/8"}, "::ffff:10.1.1.1", false},
		{"IPv4 allow-all does not admit IPv6", []string{"allow 0.0.0.0/0"}, "2001:db8::1", false},
		{"IPv6 allow", []string{"allow 2001:db8::/32"}, "2001:db8:ffff::1", true},
		{"IPv6 outside", []string{"allow 2001:db8::/32"}, "2001:db9::1", false},
		{"IPv6 deny wins", []string{"allow ::/0", "deny 2001:db8::/48"}, "2001:db8:0:1::", false},
		{"IPv6 next /48 allowed", []string{"allow ::/0", "deny 2001:db8::/48"}, "2001:db8:1::", true},
		{"zone ignored", []string{"allow fe80::/10"}, "fe80::1%eth0", true},
		{"top of space", []string{"allow 255.255.255.255/32"}, "255.255.255.255", true},
		{"top of IPv6 space", []string{"allow ffff::/16", "deny ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
	}
	for _, c := range cases {
		m := CompileIPRules(rules(t, c.rules...))
		if got := m.Allowed(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("%s: Allowed(%s) = %v, want %v", c.name, c.addr, got, c.want)
		}
	}
	var nilM *IPMatcher
	if nilM.Allowed(netip.MustParseAddr("10.0.0.1")) || nilM.HasAllow() {
		t.Error("nil matcher admits")
	}
	if CompileIPRules(rules(t, "allow 10.0.0.0/8")).Allowed(netip.Addr{}) {
		t.Error("invalid address admitted")
	}
	if CompileIPRules(rules(t, "deny 10.0.0.0/8")).HasAllow() || !CompileIPRules(rules(t, "allow ::/0")).HasAllow() {
		t.Error("HasAllow wrong")
	}
}

// naive is the rule of docs/access-control.md#ip-policy-evaluation evaluated
// directly on the prefixes.
func naive(rs []IPRule, a netip.Addr) bool {
	a = a.Unmap()
	allowed := false
	for _, r := range rs {
		if r.Prefix.Contains(a) {
			if r.Deny {
				return false
			}
			allowed = true
		}
	}
	return allowed
}

func randomPrefix(r *rand.Rand, v6 bool) netip.Prefix {
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(4)) // a small alphabet, so prefixes overlap
		}
		b[0] = 0x20
		return netip.PrefixFrom(netip.AddrFrom16(b), r.IntN(129)).Masked()
	}
	b := [4]byte{10, byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(256))}
	return netip.PrefixFrom(netip.AddrFrom4(b), 8+r.IntN(25)).Masked()
}

func randomAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(4))
		}
		b[0] = 0x20
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(256))})
}

func TestIPMatcherAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		var rs []IPRule
		for range r.IntN(40) {
			rs = append(rs, IPRule{Prefix: randomPrefix(r, r.IntN(2) == 0), Deny: r.IntN(3) == 0})
		}
		m := CompileIPRules(rs)
		for range 200 {
			a := randomAddr(r, r.IntN(2) == 0)
			if a.Is4() && r.IntN(4) == 0 {
				a = netip.AddrFrom16(a.As16()) // mapped form
			}
			if got, want := m.Allowed(a), naive(rs, a); got != want {
				t.Fatalf("round %d: Allowed(%s) = %v, naive %v; rules %v", round, a, got, want, rs)
			}
		}
	}
}

func TestIPMatcherDoesNotAllocate(t *testing.T) {
	m := CompileIPRules(rules(t, "allow 10.0.0.0/8", "deny 10.1.0.0/16", "allow 2001:db8::/32"))
	a4, a6, mapped := netip.MustParseAddr("10.2.3.4"), netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("::ffff:10.2.3.4")
	if n := testing.AllocsPerRun(1000, func() {
		_ = m.Allowed(a4)
		_ = m.Allowed(a6)
		_ = m.Allowed(mapped)
	}); n != 0 {
		t.Fatalf("Allowed allocates %v times per call", n)
	}
}

// BenchmarkIPMatcher10k evaluates addresses against 10,000 rules (5,000 per
// family, a fifth of them deny), compiled once.
func BenchmarkIPMatcher10k(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	rs := make([]IPRule, 0, 10000)
	for i := range 10000 {
		var p netip.Prefix
		if i%2 == 0 {
			v := r.Uint32()
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 16+r.IntN(17)).Masked()
		} else {
			var a [16]byte
			for j := range a {
				a[j] = byte(r.UintN(256))
			}
			p = netip.PrefixFrom(netip.AddrFrom16(a), 32+r.IntN(97)).Masked()
		}
		rs = append(rs, IPRule{Prefix: p, Deny: i%5 == 0})
	}
	b.Run("compile", func(b *testing.B) {
		for b.Loop() {
			CompileIPRules(rs)
		}
	})
	m := CompileIPRules(rs)
	addrs := make([]netip.Addr, 1024)
	for i := range addrs {
		addrs[i] = rs[r.IntN(len(rs))].Prefix.Addr()
	}
	b.Run("allowed", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			_ = m.Allowed(addrs[i&1023])
			i++
		}
	})
}
