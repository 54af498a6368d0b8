package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkInspectorOverhead measures HTTPS requests/s through `tollgated
// dev` at 64 connections to two agents of the same upstream, one recording
// requests (the default) and one with --inspect=false, in alternating
// rounds (off, on, off, on, …) so that drift of the shared machine hits
// both alike, and each agent's CPU time per request (user + system, from
// /proc), the figure that drifts least on a busy machine. Nothing is
// asserted. Run it alone:
//
//	go test ./test -run '^$' -bench InspectorOverhead -benchtime 1x
//
// TOLLGATE_BENCH_SECONDS sets the length of each round (default 5),
// TOLLGATE_BENCH_ROUNDS their number (default 6; more, shorter rounds
// average out a busy machine better).
func BenchmarkInspectorOverhead(b *testing.B) {
	up := newHelloUpstream(b)
	dev := startDev(b, "", "--log-level", "warn")
	target := func(host string) loadTarget {
		return loadTarget{addr: dev.info.HTTPSAddr, host: host, path: "/",
			tlsConfig: &tls.Config{ServerName: host, RootCAs: dev.pool, NextProtos: []string{"http/1.1"}}}
	}
	on, off := "inspect-on."+dev.info.BaseDomain, "inspect-off."+dev.info.BaseDomain
	pOn, _ := dev.agent(b, "http", up, "--url", "https://"+on, "--log-level", "warn")
	pOff, _ := dev.agent(b, "http", up, "--url", "https://"+off, "--log-level", "warn", "--inspect=false")
	pids := map[bool]int{true: pOn.cmd.Process.Pid, false: pOff.cmd.Process.Pid}
	ctx := context.Background()
	runLoad(ctx, target(on), 8, time.Second, 1<<20) // warm up
	runLoad(ctx, target(off), 8, time.Second, 1<<20)
	rounds, _ := strconv.Atoi(envOr("TOLLGATE_BENCH_ROUNDS", "6"))
	rounds = max(2, rounds/2*2)
	var sums, cpu [2]float64
	var reqs [2]int
	for round := range rounds {
		inspect := round%2 == 1
		i := map[bool]int{true: 1, false: 0}[inspect]
		host := map[bool]string{true: on, false: off}[inspect]
		before := procCPUSeconds(b, pids[inspect])
		r := runLoad(ctx, target(host), 64, benchDuration(), 50_000_000)
		used := procCPUSeconds(b, pids[inspect]) - before
		b.Logf("round %d inspect=%-5v %s  agent CPU %.1f µs/request", round, inspect, r, 1e6*used/float64(r.requests))
		sums[i] += r.rps()
		cpu[i] += used
		reqs[i] += r.requests
	}
	ratio := 100 * sums[1] / sums[0]
	perReq := func(i int) float64 { return 1e6 * cpu[i] / float64(reqs[i]) }
	b.Logf("HTTPS c64: inspect off %.0f req/s, on %.0f req/s: %.1f%%; agent CPU off %.1f µs/request, on %.1f µs/request (%.0f%%)",
		sums[0]/float64(rounds/2), sums[1]/float64(rounds/2), ratio, perReq(0), perReq(1), 100*perReq(1)/perReq(0))
	b.ReportMetric(ratio, "%on/off")
	b.ReportMetric(100*perReq(1)/perReq(0), "%cpu_on/off")
}

// procCPUSeconds returns the user + system CPU time pid has used
// (/proc/PID/stat fields 14 and 15, in clock ticks of 1/100 s).
func procCPUSeconds(tb testing.TB, pid int) float64 {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}
