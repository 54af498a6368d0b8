package test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSlowReaders is DESIGN.md's "500 slow readers ≤ 64 MiB above
// idle" against real processes: a `tollgated dev` edge, a `tollgate`
// agent over TLS+muxado, an upstream that answers every request with a
// 64 MiB body. N public clients (TOLLGATE_BENCH_READERS, default 500,
// one address: under the edge's per-IP cap of 1024) each send one
// HTTPS/1.1 request with a 16 KiB socket receive buffer and then read
// 1 KiB a second. Once the edge's memory stops growing (or after 30 s)
// it reports the edge process's RSS and live heap above idle, in MiB.
// Bounded: N connections, one request each, at most 40 s of load.
// TOLLGATE_BENCH_PROTO=h2 makes each reader an HTTP/2 client (Go's, one
// connection each, the same socket buffer and reading pace, and a 64 KiB
// stream window: Go's default of 4 MiB would have its transport read that
// much at once, a fast reader's start, not a slow reader).
// TOLLGATE_BENCH_PROFILES=DIR saves the edge's heap profile, goroutines
// and memory statistics there, idle (idle-*) and loaded (saveProfiles).
// TOLLGATE_BENCH_LOAD=post makes each client a slow uploader instead
// (slowPost, slowPostH2): a POST announcing a 64 MiB body that sends 2 KiB
// a second, above the edge's minimum body rate (1 KiB/s), while the
// upstream reads what arrives.
//
//	go test ./test -run '^$' -bench SlowReaders -benchtime 1x
//	TOLLGATE_BENCH_LOAD=post go test ./test -run '^$' -bench SlowReaders -benchtime 1x
func BenchmarkSlowReaders(b *testing.B) {
	n, err := strconv.Atoi(envOr("TOLLGATE_BENCH_READERS", "500"))
	if err != nil || n < 1 || n > 1000 {
		b.Fatalf("TOLLGATE_BENCH_READERS=%q: want 1–1000", os.Getenv("TOLLGATE_BENCH_READERS"))
	}
	const bodySize = 64 << 20
	chunk := make([]byte, 256<<10)
	post := envOr("TOLLGATE_BENCH_LOAD", "read") == "post"
	var uploads atomic.Int64 // bodies the upstream is reading
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			uploads.Add(1)
			defer uploads.Add(-1)
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d\n", n)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(bodySize))
		for left := bodySize; left > 0; left -= len(chunk) {
			if _, err := w.Write(chunk[:min(left, len(chunk))]); err != nil {
				return
			}
		}
	}))
	defer up.Close()
	for i := 0; i < b.N; i++ {
		debugAddr := freeAddr(b)
		dev := startDev(b, "", "--log-level", envOr("TOLLGATE_BENCH_LOG", "warn"), "--debug-addr", debugAddr)
		pid := dev.cmd.Process.Pid
		agent, url := dev.agent(b, "http", upstreamPort(up), "--transport", envOr("TOLLGATE_BENCH_TRANSPORT", "tcp"))
		host := hostPort(url)
		// One full request first, over the readers' protocol: the
		// baseline includes pools, the first stream and the code that
		// serves it (the binary's pages count in RSS once run).
		h2 := envOr("TOLLGATE_BENCH_PROTO", "http/1.1") == "h2"
		c := dev.client(h2)
		if resp, err := c.Head(url); err == nil {
			resp.Body.Close()
		}
		c.CloseIdleConnections()
		time.Sleep(time.Second)
		rssIdle, liveIdle := rssKiB(b, pid), liveKiB(b, debugAddr)
		fileIdle := rssFileKiB(b, pid)
		profiles := os.Getenv("TOLLGATE_BENCH_PROFILES")
		if profiles != "" {
			saveProfiles(b, debugAddr, profiles, "idle-")
		}

		// The clients run until the measurement is done (cancel below), at
		// most 40 s; the edge gets 30 s of that to settle.
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		settle := time.Now().Add(30 * time.Second)
		var wg sync.WaitGroup
		var started, failed atomic.Int64
		for j := 0; j < n; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				read := slowRead
				switch {
				case h2 && post:
					read = slowPostH2
				case h2:
					read = slowReadH2
				case post:
					read = slowPost
				}
				if err := read(ctx, dev, host, func() { started.Add(1) }); err != nil {
					failed.Add(1)
				}
			}()
		}
		// Poll until RSS holds still for 3 s, or 30 s pass.
		peak, stable, last := 0, 0, 0
		for time.Now().Before(settle) && stable < 3 {
			time.Sleep(time.Second)
			r := rssKiB(b, pid)
			peak = max(peak, r)
			if r-last < 1024 && started.Load()+failed.Load() == int64(n) {
				stable++
			} else {
				stable = 0
			}
			last = r
		}
		rss, live := rssKiB(b, pid), liveKiB(b, debugAddr)
		reading := uploads.Load()
		file := rssFileKiB(b, pid)
		peak = max(peak, rss)
		if profiles != "" {
			saveProfiles(b, debugAddr, profiles, "")
		}
		cancel()
		wg.Wait()
		mib := func(kib int) float64 { return float64(kib) / 1024 }
		b.ReportMetric(mib(rss-rssIdle), "rss_above_idle_MiB")
		b.ReportMetric(mib(peak-rssIdle), "peak_rss_above_idle_MiB")
		b.ReportMetric(mib(live-liveIdle), "live_heap_above_idle_MiB")
		if post && reading < int64(n)-failed.Load() {
			// Uploads the upstream does not see: say why, from the logs.
			fmt.Fprintf(os.Stderr, "only %d of %d uploads reach the upstream; edge log:\n%s\nagent log:\n%s\n",
				reading, int64(n)-failed.Load(), tail(dev.proc.output(), 6000), tail(agent.output(), 3000))
		}
		kind := "readers"
		if post {
			kind = fmt.Sprintf("uploaders, %d bodies reaching the upstream", reading)
		}
		fmt.Fprintf(os.Stderr, "%d slow %s (%d failed): edge RSS idle %.1f MiB, loaded %.1f MiB (+%.1f, of which the binary's pages +%.1f; peak +%.1f), live heap +%.1f MiB\n",
			n, kind, failed.Load(), mib(rssIdle), mib(rss), mib(rss-rssIdle), mib(file-fileIdle), mib(peak-rssIdle), mib(live-liveIdle))
		dev.stop(10 * time.Second)
	}
}

// slowRead sends one GET to host over TLS with a 16 KiB receive buffer,
// reads the response head, calls started, then reads 1 KiB a second
// until ctx ends.
func slowRead(ctx context.Context, dev *devServer, host string, started func()) error {
	conn, done, err := dialH1(ctx, dev, host, 16<<10)
	if err != nil {
		return err
	}
	defer done()
	if _, err := fmt.Fprintf(conn, "GET /big HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
		return err
	}
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	started()
	readSlowly(ctx, resp.Body)
	return nil
}

// slowReadH2 is slowRead over HTTP/2: a GET on a connection of its own
// with a 16 KiB receive buffer, then 1 KiB a second until ctx ends.
func slowReadH2(ctx context.Context, dev *devServer, host string, started func()) error {
	tr := h2Transport(dev, host, 16<<10, &http.HTTP2Config{MaxReceiveBufferPerStream: 64 << 10, MaxReceiveBufferPerConnection: 64 << 10})
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/big", nil)
	if err != nil {
		return err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		return fmt.Errorf("HTTP/%d status %d, want HTTP/2 200", resp.ProtoMajor, resp.StatusCode)
	}
	started()
	readSlowly(ctx, resp.Body)
	return nil
}

// slowPost sends one POST to host over TLS announcing a 64 MiB body,
// writes 2 KiB of it, calls started, then writes 2 KiB a second until
// ctx ends.
func slowPost(ctx context.Context, dev *devServer, host string, started func()) error {
	conn, done, err := dialH1(ctx, dev, host, 0)
	if err != nil {
		return err
	}
	defer done()
	if _, err := fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", host, 64<<20); err != nil {
		return err
	}
	return writeSlowly(ctx, conn, started)
}

// slowPostH2 is slowPost over HTTP/2, on a connection of its own.
func slowPostH2(ctx context.Context, dev *devServer, host string, started func()) error {
	tr := h2Transport(dev, host, 0, nil)
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+host+"/upload", pr)
	if err != nil {
		return err
	}
	req.ContentLength = 64 << 20
	done := make(chan error, 1)
	go func() {
		resp, err := tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				err = fmt.Errorf("HTTP/%d, want HTTP/2", resp.ProtoMajor)
			}
		}
		pr.CloseWithError(err)
		done <- err
	}()
	werr := writeSlowly(ctx, pw, started)
	pw.Close()
	if err := <-done; err != nil && ctx.Err() == nil {
		return err
	}
	return werr
}

// dialEdge dials the edge's HTTPS listener, setting the socket's receive
// buffer to readBuffer bytes when that is above 0.
func dialEdge(ctx context.Context, dev *devServer, readBuffer int) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	c, err := d.DialContext(ctx, "tcp", dev.info.HTTPSAddr)
	if err == nil && readBuffer > 0 {
		_ = c.(*net.TCPConn).SetReadBuffer(readBuffer)
	}
	return c, err
}

// dialH1 opens a TLS connection to the edge for host, offering HTTP/1.1,
// that closes when ctx ends; done closes it earlier.
func dialH1(ctx context.Context, dev *devServer, host string, readBuffer int) (conn *tls.Conn, done func(), err error) {
	raw, err := dialEdge(ctx, dev, readBuffer)
	if err != nil {
		return nil, nil, err
	}
	name, _, _ := net.SplitHostPort(host)
	conn = tls.Client(raw, &tls.Config{RootCAs: dev.pool, ServerName: name, NextProtos: []string{"http/1.1"}})
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	return conn, func() { stop(); raw.Close() }, nil
}

// h2Transport returns an HTTP/2 transport whose connections go to the
// edge's HTTPS listener for host (dialEdge's readBuffer; cfg may be nil).
func h2Transport(dev *devServer, host string, readBuffer int, cfg *http.HTTP2Config) *http.Transport {
	name, _, _ := net.SplitHostPort(host)
	return &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: dev.pool, ServerName: name},
		ForceAttemptHTTP2: true,
		HTTP2:             cfg,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialEdge(ctx, dev, readBuffer)
		},
	}
}

// writeSlowly writes 2 KiB to w, calls started, then writes 2 KiB a
// second until ctx ends (which also ends a write in progress: the callers
// close the connection or the pipe) or a write fails.
func writeSlowly(ctx context.Context, w io.Writer, started func()) error {
	buf := make([]byte, 2<<10)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	started()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := w.Write(buf); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// readSlowly reads body 1 KiB a second until ctx ends (which closes the
// connection under it, ending a read in progress) or body does.
func readSlowly(ctx context.Context, body io.Reader) {
	buf := make([]byte, 1024)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if _, err := body.Read(buf); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rssFileKiB returns the file-backed part of process pid's resident set
// (RssFile: the binary's pages that ran), in KiB.
func rssFileKiB(tb testing.TB, pid int) int { return procStatusKiB(tb, pid, "RssFile") }

// saveProfiles writes the edge's heap profile (heap.pb.gz), its
// goroutines (goroutines.txt) and the runtime's memory statistics
// (memstats.txt) from its debug server into dir, each name after prefix.
func saveProfiles(tb testing.TB, debugAddr, dir, prefix string) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for file, query := range map[string]string{
		"heap.pb.gz":     "heap",
		"goroutines.txt": "goroutine?debug=1",
		"memstats.txt":   "heap?debug=1",
	} {
		resp, err := http.Get("http://" + debugAddr + "/debug/pprof/" + query)
		if err != nil {
			tb.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			tb.Fatal(err)
		}
		if file == "memstats.txt" { // the statistics follow the samples
			if i := strings.Index(string(body), "\n# runtime.MemStats"); i >= 0 {
				body = body[i+1:]
			}
		}
		if err := os.WriteFile(filepath.Join(dir, prefix+file), body, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string { return s[max(0, len(s)-n):] }
