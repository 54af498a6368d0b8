package policy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// MaxHostnameBytes is the longest hostname Tollgate accepts, in bytes of its
// ASCII form without a trailing dot (RFC 1035 §2.3.4: 255 octets on the
// wire, which is 253 characters written out).
const MaxHostnameBytes = 253

// ErrHostname matches (errors.Is) every error of NormalizeHostname and
// NormalizeHostPort, which are *HostnameError.
var ErrHostname = errors.New("invalid hostname")

// HostnameError is a hostname that NormalizeHostname or NormalizeHostPort
// refused. Reason is a plain clause that says what is wrong ("it is not
// valid IDNA"), for callers that compose their own message.
type HostnameError struct {
	Name   string // the input, truncated to 100 bytes
	Reason string
}

// Error returns "invalid hostname <name>: <reason>".
func (e *HostnameError) Error() string {
	return fmt.Sprintf("invalid hostname %q: %s", e.Name, e.Reason)
}

// Is reports whether target is ErrHostname.
func (e *HostnameError) Is(target error) bool { return target == ErrHostname }

// HostnameReason returns the Reason of the *HostnameError in err's chain,
// for messages that name the host themselves, or err's text when there is
// none.
func HostnameReason(err error) string {
	if herr, ok := errors.AsType[*HostnameError](err); ok {
		return herr.Reason
	}
	return err.Error()
}

func hostnameErr(name, reason string) error {
	return &HostnameError{Name: truncateName(name), Reason: reason}
}

// NormalizeHostname returns name in the one form in which Tollgate stores,
// binds, routes, matches ACLs against and requests certificates for a
// hostname: lower-case ASCII, internationalised labels as punycode (IDNA
// UTS #46 lookup rules, as browsers apply them), one trailing dot removed,
// letters, digits and '-' in labels of 1–63 bytes that neither start nor end
// with '-' (RFC 1123 §2.1), at most MaxHostnameBytes in all. It names one
// host: a wildcard is refused (NormalizeDomainPattern accepts one). The
// input is not trimmed of spaces: a space is an error.
//
// A name that is already in normal form is returned as it is, without
// allocating, so the function is cheap on the request path. Errors are
// *HostnameError.
func NormalizeHostname(name string) (string, error) {
	if strings.HasPrefix(name, "*.") {
		return "", hostnameErr(name, "it is a wildcard, not one host")
	}
	return NormalizeDomainPattern(name)
}

// NormalizeDomainPattern is NormalizeHostname that also accepts a wildcard:
// a leading "*." is kept and the rest normalised ("*.Example.COM." becomes
// "*.example.com"). Reservations, bind ACL rules and endpoint URLs use it;
// whether a wildcard is acceptable there is their rule.
func NormalizeDomainPattern(name string) (string, error) {
	if n, ok := asciiNormal(name); ok {
		return n, nil
	}
	return normalizeIDNA(name)
}

// normalizeIDNA is NormalizeHostname without the fast path.
func normalizeIDNA(name string) (string, error) {
	wild := ""
	rest := name
	if r, ok := strings.CutPrefix(rest, "*."); ok {
		wild, rest = "*.", r
	}
	rest = strings.TrimSuffix(rest, ".")
	if rest == "" {
		return "", hostnameErr(name, "the name is empty")
	}
	ascii, err := idna.Lookup.ToASCII(rest)
	if err != nil {
		return "", hostnameErr(name, "it is not a valid hostname (letters, digits and '-' in dot-separated labels)")
	}
	ascii = strings.ToLower(ascii)
	if again, err := idna.Lookup.ToASCII(ascii); err != nil || again != ascii {
		return "", hostnameErr(name, "it is not valid IDNA")
	}
	if reason := checkLDH(ascii); reason != "" {
		return "", hostnameErr(name, reason)
	}
	if len(wild)+len(ascii) > MaxHostnameBytes {
		return "", hostnameErr(name, fmt.Sprintf("it is longer than %d characters", MaxHostnameBytes))
	}
	return wild + ascii, nil
}

// NormalizeHostPort splits a Host header, URL authority or TLS SNI value
// into its host and port and normalises the host: an IP address in its
// canonical form (IPv4-mapped IPv6 folded to IPv4, IPv6 without brackets or
// zone), anything else as NormalizeHostname. port is "" when none was
// given; a port given must be decimal 1–65535. Wildcards are refused: a
// request names one host. Errors are *HostnameError.
func NormalizeHostPort(hostport string) (host, port string, err error) {
	host = hostport
	switch {
	case strings.HasPrefix(hostport, "["):
		if strings.HasSuffix(hostport, "]") {
			host = hostport[1 : len(hostport)-1]
			break
		}
		fallthrough
	case strings.Count(hostport, ":") == 1:
		h, p, serr := net.SplitHostPort(hostport)
		if serr != nil {
			return "", "", hostnameErr(hostport, "it is not HOST or HOST:PORT")
		}
		if p != "" { // RFC 3986 §3.2.3 allows an empty port: none given
			n, perr := strconv.Atoi(p)
			if perr != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
				return "", "", hostnameErr(hostport, "the port is not a number from 1 to 65535")
			}
		}
		host, port = h, p
	}
	if ip, perr := netip.ParseAddr(host); perr == nil {
		if ip.Zone() != "" {
			return "", "", hostnameErr(hostport, "an IPv6 zone is not allowed")
		}
		return ip.Unmap().String(), port, nil
	}
	host, err = NormalizeHostname(host)
	if err != nil {
		return "", "", err
	}
	return host, port, nil
}

// asciiNormal reports whether name is already normal (then returns it as
// is) or is normal but for ASCII upper case and one trailing dot (then
// returns the fixed copy). Anything else needs the IDNA path.
func asciiNormal(name string) (string, bool) {
	n := strings.TrimSuffix(name, ".")
	labels := strings.TrimPrefix(n, "*.")
	if len(labels) == 0 || len(n) > MaxHostnameBytes {
		return "", false
	}
	upper := false
	start := 0
	for i := 0; i <= len(labels); i++ {
		if i == len(labels) || labels[i] == '.' {
			l := labels[start:i]
			if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
				return "", false
			}
			// "??--" labels are reserved for encodings such as "xn--"
			// punycode (RFC 5891 §4.2.3.1): IDNA decides.
			if len(l) >= 4 && l[2] == '-' && l[3] == '-' {
				return "", false
			}
			start = i + 1
			continue
		}
		c := labels[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
		case c >= 'A' && c <= 'Z':
			upper = true
		default:
			return "", false
		}
	}
	if upper {
		n = strings.ToLower(n)
	}
	return n, true
}

// checkLDH checks an ASCII name's labels per RFC 1123 §2.1 and returns
// what is wrong, or "".
func checkLDH(ascii string) string {
	for _, label := range strings.Split(ascii, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "every label has 1 to 63 characters and neither starts nor ends with '-'"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "a label may hold only letters, digits and '-'"
			}
		}
	}
	return ""
}

// truncateName keeps error messages short when a client sends a huge name.
func truncateName(s string) string {
	const max = 100
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
