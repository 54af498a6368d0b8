package httpproxy

import "bytes"

// Character classes of RFC 9110 §5.6.2 (token) and §5.5 (field-value).
var (
	tokenChar = func() (t [256]bool) {
		for c := '0'; c <= '9'; c++ {
			t[c] = true
		}
		for c := 'a'; c <= 'z'; c++ {
			t[c] = true
			t[c-'a'+'A'] = true
		}
		for _, c := range "!#$%&'*+-.^_`|~" {
			t[c] = true
		}
		return t
	}()
	// valueChar: HTAB, SP, VCHAR and obs-text; no other control character.
	valueChar = func() (t [256]bool) {
		t['\t'] = true
		for c := 0x20; c < 0x7f; c++ {
			t[c] = true
		}
		for c := 0x80; c < 0x100; c++ {
			t[c] = true
		}
		return t
	}()
	// hostChar: the characters this edge accepts in a reg-name host. Names
	// it routes are DNS names, so anything else is refused.
	hostChar = func() (t [256]bool) {
		for c := '0'; c <= '9'; c++ {
			t[c] = true
		}
		for c := 'a'; c <= 'z'; c++ {
			t[c] = true
			t[c-'a'+'A'] = true
		}
		t['-'], t['.'], t['_'] = true, true, true
		return t
	}()
)

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// equalFold reports whether b equals s ignoring ASCII case; s is lower case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// hasPrefixFold reports whether b starts with s ignoring ASCII case; s is
// lower case.
func hasPrefixFold(b []byte, s string) bool {
	return len(b) >= len(s) && equalFold(b[:len(s)], s)
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// nextToken splits a comma-separated list element off b (RFC 9110 §5.6.1),
// trimmed of optional whitespace.
func nextToken(b []byte) (tok, rest []byte) {
	if i := bytes.IndexByte(b, ','); i >= 0 {
		return trimOWS(b[:i]), b[i+1:]
	}
	return trimOWS(b), nil
}

// scanHead looks for the end of a message head in b. Bytes before from were
// scanned by an earlier call and hold no terminator. It returns the head's
// length including the final CRLF CRLF, or 0 if b holds no complete head
// yet. Every LF must follow a CR (RFC 9112 §2.2: a bare LF is refused).
func scanHead(b []byte, from int) (int, error) {
	i := from
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0, nil
		}
		k := i + j
		if k == 0 || b[k-1] != '\r' {
			return 0, errBareLF
		}
		if k >= 3 && b[k-2] == '\n' && b[k-3] == '\r' {
			return k + 1, nil
		}
		i = k + 1
	}
	return 0, nil
}

// splitHostPort validates a Host header value or an absolute-URI authority
// and returns its host part (as sent, not lower-cased). Accepted: a reg-name
// of hostChar characters or a bracketed IPv6 literal, then an optional
// ":port" of at most five digits. Userinfo and everything else is refused.
func splitHostPort(v []byte) ([]byte, bool) {
	if len(v) == 0 {
		return nil, false
	}
	var host, rest []byte
	if v[0] == '[' {
		j := bytes.IndexByte(v, ']')
		if j < 2 {
			return nil, false
		}
		for _, c := range v[1:j] {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
				return nil, false
			}
		}
		host, rest = v[:j+1], v[j+1:]
	} else {
		j := bytes.IndexByte(v, ':')
		if j < 0 {
			j = len(v)
		}
		host, rest = v[:j], v[j:]
		if len(host) == 0 {
			return nil, false
		}
		for _, c := range host {
			if !hostChar[c] {
				return nil, false
			}
		}
	}
	if len(rest) > 0 {
		if rest[0] != ':' || len(rest) > 6 {
			return nil, false
		}
		for _, c := range rest[1:] {
			if c < '0' || c > '9' {
				return nil, false
			}
		}
	}
	return host, true
}

// parseLength parses a Content-Length value: 1 to 18 decimal digits.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// fieldKind says what the relay does with a request header field.
type fieldKind uint8

const (
	fieldCopy          fieldKind = iota // forwarded as received
	fieldDrop                           // X-Forwarded-*, Forwarded: removed
	fieldConnection                     // Connection: forwarded, filtered if it names a dropped field
	fieldAuthorization                  // Authorization: forwarded unless a Gate strips it
)

// field locates one header line inside a head. Offsets are relative to the
// head's first byte; end is just past the line's CRLF.
type field struct {
	start, nameEnd, valStart, valEnd, end int32
	kind                                  fieldKind
}

// requestHead is a parsed request head. Its slices alias the parsed bytes.
type requestHead struct {
	method, target []byte
	minor          int // HTTP/1.minor: 0 or 1
	host           []byte
	hostName       []byte // Host without port
	absHostName    []byte // host of an absolute-form target, nil otherwise
	path           []byte // target to forward: origin-form, or what follows the authority of an absolute-form one
	absolute       bool
	contentLength  int64 // -1 when absent
	chunked        bool
	close          bool // the connection ends after this exchange
	upgrade        bool // Connection: upgrade with an Upgrade field (HTTP/1.1)
	isHead         bool
	acceptsHTML    bool
	connFilter     bool   // a Connection field names a dropped field
	auth           []byte // value of the first Authorization field; nil = none
	authCount      int    // number of Authorization fields
	fields         []field
}

// parseRequestHead parses b, one complete request head (request line through
// the empty line), strictly per RFC 9112, into h. It refuses what a lenient
// parser elsewhere on the path could read differently: bare CR or LF,
// obs-fold, whitespace before a field's colon, control characters, repeated
// or malformed Content-Length, Content-Length with Transfer-Encoding, any
// transfer coding but a single "chunked", a missing or repeated Host.
func parseRequestHead(b []byte, h *requestHead) error {
	fields := h.fields[:0]
	*h = requestHead{contentLength: -1, fields: fields}

	eol := bytes.IndexByte(b, '\n')
	if eol < 1 || b[eol-1] != '\r' {
		if eol < 0 {
			return errIncomplete
		}
		return errBareLF
	}
	line := b[:eol-1]
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return errRequestLine
	}
	h.method = line[:sp]
	for _, c := range h.method {
		if !tokenChar[c] {
			return errRequestLine
		}
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return errRequestLine
	}
	h.target = rest[:sp]
	for _, c := range h.target {
		if c <= ' ' || c == 0x7f {
			return errRequestLine
		}
	}
	switch v := rest[sp+1:]; {
	case string(v) == "HTTP/1.1":
		h.minor = 1
	case string(v) == "HTTP/1.0":
		h.minor = 0
	case len(v) == 8 && string(v[:5]) == "HTTP/" && v[5] >= '0' && v[5] <= '9' && v[6] == '.' && v[7] >= '0' && v[7] <= '9':
		return errVersion
	default:
		return errRequestLine
	}
	if string(h.method) == "CONNECT" {
		return errMethodConnect
	}
	h.isHead = string(h.method) == "HEAD"

	var hosts, lengths, tes int
	var connClose, connKeepAlive, connUpgrade, upgrade bool
	pos := eol + 1
	for {
		line, end, colon, err := headerLine(b, pos, errBareLF)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		name, raw := line[:colon], line[colon+1:]
		value := trimOWS(raw)
		vs := colon + 1 + (len(raw) - len(trimLeftOWS(raw)))
		f := field{
			start: int32(pos), nameEnd: int32(pos + colon),
			valStart: int32(pos + vs), valEnd: int32(pos + vs + len(value)),
			end: int32(end),
		}
		switch len(name) {
		case 4:
			if equalFold(name, "host") {
				hosts++
				if hosts > 1 {
					return errDupHost
				}
				hn, ok := splitHostPort(value)
				if !ok {
					return errBadHost
				}
				h.host, h.hostName = value, hn
			}
		case 6:
			if equalFold(name, "accept") {
				h.acceptsHTML = h.acceptsHTML || bytes.Contains(value, []byte("text/html"))
			}
		case 7:
			if equalFold(name, "upgrade") {
				upgrade = true
			}
		case 9:
			if equalFold(name, "forwarded") {
				f.kind = fieldDrop
			}
		case 10:
			if equalFold(name, "connection") {
				f.kind = fieldConnection
				for v := value; v != nil; {
					var tok []byte
					tok, v = nextToken(v)
					switch {
					case equalFold(tok, "close"):
						connClose = true
					case equalFold(tok, "keep-alive"):
						connKeepAlive = true
					case equalFold(tok, "upgrade"):
						connUpgrade = true
					case isDroppedName(tok):
						h.connFilter = true
					}
				}
			}
		case 13:
			if equalFold(name, "authorization") {
				f.kind = fieldAuthorization
				if h.authCount == 0 {
					h.auth = value
				}
				h.authCount++
			}
		case 14:
			if equalFold(name, "content-length") {
				lengths++
				if lengths > 1 {
					return errDupLength
				}
				n, ok := parseLength(value)
				if !ok {
					return errBadLength
				}
				h.contentLength = n
			}
		case 17:
			if equalFold(name, "transfer-encoding") {
				tes++
				if tes > 1 {
					return errDupTE
				}
				if !equalFold(value, "chunked") {
					if len(value) == 0 {
						return errFieldValue
					}
					return errTEUnsupported
				}
				h.chunked = true
			}
		}
		if f.kind == fieldCopy && isDroppedName(name) {
			f.kind = fieldDrop
		}
		fields = append(fields, f)
		pos = end
	}
	h.fields = fields

	if hosts == 0 {
		return errNoHost
	}
	if tes > 0 {
		if lengths > 0 {
			return errLengthAndTE
		}
		if h.minor == 0 {
			return errTEHTTP10
		}
	}
	if err := h.parseTarget(); err != nil {
		return err
	}
	if h.minor == 0 {
		h.close = !connKeepAlive
	} else {
		h.close = connClose
		h.upgrade = connUpgrade && upgrade
	}
	return nil
}

func trimLeftOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// isDroppedName reports whether a field name is one the edge removes from
// requests: Forwarded, every X-Forwarded-*, X-Real-IP, and any name with
// an underscore. The last two carry client addresses in some frameworks
// (X-Real-IP; X_Forwarded_For, which CGI-style servers and some frameworks
// read as X-Forwarded-For), so a client could forge what only the edge may
// say. Dropping names with underscores is Envoy's
// headers_with_underscores_action: DROP_HEADER.
func isDroppedName(name []byte) bool {
	if bytes.IndexByte(name, '_') >= 0 {
		return true
	}
	return hasPrefixFold(name, "x-forwarded-") || equalFold(name, "forwarded") || equalFold(name, "x-real-ip")
}

// parseTarget classifies the request target (RFC 9112 §3.2): origin-form,
// absolute-form (http or https, no userinfo) or asterisk-form for OPTIONS.
func (h *requestHead) parseTarget() error {
	t := h.target
	switch {
	case t[0] == '/':
		if !validEscapes(t) {
			return errTarget
		}
		h.path = t
	case len(t) == 1 && t[0] == '*':
		if string(h.method) != "OPTIONS" {
			return errTarget
		}
		h.path = t
	case hasPrefixFold(t, "http://") || hasPrefixFold(t, "https://"):
		auth := t[bytes.IndexByte(t, '/')+2:]
		// The authority ends at the path or the query: like net/http
		// (url.ParseRequestURI), a '#' there is part of it, and refused.
		end := len(auth)
		for i, c := range auth {
			if c == '/' || c == '?' {
				end = i
				break
			}
		}
		hn, ok := splitHostPort(auth[:end])
		if !ok || !validEscapes(auth[end:]) {
			return errTarget
		}
		h.absolute = true
		h.absHostName = hn
		h.path = auth[end:]
	default:
		return errTarget
	}
	return nil
}

// validEscapes reports whether every '%' in the path part of a request
// target (up to the first '?') starts a percent-encoded octet: two hex
// digits (RFC 3986 §2.1). net/http refuses a target that breaks this, so
// the edge does too rather than forward what a Go upstream reads as an
// error.
func validEscapes(t []byte) bool {
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		t = t[:i]
	}
	for i := bytes.IndexByte(t, '%'); i >= 0; i = bytes.IndexByte(t, '%') {
		if i+2 >= len(t) {
			return false
		}
		if _, ok := unhex(t[i+1]); !ok {
			return false
		}
		if _, ok := unhex(t[i+2]); !ok {
			return false
		}
		t = t[i+3:]
	}
	return true
}

// responseHead is what the relay needs of a response head: its status and
// how its body is framed.
type responseHead struct {
	minor         int
	status        int
	contentLength int64 // -1 when absent
	chunked       bool  // Transfer-Encoding: chunked
	close         bool  // the connection ends after this response
}

// parseResponseHead parses b, one complete response head, into h. It is as
// strict about syntax as parseRequestHead; of framing fields it accepts
// repeated Content-Length fields only when they are identical (RFC 9110
// §8.6 allows equal values; net/http wants the same text), and
// refuses a list in one field, Content-Length with Transfer-Encoding, and
// any Transfer-Encoding but a single "chunked".
func parseResponseHead(b []byte, h *responseHead) error {
	*h = responseHead{contentLength: -1}
	eol := bytes.IndexByte(b, '\n')
	if eol < 1 || b[eol-1] != '\r' {
		if eol < 0 {
			return errIncomplete
		}
		return errBareLF
	}
	line := b[:eol-1]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' {
		return errStatusLine
	}
	h.minor = int(line[7] - '0')
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return errStatusLine
		}
		h.status = h.status*10 + int(c-'0')
	}
	if h.status < 100 {
		return errStatusLine
	}
	if len(line) > 12 {
		if line[12] != ' ' {
			return errStatusLine
		}
		for _, c := range line[13:] {
			if !valueChar[c] {
				return errStatusLine
			}
		}
	}
	var te, keepAlive bool
	var clValue []byte
	pos := eol + 1
	for {
		line, end, colon, err := headerLine(b, pos, errFieldValue)
		if err != nil {
			return err
		}
		pos = end
		if len(line) == 0 {
			break
		}
		name, raw := line[:colon], line[colon+1:]
		value := trimOWS(raw)
		switch len(name) {
		case 10:
			if equalFold(name, "connection") {
				for v := value; v != nil; {
					var tok []byte
					tok, v = nextToken(v)
					switch {
					case equalFold(tok, "close"):
						h.close = true
					case equalFold(tok, "keep-alive"):
						keepAlive = true
					}
				}
			}
		case 14:
			if equalFold(name, "content-length") {
				n, ok := parseLength(value)
				if !ok {
					return errBadLength
				}
				// Repeats must be the same text, as net/http reads them
				// ("5" and "05" are refused).
				if h.contentLength >= 0 && !bytes.Equal(clValue, value) {
					return errDupLength
				}
				h.contentLength, clValue = n, value
			}
		case 17:
			if equalFold(name, "transfer-encoding") {
				// Like net/http's client, only a single "chunked" is read:
				// anything else could frame differently downstream.
				if te || !equalFold(value, "chunked") {
					return errTEUnsupported
				}
				te, h.chunked = true, true
			}
		}
	}
	if te && h.contentLength >= 0 {
		return errLengthAndTE
	}
	if h.minor == 0 && !keepAlive {
		h.close = true
	}
	return nil
}

// headerLine reads the header field line that starts at b[pos]: the line
// without its CRLF (empty for the blank line that ends the header block),
// the index just past it, and the index of the line's colon. It refuses a
// line not ended by CRLF (errBareLF), obs-fold (errObsFold), an empty or
// non-token field name (errFieldName) and a value with a character outside
// field-vchar: crlf for CR or LF, errFieldValue for others. errIncomplete
// means b holds no whole line yet.
func headerLine(b []byte, pos int, crlf error) (line []byte, end, colon int, err error) {
	j := bytes.IndexByte(b[pos:], '\n')
	if j < 0 {
		return nil, 0, 0, errIncomplete
	}
	end = pos + j + 1
	if j == 0 || b[end-2] != '\r' {
		return nil, 0, 0, errBareLF
	}
	line = b[pos : end-2]
	if len(line) == 0 {
		return line, end, 0, nil
	}
	if line[0] == ' ' || line[0] == '\t' {
		return nil, 0, 0, errObsFold
	}
	colon = bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, 0, 0, errFieldName
	}
	for _, c := range line[:colon] {
		if !tokenChar[c] {
			return nil, 0, 0, errFieldName
		}
	}
	for _, c := range line[colon+1:] {
		if !valueChar[c] {
			if c == '\r' || c == '\n' {
				return nil, 0, 0, crlf
			}
			return nil, 0, 0, errFieldValue
		}
	}
	return line, end, colon, nil
}
