package controlplane

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/tollgate/tollgate/codes"
)

// maxForwardedHops bounds how many X-Forwarded-For entries ClientAddr reads
// from the right: more trusted proxies than this in a row is a
// misconfiguration, and the header's length is the client's choice.
const maxForwardedHops = 16

// ParseTrustedProxies parses the --trusted-proxies list: CIDR prefixes
// ("10.0.0.0/8", "2001:db8::/32") or single addresses ("192.0.2.7"),
// IPv4-mapped IPv6 folded to IPv4. An entry that is neither is refused with
// codes.ConfigInvalid.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, codes.NewError(codes.ConfigInvalid,
				"--trusted-proxies %q is not a CIDR prefix or an IP address: give e.g. 10.0.0.0/8, 2001:db8::/32 or 192.0.2.7.", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// peerAddr is the request's TCP peer address, IPv4-mapped IPv6 folded to
// IPv4 and any zone dropped; the zero Addr when RemoteAddr is not an IP (a
// test transport).
func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// trusted reports whether a is in one of the trusted proxies' prefixes.
func (cp *Core) trusted(a netip.Addr) bool {
	for _, p := range cp.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the address of the client that sent r, on which the API
// and the dashboard decide IP restrictions and failed-authentication
// limits. It is the TCP peer address (IPv4-mapped IPv6 folded to IPv4),
// unless that peer is one of Config.TrustedProxies: then it is the
// rightmost X-Forwarded-For entry that is not itself a trusted proxy (the
// entries proxies appended, read from the nearest hop outwards; the left
// part is whatever the client wrote and is never believed). A malformed
// entry stops the walk at the last trusted hop. Without trusted proxies,
// X-Forwarded-For is never read (docs/access-control.md: IP policy is
// decided on the TCP peer address). The zero Addr means RemoteAddr was
// not an IP.
func (cp *Core) ClientAddr(r *http.Request) netip.Addr {
	cur := peerAddr(r)
	if len(cp.cfg.TrustedProxies) == 0 || !cur.IsValid() || !cp.trusted(cur) {
		return cur
	}
	hops := 0
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		entries := strings.Split(values[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			e := strings.TrimSpace(entries[j])
			if e == "" {
				continue
			}
			if hops++; hops > maxForwardedHops {
				return cur
			}
			a, ok := parseForwardedAddr(e)
			if !ok {
				return cur
			}
			cur = a
			if !cp.trusted(a) {
				return a
			}
		}
	}
	return cur
}

// parseForwardedAddr parses one X-Forwarded-For entry: an IP address, or
// an address with a port ("192.0.2.1:4711", "[2001:db8::1]:4711"), as some
// proxies write it.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// ClientIP is ClientAddr as text, for logs, messages and the store; the
// raw RemoteAddr when that is not an IP.
func (cp *Core) ClientIP(r *http.Request) string {
	if a := cp.ClientAddr(r); a.IsValid() {
		return a.String()
	}
	return r.RemoteAddr
}
