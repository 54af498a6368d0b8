package events

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/codes"
)

// Egress is the rule for the addresses event deliveries may connect to:
// webhook URLs, NATS servers (and the servers a NATS cluster advertises),
// AWS endpoint and sts_endpoint overrides. API users choose these URLs, so
// without a rule they could make the control plane reach its own network
// (a metadata service, a database, an admin port) — server-side request
// forgery. By default an address is refused when it is forbidden (see
// Forbidden); Allow lists the ranges the operator admits anyway
// (--events-egress-allow). The zero Egress admits only public addresses.
//
// The rule is checked twice: when a destination is created or changed,
// against a host written as an IP literal (codes.EventEgressForbidden, a
// 400); and on every connection, against the IP actually dialled after
// name resolution, so a name that resolves (or later re-resolves: DNS
// rebinding) to a forbidden address is refused too.
type Egress struct {
	// Allow holds ranges admitted although forbidden.
	Allow []netip.Prefix
}

// LoopbackPrefixes are 127.0.0.0/8 and ::1/128: what `tollgated dev` and
// tests admit so that destinations on the same machine work.
var LoopbackPrefixes = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// ParseEgressAllow parses a list of CIDR ranges ("10.1.0.0/16") or single
// addresses ("192.0.2.7", taken as /32 or /128), as given to
// --events-egress-allow.
func ParseEgressAllow(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR range nor an IP address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Ranges Forbidden adds to netip's own classes.
var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")     // RFC 1122 "this network"
	sharedSpace = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598 carrier-grade NAT
	broadcast   = netip.MustParsePrefix("255.255.255.255/32")
	nat64       = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: embeds an IPv4 address
	siteLocal   = netip.MustParsePrefix("fec0::/10")    // RFC 3879, deprecated but routed in places
)

// Forbidden says why ip is not a public unicast address, or "" when it
// is. Forbidden are unspecified (0.0.0.0, ::) and "this network"
// (0.0.0.0/8), loopback (127.0.0.0/8, ::1), private (10/8, 172.16/12,
// 192.168/16, fc00::/7, RFC 1918 and 4193), shared (100.64.0.0/10, RFC
// 6598), link-local (169.254.0.0/16 — cloud metadata services such as
// 169.254.169.254 — and fe80::/10), site-local (fec0::/10), multicast and
// broadcast. An IPv4-mapped IPv6 address, or a NAT64 one (64:ff9b::/96),
// is judged by the IPv4 address it carries.
func Forbidden(ip netip.Addr) string {
	ip = ip.Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:16]))
	}
	switch {
	case !ip.IsValid() || ip.IsUnspecified() || thisNetwork.Contains(ip):
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast():
		return "link-local (cloud metadata)"
	case ip.IsPrivate() || sharedSpace.Contains(ip) || siteLocal.Contains(ip):
		return "private"
	case ip.IsMulticast() || broadcast.Contains(ip):
		return "multicast or broadcast"
	}
	return ""
}

// Check returns nil when ip may be connected to, else a
// codes.EventEgressForbidden error saying why.
func (e Egress) Check(ip netip.Addr) error {
	why := Forbidden(ip)
	if why == "" {
		return nil
	}
	ip = ip.Unmap()
	for _, p := range e.Allow {
		if p.Contains(ip) {
			return nil
		}
	}
	return codes.NewError(codes.EventEgressForbidden,
		"event delivery to %s is refused: it is a %s address; the control plane's operator can admit its range with --events-egress-allow.", ip, why)
}

// checkURLHost checks the host of a target URL when it is an IP literal
// (names are checked when dialled). field names the URL in the error.
func (e Egress) checkURLHost(field string, u *url.URL) error {
	ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]"))
	if err != nil {
		return nil
	}
	if err := e.Check(ip); err != nil {
		return codes.NewError(codes.EventEgressForbidden,
			"%s: %s is a %s address, to which this control plane does not deliver events; use a public address, or ask its operator to admit the range with --events-egress-allow.", field, ip.Unmap(), Forbidden(ip))
	}
	return nil
}

// control is a net.Dialer ControlContext that refuses forbidden addresses:
// it runs after name resolution, on the very address being connected to.
func (e Egress) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("event delivery: unexpected dial address %q", address)
	}
	return e.Check(ap.Addr())
}

// dialer returns a dialer that applies the rule to every connection.
func (e Egress) dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, ControlContext: e.control}
}
