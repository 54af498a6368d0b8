package httpproxy

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func TestHTTP2(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	c := h.tlsClient(true)
	resp, err := c.Get("https://" + testHost + "/hello/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("client spoke %s", resp.Proto)
	}
	req, _ := http.NewRequest("POST", "https://"+testHost+"/echo?x=1", strings.NewReader("hello"))
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header["X-Custom"] = []string{"a", "b"}
	e := getEcho(t, c, req)
	if e.Proto != "HTTP/1.1" || e.Method != "POST" || e.Path != "/echo?x=1" || e.Host != testHost || e.BodyLen != 5 {
		t.Fatalf("%+v", e)
	}
	if got := e.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if got := e.Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	if got := e.Header.Values("Forwarded"); len(got) != 0 {
		t.Errorf("Forwarded = %q", got)
	}
	if got := e.Header.Values("X-Custom"); len(got) != 2 {
		t.Errorf("X-Custom = %q", got)
	}

	// Sequential requests reuse one proxy stream.
	before := h.agent.accepted.Load()
	for i := range 20 {
		resp, err := c.Get(fmt.Sprintf("https://%s/hello/%d", testHost, i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != fmt.Sprintf("hello /hello/%d", i) {
			t.Fatalf("got %q", b)
		}
	}
	if n := h.agent.accepted.Load() - before; n > 1 {
		t.Fatalf("%d streams for sequential requests, want at most 1", n)
	}
}

func TestHTTP2Concurrent(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	c := h.tlsClient(true)
	var wg sync.WaitGroup
	var failures atomic.Int64
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(fmt.Sprintf("https://%s/hello/%d", testHost, i))
			if err != nil {
				failures.Add(1)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 || string(b) != fmt.Sprintf("hello /hello/%d", i) {
				failures.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d requests failed", n)
	}
}

func TestHTTP2Misdirected(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	c := h.tlsClient(true)
	c.Transport.(*http.Transport).TLSClientConfig.ServerName = "other.test"
	resp, err := c.Get("https://" + testHost + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 421 || resp.Header.Get(ErrorCodeHeader) != "TG_3220" || resp.ProtoMajor != 2 {
		t.Fatalf("got %d %s %v %s", resp.StatusCode, resp.Proto, resp.Header, b)
	}
	if n := h.agent.accepted.Load(); n != 0 {
		t.Fatalf("%d streams opened", n)
	}
}

func TestHTTP2Limits(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{cfg: func(c *Config) {
		c.MaxConcurrentStreams = 7
		c.MaxHeaderBytes = 4096
	}})
	t.Run("settings", func(t *testing.T) {
		conn, err := tls.Dial("tcp", h.tlsAddr, &tls.Config{RootCAs: h.roots, ServerName: testHost, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, http2.ClientPreface)
		fr := http2.NewFramer(conn, conn)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
				v, ok := sf.Value(http2.SettingMaxConcurrentStreams)
				if !ok || v != 7 {
					t.Fatalf("MAX_CONCURRENT_STREAMS = %d (%v), want 7", v, ok)
				}
				if v, ok := sf.Value(http2.SettingMaxHeaderListSize); !ok || v > 8192 {
					t.Fatalf("MAX_HEADER_LIST_SIZE = %d (%v)", v, ok)
				}
				return
			}
		}
		t.Fatal("no SETTINGS from the server")
	})
	t.Run("header-too-large", func(t *testing.T) {
		// Go's client refuses to send it; write the frames by hand.
		fields := [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", testHost}, {":path", "/hello/x"}}
		for i := range 20 {
			fields = append(fields, [2]string{fmt.Sprintf("x-big-%d", i), strings.Repeat("a", 500)})
		}
		if got := rawH2Request(t, h, fields); got != "431" {
			t.Fatalf("status %s", got)
		}
		if n := h.agent.accepted.Load(); n != 0 {
			t.Fatalf("%d streams opened", n)
		}
	})
}

// rawH2Request sends one HEADERS frame with fields on a new HTTP/2
// connection and returns the response's :status, or "RST:<code>" when the
// stream is reset.
func rawH2Request(t *testing.T, h *harness, fields [][2]string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", h.tlsAddr, &tls.Config{RootCAs: h.roots, ServerName: testHost, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			return f.PseudoValue("status")
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			if r, ok := f.(*http2.RSTStreamFrame); ok {
				return "RST:" + r.ErrCode.String()
			}
			t.Fatalf("got %v, want a response", f)
		}
	}
	t.Fatal("no response")
	return ""
}

func TestHTTP2HostHeaderMustMatch(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	base := [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", testHost}, {":path", "/hello/x"}}
	if got := rawH2Request(t, h, base); got != "200" {
		t.Fatalf("plain request: %s", got)
	}
	// net/http refuses this one itself (RST_STREAM); either way it never
	// reaches the upstream.
	if got := rawH2Request(t, h, append(base, [2]string{"host", "other.test"})); got != "421" && got != "RST:PROTOCOL_ERROR" {
		t.Fatalf("host header naming another host: %s", got)
	}
	noAuthority := [][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "/hello/x"}, {"host", "other.test"}}
	if got := rawH2Request(t, h, noAuthority); got != "421" {
		t.Fatalf("host header only, naming another host: %s", got)
	}
	if n := h.agent.accepted.Load(); n != 1 {
		t.Fatalf("%d streams opened, want 1", n)
	}
}

func TestHTTP2StaleStreamRetried(t *testing.T) {
	var closed atomic.Int64
	h := newHarness(t, testHandler(), harnessOpts{server: func(s *http.Server) {
		s.IdleTimeout = 100 * time.Millisecond
		s.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				closed.Add(1)
			}
		}
	}})
	c := h.tlsClient(true)
	for i := range 3 {
		resp, err := c.Get(fmt.Sprintf("https://%s/hello/%d", testHost, i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != fmt.Sprintf("hello /hello/%d", i) {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
		waitFor(t, "the upstream to close its idle connection", func() bool { return closed.Load() > int64(i) })
	}
}
