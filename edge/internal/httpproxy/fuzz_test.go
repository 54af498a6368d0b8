package httpproxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
	"POST /x?y HTTP/1.1\r\nHost: app.test:443\r\nContent-Length: 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
	"GET http://a/b HTTP/1.1\r\nHost: a\r\nConnection: close, x-forwarded-for\r\nX-Forwarded-For: 1\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: [::1]:8080\r\nConnection: keep-alive\r\n\r\n",
	"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
}

// FuzzParseRequestHead checks that the request parser never panics, that
// what it accepts net/http also accepts, and that both agree on method,
// host and body framing: the edge and a Go upstream read the same request.
func FuzzParseRequestHead(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := scanHead(data, 0)
		if err != nil || n == 0 {
			return
		}
		head := data[:n]
		var h requestHead
		if err := parseRequestHead(head, &h); err != nil {
			return
		}
		for _, fl := range h.fields {
			if fl.start < 0 || fl.end > int32(len(head)) || fl.valStart > fl.valEnd || fl.nameEnd <= fl.start {
				t.Fatalf("field out of bounds: %+v", fl)
			}
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("accepted %q, net/http refuses: %v", head, err)
		}
		if req.Method != string(h.method) {
			t.Fatalf("method %q vs %q", req.Method, h.method)
		}
		host, _ := splitHostPort([]byte(req.Host))
		wantHost := h.hostName
		if h.absolute {
			wantHost = h.absHostName
		}
		if !strings.EqualFold(string(host), string(wantHost)) {
			t.Fatalf("host %q vs %q (%q)", req.Host, wantHost, head)
		}
		goChunked := len(req.TransferEncoding) > 0 && req.TransferEncoding[0] == "chunked"
		if goChunked != h.chunked {
			t.Fatalf("chunked %v vs %v", goChunked, h.chunked)
		}
		if !h.chunked && h.contentLength >= 0 && req.ContentLength != h.contentLength {
			t.Fatalf("length %d vs %d", req.ContentLength, h.contentLength)
		}
		// The forwarded head parses too, to the same request.
		hc := &h1conn{p: &Proxy{xfp: []byte("X-Forwarded-Proto: https\r\n")}, xff: []byte("X-Forwarded-For: 1.2.3.4\r\n"), req: h}
		out := hc.appendHead(nil, head)
		var h2 requestHead
		if err := parseRequestHead(out, &h2); err != nil {
			t.Fatalf("forwarded head %q refused: %v", out, err)
		}
		if h2.chunked != h.chunked || h2.contentLength != h.contentLength || !bytes.Equal(h2.host, h.host) {
			t.Fatalf("forwarded head %q differs", out)
		}
		fr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(out)))
		if err != nil {
			t.Fatalf("forwarded head %q: net/http: %v", out, err)
		}
		if v := fr.Header.Values("X-Forwarded-For"); len(v) != 1 || v[0] != "1.2.3.4" {
			t.Fatalf("forwarded head %q: X-Forwarded-For %q", out, v)
		}
		if len(fr.Header.Values("Forwarded")) != 0 {
			t.Fatalf("forwarded head %q keeps Forwarded", out)
		}
	})
}

// FuzzParseResponseHead checks that the response parser never panics and
// that what it accepts net/http reads with the same status and framing.
func FuzzParseResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.0 204 No Content\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		n, err := scanHead(data, 0)
		if err != nil || n == 0 {
			return
		}
		var h responseHead
		if err := parseResponseHead(data[:n], &h); err != nil {
			return
		}
		method := "GET"
		if head {
			method = "HEAD"
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data[:n])), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("accepted %q, net/http refuses: %v", data[:n], err)
		}
		if resp.StatusCode != h.status {
			t.Fatalf("status %d vs %d", resp.StatusCode, h.status)
		}
		if head || h.status < 200 || h.status == 204 || h.status == 304 {
			return
		}
		goChunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[len(resp.TransferEncoding)-1] == "chunked"
		if goChunked != h.chunked {
			t.Fatalf("chunked %v vs %v for %q", goChunked, h.chunked, data[:n])
		}
		if !h.chunked && h.contentLength >= 0 && resp.ContentLength != h.contentLength {
			t.Fatalf("length %d vs %d", resp.ContentLength, h.contentLength)
		}
	})
}

// FuzzChunkScanner checks that scanning is the same whatever the split of
// its input, and that a body it accepts net/http decodes.
func FuzzChunkScanner(f *testing.F) {
	for _, s := range []string{
		"0\r\n\r\n",
		"5\r\nhello\r\n0\r\n\r\n",
		"5;a=b\r\nhello\r\nA\r\n0123456789\r\n0\r\nX: y\r\n\r\nGET",
		"5\r\nhello\n0\r\n\r\n",
	} {
		f.Add([]byte(s), uint16(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		var whole chunkScanner
		n, done, err := whole.scan(data)
		if n > len(data) || done && err != nil {
			t.Fatalf("n=%d done=%v err=%v", n, done, err)
		}
		sp := int(split) % (len(data) + 1)
		var parts chunkScanner
		n1, done1, err1 := parts.scan(data[:sp])
		n2, done2, err2 := 0, done1, err1
		if !done1 && err1 == nil {
			n2, done2, err2 = parts.scan(data[sp:])
		}
		if n1+n2 != n || done2 != done || (err2 == nil) != (err == nil) {
			t.Fatalf("split %d: %d/%v/%v vs %d/%v/%v", sp, n1+n2, done2, err2, n, done, err)
		}
		if done {
			if _, err := io.Copy(io.Discard, httputil.NewChunkedReader(bytes.NewReader(data[:n]))); err != nil {
				t.Fatalf("accepted %q, net/http refuses: %v", data[:n], err)
			}
		}
	})
}

// FuzzH2WireFrames checks the wire's view of a client's frames against
// x/net/http2's Framer reading the same bytes: after any sequence of
// frames the Framer accepts, delivered in reads of any size, the wire has
// the same SETTINGS_INITIAL_WINDOW_SIZE, highest HEADERS stream ID and
// count of RST_STREAM frames. The input is a list of frames: type, flags,
// a stream ID byte, a length byte, then that many payload bytes; the
// first byte sets the size of the reads.
func FuzzH2WireFrames(f *testing.F) {
	var seed bytes.Buffer
	seed.WriteByte(7)
	for _, fr := range [][]byte{
		{h2FrameSettings, 0, 0, 12, 0, 3, 0, 0, 0, 100, 0, 4, 0, 1, 0, 0},
		{h2FrameHeaders, 0x5, 1, 1, 0x82},
		{h2FrameRSTStream, 0, 1, 4, 0, 0, 0, 8},
		{h2FrameSettings, 1, 0, 0},
		{h2FrameSettings, 0, 0, 6, 0, 4, 0, 0, 0x30, 0},
	} {
		seed.Write(fr)
	}
	f.Add(seed.Bytes())
	f.Add([]byte{1, h2FrameSettings, 0, 0, 6, 0, 4, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		step := int(in[0])%64 + 1
		var wire bytes.Buffer
		wire.WriteString(h2ClientPreface)
		w := http2.NewFramer(&wire, nil)
		for in = in[1:]; len(in) >= 4; {
			typ, flags, id, n := in[0]%10, in[1], uint32(in[2]%8), int(in[3])
			in = in[4:]
			n = min(n, len(in))
			w.WriteRawFrame(http2.FrameType(typ), http2.Flags(flags), id, in[:n])
			in = in[n:]
		}
		raw := wire.Bytes()

		// The reference: what the Framer accepts, up to its first error
		// (where net/http would end the connection).
		want := struct {
			window uint32
			lastID uint32
			resets int
		}{window: h2DefaultWindow}
		cr := &countingReader{r: bytes.NewReader(raw[len(h2ClientPreface):])}
		rf := http2.NewFramer(nil, cr)
		valid := len(h2ClientPreface)
		for {
			fr, err := rf.ReadFrame()
			if err != nil {
				break
			}
			valid = len(h2ClientPreface) + cr.n
			switch fr := fr.(type) {
			case *http2.SettingsFrame:
				if !fr.IsAck() {
					fr.ForeachSetting(func(s http2.Setting) error {
						if s.ID == http2.SettingInitialWindowSize {
							want.window = s.Val
						}
						return nil
					})
				}
			case *http2.HeadersFrame:
				want.lastID = max(want.lastID, fr.StreamID)
			case *http2.RSTStreamFrame:
				want.resets++
			}
		}

		hw := newH2Wire(readerConn{bytes.NewReader(raw[:valid])}, &h2conn{p: &Proxy{}}, 1<<30)
		buf := make([]byte, step)
		for read := 0; read < valid; {
			n, err := hw.Read(buf)
			if err != nil {
				t.Fatalf("after %d of %d bytes: %v", read, valid, err)
			}
			read += n
		}
		if got := hw.initialWindow.Load(); got != want.window {
			t.Errorf("initial window %d, the Framer read %d", got, want.window)
		}
		if hw.lastID != want.lastID {
			t.Errorf("last HEADERS stream %d, the Framer read %d", hw.lastID, want.lastID)
		}
		if hw.resets != want.resets {
			t.Errorf("%d resets counted, the Framer read %d", hw.resets, want.resets)
		}
	})
}

// readerConn is a net.Conn that only reads, from r.
type readerConn struct{ r io.Reader }

func (c readerConn) Read(b []byte) (int, error)     { return c.r.Read(b) }
func (readerConn) Write(b []byte) (int, error)      { return 0, io.ErrClosedPipe }
func (readerConn) Close() error                     { return nil }
func (readerConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (readerConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (readerConn) SetDeadline(time.Time) error      { return nil }
func (readerConn) SetReadDeadline(time.Time) error  { return nil }
func (readerConn) SetWriteDeadline(time.Time) error { return nil }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}
