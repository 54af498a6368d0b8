package tunnel

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/tollgate/tollgate/internal/jsonenc"
)

// Size bounds of the decoders.
const (
	// MaxProxyHeaderBytes bounds the JSON of a ProxyHeader.
	MaxProxyHeaderBytes = 64 << 10
	// DefaultMaxRPCBytes bounds one RPC message unless configured otherwise.
	DefaultMaxRPCBytes = 1 << 20
)

// AppendStreamType appends t as 4 big-endian bytes.
func AppendStreamType(b []byte, t StreamType) []byte {
	return binary.BigEndian.AppendUint32(b, uint32(t))
}

// WriteStreamType writes t as 4 big-endian bytes.
func WriteStreamType(w io.Writer, t StreamType) error {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(t))
	_, err := w.Write(b[:])
	return err
}

// ReadStreamType reads the 4 big-endian bytes that start a stream. A
// stream that ends first gives io.ErrUnexpectedEOF (or io.EOF when empty).
func ReadStreamType(r io.Reader) (StreamType, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return StreamType(binary.BigEndian.Uint32(b[:])), nil
}

// WriteRPC writes v as one JSON value followed by a newline, in one Write,
// as the Go SDK's json.Encoder does.
func WriteRPC(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %T: %w", v, err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// ReadRPC decodes one JSON value from r into v, reading at most max bytes
// (DefaultMaxRPCBytes when max <= 0); a larger message gives
// ErrMessageTooLarge. It may read past the value, which is fine on an RPC
// stream: nothing else follows a request or a response.
func ReadRPC(r io.Reader, v any, max int) error {
	if max <= 0 {
		max = DefaultMaxRPCBytes
	}
	lr := &boundedReader{r: r, n: int64(max)}
	if err := json.NewDecoder(lr).Decode(v); err != nil {
		if lr.over {
			return fmt.Errorf("decoding %T: %w (over %d bytes)", v, ErrMessageTooLarge, max)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("decoding %T: %w", v, err)
		}
		return fmt.Errorf("decoding %T: %w: %w", v, ErrMalformed, err)
	}
	return nil
}

// boundedReader reads at most n bytes and remembers whether the caller
// asked for more.
type boundedReader struct {
	r    io.Reader
	n    int64
	over bool
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		b.over = true
		return 0, ErrMessageTooLarge
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	return n, err
}

// AppendProxyHeader appends h as the proxy stream framing: an int64
// little-endian length, then the JSON (byte for byte what encoding/json
// produces, without its reflection and allocations).
func AppendProxyHeader(b []byte, h *ProxyHeader) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = appendProxyHeaderJSON(b, h)
	n := len(b) - start - 8
	if n > MaxProxyHeaderBytes {
		return b[:start], fmt.Errorf("encoding proxy header: %w", ErrMessageTooLarge)
	}
	binary.LittleEndian.PutUint64(b[start:], uint64(n))
	return b, nil
}

// appendProxyHeaderJSON appends h as JSON with ProxyHeader's keys.
func appendProxyHeaderJSON(b []byte, h *ProxyHeader) []byte {
	b = append(b, `{"Id":`...)
	b = jsonenc.AppendString(b, h.ID)
	b = append(b, `,"ClientAddr":`...)
	b = jsonenc.AppendString(b, h.ClientAddr)
	b = append(b, `,"Proto":`...)
	b = jsonenc.AppendString(b, h.Proto)
	b = append(b, `,"EdgeType":`...)
	b = jsonenc.AppendString(b, h.EdgeType)
	b = append(b, `,"PassthroughTLS":`...)
	b = strconv.AppendBool(b, h.PassthroughTLS)
	return append(b, '}')
}

// WriteProxyHeader writes h with AppendProxyHeader's framing in one Write.
func WriteProxyHeader(w io.Writer, h *ProxyHeader) error {
	b, err := AppendProxyHeader(make([]byte, 0, 192), h)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// headerBufPool holds buffers for ReadProxyHeader.
var headerBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// ReadProxyHeader reads a proxy stream's header: an int64 little-endian
// length (at most MaxProxyHeaderBytes, else ErrMessageTooLarge; negative is
// ErrMalformed) and exactly that many bytes of JSON. It never reads past
// the header, so the stream's raw bytes follow untouched.
func ReadProxyHeader(r io.Reader) (*ProxyHeader, error) {
	var lb [8]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return nil, fmt.Errorf("reading proxy header length: %w", err)
	}
	n := int64(binary.LittleEndian.Uint64(lb[:]))
	switch {
	case n < 0:
		return nil, fmt.Errorf("proxy header length %d: %w", n, ErrMalformed)
	case n > MaxProxyHeaderBytes:
		return nil, fmt.Errorf("proxy header length %d: %w", n, ErrMessageTooLarge)
	}
	bp := headerBufPool.Get().(*[]byte)
	defer headerBufPool.Put(bp)
	if int64(cap(*bp)) < n {
		*bp = make([]byte, n)
	}
	buf := (*bp)[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("reading proxy header: %w", err)
	}
	h := &ProxyHeader{}
	if parseProxyHeaderFast(buf, h) {
		return h, nil
	}
	*h = ProxyHeader{}
	if err := json.Unmarshal(buf, h); err != nil {
		return nil, fmt.Errorf("decoding proxy header: %w: %w", ErrMalformed, err)
	}
	return h, nil
}

// parseProxyHeaderFast decodes the canonical encoding (appendProxyHeaderJSON's
// key order, no escapes, valid UTF-8) without reflection. It returns false
// for anything else, and the caller falls back to encoding/json; where it
// returns true the result equals encoding/json's.
func parseProxyHeaderFast(b []byte, h *ProxyHeader) bool {
	fields := [...]struct {
		key string
		dst *string
	}{{`{"Id":`, &h.ID}, {`,"ClientAddr":`, &h.ClientAddr}, {`,"Proto":`, &h.Proto}, {`,"EdgeType":`, &h.EdgeType}}
	for _, f := range fields {
		if !bytes.HasPrefix(b, []byte(f.key)) {
			return false
		}
		b = b[len(f.key):]
		if len(b) == 0 || b[0] != '"' {
			return false
		}
		end := bytes.IndexByte(b[1:], '"')
		if end < 0 {
			return false
		}
		v := b[1 : 1+end]
		for _, c := range v {
			if c < 0x20 || c == '\\' {
				return false
			}
		}
		if !utf8.Valid(v) {
			return false
		}
		*f.dst = string(v)
		b = b[2+end:]
	}
	switch {
	case bytes.Equal(b, []byte(`,"PassthroughTLS":true}`)):
		h.PassthroughTLS = true
	case bytes.Equal(b, []byte(`,"PassthroughTLS":false}`)):
		h.PassthroughTLS = false
	default:
		return false
	}
	return true
}
