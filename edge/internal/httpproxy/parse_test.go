package httpproxy

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRequestHead(t *testing.T) {
	for _, tc := range []struct {
		name string
		head string
		err  error
		want func(*testing.T, *requestHead)
	}{
		{name: "simple", head: "GET /a?b HTTP/1.1\r\nHost: App.Test:8443\r\nAccept: text/html\r\n\r\n", want: func(t *testing.T, h *requestHead) {
			if string(h.method) != "GET" || string(h.path) != "/a?b" || string(h.host) != "App.Test:8443" ||
				string(h.hostName) != "App.Test" || h.contentLength != -1 || h.chunked || h.close || !h.acceptsHTML || h.minor != 1 {
				t.Fatalf("%+v", h)
			}
		}},
		{name: "http10-close", head: "GET / HTTP/1.0\r\nHost: a\r\n\r\n", want: func(t *testing.T, h *requestHead) {
			if !h.close || h.minor != 0 {
				t.Fatalf("%+v", h)
			}
		}},
		{name: "http10-keepalive", head: "GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n", want: func(t *testing.T, h *requestHead) {
			if h.close {
				t.Fatal("close")
			}
		}},
		{name: "close", head: "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", want: func(t *testing.T, h *requestHead) {
			if !h.close {
				t.Fatal("not close")
			}
		}},
		{name: "upgrade", head: "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", want: func(t *testing.T, h *requestHead) {
			if !h.upgrade {
				t.Fatal("not upgrade")
			}
		}},
		{name: "upgrade-without-connection", head: "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", want: func(t *testing.T, h *requestHead) {
			if h.upgrade {
				t.Fatal("upgrade")
			}
		}},
		{name: "length", head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  42 \r\n\r\n", want: func(t *testing.T, h *requestHead) {
			if h.contentLength != 42 {
				t.Fatal(h.contentLength)
			}
		}},
		{name: "chunked", head: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", want: func(t *testing.T, h *requestHead) {
			if !h.chunked {
				t.Fatal("not chunked")
			}
		}},
		{name: "absolute", head: "GET HTTP://a:80?x HTTP/1.1\r\nHost: a\r\n\r\n", want: func(t *testing.T, h *requestHead) {
			if !h.absolute || string(h.absHostName) != "a" || string(h.path) != "?x" {
				t.Fatalf("%+v", h)
			}
		}},
		{name: "options-star", head: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "ipv6-host", head: "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", want: func(t *testing.T, h *requestHead) {
			if string(h.hostName) != "[::1]" {
				t.Fatal(string(h.hostName))
			}
		}},
		{name: "dropped-fields", head: "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1\r\nx-forwarded-proto: 2\r\nForwarded: 3\r\nX-Forwarded: 4\r\n\r\n", want: func(t *testing.T, h *requestHead) {
			kinds := ""
			for _, f := range h.fields {
				kinds += string('0' + rune(f.kind))
			}
			if kinds != "01110" {
				t.Fatal(kinds)
			}
		}},
		{name: "star-not-options", head: "GET * HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "relative-target", head: "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "ftp-target", head: "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "empty-host", head: "GET / HTTP/1.1\r\nHost:\r\n\r\n", err: ErrMalformed},
		{name: "host-port-letters", head: "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", err: ErrMalformed},
		{name: "host-space", head: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", err: ErrMalformed},
		{name: "lowercase-version", head: "GET / http/1.1\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "no-version", head: "GET /\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "tab-separator", head: "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "empty-field-name", head: "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", err: ErrMalformed},
		{name: "long-length", head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789\r\n\r\n", err: ErrMalformed},
		{name: "empty-te", head: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", err: ErrMalformed},
		{name: "te-cl", head: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", err: ErrAmbiguousLength},
		{name: "incomplete", head: "GET / HTTP/1.1\r\nHost: a\r\n", err: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h requestHead
			err := parseRequestHead([]byte(tc.head), &h)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil {
				tc.want(t, &h)
			}
		})
	}
}

func TestParseResponseHead(t *testing.T) {
	for _, tc := range []struct {
		head    string
		err     error
		status  int
		length  int64
		chunked bool
		close   bool
	}{
		{head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", status: 200, length: 5},
		{head: "HTTP/1.1 200\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", status: 200, length: 5},
		{head: "HTTP/1.1 200\r\nContent-Length: 5, 5\r\n\r\n", err: ErrMalformed},
		{head: "HTTP/1.1 200 \r\nTransfer-Encoding: Chunked\r\n\r\n", status: 200, length: -1, chunked: true},
		{head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", err: ErrUnsupported},
		{head: "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n", err: ErrUnsupported},
		{head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", err: ErrUnsupported},
		{head: "HTTP/1.1 200 OK\r\n\r\n", status: 200, length: -1},
		{head: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", status: 200, length: 1, close: true},
		{head: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", status: 200, length: 1},
		{head: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", status: 101, length: -1},
		{head: "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", status: 204, length: -1, close: true},
		{head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", err: ErrAmbiguousLength},
		{head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", err: ErrAmbiguousLength},
		{head: "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", err: ErrMalformed},
		{head: "HTTP/2 200 OK\r\n\r\n", err: ErrMalformed},
		{head: "HTTP/1.1 20 OK\r\n\r\n", err: ErrMalformed},
		{head: "HTTP/1.1 099 OK\r\n\r\n", err: ErrMalformed},
		{head: "HTTP/1.1 200 OK\nX: y\r\n\r\n", err: ErrMalformed},
		{head: "HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n", err: ErrMalformed},
	} {
		var h responseHead
		err := parseResponseHead([]byte(tc.head), &h)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%q: err %v, want %v", tc.head, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.head, err)
			continue
		}
		if h.status != tc.status || h.contentLength != tc.length || h.chunked != tc.chunked || h.close != tc.close {
			t.Errorf("%q: got %+v", tc.head, h)
		}
	}
}

func TestChunkScanner(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{"0\r\n\r\n", true},
		{"5\r\nhello\r\n0\r\n\r\n", true},
		{"5;ext=1;x\r\nhello\r\nA \r\n0123456789\r\n0\r\nTrailer: v\r\nOther:\r\n\r\n", true},
		{"5 \r\nhello\r\n0\r\n\r\n", true},
		{"5 ;a\r\nhello\r\n0\r\n\r\n", false},                                                 // net/http refuses whitespace before ';'
		{strings.Repeat("1;"+strings.Repeat("a", 100)+"\r\nx\r\n", 200) + "0\r\n\r\n", false}, // too much non-data
		{"0000000000000005\r\nhello\r\n0\r\n\r\n", false},                                     // 16 digits
		{"5\r\nhello\r\n0\r\nX: y\r\n", false},                                                // incomplete
		{"5\r\nhello\n0\r\n\r\n", false},
		{"5\r\nhelloo\r\n0\r\n\r\n", false},
		{"-5\r\nhello\r\n0\r\n\r\n", false},
		{";\r\n0\r\n\r\n", false},
		{"5\r\nhello\r\n0\r\n X: y\r\n\r\n", false},
		{"5\r\nhello\r\n0\r\nX y\r\n\r\n", false},
		{"5\r\nhello\r\n0\r\n\r\r\n", false},
		{"5;\x00\r\nhello\r\n0\r\n\r\n", false},
		{"5 5\r\nhello\r\n0\r\n\r\n", false},
	} {
		// Whole, and split at every byte.
		step := max(1, len(tc.body)/256) // every byte of the short ones
		for split := 0; split <= len(tc.body); split += step {
			var s chunkScanner
			n1, done, err := s.scan([]byte(tc.body[:split]))
			n2 := 0
			if err == nil && !done {
				n2, done, err = s.scan([]byte(tc.body[split:]))
			}
			ok := err == nil && done && n1+n2 == len(tc.body)
			if ok != tc.ok {
				t.Fatalf("%q split %d: done=%v err=%v n=%d", tc.body, split, done, err, n1+n2)
			}
		}
	}
	// The body ends where the scanner says, not at the end of the input.
	var s chunkScanner
	body := "3\r\nabc\r\n0\r\n\r\n"
	n, done, err := s.scan([]byte(body + "GET / HTTP/1.1\r\n"))
	if n != len(body) || !done || err != nil {
		t.Fatalf("n=%d done=%v err=%v", n, done, err)
	}
}

func TestAppendConnection(t *testing.T) {
	for in, want := range map[string]string{
		"keep-alive":                      "Connection: keep-alive\r\n",
		"X-Forwarded-For, Upgrade":        "Connection: Upgrade\r\n",
		"forwarded,x-forwarded-host":      "",
		" close , x-forwarded-proto, foo": "Connection: close, foo\r\n",
	} {
		if got := string(appendConnection(nil, []byte(in))); got != want {
			t.Errorf("%q: got %q want %q", in, got, want)
		}
	}
}

func TestScanHead(t *testing.T) {
	full := "GET / HTTP/1.1\r\nHost: a\r\n\r\nrest"
	for i := 0; i <= len(full); i++ {
		n, err := scanHead([]byte(full[:i]), 0)
		want := 0
		if i >= len(full)-4 {
			want = len(full) - 4
		}
		if n != want || err != nil {
			t.Fatalf("prefix %d: n=%d err=%v", i, n, err)
		}
	}
	if _, err := scanHead([]byte("GET / HTTP/1.1\nHost: a\r\n\r\n"), 0); err == nil {
		t.Fatal("bare LF accepted")
	}
	if n, _ := scanHead([]byte(strings.Repeat("a", 100)+"\r\n\r\n"), 50); n != 104 {
		t.Fatal(n)
	}
}
