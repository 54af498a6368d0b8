package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// echoUpstream is a local service: it answers with what it saw.
func echoUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Seen-Host", r.Header.Get("X-Forwarded-Host"))
		w.Header().Set("X-Seen-Remote", r.RemoteAddr)
		fmt.Fprintf(w, "hello from upstream, host=%s", r.Host)
	})
	mux.HandleFunc("/sum", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("/bytes/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/bytes/"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		buf := make([]byte, 64<<10)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for n > 0 {
			k := min(n, len(buf))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		// Each event is sent only after the client acknowledges the previous
		// one through /ack, so a buffering proxy would deadlock the test.
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: event-%d\n\n", i)
			fl.Flush()
			select {
			case <-sseAcks:
			case <-time.After(10 * time.Second):
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("/ack", func(w http.ResponseWriter, r *http.Request) { sseAcks <- struct{}{} })
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
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

var sseAcks = make(chan struct{}, 1)

func upstreamPort(srv *httptest.Server) string {
	_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return p
}

func get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp, string(b)
}

// TestHTTPSThroughTunnel is the quickstart: dev, an agent with --url, HTTP/1.1
// and HTTP/2 clients, forwarded headers, plain HTTP redirect, curl.
func TestHTTPSThroughTunnel(t *testing.T) {
	dev := startDev(t, "")
	up := echoUpstream(t)
	_, url := dev.agent(t, "http", upstreamPort(up), "--url", "https://app."+dev.info.BaseDomain)
	want := "https://app." + dev.info.BaseDomain + ":" + dev.httpsPort()
	if url != want {
		t.Fatalf("public URL = %q, want %q", url, want)
	}
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			resp, body := get(t, dev.client(h2), url+"/hello", "X-Forwarded-For", "6.6.6.6", "Forwarded", "for=6.6.6.6")
			if resp.StatusCode != 200 || !strings.Contains(body, "hello from upstream") {
				t.Fatalf("status %d body %q", resp.StatusCode, body)
			}
			if h2 && resp.ProtoMajor != 2 {
				t.Fatalf("ProtoMajor = %d, want 2", resp.ProtoMajor)
			}
			if got := resp.Header.Get("X-Seen-XFF"); got != "127.0.0.1" {
				t.Errorf("upstream saw X-Forwarded-For %q, want 127.0.0.1 (client-sent value replaced)", got)
			}
			if got := resp.Header.Get("X-Seen-Proto"); got != "https" {
				t.Errorf("upstream saw X-Forwarded-Proto %q", got)
			}
			if got := resp.Header.Get("X-Seen-Host"); !strings.HasPrefix(got, "app."+dev.info.BaseDomain) {
				t.Errorf("upstream saw X-Forwarded-Host %q", got)
			}
		})
	}
	t.Run("plain HTTP redirects", func(t *testing.T) {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, _ := http.NewRequest("GET", "http://"+dev.info.HTTPAddr+"/hello?x=1", nil)
		req.Host = "app." + dev.info.BaseDomain
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != url+"/hello?x=1" {
			t.Fatalf("redirect %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("curl", func(t *testing.T) {
		out, err := exec.Command("curl", "-sS", "--max-time", "20", "--cacert", dev.info.CAFile,
			"--resolve", "app."+dev.info.BaseDomain+":"+dev.httpsPort()+":127.0.0.1", url+"/hello").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hello from upstream") {
			t.Fatalf("curl: %v: %s", err, out)
		}
	})
}

func TestRandomNameAndErrors(t *testing.T) {
	dev := startDev(t, "")
	up := echoUpstream(t)
	_, url := dev.agent(t, "http", "127.0.0.1:"+upstreamPort(up))
	if !regexp.MustCompile(`^https://[a-z0-9]+\.` + regexp.QuoteMeta(dev.info.BaseDomain) + `:\d+$`).MatchString(url) {
		t.Fatalf("random URL %q is not under the base domain", url)
	}
	c := dev.client(false)
	if resp, body := get(t, c, url+"/hello"); resp.StatusCode != 200 {
		t.Fatalf("status %d %q", resp.StatusCode, body)
	}
	t.Run("unknown host 404", func(t *testing.T) {
		resp, body := get(t, c, "https://nobody."+dev.info.BaseDomain+":"+dev.httpsPort()+"/")
		if resp.StatusCode != 404 || !strings.Contains(body, "TG_3200") || resp.Header.Get("Tollgate-Error-Code") != "TG_3200" {
			t.Fatalf("status %d code %q body %q", resp.StatusCode, resp.Header.Get("Tollgate-Error-Code"), body)
		}
	})
	t.Run("upstream refuses 502", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := ln.Addr().String()
		ln.Close()
		_, deadURL := dev.agent(t, "http", dead, "--url", "https://dead."+dev.info.BaseDomain)
		resp, body := get(t, c, deadURL+"/")
		if resp.StatusCode != 502 || !strings.Contains(body, "TG_8012") {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
	})
}

func TestAgentBadInput(t *testing.T) {
	dev := startDev(t, "")
	cases := []struct {
		name string
		args []string
		code string
	}{
		{"wrong authtoken", []string{"http", "8080", "--authtoken", "2cSjwFetnZnRcG0B7U5fEYBX2V3_6Jxvym7aMW1jc41HTLpAcxxxxxxx"}, "TG_107"},
		{"malformed authtoken", []string{"http", "8080", "--authtoken", "nonsense"}, "TG_105"},
		{"domain outside base", []string{"http", "8080", "--url", "https://app.example.com"}, "TG_402"},
		{"malformed url", []string{"http", "8080", "--url", "https://"}, ""},
		{"unreadable CA", []string{"http", "8080", "--root-ca", "/nonexistent/ca.pem"}, "TG_9003"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{}, tc.args...)
			// Flags given last win in cobra, so the case's own values come last.
			base := []string{"--authtoken", dev.info.Authtoken, "--server-addr", dev.info.AgentAddr, "--root-ca", dev.info.CAFile, "--web-addr", "false"}
			p := start(t, bins.tollgate, []string{"TOLLGATE_CONFIG=" + t.TempDir() + "/c.yml"}, append(append([]string{args[0], args[1]}, base...), args[2:]...)...)
			code, ok := p.wait(30 * time.Second)
			if !ok {
				t.Fatalf("agent did not exit; output:\n%s", p.output())
			}
			if code == 0 {
				t.Fatalf("agent exited 0; output:\n%s", p.output())
			}
			if tc.code != "" && !strings.Contains(p.output(), tc.code) {
				t.Fatalf("output lacks %s:\n%s", tc.code, p.output())
			}
		})
	}
}

func TestWebSocketAndSSE(t *testing.T) {
	dev := startDev(t, "")
	up := echoUpstream(t)
	_, url := dev.agent(t, "http", upstreamPort(up), "--url", "https://ws."+dev.info.BaseDomain)
	c := dev.client(false)
	t.Run("websocket echo", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, strings.Replace(url, "https://", "wss://", 1)+"/ws", &websocket.DialOptions{HTTPClient: c})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		for i := 0; i < 20; i++ {
			msg := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*1000))
			if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := ws.Read(ctx)
			if err != nil || string(got) != msg {
				t.Fatalf("echo %d: %v (%d bytes)", i, err, len(got))
			}
		}
		ws.Close(websocket.StatusNormalClosure, "")
	})
	t.Run("sse streams without buffering", func(t *testing.T) {
		resp, err := c.Get(url + "/sse")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 256)
		var seen bytes.Buffer
		for i := 0; i < 3; i++ {
			want := fmt.Sprintf("data: event-%d", i)
			for !strings.Contains(seen.String(), want) {
				n, err := resp.Body.Read(buf)
				seen.Write(buf[:n])
				if err != nil && !strings.Contains(seen.String(), want) {
					t.Fatalf("event %d: %v (saw %q)", i, err, seen.String())
				}
			}
			if _, b := get(t, c, url+"/ack"); b != "" {
				t.Fatalf("ack: %q", b)
			}
		}
	})
}

func TestLargeBodiesAndConcurrency(t *testing.T) {
	dev := startDev(t, "")
	up := echoUpstream(t)
	_, url := dev.agent(t, "http", upstreamPort(up), "--url", "https://big."+dev.info.BaseDomain)
	const size = 64 << 20
	for _, h2 := range []bool{false, true} {
		c := dev.client(h2)
		t.Run(fmt.Sprintf("upload h2=%v", h2), func(t *testing.T) {
			h := sha256.New()
			body := io.TeeReader(io.LimitReader(rand.Reader, size), h)
			resp, err := c.Post(url+"/sum", "application/octet-stream", body)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			want := fmt.Sprintf("%d %s", size, hex.EncodeToString(h.Sum(nil)))
			if string(got) != want {
				t.Fatalf("upstream saw %q, want %q", got, want)
			}
		})
		t.Run(fmt.Sprintf("download h2=%v", h2), func(t *testing.T) {
			resp, err := c.Get(url + "/bytes/" + strconv.Itoa(size))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if err != nil || n != size {
				t.Fatalf("read %d bytes: %v", n, err)
			}
			// The same bytes, computed locally.
			w := sha256.New()
			buf := make([]byte, 64<<10)
			for i := range buf {
				buf[i] = byte(i * 7)
			}
			for left := size; left > 0; left -= len(buf) {
				w.Write(buf[:min(left, len(buf))])
			}
			if !bytes.Equal(h.Sum(nil), w.Sum(nil)) {
				t.Fatal("downloaded body differs")
			}
		})
	}
	t.Run("200 concurrent requests", func(t *testing.T) {
		c := dev.client(false)
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := c.Get(url + "/hello")
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(b), "hello from upstream") {
					errs <- fmt.Errorf("status %d body %q", resp.StatusCode, b)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func TestMinTLSVersion(t *testing.T) {
	dev := startDev(t, "")
	up := echoUpstream(t)
	_, url13 := dev.agent(t, "http", upstreamPort(up), "--url", "https://strict."+dev.info.BaseDomain, "--min-tls", "1.3")
	_, url12 := dev.agent(t, "http", upstreamPort(up), "--url", "https://default."+dev.info.BaseDomain)
	dial := func(url string, max uint16) error {
		host := strings.TrimPrefix(url, "https://")
		host, _, _ = net.SplitHostPort(host)
		c, err := tls.Dial("tcp", dev.info.HTTPSAddr, &tls.Config{ServerName: host, RootCAs: dev.pool, MinVersion: tls.VersionTLS10, MaxVersion: max})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(url13, tls.VersionTLS12); err == nil {
		t.Fatal("a TLS 1.2 client completed a handshake with a --min-tls 1.3 endpoint")
	}
	if err := dial(url13, tls.VersionTLS13); err != nil {
		t.Fatalf("TLS 1.3 to the strict endpoint: %v", err)
	}
	if err := dial(url12, tls.VersionTLS12); err != nil {
		t.Fatalf("TLS 1.2 to a default endpoint: %v", err)
	}
	if err := dial(url12, tls.VersionTLS11); err == nil {
		t.Fatal("TLS 1.1 accepted by a default endpoint (default minimum is 1.2)")
	}
}
