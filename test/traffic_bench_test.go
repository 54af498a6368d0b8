package test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkTrafficEvents measures HTTPS requests/s at 64 connections
// without a traffic subscription and with one to http_request_complete.v0
// on a slow webhook (500 ms per batch), in one run, alternating (none,
// subscribed, none, subscribed) so that drift of the shared machine hits
// both alike. Nothing is asserted. Run it alone:
//
//	go test ./test -run '^$' -bench TrafficEvents -benchtime 1x
//
// Two set-ups:
//
//   - dev: `tollgated dev`, the control plane (which writes every traffic
//     event into its SQLite outbox) in the edge's process, on the same two
//     cores as the edge, the agent, the upstream and the load.
//   - split: `tollgated control` and `tollgated edge` as separate
//     processes, the control plane pinned to CPU 1 and everything of the
//     data plane (edge, agent, this process: upstream, webhook and load)
//     to CPU 0, so that the control plane's work stands for another
//     machine's, as in a deployment: the figure is what recording and
//     shipping traffic records costs the edge. Skipped on a machine with
//     fewer than two CPUs. TOLLGATE_BENCH_BUSY_CPU1=1 keeps CPU 1 busy
//     in every round, so that the control plane's work in subscribed
//     rounds does not slow CPU 0 through the host only then.
//
// Beside requests/s it reports the edge's CPU time per request in each
// kind of round (dev: the whole process), a figure the machine's other
// load moves less. TOLLGATE_BENCH_SECONDS sets the length of each load
// run (default 5), TOLLGATE_BENCH_PAIRS the number of (none, subscribed)
// pairs (default 3).
func BenchmarkTrafficEvents(b *testing.B) {
	b.Run("dev", benchTrafficDev)
	b.Run("split", benchTrafficSplit)
}

// trafficRig is a running edge with its control plane for
// benchTrafficRounds: the API, the HTTPS endpoint of an agent forwarding
// to an upstream, and the metrics listeners (edge and control plane; the
// same one in dev).
type trafficRig struct {
	apiURL, apiKey string
	target         loadTarget
	edgeMetrics    string
	controlMetrics string
	profile        string // pprof address for TOLLGATE_BENCH_PROFILE (dev: tollgated dev; split: the edge)
	edgePID        int    // the process whose CPU per request is reported (dev: tollgated dev)
}

func benchTrafficDev(b *testing.B) {
	up := newHelloUpstream(b)
	slow, caFile, hooked := newSlowWebhook(b)
	args := []string{"--log-level", "warn", "--metrics-addr", "127.0.0.1:0", "--events-ca-file", caFile, "--traffic-poll-interval", "200ms"}
	// TOLLGATE_BENCH_PROFILE=FILE writes 4 s CPU profiles of tollgated
	// during the first round of each kind, FILE.none and FILE.subscribed
	// (it serves pprof on port 6061).
	if os.Getenv("TOLLGATE_BENCH_PROFILE") != "" {
		args = append(args, "--debug-addr", "127.0.0.1:6061")
	}
	dev := startDev(b, "", args...)
	host := "bench." + dev.info.BaseDomain
	dev.agent(b, "http", up, "--url", "https://"+host, "--log-level", "warn")
	ma := dev.ingress(b).MetricsAddr
	benchTrafficRounds(b, trafficRig{apiURL: dev.info.APIURL, apiKey: dev.info.APIKey,
		target: loadTarget{addr: dev.info.HTTPSAddr, host: host, path: "/",
			tlsConfig: &tls.Config{ServerName: host, RootCAs: dev.pool, NextProtos: []string{"http/1.1"}}},
		edgeMetrics: ma, controlMetrics: ma, profile: "127.0.0.1:6061", edgePID: dev.cmd.Process.Pid}, slow, hooked)
}

func benchTrafficSplit(b *testing.B) {
	if runtime.NumCPU() < 2 {
		b.Skip("needs two CPUs: one for the control plane, one for the data plane")
	}
	// This process (load, upstream, webhook) on CPU 0 from here on; the
	// threads it starts later inherit that.
	pinProcess(b, 0)
	up := newHelloUpstream(b)
	slow, caFile, hooked := newSlowWebhook(b)
	cpMetrics := freeAddr(b)
	cpArgs := []string{"--metrics-addr", cpMetrics, "--events-ca-file", caFile, "--events-egress-allow", "127.0.0.0/8"}
	c := newClusterPinned(b, "", map[string]string{"control": "1", "edge": "0", "agent": "0"}, cpArgs)
	if os.Getenv("TOLLGATE_BENCH_BUSY_CPU1") != "" {
		// A spinner on the control plane's CPU in every round: whatever
		// a busy CPU 1 does to CPU 0 through the host (on these VMs the
		// data plane slows by up to a fifth while the other CPU works)
		// is then the same in none and subscribed rounds, and the
		// difference is the edge's own.
		spin := exec.Command("taskset", "-c", "1", "sh", "-c", "while :; do :; done")
		if err := spin.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = spin.Process.Kill(); _ = spin.Wait() })
	}
	edgeArgs := []string{"--metrics-addr", "127.0.0.1:0", "--traffic-poll-interval", "200ms", "--log-level", "warn"}
	// TOLLGATE_BENCH_PROFILE=FILE: CPU profiles of the edge (FILE.none,
	// FILE.subscribed).
	if os.Getenv("TOLLGATE_BENCH_PROFILE") != "" {
		edgeArgs = append(edgeArgs, "--debug-addr", "127.0.0.1:6061")
	}
	e := c.startEdge("us", "127.0.0.1", edgeArgs...)
	host := "bench.tollgate.localhost"
	c.agent(c.boot.Authtoken, e.info.AgentAddr, "http", up, "--url", "https://"+host, "--log-level", "warn")
	benchTrafficRounds(b, trafficRig{apiURL: c.cp.apiURL, apiKey: c.boot.APIKey,
		target: loadTarget{addr: e.info.HTTPSAddr, host: host, path: "/",
			tlsConfig: &tls.Config{ServerName: host, RootCAs: c.pool, NextProtos: []string{"http/1.1"}}},
		edgeMetrics: e.info.MetricsAddr, controlMetrics: cpMetrics, profile: "127.0.0.1:6061", edgePID: e.cmd.Process.Pid}, slow, hooked)
}

// newHelloUpstream starts an HTTP server answering every request with a
// 12-byte body; it returns its address.
func newHelloUpstream(b *testing.B) string {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "12")
		_, _ = w.Write([]byte("hello world\n"))
	}))
	b.Cleanup(up.Close)
	return up.Listener.Addr().String()
}

// newSlowWebhook starts an HTTPS webhook receiver that takes 500 ms per
// batch; it returns the server, a CA file for --events-ca-file and the
// count of batches received.
func newSlowWebhook(b *testing.B) (*httptest.Server, string, *atomic.Int64) {
	hooked := new(atomic.Int64)
	slow := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(500 * time.Millisecond)
		hooked.Add(1)
	}))
	b.Cleanup(slow.Close)
	caFile := filepath.Join(b.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: slow.Certificate().Raw}), 0o600); err != nil {
		b.Fatal(err)
	}
	return slow, caFile, hooked
}

// pinProcess pins every thread of this process to cpu, and back to every
// CPU it had at cleanup. Threads started later inherit the pinning of the
// thread that starts them.
func pinProcess(b *testing.B, cpu int) {
	var was unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		b.Fatal(err)
	}
	set := func(s *unix.CPUSet) {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			_ = unix.SchedSetaffinity(tid, s) // a thread may have exited
		}
	}
	var one unix.CPUSet
	one.Set(cpu)
	set(&one)
	b.Cleanup(func() { set(&was) })
}

// benchTrafficRounds runs the rounds against rig and reports
// requests/s subscribed as a share of none.
func benchTrafficRounds(b *testing.B, rig trafficRig, slow *httptest.Server, hooked *atomic.Int64) {
	dur := benchDuration()
	base, key := rig.apiURL, rig.apiKey
	prof := os.Getenv("TOLLGATE_BENCH_PROFILE")
	call := func(method, path string, body any, want int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		status, data, err := restCall(ctx, http.DefaultClient, base, key, method, path, body)
		if err != nil || status != want {
			b.Fatalf("%s %s: %d %s (%v)", method, path, status, data, err)
		}
	}
	tgt := rig.target
	ctx := context.Background()
	runLoad(ctx, tgt, 8, time.Second, 1<<20) // warm up

	var destID string
	{
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, data, err := restCall(ctx, http.DefaultClient, base, key, "POST", "/event_destinations", map[string]any{"format": "JSON",
			"target": map[string]any{"webhook": map[string]any{"url": slow.URL + "/hook", "secrets": []string{whsec(make([]byte, 32))}}}})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		destID = jsonField(b, data, "id")
	}
	ma, ca := rig.edgeMetrics, rig.controlMetrics
	var subID string
	pairs, _ := strconv.Atoi(envOr("TOLLGATE_BENCH_PAIRS", "3"))
	pairs = max(pairs, 1)
	var none, sub []loadResult
	var cpuNone, cpuSub float64 // the edge's CPU-seconds in the rounds
	for round := range 2 * pairs {
		subscribed := round%2 == 1
		if subscribed {
			c, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, data, err := restCall(c, http.DefaultClient, base, key, "POST", "/event_subscriptions", map[string]any{
				"sources": []any{map[string]any{"type": "http_request_complete.v0"}}, "destination_ids": []string{destID}})
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			subID = jsonField(b, data, "id")
			// Until the edge ships records: it knows the subscription.
			before := scrape(b, ma).value(b, "tollgate_edge_traffic_records_shipped_total")
			for i := 0; i < 200 && scrape(b, ma).value(b, "tollgate_edge_traffic_records_shipped_total") == before; i++ {
				runLoad(ctx, tgt, 1, 100*time.Millisecond, 100)
				time.Sleep(100 * time.Millisecond)
			}
		} else if subID != "" {
			call("DELETE", "/event_subscriptions/"+subID, nil, 204)
			subID = ""
			time.Sleep(time.Second) // the edge learns it within a poll
		}
		if round < 2 && prof != "" {
			file := prof + ".none"
			if subscribed {
				file = prof + ".subscribed"
			}
			go func() {
				resp, err := http.Get("http://" + rig.profile + "/debug/pprof/profile?seconds=4")
				if err != nil {
					return
				}
				defer resp.Body.Close()
				data, _ := io.ReadAll(resp.Body)
				_ = os.WriteFile(file, data, 0o600)
			}()
		}
		cpu0 := procCPUSeconds(b, rig.edgePID)
		r := runLoad(ctx, tgt, 64, dur, 50_000_000)
		cpu := procCPUSeconds(b, rig.edgePID) - cpu0
		s, cs := scrape(b, ma), scrape(b, ca)
		b.Logf("round %d subscribed=%-5v %s  edge %.1f µs CPU/request; shipped %.0f dropped %.0f buffered %.0f; outbox written %.0f dropped %.0f; webhook batches %d",
			round, subscribed, r, 1e6*cpu/float64(r.requests), s.value(b, "tollgate_edge_traffic_records_shipped_total"), s.value(b, "tollgate_edge_traffic_records_dropped_total"),
			s.value(b, "tollgate_edge_traffic_records_buffered"), cs.value(b, "tollgate_events_traffic_written_total"),
			cs.value(b, "tollgate_events_traffic_dropped_total"), hooked.Load())
		if subscribed {
			sub = append(sub, r)
			cpuSub += cpu
		} else {
			none = append(none, r)
			cpuNone += cpu
		}
	}
	count := func(rs []loadResult) float64 {
		var n int
		for _, r := range rs {
			n += r.requests
		}
		return float64(n)
	}
	mean := func(rs []loadResult) float64 {
		var t float64
		for _, r := range rs {
			t += r.rps()
		}
		return t / float64(len(rs))
	}
	ratio := 100 * mean(sub) / mean(none)
	usNone, usSub := 1e6*cpuNone/count(none), 1e6*cpuSub/count(sub)
	// The median of each pair's ratio (a subscribed round over the none
	// round before it): drift between pairs cancels out of it.
	var pairRatios []float64
	for i := range sub {
		pairRatios = append(pairRatios, 100*sub[i].rps()/none[i].rps())
	}
	slices.Sort(pairRatios)
	median := pairRatios[len(pairRatios)/2]
	if len(pairRatios)%2 == 0 {
		median = (pairRatios[len(pairRatios)/2-1] + median) / 2
	}
	b.Logf("HTTPS c64: none %.0f req/s, subscribed (slow webhook) %.0f req/s: %.1f%% (median of pairs %.1f%%); edge CPU per request %.1f µs → %.1f µs (+%.1f%%)",
		mean(none), mean(sub), ratio, median, usNone, usSub, 100*(usSub/usNone-1))
	b.ReportMetric(ratio, "%subscribed/none")
	b.ReportMetric(median, "%subscribed/none-pair-median")
	b.ReportMetric(100*(usSub/usNone-1), "%edge-CPU/request")
}

// jsonField returns the string field of a JSON object.
func jsonField(tb testing.TB, data []byte, name string) string {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		tb.Fatalf("%s: %v", data, err)
	}
	v, _ := m[name].(string)
	if v == "" {
		tb.Fatalf("%s has no %s", data, name)
	}
	return v
}
