package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// IP policy evaluation (docs/access-control.md#ip-policy-evaluation): a source
// address is allowed only if it matches at least one allow rule and no deny
// rule. Deny wins regardless of prefix length; a rule set without allow rules
// (including an empty one) admits nobody. Only the TCP peer address counts;
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are folded to IPv4 before
// matching, so an IPv4 rule covers them.

// IPRule is one CIDR with its action, as an IP policy rule or an endpoint's
// --cidr-allow / --cidr-deny option carries it.
type IPRule struct {
	// Prefix is the network, canonical (its address is the network address).
	Prefix netip.Prefix
	// Deny is true for a deny rule, false for allow.
	Deny bool
}

// ErrCIDRNotNetwork is wrapped by ParseCIDR when the prefix's address has
// host bits set; the error message names the network address to use.
var ErrCIDRNotNetwork = errors.New("the CIDR is not written with its network address")

// ParseCIDR parses a rule's CIDR: "10.0.0.0/8", "2001:db8::/32", or a bare
// address meaning /32 or /128. IPv4-mapped IPv6 prefixes (::ffff:10.0.0.0/104)
// become IPv4 (10.0.0.0/8). A prefix with host bits set ("10.1.2.3/8") is
// refused with an error that wraps ErrCIDRNotNetwork and suggests the network
// ("use 10.0.0.0/8") and returns that network with it; anything unparsable
// gets a plain error. Zones are refused. A mapped prefix shorter than /96
// reaches beyond the mapped range and stays an IPv6 prefix.
func ParseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR: write an address and prefix length such as 10.0.0.0/8 or 2001:db8::/32", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR: write an address and prefix length such as 10.0.0.0/8 or 2001:db8::/32", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	p = unmapPrefix(p)
	if m := p.Masked(); m != p {
		return m, fmt.Errorf("%w: use %s instead of %s", ErrCIDRNotNetwork, m, s)
	}
	return p, nil
}

// IPMatcher decides whether a source address passes a compiled set of IP
// rules. Compile it once per snapshot with CompileIPRules; Allowed is safe for
// concurrent use and does not allocate. The zero value (and nil) admits
// nobody, as a rule set without allow rules does.
type IPMatcher struct {
	allow4, deny4 []range4
	allow6, deny6 []range6
}

type range4 struct{ lo, hi uint32 }

type u128 struct{ hi, lo uint64 }

type range6 struct{ lo, hi u128 }

// CompileIPRules builds the matcher for rules: the union of every policy's
// rules that apply to one surface or endpoint
// (docs/access-control.md#ip-policy-evaluation: the rules of
// several policies are unioned before evaluation). Overlapping and adjacent
// ranges are merged, so lookups are a binary search over disjoint intervals.
// Invalid prefixes (the zero Prefix) are skipped.
func CompileIPRules(rules []IPRule) *IPMatcher {
	m := &IPMatcher{}
	for _, r := range rules {
		if !r.Prefix.IsValid() {
			continue
		}
		p := unmapPrefix(r.Prefix.Masked())
		if p.Addr().Is4() {
			lo := binary.BigEndian.Uint32(p.Addr().AsSlice())
			hi := lo | uint32(uint64(1)<<(32-p.Bits())-1)
			if r.Deny {
				m.deny4 = append(m.deny4, range4{lo, hi})
			} else {
				m.allow4 = append(m.allow4, range4{lo, hi})
			}
			continue
		}
		lo := u128Of(p.Addr())
		hi := lo.orHostBits(p.Bits())
		if r.Deny {
			m.deny6 = append(m.deny6, range6{lo, hi})
		} else {
			m.allow6 = append(m.allow6, range6{lo, hi})
		}
	}
	m.allow4, m.deny4 = merge4(m.allow4), merge4(m.deny4)
	m.allow6, m.deny6 = merge6(m.allow6), merge6(m.deny6)
	return m
}

// HasAllow reports whether any allow rule was compiled. A rule set with
// deny rules only admits nobody; callers that take CIDR lists from users
// refuse such a list up front (docs/access-control.md#ip-policy-evaluation, the hosted platform's
// ERR_NGROK_393).
func (m *IPMatcher) HasAllow() bool {
	return m != nil && (len(m.allow4) > 0 || len(m.allow6) > 0)
}

// Allowed reports whether addr passes: it matches an allow rule and no deny
// rule. An invalid addr is refused. IPv4-mapped IPv6 counts as IPv4; zones
// are ignored.
func (m *IPMatcher) Allowed(addr netip.Addr) bool {
	if m == nil || !addr.IsValid() {
		return false
	}
	addr = addr.Unmap()
	if addr.Is4() {
		b := addr.As4()
		v := binary.BigEndian.Uint32(b[:])
		return in4(m.allow4, v) && !in4(m.deny4, v)
	}
	v := u128Of(addr)
	return in6(m.allow6, v) && !in6(m.deny6, v)
}

// unmapPrefix folds an IPv4-mapped IPv6 prefix of at least /96
// (::ffff:10.0.0.0/104) to the IPv4 prefix it covers (10.0.0.0/8). A shorter
// mapped prefix reaches beyond the mapped range and stays IPv6.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// u128Of returns a's 16-byte form as a number.
func u128Of(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func in4(rs []range4, v uint32) bool {
	// First range whose hi >= v; it contains v when its lo <= v.
	i, j := 0, len(rs)
	for i < j {
		h := int(uint(i+j) >> 1)
		if rs[h].hi < v {
			i = h + 1
		} else {
			j = h
		}
	}
	return i < len(rs) && rs[i].lo <= v
}

func in6(rs []range6, v u128) bool {
	i, j := 0, len(rs)
	for i < j {
		h := int(uint(i+j) >> 1)
		if rs[h].hi.less(v) {
			i = h + 1
		} else {
			j = h
		}
	}
	return i < len(rs) && !v.less(rs[i].lo)
}

func merge4(rs []range4) []range4 {
	if len(rs) < 2 {
		return rs
	}
	slices.SortFunc(rs, func(a, b range4) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if last.hi == ^uint32(0) || r.lo <= last.hi+1 {
			last.hi = max(last.hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

func merge6(rs []range6) []range6 {
	if len(rs) < 2 {
		return rs
	}
	slices.SortFunc(rs, func(a, b range6) int {
		switch {
		case a.lo.less(b.lo):
			return -1
		case b.lo.less(a.lo):
			return 1
		}
		return 0
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if last.hi.isMax() || !last.hi.addOne().less(r.lo) {
			if last.hi.less(r.hi) {
				last.hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a u128) isMax() bool { return a.hi == ^uint64(0) && a.lo == ^uint64(0) }

func (a u128) addOne() u128 {
	lo := a.lo + 1
	hi := a.hi
	if lo == 0 {
		hi++
	}
	return u128{hi, lo}
}

// orHostBits sets the 128-bits host part below a prefix of the given length.
func (a u128) orHostBits(bits int) u128 {
	switch {
	case bits >= 128:
		return a
	case bits >= 64:
		return u128{a.hi, a.lo | (^uint64(0) >> (bits - 64))}
	default:
		return u128{a.hi | (^uint64(0) >> bits), ^uint64(0)}
	}
}
