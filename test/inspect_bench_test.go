package test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// BenchmarkInspectorOverhead measures HTTPS requests/s through `tollgated
// dev` at 64 connections to two agents of the same upstream, one recording
// requests (the default) and one with --inspect=false, in alternating
// rounds (off, on, off, on, …) so that drift of the shared machine hits
// both alike. Nothing is asserted. Run it alone:
//
//	go test ./test -run '^$' -bench InspectorOverhead -benchtime 1x
//
// TOLLGATE_BENCH_SECONDS sets the length of each round (default 5).
func BenchmarkInspectorOverhead(b *testing.B) {
	secs, _ := strconv.Atoi(envOr("TOLLGATE_BENCH_SECONDS", "5"))
	if secs <= 0 {
		secs = 5
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "12")
		_, _ = w.Write([]byte("hello world\n"))
	}))
	defer up.Close()
	dev := startDev(b, "", "--log-level", "warn")
	target := func(host string) loadTarget {
		return loadTarget{addr: dev.info.HTTPSAddr, host: host, path: "/",
			tlsConfig: &tls.Config{ServerName: host, RootCAs: dev.pool, NextProtos: []string{"http/1.1"}}}
	}
	on, off := "inspect-on."+dev.info.BaseDomain, "inspect-off."+dev.info.BaseDomain
	dev.agent(b, "http", up.Listener.Addr().String(), "--url", "https://"+on, "--log-level", "warn")
	dev.agent(b, "http", up.Listener.Addr().String(), "--url", "https://"+off, "--log-level", "warn", "--inspect=false")
	ctx := context.Background()
	runLoad(ctx, target(on), 8, time.Second, 1<<20) // warm up
	runLoad(ctx, target(off), 8, time.Second, 1<<20)
	var sums [2]float64
	for round := range 6 {
		inspect := round%2 == 1
		host := map[bool]string{true: on, false: off}[inspect]
		r := runLoad(ctx, target(host), 64, time.Duration(secs)*time.Second, 50_000_000)
		b.Logf("round %d inspect=%-5v %s", round, inspect, r)
		sums[map[bool]int{true: 1, false: 0}[inspect]] += r.rps()
	}
	ratio := 100 * sums[1] / sums[0]
	b.Logf("HTTPS c64: inspect off %.0f req/s, on %.0f req/s: %.1f%%", sums[0]/3, sums[1]/3, ratio)
	b.ReportMetric(ratio, "%on/off")
}
