package httpproxy

// Limits of the chunked-body scanner.
const (
	maxChunkLine    = 4096     // bytes of one chunk-size line (size, BWS, extensions)
	maxTrailerBytes = 64 << 10 // bytes of the trailer section
)

// chunk scanner states.
const (
	chSizeStart    uint8 = iota // first hex digit of a chunk size
	chSize                      // more hex digits, BWS, ';' or CR
	chSizeWS                    // BWS after the size: more BWS, ';' or CR
	chExt                       // chunk extension up to CR
	chSizeLF                    // LF ending the size line
	chData                      // chunk data
	chDataCR                    // CR after chunk data
	chDataLF                    // LF after chunk data
	chTrailerStart              // start of a trailer line, or CR of the final empty line
	chTrailerName               // trailer field name up to ':'
	chTrailerValue              // trailer field value up to CR
	chTrailerLF                 // LF ending a trailer line
	chEndLF                     // LF of the final empty line
	chDone
)

// chunkScanner validates a chunked body (RFC 9112 §7.1) as its bytes pass,
// without decoding it: the relay forwards the bytes as they are. It is
// strict: hex sizes without sign, prefix or leading whitespace, exact CRLFs,
// bounded extensions and trailers, trailer lines without obs-fold.
type chunkScanner struct {
	state   uint8
	digits  uint8
	lineLen int   // bytes of the current size line or trailer section
	remain  int64 // data bytes left in the current chunk; the size being read in chSize
	excess  int64 // size-line bytes beyond what data pays for, as net/http counts them
}

// maxChunkExcess bounds the bytes of chunk-size lines not paid for by data:
// each chunk may carry 16 bytes of overhead plus twice its data, and what
// remains above that must stay within 16 KiB. This is net/http's rule
// (net/http/internal chunkedReader), so what the edge forwards a Go
// upstream reads, and a sender cannot push unbounded metadata per byte.
const maxChunkExcess = 16 << 10

func unhex(c byte) (int64, bool) {
	switch {
	case '0' <= c && c <= '9':
		return int64(c - '0'), true
	case 'a' <= c && c <= 'f':
		return int64(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return int64(c-'A') + 10, true
	}
	return 0, false
}

// scan consumes a prefix of p. It returns how many bytes belong to the body
// (all of p unless the body ends inside it) and whether the body is complete.
// On error n is the length of the valid prefix, which may be forwarded.
func (s *chunkScanner) scan(p []byte) (n int, done bool, err error) {
	i := 0
	for i < len(p) {
		c := p[i]
		switch s.state {
		case chSizeStart:
			v, ok := unhex(c)
			if !ok {
				return i, false, errChunk
			}
			s.remain, s.digits, s.lineLen = v, 1, 1
			s.state = chSize
		case chSize:
			if v, ok := unhex(c); ok {
				s.digits++
				if s.digits > 15 {
					return i, false, errChunkTooLarge
				}
				s.remain = s.remain<<4 | v
				break
			}
			switch c {
			case ' ', '\t':
				s.state = chSizeWS
			case ';':
				s.state = chExt
			case '\r':
				s.state = chSizeLF
			default:
				return i, false, errChunk
			}
		case chSizeWS:
			// Only whitespace may trail the size: net/http trims it off the
			// end of the line, so "5 ;ext" is refused there, and here.
			switch c {
			case ' ', '\t':
			case '\r':
				s.state = chSizeLF
			default:
				return i, false, errChunk
			}
		case chExt:
			if c == '\r' {
				s.state = chSizeLF
			} else if !valueChar[c] {
				return i, false, errChunk
			}
		case chSizeLF:
			if c != '\n' {
				return i, false, errChunk
			}
			s.excess += int64(s.lineLen) + 1 - 16 - 2*s.remain
			if s.excess < 0 {
				s.excess = 0
			}
			if s.excess > maxChunkExcess {
				return i, false, errChunkTooLarge
			}
			if s.remain == 0 {
				s.state, s.lineLen = chTrailerStart, 0
			} else {
				s.state = chData
			}
		case chData:
			k := len(p) - i
			if int64(k) > s.remain {
				k = int(s.remain)
			}
			s.remain -= int64(k)
			i += k
			if s.remain == 0 {
				s.state = chDataCR
			}
			continue
		case chDataCR:
			if c != '\r' {
				return i, false, errChunk
			}
			s.state = chDataLF
		case chDataLF:
			if c != '\n' {
				return i, false, errChunk
			}
			s.state = chSizeStart
		case chTrailerStart:
			switch {
			case c == '\r':
				s.state = chEndLF
			case tokenChar[c]:
				s.state = chTrailerName
			default: // obs-fold, bare LF, junk
				return i, false, errChunk
			}
		case chTrailerName:
			if c == ':' {
				s.state = chTrailerValue
			} else if !tokenChar[c] {
				return i, false, errChunk
			}
		case chTrailerValue:
			if c == '\r' {
				s.state = chTrailerLF
			} else if !valueChar[c] {
				return i, false, errChunk
			}
		case chTrailerLF:
			if c != '\n' {
				return i, false, errChunk
			}
			s.state = chTrailerStart
		case chEndLF:
			if c != '\n' {
				return i, false, errChunk
			}
			s.state = chDone
			return i + 1, true, nil
		case chDone:
			return i, true, nil
		}
		i++
		switch s.state {
		case chSize, chSizeWS, chExt, chSizeLF:
			s.lineLen++
			if s.lineLen > maxChunkLine {
				return i, false, errChunkTooLarge
			}
		case chTrailerName, chTrailerValue, chTrailerLF, chTrailerStart, chEndLF:
			s.lineLen++
			if s.lineLen > maxTrailerBytes {
				return i, false, errTrailerTooLong
			}
		}
	}
	return i, s.state == chDone, nil
}

// body framings.
const (
	frameNone    uint8 = iota // no body
	frameLength               // Content-Length bytes
	frameChunked              // chunked
	frameClose                // until the sender closes (responses only)
)

// bodyFramer tracks where one message body ends.
type bodyFramer struct {
	kind   uint8
	remain int64
	chunks chunkScanner
}

func (f *bodyFramer) setLength(n int64) {
	if n == 0 {
		f.kind = frameNone
		return
	}
	f.kind, f.remain = frameLength, n
}

func (f *bodyFramer) setChunked() {
	f.kind = frameChunked
	f.chunks = chunkScanner{}
}

// consume reports how many bytes of p belong to the body and whether the
// body ended within them. See chunkScanner.scan for errors.
func (f *bodyFramer) consume(p []byte) (int, bool, error) {
	switch f.kind {
	case frameLength:
		n := len(p)
		if int64(n) >= f.remain {
			n = int(f.remain)
		}
		f.remain -= int64(n)
		return n, f.remain == 0, nil
	case frameChunked:
		return f.chunks.scan(p)
	case frameClose:
		return len(p), false, nil
	}
	return 0, true, nil
}
