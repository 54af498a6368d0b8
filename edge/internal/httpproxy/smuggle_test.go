package httpproxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

// recorder keeps every byte the agent received on its streams.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// recordingHarness is a harness whose agent records what it forwards to
// the upstream.
func recordingHarness(t *testing.T) (*harness, *recorder) {
	rec := &recorder{}
	return newHarness(t, testHandler(), harnessOpts{record: rec}), rec
}

const smuggled = "GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n"

func TestSmugglingRefused(t *testing.T) {
	const hostLine = "Host: app.test\r\n"
	for _, tc := range []struct {
		name   string
		req    string
		status int
	}{
		{"cl-and-te", "POST / HTTP/1.1\r\n" + hostLine + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"te-and-cl", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400},
		{"two-cl", "POST / HTTP/1.1\r\n" + hostLine + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
		{"two-equal-cl", "POST / HTTP/1.1\r\n" + hostLine + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
		{"cl-list", "POST / HTTP/1.1\r\n" + hostLine + "Content-Length: 5, 5\r\n\r\nhello", 400},
		{"cl-plus", "POST / HTTP/1.1\r\n" + hostLine + "Content-Length: +5\r\n\r\nhello", 400},
		{"cl-negative", "POST / HTTP/1.1\r\n" + hostLine + "Content-Length: -1\r\n\r\n", 400},
		{"cl-hex", "POST / HTTP/1.1\r\n" + hostLine + "Content-Length: 0x5\r\n\r\nhello", 400},
		{"te-gzip", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding: gzip\r\n\r\n", 501},
		{"te-chunked-list", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 501},
		{"te-xchunked", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501},
		{"te-space-before-colon", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
		{"te-obs-fold", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400},
		{"two-te", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"te-http10", "POST / HTTP/1.0\r\n" + hostLine + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"chunk-size-junk", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
		{"chunk-size-0x", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400},
		{"chunk-size-space", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", 400},
		{"chunk-size-overflow", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n", 400},
		{"chunk-data-too-long", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello!\r\n0\r\n\r\n", 400},
		{"chunk-bare-lf", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", 400},
		{"chunk-trailer-fold", "POST / HTTP/1.1\r\n" + hostLine + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n z\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\n" + hostLine + "X-A: b\r\n c\r\n\r\n", 400},
		{"nul-in-value", "GET / HTTP/1.1\r\n" + hostLine + "X-A: b\x00c\r\n\r\n", 400},
		{"cr-in-value", "GET / HTTP/1.1\r\n" + hostLine + "X-A: b\rc\r\n\r\n", 400},
		{"bare-lf-head", "GET / HTTP/1.1\nHost: app.test\n\n", 400},
		{"bare-lf-field", "GET / HTTP/1.1\r\nHost: app.test\nX: y\r\n\r\n", 400},
		{"space-before-colon", "GET / HTTP/1.1\r\nHost : app.test\r\n\r\n", 400},
		{"no-host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two-hosts", "GET / HTTP/1.1\r\n" + hostLine + hostLine + "\r\n", 400},
		{"host-userinfo", "GET / HTTP/1.1\r\nHost: evil@app.test\r\n\r\n", 400},
		{"absolute-userinfo", "GET http://evil@app.test/ HTTP/1.1\r\n" + hostLine + "\r\n", 400},
		{"version", "GET / HTTP/1.2\r\n" + hostLine + "\r\n", 505},
		{"double-space", "GET  / HTTP/1.1\r\n" + hostLine + "\r\n", 400},
		{"connect", "CONNECT app.test:443 HTTP/1.1\r\n" + hostLine + "\r\n", 405},
		{"h2-preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, rec := recordingHarness(t)
			c := h.dial()
			br := bufio.NewReader(c)
			io.WriteString(c, tc.req+smuggled)
			resp, body := readResponse(t, br, "GET")
			if resp.StatusCode != tc.status || resp.Header.Get(ErrorCodeHeader) != "TG_3221" || !resp.Close {
				t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, body)
			}
			expectClosed(t, br)
			if got := rec.String(); got != "" {
				t.Fatalf("forwarded %q", got)
			}
		})
	}
}

func TestSmugglingAfterValidRequest(t *testing.T) {
	h, rec := recordingHarness(t)
	c := h.dial()
	br := bufio.NewReader(c)
	first := "GET /hello/1 HTTP/1.1\r\nHost: app.test\r\n\r\n"
	io.WriteString(c, first+"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+smuggled)
	if resp, body := readResponse(t, br, "GET"); resp.StatusCode != 200 || string(body) != "hello /hello/1" {
		t.Fatalf("first: %d %q", resp.StatusCode, body)
	}
	if resp, _ := readResponse(t, br, "POST"); resp.StatusCode != 400 {
		t.Fatalf("second: %d", resp.StatusCode)
	}
	expectClosed(t, br)
	if got := rec.String(); !strings.HasPrefix(got, "GET /hello/1 HTTP/1.1\r\n") || strings.Count(got, "HTTP/1.1") != 1 {
		t.Fatalf("forwarded %q", got)
	}
}

func TestBadChunkMidBody(t *testing.T) {
	h, rec := recordingHarness(t)
	c := h.dial()
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	waitFor(t, "the first chunk to be forwarded", func() bool { return strings.Contains(rec.String(), "hello\r\n") })
	io.WriteString(c, "5\r\nworldX\r\n0\r\n\r\n"+smuggled)
	resp, _ := readResponse(t, br, "POST")
	if resp.StatusCode != 400 || resp.Header.Get(ErrorCodeHeader) != "TG_3221" {
		t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
	}
	expectClosed(t, br)
	// The valid prefix may pass; the bad byte, the rest of the body (so a
	// complete request) and what follows must not.
	if got := rec.String(); strings.Contains(got, "smuggled") || strings.Contains(got, "worldX") || strings.Contains(got, "0\r\n\r\n") {
		t.Fatalf("forwarded %q", got)
	}
}

func TestConnectionHeaderFiltered(t *testing.T) {
	h, rec := recordingHarness(t)
	c := h.dial()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "GET /hello/x HTTP/1.1\r\nHost: app.test\r\nConnection: x-forwarded-for, Forwarded\r\nX-Forwarded-For: 1.2.3.4\r\nforwarded: for=1.2.3.4\r\n\r\n")
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := rec.String()
	if strings.Contains(strings.ToLower(got), "connection:") || strings.Contains(got, "1.2.3.4") ||
		!strings.Contains(got, "X-Forwarded-For: 127.0.0.1\r\n") {
		t.Fatalf("forwarded %q", got)
	}
}
