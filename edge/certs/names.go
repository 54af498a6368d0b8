package certs

import "strings"

// maxNameLen is the longest DNS name in presentation form without the
// trailing dot (RFC 1035 §2.3.4: 255 octets on the wire).
const maxNameLen = 253

// InBase reports whether name is a name the edge may hold a certificate for
// under base without asking anyone: base itself, the wildcard "*."+base, or
// exactly one DNS label followed by "."+base. Both must be ASCII hostnames
// (IDNs as punycode A-labels, RFC 5890) without a trailing dot; comparison
// is ASCII case-insensitive. Deeper names ("a.b."+base), look-alikes
// ("x"+base, base+".evil"), empty labels, underscores and non-ASCII bytes
// are all false.
func InBase(base, name string) bool {
	if !validHostname(base) || len(name) > maxNameLen {
		return false
	}
	if equalFoldASCII(name, base) {
		return true
	}
	cut := len(name) - len(base) - 1 // index of the dot before base
	if cut < 1 || name[cut] != '.' || !equalFoldASCII(name[cut+1:], base) {
		return false
	}
	label := name[:cut]
	return label == "*" || validLabel(label)
}

// UnderBase reports whether the local CA may sign name for base: what
// InBase accepts, and also deeper names under base ("a.b."+base) and
// wildcards of them ("*.b."+base), which reserved domains under the base
// domain need (a reserved "*.ci."+base and the names one label under it;
// docs/wildcard-endpoints.md). A "*" is allowed only as the whole first
// label. Names outside base are false, as for InBase.
func UnderBase(base, name string) bool {
	if InBase(base, name) {
		return true
	}
	cut := len(name) - len(base) - 1
	if cut < 1 || len(name) > maxNameLen || name[cut] != '.' || !equalFoldASCII(name[cut+1:], base) {
		return false
	}
	labels := strings.TrimPrefix(name[:cut], "*.")
	for l := range strings.SplitSeq(labels, ".") {
		if !validLabel(l) {
			return false
		}
	}
	return true
}

// validHostname reports whether s is an ASCII DNS hostname: 1–253 bytes of
// dot-separated LDH labels (RFC 1123 §2.1), no trailing dot, and a last label
// that is not all digits, so no IPv4 literal passes (RFC 3696 §2).
func validHostname(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	last := s
	for {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			last = s
			break
		}
		if !validLabel(s[:i]) {
			return false
		}
		s = s[i+1:]
	}
	if !validLabel(last) {
		return false
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return true
		}
	}
	return false
}

// validLabel reports whether l is an LDH label: 1–63 letters, digits and
// hyphens, not starting or ending with a hyphen (RFC 1123 §2.1). Punycode
// labels ("xn--...") qualify; "_" does not (not allowed in certificates).
func validLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		default:
			return false
		}
	}
	return true
}

// equalFoldASCII is strings.EqualFold restricted to ASCII: unlike EqualFold
// it never folds a non-ASCII rune (such as U+212A KELVIN SIGN) onto a letter.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCIIByte(a[i]) != lowerASCIIByte(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCIIByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// lowerASCII returns s with ASCII letters lowered; it allocates only when s
// has an upper-case letter.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lowerASCIIByte(b[j])
			}
			return string(b)
		}
	}
	return s
}
