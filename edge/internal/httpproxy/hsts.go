package httpproxy

import (
	"crypto/tls"
	"net"
)

// HSTSPolicy is implemented by an Endpoint whose HTTPS responses carry
// the edge's Strict-Transport-Security field (RFC 6797) instead of the
// upstream's. An Endpoint that does not implement it, or returns "",
// passes the upstream's field, if any, as it is.
type HSTSPolicy interface {
	// HSTS returns the Strict-Transport-Security value for the
	// endpoint's responses now ("max-age=31536000; includeSubDomains"),
	// or "" to leave the upstream's. It is called once per request; it
	// must be fast, safe for concurrent use, and must not block.
	HSTS() string
}

// hstsHeader is the field name, in the form net/http keys it; hstsLower
// is the form equalFold compares with.
const (
	hstsHeader = "Strict-Transport-Security"
	hstsLower  = "strict-transport-security"
)

// hstsOf returns the Strict-Transport-Security value the edge sets on
// responses from ep over c: "" when ep sets none, and always "" over a
// connection that is not TLS, where the field must not be sent (RFC 6797
// §7.2).
func hstsOf(ep Endpoint, c net.Conn) string {
	hp, ok := ep.(HSTSPolicy)
	if !ok {
		return ""
	}
	if _, secure := c.(*tls.Conn); !secure {
		return ""
	}
	return hp.HSTS()
}

// appendHSTSHead appends head, a complete response head already validated
// by parseResponseHead, without its final empty line, with every
// Strict-Transport-Security field of the upstream left out and the edge's
// added last. The caller then sends the empty line that ends the head.
func appendHSTSHead(dst, head []byte, sts string) []byte {
	pos := 0
	for i, c := range head {
		if c == '\n' {
			pos = i + 1
			break
		}
	}
	dst = append(dst, head[:pos]...)
	for pos < len(head) {
		line, end, colon, err := headerLine(head, pos, errFieldValue)
		if err != nil || len(line) == 0 {
			break
		}
		if colon != len(hstsHeader) || !equalFold(line[:colon], hstsLower) {
			dst = append(dst, head[pos:end]...)
		}
		pos = end
	}
	dst = append(dst, hstsHeader...)
	dst = append(dst, ": "...)
	dst = append(dst, sts...)
	return append(dst, "\r\n"...)
}
