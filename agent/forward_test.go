package agent

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/config"
	"go.uber.org/zap"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// newTestForwarder returns a forwarder for an endpoint of kind with the
// given upstream.
func newTestForwarder(t *testing.T, kind, upstream string, insecure bool) *forwarder {
	t.Helper()
	spec, err := config.Endpoint{Name: "t", Proto: kind, Upstream: upstream, UpstreamTLSInsecure: insecure}.Validate()
	if err != nil {
		t.Fatal(err)
	}
	return &forwarder{spec: spec, log: zap.NewNop(), metrics: &counters{}}
}

// serveAsync runs f.serve on the server end of a new pair and returns the
// client end and a channel closed when serve returns.
func serveAsync(t *testing.T, f *forwarder) (*net.TCPConn, <-chan struct{}) {
	t.Helper()
	client, stream := tcpPair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.serve(context.Background(), stream, client.LocalAddr().String())
	}()
	t.Cleanup(func() {
		client.Close()
		<-done
	})
	return client, done
}

func TestBadGatewayOnDialFailure(t *testing.T) {
	addr := closedPort(t)
	f := newTestForwarder(t, "http", addr, false)
	client, done := serveAsync(t, f)
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))

	req, _ := http.NewRequest("POST", "http://app.example.com/upload", strings.NewReader("hello"))
	if err := req.Write(client); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(client), req)
	if err != nil {
		t.Fatalf("ReadResponse: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	if resp.StatusCode != http.StatusBadGateway || resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
		t.Fatalf("status %q proto %q", resp.Status, resp.Proto)
	}
	if got := resp.Header.Get("Tollgate-Error-Code"); got != "TG_8012" {
		t.Fatalf("Tollgate-Error-Code = %q", got)
	}
	if !resp.Close {
		t.Fatal("response does not say Connection: close")
	}
	if resp.ContentLength != int64(len(body)) {
		t.Fatalf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
	}
	if !bytes.Contains(body, []byte("TG_8012")) || !bytes.Contains(body, []byte(addr)) {
		t.Fatalf("body does not name TG_8012 and %s:\n%s", addr, body)
	}
	// The agent closes the stream after the response.
	_ = client.CloseWrite()
	if n, err := io.Copy(io.Discard, client); err != nil || n != 0 {
		t.Fatalf("after the response: %d bytes, %v; want EOF", n, err)
	}
	<-done
	if f.metrics.connsTotal.Load() != 1 || f.metrics.connsOpen.Load() != 0 {
		t.Fatalf("conns total %d open %d", f.metrics.connsTotal.Load(), f.metrics.connsOpen.Load())
	}
}

func TestTCPDialFailureJustCloses(t *testing.T) {
	f := newTestForwarder(t, "tcp", closedPort(t), false)
	client, _ := serveAsync(t, f)
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, client); n != 0 || (err != nil && !isConnReset(err)) {
		t.Fatalf("tcp endpoint wrote %d bytes, %v; want a bare close", n, err)
	}
}

func isConnReset(err error) bool { return strings.Contains(err.Error(), "reset") }

// TestJoinHalfClose checks that each direction ends on its own: the client
// finishes sending, the upstream still answers; then the upstream finishes
// first while the client keeps sending.
func TestJoinHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	upstreamDone := make(chan error, 2)
	go func() {
		for i := 0; i < 2; i++ {
			c, err := ln.Accept()
			if err != nil {
				upstreamDone <- err
				return
			}
			go func(i int, c *net.TCPConn) {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if i == 0 {
					// Read everything, then answer and half-close.
					data, err := io.ReadAll(c)
					if err != nil {
						upstreamDone <- err
						return
					}
					_, _ = c.Write(bytes.ToUpper(data))
					upstreamDone <- c.CloseWrite()
					return
				}
				// Speak first and half-close, then keep reading.
				_, _ = c.Write([]byte("banner\n"))
				_ = c.CloseWrite()
				data, err := io.ReadAll(c)
				if err == nil && string(data) != "late data" {
					err = io.ErrUnexpectedEOF
				}
				upstreamDone <- err
			}(i, c.(*net.TCPConn))
		}
	}()

	f := newTestForwarder(t, "tcp", ln.Addr().String(), false)

	// Client half-closes first.
	client, done := serveAsync(t, f)
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	payload := bytes.Repeat([]byte("abcdefgh"), 64<<10) // 512 KiB: several buffers
	go func() {
		_, _ = client.Write(payload)
		_ = client.CloseWrite()
	}()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.ToUpper(payload)) {
		t.Fatalf("got %d bytes back, want %d", len(got), len(payload))
	}
	if err := <-upstreamDone; err != nil {
		t.Fatal(err)
	}
	<-done
	if in, out := f.metrics.bytesIn.Load(), f.metrics.bytesOut.Load(); in != int64(len(payload)) || out != int64(len(payload)) {
		t.Fatalf("bytes in %d out %d, want %d each", in, out, len(payload))
	}

	// Upstream half-closes first.
	client2, done2 := serveAsync(t, f)
	_ = client2.SetDeadline(time.Now().Add(10 * time.Second))
	banner := make([]byte, 7)
	if _, err := io.ReadFull(client2, banner); err != nil || string(banner) != "banner\n" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	if n, err := client2.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the banner: %d, %v; want EOF", n, err)
	}
	if _, err := client2.Write([]byte("late data")); err != nil {
		t.Fatalf("writing after the upstream half-closed: %v", err)
	}
	_ = client2.CloseWrite()
	if err := <-upstreamDone; err != nil {
		t.Fatalf("upstream: %v", err)
	}
	<-done2
}

func TestHTTPSUpstream(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "secure "+r.Host)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)

	roundTrip := func(f *forwarder) *http.Response {
		client, _ := serveAsync(t, f)
		_ = client.SetDeadline(time.Now().Add(10 * time.Second))
		req, _ := http.NewRequest("GET", "http://app.example.com/", nil)
		req.Close = true
		if err := req.Write(client); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(client), req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	// Self-signed certificate: verification fails, which is a dial failure.
	resp := roundTrip(newTestForwarder(t, "http", "https://"+u.Host, false))
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("unverifiable upstream: status %d, want 502", resp.StatusCode)
	}
	// With verification off, bytes pass through TLS unchanged.
	resp = roundTrip(newTestForwarder(t, "http", "https://"+u.Host, true))
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "secure app.example.com" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
}
