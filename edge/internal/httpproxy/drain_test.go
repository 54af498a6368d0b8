package httpproxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// slowHandler serves /slow: half of a 256 KiB body, then, once release is
// closed, the rest (with ?late=1, all of it after the release). started
// gets one value per request that reached it.
func slowHandler(started chan<- struct{}, release <-chan struct{}) http.Handler {
	mux := testHandler()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		body := slowBody()
		if r.URL.Query().Get("late") != "" {
			// The head too comes after the release.
			started <- struct{}{}
			<-release
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		if r.URL.Query().Get("late") == "" {
			started <- struct{}{}
			<-release
		}
		w.Write(body[len(body)/2:])
	})
	return mux
}

func slowBody() []byte {
	b, _ := io.ReadAll(randReader(256<<10, 3))
	return b
}

// Long requests in flight over HTTP/1.1 and HTTP/2 when Shutdown starts
// all complete with the upstream's bytes; HTTP/1.1 responses say
// "Connection: close", HTTP/2 connections get GOAWAY naming the last
// stream accepted, and Shutdown returns once they are done.
func TestShutdownLongRequests(t *testing.T) {
	const each = 3
	started, release := make(chan struct{}, 4*each), make(chan struct{})
	h := newHarness(t, slowHandler(started, release), harnessOpts{})
	want := sha256.Sum256(slowBody())

	type result struct {
		name  string
		sum   [32]byte
		conn  string
		proto int
		err   error
	}
	results := make(chan result, 3*each)
	var wg sync.WaitGroup
	get := func(name string, c *http.Client, url string) {
		defer wg.Done()
		resp, err := c.Get(url)
		if err != nil {
			results <- result{name: name, err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn := resp.Header.Get("Connection")
		if resp.Close { // net/http's client takes "Connection: close" out of the header
			conn = "close"
		}
		results <- result{name, sha256.Sum256(b), conn, resp.ProtoMajor, err}
	}
	for i := range each {
		wg.Add(2)
		go get(fmt.Sprintf("h1-%d", i), h.client(), "http://"+testHost+"/slow?late=1")
		go get(fmt.Sprintf("h2-%d", i), h.tlsClient(true), "https://"+testHost+"/slow")
	}
	// And one raw HTTP/2 client that reads the GOAWAY.
	fr, _, _ := rawH2Conn(t, h)
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2HeaderBlock("/slow"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for range 2*each + 1 {
		<-started
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- h.proxy.Shutdown(ctx)
	}()
	// The raw client sees GOAWAY with last stream 1 before its response ends.
	var goAway *http2.GoAwayFrame
	var got int
	for goAway == nil {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			goAway = f
		case *http2.DataFrame:
			got += len(f.Data())
			fr.WriteWindowUpdate(0, uint32(len(f.Data())))
			fr.WriteWindowUpdate(1, uint32(len(f.Data())))
		}
	}
	if goAway.ErrCode != http2.ErrCodeNo || goAway.LastStreamID != 1 {
		t.Fatalf("GOAWAY %v last stream %d, want NO_ERROR and 1", goAway.ErrCode, goAway.LastStreamID)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with requests in flight", err)
	default:
	}
	close(release)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := f.(*http2.DataFrame); ok {
			got += len(d.Data())
			fr.WriteWindowUpdate(0, uint32(len(d.Data())))
			fr.WriteWindowUpdate(1, uint32(len(d.Data())))
			if d.StreamEnded() {
				break
			}
		}
	}
	if got != 256<<10 {
		t.Fatalf("raw HTTP/2 client got %d bytes", got)
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || r.sum != want {
			t.Errorf("%s: %v (body intact: %v)", r.name, r.err, r.sum == want)
		}
		if strings.HasPrefix(r.name, "h1") && r.conn != "close" {
			t.Errorf("%s: Connection %q, want close while draining", r.name, r.conn)
		}
		if strings.HasPrefix(r.name, "h2") && r.proto != 2 {
			t.Errorf("%s spoke HTTP/%d", r.name, r.proto)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A request body that stalls releases its proxy stream (and so the
// upstream connection) and is answered 408, on HTTP/1.1 and HTTP/2.
func TestStalledRequestBody(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{cfg: func(c *Config) {
		c.BodyReadTimeout = 300 * time.Millisecond
	}})
	t.Run("h1", func(t *testing.T) {
		c := h.dial()
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n0123456789", testHost)
		waitFor(t, "the proxy stream", func() bool { return h.agent.live.Load() == 1 })
		resp, body := readResponse(t, bufio.NewReader(c), "POST")
		if resp.StatusCode != 408 || resp.Header.Get(ErrorCodeHeader) == "" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		waitFor(t, "the proxy stream to close", func() bool { return h.agent.live.Load() == 0 })
	})
	t.Run("h2", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		go pw.Write([]byte("0123456789")) // then nothing
		req, _ := http.NewRequest("POST", "https://"+testHost+"/echo", pr)
		resp, err := h.tlsClient(true).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 408 {
			t.Fatalf("got %d", resp.StatusCode)
		}
		waitFor(t, "the proxy stream to close", func() bool { return h.agent.live.Load() == 0 })
	})
}

// A body that trickles in below MinBodyRate is cut like a stalled one.
func TestSlowRequestBody(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{cfg: func(c *Config) {
		c.BodyReadTimeout = 200 * time.Millisecond
		c.MinBodyRate = 1 << 20
	}})
	c := h.dial()
	fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: 100000\r\n\r\n", testHost)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for range 500 { // a byte every 20 ms: never idle, far too slow
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	resp, _ := readResponse(t, bufio.NewReader(c), "POST")
	if resp.StatusCode != 408 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	waitFor(t, "the proxy stream to close", func() bool { return h.agent.live.Load() == 0 })
}

// Client-sent X-Real-IP and header names with underscores never reach the
// upstream, on HTTP/1.1 and HTTP/2.
func TestAddressHeadersDropped(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	for _, tc := range h.clients() {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tc.base+"/echo", nil)
			req.Header["X-Real-Ip"] = []string{"6.6.6.6"}
			req.Header["X_Forwarded_For"] = []string{"6.6.6.6"}
			req.Header["X_real_ip"] = []string{"6.6.6.6"}
			req.Header["Client_ip"] = []string{"6.6.6.6"}
			req.Header["X-Kept"] = []string{"yes"}
			e := getEcho(t, tc.client, req)
			for k, v := range e.Header {
				if strings.Contains(k, "_") || strings.EqualFold(k, "X-Real-Ip") || strings.Contains(strings.Join(v, ","), "6.6.6.6") {
					t.Errorf("upstream got %s: %q", k, v)
				}
			}
			if e.Header.Get("X-Kept") != "yes" || e.Header.Get("X-Forwarded-For") != "127.0.0.1" {
				t.Errorf("header %v", e.Header)
			}
		})
	}
	// A Connection option naming a dropped field is removed with it.
	c := h.dial()
	fmt.Fprintf(c, "GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: keep-alive, X-Real-IP\r\nX-Real-IP: 6.6.6.6\r\n\r\n", testHost)
	resp, body := readResponse(t, bufio.NewReader(c), "GET")
	if resp.StatusCode != 200 || strings.Contains(string(body), "6.6.6.6") || strings.Contains(strings.ToLower(string(body)), "x-real-ip") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}
