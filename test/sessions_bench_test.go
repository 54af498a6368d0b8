package test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/tunnel"
)

// BenchmarkEdgeIdleSessions opens many idle agent sessions (TLS+muxado,
// authenticated with the dev authtoken, no endpoint) to a real `tollgated
// dev` and reports the growth of the dev process's resident memory per
// session: the edge's cost of an idle agent as an operator sees it (the
// control plane in the same process holds nothing per session but a line
// of its registry). TOLLGATE_BENCH_SESSIONS sets how many (default 2000;
// DESIGN.md's figure is 10,000).
//
//	TOLLGATE_BENCH_SESSIONS=10000 go test ./test -run '^$' -bench EdgeIdleSessions -benchtime 1x
func BenchmarkEdgeIdleSessions(b *testing.B) {
	n, err := strconv.Atoi(envOr("TOLLGATE_BENCH_SESSIONS", "2000"))
	if err != nil || n < 1 || n > 50000 {
		b.Fatalf("TOLLGATE_BENCH_SESSIONS=%q: want 1–50000", os.Getenv("TOLLGATE_BENCH_SESSIONS"))
	}
	for i := 0; i < b.N; i++ {
		debugAddr := freeAddr(b)
		dev := startDev(b, "", "--log-level", "warn", "--debug-addr", debugAddr)
		pid := dev.cmd.Process.Pid
		tlsConf := &tls.Config{RootCAs: dev.pool, ServerName: "localhost"}
		auth := func() *tunnel.Auth {
			return &tunnel.Auth{Version: append([]string(nil), tunnel.ProtocolVersions...), Extra: tunnel.AuthExtra{
				OS: runtime.GOOS, Arch: runtime.GOARCH, Authtoken: tunnel.Secret(dev.info.Authtoken),
				Version: "bench", ClientType: tunnel.ClientType}}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		// One session first, so the baseline includes what the first agent
		// starts (snapshot index, pools).
		open := func() (*tunnel.ClientSession, error) {
			mux, err := tunnel.DialTCP(ctx, dev.info.AgentAddr, tlsConf, tunnel.MuxConfig{})
			if err != nil {
				return nil, err
			}
			s := tunnel.NewClientSession(mux, tunnel.ClientConfig{})
			if err := s.Start(ctx, nil); err != nil {
				return nil, err
			}
			if _, err := s.Auth(ctx, auth()); err != nil {
				s.Close()
				return nil, err
			}
			return s, nil
		}
		first, err := open()
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		before, liveBefore := rssKiB(b, pid), liveKiB(b, debugAddr)

		sessions := make([]*tunnel.ClientSession, n)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		next := make(chan int)
		t0 := time.Now()
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range next {
					s, err := open()
					if err != nil {
						select {
						case errs <- fmt.Errorf("session %d: %w", j, err):
						default:
						}
						return
					}
					sessions[j] = s
				}
			}()
		}
	feed:
		for j := 0; j < n; j++ {
			select {
			case next <- j:
			case err := <-errs:
				close(next)
				wg.Wait()
				cancel()
				b.Fatal(err)
				break feed
			}
		}
		close(next)
		wg.Wait()
		select {
		case err := <-errs:
			cancel()
			b.Fatal(err)
		default:
		}
		opened := time.Since(t0)
		time.Sleep(3 * time.Second) // let handshake garbage be collected
		after, liveAfter := rssKiB(b, pid), liveKiB(b, debugAddr)

		perSession := float64(after-before) / float64(n)
		livePerSession := float64(liveAfter-liveBefore) / float64(n)
		b.Logf("%d idle sessions opened in %v (%.0f/s); dev RSS %d → %d KiB: %.1f KiB per session; heap in use + stacks after a GC %d → %d KiB: %.1f KiB per session",
			n, opened.Round(time.Millisecond), float64(n)/opened.Seconds(), before, after, perSession, liveBefore, liveAfter, livePerSession)
		b.ReportMetric(perSession, "RSS-KiB/session")
		b.ReportMetric(livePerSession, "live-KiB/session")
		b.ReportMetric(float64(n)/opened.Seconds(), "sessions/s")
		for _, s := range sessions {
			s.Close()
		}
		first.Close()
		cancel()
		if err := dev.stop(30 * time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// liveKiB is the heap in use plus goroutine stacks of the process serving
// Go's profiler at debugAddr (--debug-addr), right after a garbage
// collection, in KiB: its memory without the collector's headroom.
func liveKiB(tb testing.TB, debugAddr string) int {
	tb.Helper()
	resp, err := http.Get("http://" + debugAddr + "/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	total, seen := 0, 0
	for _, line := range strings.Split(string(body), "\n") {
		for _, k := range []string{"# HeapInuse = ", "# Stack = "} { // Stack = in use / from the OS
			if v, ok := strings.CutPrefix(line, k); ok {
				v, _, _ = strings.Cut(v, " /")
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil {
					tb.Fatalf("%q: %v", line, err)
				}
				total += n
				seen++
			}
		}
	}
	if seen != 2 {
		tb.Fatalf("no HeapInuse or Stack in the heap profile from %s", debugAddr)
	}
	return total / 1024
}

// rssKiB is the resident set size of process pid, in KiB.
func rssKiB(tb testing.TB, pid int) int { return procStatusKiB(tb, pid, "VmRSS") }

// procStatusKiB returns the field (VmRSS, RssFile, ...) of
// /proc/<pid>/status, in KiB.
func procStatusKiB(tb testing.TB, pid int, field string) int {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				tb.Fatalf("%s line %q: %v", field, line, err)
			}
			return kib
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
