package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// scriptAgent returns an agent handler that reads requests from each
// proxy stream and lets respond answer them (or not): it gets the number
// of the request across all streams (from 1) and returns false to end the
// stream. count counts the requests the upstream saw.
func scriptAgent(count *atomic.Int64, respond func(n int64, req *http.Request, c net.Conn) bool) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if !respond(count.Add(1), req, c) {
				return
			}
		}
	}
}

func h2get(t *testing.T, c *http.Client, path string) (*http.Response, string, error) {
	t.Helper()
	resp, err := c.Get("https://" + testHost + path)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// A response head over 1 MiB is refused with 502 as soon as the limit
// passes, not buffered until it ends.
func TestHTTP2ResponseHeadBounded(t *testing.T) {
	var n atomic.Int64
	h := newHarness(t, nil, harnessOpts{handle: scriptAgent(&n, func(_ int64, _ *http.Request, c net.Conn) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: ")
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for range 40 { // 2.5 MiB of one field, and no end
			if _, err := c.Write(chunk); err != nil {
				return false
			}
		}
		io.Copy(io.Discard, c) // hold the stream open until the edge closes it
		return false
	})})
	c := h.tlsClient(true)
	c.Timeout = 10 * time.Second
	resp, body, err := h2get(t, c, "/big")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 502 || resp.Header.Get(ErrorCodeHeader) == "" {
		t.Fatalf("got %d %v %q", resp.StatusCode, resp.Header, body)
	}
	waitFor(t, "the proxy stream to close", func() bool { return h.agent.live.Load() == 0 })
}

// Upstream responses whose framing HTTP/1.1 refuses are refused on HTTP/2
// too, and the stream is not reused.
func TestHTTP2ResponseFramingRefused(t *testing.T) {
	for name, resp := range map[string]string{
		"cl-and-te":  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"bare-lf":    "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"obs-fold":   "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
		"two-cl":     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
		"bad-chunk":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 ;x\r\nok\r\n0\r\n\r\n",
		"te-gzip":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"status-bad": "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
	} {
		t.Run(name, func(t *testing.T) {
			var n atomic.Int64
			h := newHarness(t, nil, harnessOpts{handle: scriptAgent(&n, func(_ int64, _ *http.Request, c net.Conn) bool {
				io.WriteString(c, resp)
				return true
			})})
			r, body, err := h2get(t, h.tlsClient(true), "/x")
			if err == nil && r.StatusCode == 200 {
				t.Fatalf("relayed: %d %q", r.StatusCode, body)
			}
			if err == nil && (r.StatusCode != 502 || r.Header.Get(ErrorCodeHeader) != "TG_8012") {
				t.Fatalf("got %d %v %q", r.StatusCode, r.Header, body)
			}
			waitFor(t, "the proxy stream to close", func() bool { return h.agent.live.Load() == 0 })
		})
	}
}

// Bytes the upstream sends after a complete response, at once or later,
// are never served as the next request's response: the stream is retired.
func TestHTTP2SurplusRetiresStream(t *testing.T) {
	const injected = "HTTP/1.1 200 OK\r\nX-Injected: 1\r\nContent-Length: 12\r\n\r\nlate-extra!!"
	for _, later := range []bool{false, true} {
		t.Run(fmt.Sprintf("later=%v", later), func(t *testing.T) {
			var n atomic.Int64
			sendLate := make(chan struct{})
			h := newHarness(t, nil, harnessOpts{handle: scriptAgent(&n, func(k int64, _ *http.Request, c net.Conn) bool {
				body := fmt.Sprintf("answer %d", k)
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				if k == 1 {
					if later {
						<-sendLate
					}
					io.WriteString(c, injected)
				}
				return true
			})})
			c := h.tlsClient(true)
			for i := 1; i <= 2; i++ {
				if i == 2 && later {
					close(sendLate)
					waitFor(t, "the pooled stream to be retired", func() bool { return h.proxy.unsolicited.Load() == 1 })
				}
				resp, body, err := h2get(t, c, "/x")
				if err != nil {
					t.Fatal(err)
				}
				if resp.Header.Get("X-Injected") != "" || body != fmt.Sprintf("answer %d", i) {
					t.Fatalf("request %d got %v %q", i, resp.Header, body)
				}
			}
			if got := h.agent.accepted.Load(); got != 2 {
				t.Fatalf("%d proxy streams, want 2 (the first retired)", got)
			}
		})
	}
}

// A request the upstream may have seen is not sent again when the stream
// ends without a response; an idempotent one without a body is.
func TestHTTP2RetryOnlyReplayable(t *testing.T) {
	for _, method := range []string{"POST", "GET"} {
		t.Run(method, func(t *testing.T) {
			var n atomic.Int64
			var seen atomic.Int64 // requests with the method under test
			h := newHarness(t, nil, harnessOpts{handle: scriptAgent(&n, func(k int64, req *http.Request, c net.Conn) bool {
				if req.URL.Path == "/test" && seen.Add(1) == 1 {
					return false // the stream ends, no response: as if the upstream closed it
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				return true
			})})
			c := h.tlsClient(true)
			if _, _, err := h2get(t, c, "/warm"); err != nil { // a stream in the pool
				t.Fatal(err)
			}
			req, _ := http.NewRequest(method, "https://"+testHost+"/test", nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch method {
			case "POST":
				if seen.Load() != 1 || resp.StatusCode != 502 {
					t.Fatalf("POST reached the upstream %d times; status %d", seen.Load(), resp.StatusCode)
				}
			case "GET":
				if seen.Load() != 2 || resp.StatusCode != 200 {
					t.Fatalf("GET reached the upstream %d times; status %d", seen.Load(), resp.StatusCode)
				}
			}
		})
	}
}

// An agent that dies mid-response: the HTTP/2 client sees the stream
// reset, never a complete response.
func TestHTTP2AgentDiesMidResponse(t *testing.T) {
	var n atomic.Int64
	h := newHarness(t, nil, harnessOpts{handle: scriptAgent(&n, func(_ int64, _ *http.Request, c net.Conn) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
		return false
	})})
	resp, body, err := h2get(t, h.tlsClient(true), "/x")
	if err == nil {
		t.Fatalf("got a complete response: %d %q", resp.StatusCode, body)
	}
	var se http2.StreamError
	if !errors.As(err, &se) && !strings.Contains(err.Error(), "stream error") && !strings.Contains(err.Error(), "INTERNAL_ERROR") {
		t.Fatalf("want a stream reset, got %v", err)
	}
}

// A handler that cannot deliver the upstream's response resets the stream
// (http.ErrAbortHandler); it never returns without writing, which HTTP/2
// sends as an implicit 200.
func TestHTTP2NoImplicitStatus(t *testing.T) {
	got := make(chan struct{}, 1)
	var n atomic.Int64
	h := newHarness(t, nil, harnessOpts{handle: scriptAgent(&n, func(_ int64, _ *http.Request, c net.Conn) bool {
		got <- struct{}{}
		io.Copy(io.Discard, c) // never answers
		return false
	})})
	hc := &h2conn{p: h.proxy, sni: testHost}
	ctx, cancel := context.WithCancel(context.Background())
	req := httptestRequest(ctx, "GET", "https://"+testHost+"/x")
	rec := &recordingWriter{header: http.Header{}}
	go func() {
		<-got
		cancel() // the client or the proxy went away while the upstream thought
	}()
	func() {
		defer func() {
			if r := recover(); r != http.ErrAbortHandler {
				t.Errorf("handler ended with %v, want http.ErrAbortHandler", r)
			}
		}()
		hc.ServeHTTP(rec, req)
	}()
	if rec.status != 0 {
		t.Fatalf("handler wrote status %d the upstream never sent", rec.status)
	}
}

func httptestRequest(ctx context.Context, method, url string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, method, url, nil)
	req.RequestURI = req.URL.RequestURI()
	req.Proto, req.ProtoMajor = "HTTP/2.0", 2
	return req
}

type recordingWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recordingWriter) Header() http.Header { return w.header }
func (w *recordingWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}
func (w *recordingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return w.body.Write(b)
}

// rawH2Conn opens an HTTP/2 connection with a Framer, sends its SETTINGS
// (settings, if any) and reads the server's.
func rawH2Conn(t *testing.T, h *harness, settings ...http2.Setting) (*http2.Framer, *tls.Conn, uint32) {
	t.Helper()
	conn, err := tls.Dial("tcp", h.tlsAddr, &tls.Config{RootCAs: h.roots, ServerName: testHost, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings(settings...)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			v, _ := sf.Value(http2.SettingMaxConcurrentStreams)
			fr.WriteSettingsAck()
			return fr, conn, v
		}
	}
}

// readH2Data reads frames from fr, answering the server's SETTINGS, until
// *got, the DATA bytes read so far, reaches want and, when want is the
// whole bodySize, the stream has ended. A reset, a GOAWAY, a read error
// or a stream that ends at another size fails t.
func readH2Data(t *testing.T, fr *http2.Framer, got *int, want, bodySize int) {
	t.Helper()
	for ended := false; *got < want || want == bodySize && !ended; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d bytes of the body: %v", *got, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.DataFrame:
			*got += len(f.Data())
			if f.StreamEnded() {
				if *got != bodySize {
					t.Fatalf("body: %d bytes, want %d", *got, bodySize)
				}
				ended = true
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("after %d bytes of the body: %v", *got, f)
		}
	}
}

func h2HeaderBlock(path string) []byte {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", testHost}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return hb.Bytes()
}

// Rapid reset (CVE-2023-44487): a client that opens and resets streams in
// a loop gets GOAWAY(ENHANCE_YOUR_CALM), and few of its requests reach the
// upstream.
func TestHTTP2RapidReset(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	fr, _, maxStreams := rawH2Conn(t, h)
	if maxStreams != DefaultMaxConcurrentStreams {
		t.Errorf("MAX_CONCURRENT_STREAMS = %d, want %d", maxStreams, DefaultMaxConcurrentStreams)
	}
	block := h2HeaderBlock("/hello/reset")
	sent := 0
	errc := make(chan error, 1)
	go func() {
		for id := uint32(1); id < 2*5000; id += 2 {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
				errc <- nil // the server closed: expected
				return
			}
			if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
				errc <- nil
				return
			}
			sent++
		}
		errc <- nil
	}()
	var goAway *http2.GoAwayFrame
	for goAway == nil {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY before the connection ended: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goAway = g
		}
	}
	<-errc
	if goAway.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", goAway.ErrCode)
	}
	if got := h.agent.accepted.Load(); got > DefaultMaxStreamResets+int64(DefaultMaxConcurrentStreams) {
		t.Fatalf("%d proxy streams opened for reset requests", got)
	}
	t.Logf("sent %d HEADERS+RST_STREAM pairs, %d proxy streams opened, GOAWAY last stream %d", sent, h.agent.accepted.Load(), goAway.LastStreamID)
}

// HTTP/1.1 never sends a request again once it was written to a stream: a
// POST whose stream ends without a response is answered 502, and the
// upstream saw it once. (A guard: the HTTP/1.1 path already held this.)
func TestHTTP1NoRetryAfterForward(t *testing.T) {
	var n, seen atomic.Int64
	h := newHarness(t, nil, harnessOpts{handle: scriptAgent(&n, func(_ int64, req *http.Request, c net.Conn) bool {
		if req.URL.Path == "/test" {
			seen.Add(1)
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})})
	c := h.dial()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "GET /warm HTTP/1.1\r\nHost: %s\r\n\r\n", testHost)
	readResponse(t, br, "GET")
	fmt.Fprintf(c, "POST /test HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", testHost)
	resp, _ := readResponse(t, br, "POST")
	if resp.StatusCode != 502 || seen.Load() != 1 {
		t.Fatalf("status %d, upstream saw the POST %d times", resp.StatusCode, seen.Load())
	}
}
