package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tollgate/tollgate/codes"
)

// echoReply is what /echo answers: the request as the upstream saw it.
type echoReply struct {
	Method, Path, Host, Proto string
	Header                    http.Header
	BodyLen                   int64
	BodySHA                   string
	Trailer                   http.Header
}

// randReader returns n deterministic pseudo-random bytes.
func randReader(n int64, seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

func shaOf(r io.Reader) (string, int64) {
	h := sha256.New()
	n, _ := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n
}

func testHandler() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		sum, n := shaOf(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoReply{
			Method: r.Method, Path: r.RequestURI, Host: r.Host, Proto: r.Proto,
			Header: r.Header, BodyLen: n, BodySHA: sum, Trailer: r.Trailer,
		})
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		io.Copy(w, randReader(n, 7))
	})
	mux.HandleFunc("/hello/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.URL.Path)
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		w.Header().Set("Content-Length", "5")
		w.WriteHeader(code)
		io.WriteString(w, "hello")
	})
	mux.HandleFunc("/early", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "part1 ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part2")
		w.Header().Set("X-Sum", "42")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	return mux
}

func getEcho(t *testing.T, c *http.Client, req *http.Request) echoReply {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var e echoReply
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestKeepAliveManyRequests(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	c := h.client()
	for i := range 200 {
		resp, err := c.Get(fmt.Sprintf("http://%s/hello/%d", testHost, i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("hello /hello/%d", i); string(b) != want {
			t.Fatalf("got %q, want %q", b, want)
		}
	}
	if n := h.agent.accepted.Load(); n != 1 {
		t.Fatalf("%d proxy streams for one keep-alive connection, want 1", n)
	}
}

func TestForwardedHeaders(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			h := newHarness(t, testHandler(), harnessOpts{cfg: func(c *Config) {
				if !tls {
					c.Scheme = "http"
				}
			}})
			c, base, proto := h.client(), "http://"+testHost, "http"
			if tls {
				c, base, proto = h.tlsClient(false), "https://"+testHost, "https"
			}
			req, _ := http.NewRequest("GET", base+"/echo?q=1", nil)
			req.Header.Set("X-Forwarded-For", "6.6.6.6")
			req.Header.Add("X-Forwarded-For", "7.7.7.7")
			req.Header.Set("X-Forwarded-Host", "evil.test")
			req.Header.Set("X-Forwarded-Proto", "gopher")
			req.Header.Set("X-Forwarded-Port", "1")
			req.Header.Set("Forwarded", "for=6.6.6.6")
			req.Header.Set("Connection", "X-Forwarded-For, keep-alive")
			e := getEcho(t, c, req)
			if got := e.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
				t.Errorf("X-Forwarded-For = %q, want [127.0.0.1]", got)
			}
			if got := e.Header.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != proto {
				t.Errorf("X-Forwarded-Proto = %q", got)
			}
			if got := e.Header.Values("X-Forwarded-Host"); len(got) != 1 || got[0] != testHost {
				t.Errorf("X-Forwarded-Host = %q", got)
			}
			for _, k := range []string{"Forwarded", "X-Forwarded-Port"} {
				if v := e.Header.Values(k); len(v) != 0 {
					t.Errorf("%s forwarded: %q", k, v)
				}
			}
			if e.Path != "/echo?q=1" || e.Host != testHost || e.Proto != "HTTP/1.1" {
				t.Errorf("got %+v", e)
			}
			h.endpoint.mu.Lock()
			addrs := h.endpoint.addrs
			h.endpoint.mu.Unlock()
			if len(addrs) == 0 || !strings.HasPrefix(addrs[0], "127.0.0.1:") {
				t.Errorf("client addresses given to OpenStream: %q", addrs)
			}
		})
	}
}

func TestPipelining(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	c := h.dial()
	var reqs bytes.Buffer
	methods := make([]string, 20)
	for i := range methods {
		methods[i] = "GET"
		if i%5 == 3 {
			methods[i] = "HEAD"
		}
		fmt.Fprintf(&reqs, "%s /hello/%d HTTP/1.1\r\nHost: %s\r\n\r\n", methods[i], i, testHost)
	}
	fmt.Fprintf(&reqs, "POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhello", testHost)
	fmt.Fprintf(&reqs, "GET /hello/last HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", testHost)
	if _, err := c.Write(reqs.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i, m := range methods {
		resp, body := readResponse(t, br, m)
		want := fmt.Sprintf("hello /hello/%d", i)
		if m == "HEAD" {
			want = ""
		}
		if resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("response %d: %d %q, want %q", i, resp.StatusCode, body, want)
		}
	}
	_, body := readResponse(t, br, "POST")
	var e echoReply
	if err := json.Unmarshal(body, &e); err != nil || e.BodyLen != 5 {
		t.Fatalf("echo: %s %v", body, err)
	}
	if _, body = readResponse(t, br, "GET"); string(body) != "hello /hello/last" {
		t.Fatalf("last: %q", body)
	}
	expectClosed(t, br)
}

func TestChunkedBodies(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	for _, tc := range []struct {
		name   string
		client *http.Client
		base   string
	}{
		{"h1", h.client(), "http://" + testHost},
		{"h2", h.tlsClient(true), "https://" + testHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			go func() {
				for i := range 50 {
					fmt.Fprintf(pw, "chunk %d;", i)
				}
				pw.Close()
			}()
			req, _ := http.NewRequest("POST", tc.base+"/echo", pr)
			req.Trailer = http.Header{"X-Checksum": {"abc"}}
			e := getEcho(t, tc.client, req)
			if got := e.Trailer.Get("X-Checksum"); got != "abc" {
				t.Errorf("request trailer: %q", got)
			}
			var want bytes.Buffer
			for i := range 50 {
				fmt.Fprintf(&want, "chunk %d;", i)
			}
			wantSum, _ := shaOf(&want)
			if e.BodySHA != wantSum {
				t.Fatalf("body differs: %+v", e)
			}

			resp, err := tc.client.Get(tc.base + "/trailers")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "part1 part2" || resp.Trailer.Get("X-Sum") != "42" {
				t.Fatalf("got %q trailer %v", b, resp.Trailer)
			}
		})
	}
}

func TestLargeBodies(t *testing.T) {
	const size = 64 << 20
	h := newHarness(t, testHandler(), harnessOpts{})
	wantSum, _ := shaOf(randReader(size, 7))
	for _, tc := range []struct {
		name   string
		client *http.Client
		base   string
	}{
		{"h1", h.client(), "http://" + testHost},
		{"h1-tls", h.tlsClient(false), "https://" + testHost},
		{"h2", h.tlsClient(true), "https://" + testHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunked := range []bool{false, true} {
				req, _ := http.NewRequest("POST", tc.base+"/echo", randReader(size, 7))
				if !chunked {
					req.ContentLength = size
				}
				e := getEcho(t, tc.client, req)
				if e.BodyLen != size || e.BodySHA != wantSum {
					t.Fatalf("upload (chunked=%v): got %d bytes %s", chunked, e.BodyLen, e.BodySHA)
				}
				url := fmt.Sprintf("%s/download?n=%d", tc.base, size)
				if chunked {
					url += "&chunked=1"
				}
				resp, err := tc.client.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				sum, n := shaOf(resp.Body)
				resp.Body.Close()
				if n != size || sum != wantSum {
					t.Fatalf("download (chunked=%v): got %d bytes %s", chunked, n, sum)
				}
			}
		})
	}
}

func TestNoBodyResponses(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	c := h.dial()
	br := bufio.NewReader(c)
	for _, tc := range []struct {
		method string
		path   string
		status int
	}{
		{"HEAD", "/status/200", 200},
		{"GET", "/status/204", 204},
		{"GET", "/status/304", 304},
		{"HEAD", "/download?n=100000", 200},
		{"GET", "/hello/after", 200},
	} {
		fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", tc.method, tc.path, testHost)
		resp, body := readResponse(t, br, tc.method)
		if resp.StatusCode != tc.status {
			t.Fatalf("%s %s: status %d", tc.method, tc.path, resp.StatusCode)
		}
		if tc.path == "/hello/after" {
			if string(body) != "hello /hello/after" {
				t.Fatalf("after no-body responses: %q", body)
			}
		} else if len(body) != 0 {
			t.Fatalf("%s %s: body %q", tc.method, tc.path, body)
		}
	}
	if n := h.agent.accepted.Load(); n != 1 {
		t.Fatalf("%d streams, want 1", n)
	}
}

func TestInformationalResponses(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	t.Run("100-continue", func(t *testing.T) {
		c := h.dial()
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", testHost)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 100 {
			t.Fatalf("want 100 Continue first: %v %v", resp, err)
		}
		io.WriteString(c, "hello")
		resp, body := readResponse(t, br, "POST")
		var e echoReply
		if resp.StatusCode != 200 || json.Unmarshal(body, &e) != nil || e.BodyLen != 5 {
			t.Fatalf("after continue: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("client", func(t *testing.T) {
		tr := h.client()
		tr.Transport.(*http.Transport).ExpectContinueTimeout = 10 * time.Second
		req, _ := http.NewRequest("POST", "http://"+testHost+"/echo", strings.NewReader("hello"))
		req.Header.Set("Expect", "100-continue")
		if e := getEcho(t, tr, req); e.BodyLen != 5 {
			t.Fatalf("%+v", e)
		}
	})
	t.Run("103", func(t *testing.T) {
		c := h.dial()
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "GET /early HTTP/1.1\r\nHost: %s\r\n\r\n", testHost)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 103 || resp.Header.Get("Link") == "" {
			t.Fatalf("want 103 first: %v %v", resp, err)
		}
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || string(body) != "final" {
			t.Fatalf("final: %d %q", resp.StatusCode, body)
		}
	})
}

func TestWebSocket(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	for _, tc := range []struct {
		name   string
		client *http.Client
		url    string
	}{
		{"plain", h.client(), "ws://" + testHost + "/ws"},
		{"tls", h.tlsClient(false), "wss://" + testHost + "/ws"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ws, _, err := websocket.Dial(ctx, tc.url, &websocket.DialOptions{HTTPClient: tc.client})
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			ws.SetReadLimit(1 << 20)
			for i := range 100 {
				msg := strings.Repeat(strconv.Itoa(i), i*100+1)
				if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
					t.Fatal(err)
				}
				_, got, err := ws.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != "echo: "+msg {
					t.Fatalf("message %d differs", i)
				}
			}
			if err := ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestServerSentEvents(t *testing.T) {
	next := make(chan struct{})
	mux := testHandler()
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 5 {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next: // the client saw the event: send the next
			case <-r.Context().Done():
				return
			}
		}
	})
	h := newHarness(t, mux, harnessOpts{})
	for _, tc := range []struct {
		name   string
		client *http.Client
		base   string
	}{
		{"h1", h.client(), "http://" + testHost},
		{"h2", h.tlsClient(true), "https://" + testHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.client.Get(tc.base + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			for i := range 5 {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("data: event %d\n", i); line != want {
					t.Fatalf("got %q want %q", line, want)
				}
				br.ReadString('\n')
				next <- struct{}{}
			}
		})
	}
}

func TestMisdirected(t *testing.T) {
	other := &testEndpoint{id: "ep_other"}
	h := newHarness(t, testHandler(), harnessOpts{})
	h.proxy.resolver = mapResolver{testHost: h.endpoint, "other.test": other}
	for _, tc := range []struct{ name, req string }{
		{"host", "GET / HTTP/1.1\r\nHost: other.test\r\n\r\n"},
		{"absolute-uri", "GET http://other.test/ HTTP/1.1\r\nHost: app.test\r\n\r\n"},
		{"absolute-https", "GET https://other.test:443/x HTTP/1.1\r\nHost: app.test\r\n\r\n"},
		{"second-request", "GET /hello/1 HTTP/1.1\r\nHost: app.test\r\n\r\nGET / HTTP/1.1\r\nHost: other.test\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial()
			br := bufio.NewReader(c)
			io.WriteString(c, tc.req)
			if strings.HasPrefix(tc.name, "second") {
				if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 200 {
					t.Fatalf("first request: %d", resp.StatusCode)
				}
			}
			resp, body := readResponse(t, br, "GET")
			if resp.StatusCode != 421 || resp.Header.Get(ErrorCodeHeader) != string(codes.Misdirected) ||
				!bytes.Contains(body, []byte(codes.Misdirected)) {
				t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, body)
			}
			expectClosed(t, br)
		})
	}
	t.Run("absolute-same-host", func(t *testing.T) {
		c := h.dial()
		br := bufio.NewReader(c)
		io.WriteString(c, "GET http://APP.test/echo?x=1 HTTP/1.1\r\nHost: app.test:443\r\n\r\n")
		resp, body := readResponse(t, br, "GET")
		var e echoReply
		if resp.StatusCode != 200 || json.Unmarshal(body, &e) != nil || e.Path != "/echo?x=1" {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
	})
	t.Run("tls-sni", func(t *testing.T) {
		// SNI other.test, Host app.test.
		c := h.tlsClient(false)
		c.Transport.(*http.Transport).TLSClientConfig.ServerName = "other.test"
		resp, err := c.Get("https://" + testHost + "/echo")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 421 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func TestErrorPages(t *testing.T) {
	t.Run("unknown-host", func(t *testing.T) {
		h := newHarness(t, testHandler(), harnessOpts{})
		h.proxy.resolver = mapResolver{}
		for _, html := range []bool{false, true} {
			req, _ := http.NewRequest("GET", "http://"+testHost+"/", nil)
			if html {
				req.Header.Set("Accept", "text/html,application/xhtml+xml")
			}
			resp, err := h.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 404 || resp.Header.Get(ErrorCodeHeader) != "TG_3200" || !bytes.Contains(body, []byte("TG_3200")) {
				t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, body)
			}
			if ct := resp.Header.Get("Content-Type"); html != strings.HasPrefix(ct, "text/html") {
				t.Fatalf("html=%v: Content-Type %q", html, ct)
			}
			if !html {
				var j struct {
					ErrorCode  string `json:"error_code"`
					StatusCode int    `json:"status_code"`
					Msg        string `json:"msg"`
				}
				if err := json.Unmarshal(body, &j); err != nil || j.ErrorCode != "TG_3200" || j.StatusCode != 404 || j.Msg == "" {
					t.Fatalf("json body %s: %v", body, err)
				}
			}
		}
	})
	t.Run("open-stream-fails", func(t *testing.T) {
		h := newHarness(t, testHandler(), harnessOpts{})
		h.endpoint.openErr = errors.New("session gone")
		for _, tc := range h.clients() {
			resp, err := tc.client.Get(tc.base + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 502 || resp.Header.Get(ErrorCodeHeader) != "TG_3201" {
				t.Fatalf("%s: got %d %v", tc.name, resp.StatusCode, resp.Header)
			}
		}
	})
	t.Run("agent-closes-without-response", func(t *testing.T) {
		h := newHarness(t, nil, harnessOpts{handle: func(c *net.TCPConn) {
			br := bufio.NewReader(c)
			http.ReadRequest(br) // read the request, answer nothing
			c.Close()
		}})
		for _, tc := range h.clients() {
			resp, err := tc.client.Get(tc.base + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 502 || resp.Header.Get(ErrorCodeHeader) != "TG_8012" {
				t.Fatalf("%s: got %d %v", tc.name, resp.StatusCode, resp.Header)
			}
		}
	})
	t.Run("head-too-large", func(t *testing.T) {
		h := newHarness(t, testHandler(), harnessOpts{cfg: func(c *Config) { c.MaxHeaderBytes = 4096 }})
		c := h.dial()
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n", testHost, strings.Repeat("a", 5000))
		resp, _ := readResponse(t, br, "GET")
		if resp.StatusCode != 431 || resp.Header.Get(ErrorCodeHeader) != "TG_3221" {
			t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
		}
		expectClosed(t, br)
		if n := h.agent.accepted.Load(); n != 0 {
			t.Fatalf("%d streams opened", n)
		}
	})
	t.Run("slow-head", func(t *testing.T) {
		h := newHarness(t, testHandler(), harnessOpts{cfg: func(c *Config) { c.HeaderReadTimeout = 200 * time.Millisecond }})
		c := h.dial()
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n", testHost) // never finished
		resp, _ := readResponse(t, br, "GET")
		if resp.StatusCode != 408 {
			t.Fatalf("got %d", resp.StatusCode)
		}
		expectClosed(t, br)
	})
	t.Run("idle-timeout", func(t *testing.T) {
		h := newHarness(t, testHandler(), harnessOpts{cfg: func(c *Config) { c.IdleTimeout = 200 * time.Millisecond }})
		c := h.dial()
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "GET /hello/x HTTP/1.1\r\nHost: %s\r\n\r\n", testHost)
		readResponse(t, br, "GET")
		expectClosed(t, br)
	})
}

func TestStreamReopenedAfterUpstreamIdleClose(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{server: func(s *http.Server) { s.IdleTimeout = 100 * time.Millisecond }})
	c := h.dial()
	br := bufio.NewReader(c)
	for i := range 3 {
		fmt.Fprintf(c, "GET /hello/%d HTTP/1.1\r\nHost: %s\r\n\r\n", i, testHost)
		if _, body := readResponse(t, br, "GET"); string(body) != fmt.Sprintf("hello /hello/%d", i) {
			t.Fatalf("request %d: %q", i, body)
		}
		// The upstream closes the idle connection; the agent ends the stream.
		waitFor(t, "the stream to end", func() bool { return h.agent.live.Load() == 0 })
	}
	if n := h.agent.accepted.Load(); n != 3 {
		t.Fatalf("%d streams, want 3", n)
	}
}

func TestOnRequest(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{hook: true})
	for _, tc := range h.clients() {
		resp, err := tc.client.Get(tc.base + "/hello/hook")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		select {
		case info := <-h.infos:
			if info.Status != 200 || info.Method != "GET" || info.Path != "/hello/hook" || info.EndpointID != "ep_test" ||
				info.Host != testHost || !info.RemoteAddr.Addr().IsLoopback() || info.ResponseBytes == 0 {
				t.Fatalf("%+v", info)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no OnRequest call")
		}
	}
}

func TestConcurrentConnections(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	c := h.client()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				resp, err := c.Get(fmt.Sprintf("http://%s/hello/%d-%d", testHost, g, i))
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != fmt.Sprintf("hello /hello/%d-%d", g, i) {
					errs <- fmt.Errorf("got %q", b)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestLargeHeads(t *testing.T) {
	big := strings.Repeat("b", 40<<10)
	mux := testHandler()
	mux.HandleFunc("/bighead", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", big)
		io.WriteString(w, r.Header.Get("X-Big")[:10])
	})
	h := newHarness(t, mux, harnessOpts{})
	for _, tc := range h.clients() {
		req, _ := http.NewRequest("GET", tc.base+"/bighead", nil)
		req.Header.Set("X-Big", big)
		resp, err := tc.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != big[:10] || resp.Header.Get("X-Big") != big {
			t.Fatalf("%s: %d %q", tc.name, resp.StatusCode, b)
		}
	}
}

func TestUpgradeRefusedByUpstream(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	c := h.dial()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "GET /hello/up HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", testHost)
	if _, body := readResponse(t, br, "GET"); string(body) != "hello /hello/up" {
		t.Fatalf("got %q", body)
	}
	fmt.Fprintf(c, "GET /hello/next HTTP/1.1\r\nHost: %s\r\n\r\n", testHost)
	if _, body := readResponse(t, br, "GET"); string(body) != "hello /hello/next" {
		t.Fatalf("got %q", body)
	}
}

func TestBadResponses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		response string
		status   int // 0: the connection just closes after what was sent
	}{
		{"garbage", "SSH-2.0-OpenSSH\r\n\r\n", 502},
		{"length-and-chunked", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 502},
		{"two-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 502},
		{"101-without-upgrade", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", 502},
		{"head-cut", "HTTP/1.1 200 OK\r\nContent-Le", 502},
		{"after-continue", "HTTP/1.1 100 Continue\r\n\r\n", 502},
		{"body-cut", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", 0},
		{"bad-chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, harnessOpts{handle: func(c *net.TCPConn) {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				io.WriteString(c, tc.response)
				c.CloseWrite()
				io.Copy(io.Discard, c)
			}})
			c := h.dial()
			br := bufio.NewReader(c)
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", testHost)
			if tc.status == 0 {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadAll(resp.Body); err == nil {
					t.Fatal("a cut response read as complete")
				}
				return
			}
			if tc.name == "after-continue" {
				if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 100 {
					t.Fatalf("%v %v", resp, err)
				}
			}
			resp, _ := readResponse(t, br, "GET")
			if resp.StatusCode != tc.status || resp.Header.Get(ErrorCodeHeader) != "TG_8012" {
				t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
			}
			expectClosed(t, br)
		})
	}
}
