package test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkTunnelVsDirect measures small-request throughput and latency
// through a real `tollgated dev` edge and a real `tollgate` agent against the
// same upstream reached directly, at 1 and 64 connections, and one stream's
// bulk download throughput. Every figure is printed and reported as a
// metric; nothing is asserted. Run it alone:
//
//	go test ./test -run '^$' -bench TunnelVsDirect -benchtime 1x
//
// TOLLGATE_BENCH_SECONDS sets the length of each load run (default 5).
func BenchmarkTunnelVsDirect(b *testing.B) {
	dur := benchDuration()

	body := []byte("hello world\n")
	bulk := make([]byte, 256<<10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/bulk/")); err == nil {
			w.Header().Set("Content-Length", strconv.Itoa(n))
			for n > 0 {
				k := min(n, len(bulk))
				if _, err := w.Write(bulk[:k]); err != nil {
					return
				}
				n -= k
			}
			return
		}
		w.Header().Set("Content-Length", "12")
		w.Write(body)
	})
	plain := httptest.NewServer(h)
	defer plain.Close()
	secure := httptest.NewUnstartedServer(h)
	secure.EnableHTTP2 = false
	secure.StartTLS()
	defer secure.Close()

	dev := startDev(b, "", "--log-level", "warn")
	ctx := context.Background()
	direct := []struct {
		name string
		tgt  loadTarget
	}{
		{"direct-http", loadTarget{addr: plain.Listener.Addr().String(), host: "upstream", path: "/"}},
		{"direct-https", loadTarget{addr: secure.Listener.Addr().String(), host: "upstream", path: "/",
			tlsConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}},
	}
	results := map[string]loadResult{}
	for _, conns := range []int{1, 64} {
		for _, tg := range direct {
			r := runLoad(ctx, tg.tgt, conns, dur, 50_000_000)
			key := fmt.Sprintf("%s/c%d", tg.name, conns)
			results[key] = r
			b.Logf("%-22s %s", key, r)
		}
	}

	for _, transport := range []string{"tcp", "quic"} {
		host := transport + "." + dev.info.BaseDomain
		agent, url := dev.agent(b, "http", plain.Listener.Addr().String(), "--url", "https://"+host,
			"--transport", transport, "--log-level", "warn")
		tgt := loadTarget{addr: dev.info.HTTPSAddr, host: host, path: "/",
			tlsConfig: &tls.Config{ServerName: host, RootCAs: dev.pool, NextProtos: []string{"http/1.1"}}}
		runLoad(ctx, tgt, 8, time.Second, 1<<20) // warm up
		for _, conns := range []int{1, 64} {
			r := runLoad(ctx, tgt, conns, dur, 50_000_000)
			key := fmt.Sprintf("tunnel-%s/c%d", transport, conns)
			results[key] = r
			dh := results[fmt.Sprintf("direct-https/c%d", conns)]
			dp := results[fmt.Sprintf("direct-http/c%d", conns)]
			ratio := 100 * r.rps() / dh.rps()
			b.Logf("%-22s %s", key, r)
			b.Logf("%-22s tunnel/direct-https %.1f%%  tunnel/direct-http %.1f%%  p50 +%s  p99 +%s vs direct-https",
				"", ratio, 100*r.rps()/dp.rps(), (r.p50 - dh.p50).Round(time.Microsecond), (r.p99 - dh.p99).Round(time.Microsecond))
			b.ReportMetric(ratio, fmt.Sprintf("%s-%%direct-c%d", transport, conns))
		}

		// One stream's bulk throughput: a 1 GiB download through the tunnel.
		const size = 1 << 30
		c := dev.client(false)
		t0 := time.Now()
		resp, err := c.Get(url + "/bulk/" + strconv.Itoa(size))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			b.Fatalf("bulk read %d bytes: %v", n, err)
		}
		mibs := float64(size) / (1 << 20) / time.Since(t0).Seconds()
		b.Logf("%-22s bulk download, one stream: %.0f MiB/s", "tunnel-"+transport, mibs)
		b.ReportMetric(mibs, transport+"-bulk-MiB/s")
		agent.stop(10 * time.Second)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// benchDuration is the length of one load run of the end-to-end
// benchmarks: TOLLGATE_BENCH_SECONDS (default 5).
func benchDuration() time.Duration {
	secs, err := strconv.Atoi(envOr("TOLLGATE_BENCH_SECONDS", "5"))
	if err != nil || secs <= 0 {
		secs = 5
	}
	return time.Duration(secs) * time.Second
}
