package policy

import (
	"crypto/tls"
	"fmt"
)

// ParseTLSVersion turns "1.0", "1.1", "1.2" or "1.3" into the crypto/tls
// constant. "" returns 0 (meaning: use the default).
func ParseTLSVersion(s string) (uint16, error) {
	switch s {
	case "":
		return 0, nil
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("unknown TLS version %q: use 1.0, 1.1, 1.2 or 1.3", s)
}

// MinTLSVersion decides an endpoint's minimum TLS version: the requested one
// ("" = def), which must not be below floor. All three are crypto/tls
// constants except requested, which is the user's string.
func MinTLSVersion(requested string, def, floor uint16) (uint16, error) {
	v, err := ParseTLSVersion(requested)
	if err != nil {
		return 0, err
	}
	if v == 0 {
		v = def
	}
	if v < floor {
		return 0, fmt.Errorf("minimum TLS version %s is below this edge's floor %s", requested, tls.VersionName(floor))
	}
	return v, nil
}
