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
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTrafficEvents measures HTTPS requests/s through `tollgated dev`
// at 64 connections without a traffic subscription and with one to
// http_request_complete.v0 on a slow webhook (500 ms per batch), in one
// run, alternating (none, subscribed, none, subscribed) so that drift of
// the shared machine hits both alike. Nothing is asserted. Run it alone:
//
//	go test ./test -run '^$' -bench TrafficEvents -benchtime 1x
//
// TOLLGATE_BENCH_SECONDS sets the length of each load run (default 5).
func BenchmarkTrafficEvents(b *testing.B) {
	secs, _ := strconv.Atoi(envOr("TOLLGATE_BENCH_SECONDS", "5"))
	if secs <= 0 {
		secs = 5
	}
	dur := time.Duration(secs) * time.Second
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "12")
		_, _ = w.Write([]byte("hello world\n"))
	}))
	defer up.Close()
	var hooked atomic.Int64
	slow := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(500 * time.Millisecond)
		hooked.Add(1)
	}))
	defer slow.Close()
	caFile := filepath.Join(b.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: slow.Certificate().Raw}), 0o600); err != nil {
		b.Fatal(err)
	}
	args := []string{"--log-level", "warn", "--metrics-addr", "127.0.0.1:0", "--events-ca-file", caFile, "--traffic-poll-interval", "200ms"}
	// TOLLGATE_BENCH_PROFILE=FILE writes a 4 s CPU profile of tollgated
	// during the first subscribed round (it serves pprof on port 6061).
	prof := os.Getenv("TOLLGATE_BENCH_PROFILE")
	if prof != "" {
		args = append(args, "--debug-addr", "127.0.0.1:6061")
	}
	dev := startDev(b, "", args...)
	base, key := dev.info.APIURL, dev.info.APIKey
	call := func(method, path string, body any, want int) map[string]any {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		status, data, err := restCall(ctx, http.DefaultClient, base, key, method, path, body)
		if err != nil || status != want {
			b.Fatalf("%s %s: %d %s (%v)", method, path, status, data, err)
		}
		return map[string]any{}
	}
	host := "bench." + dev.info.BaseDomain
	dev.agent(b, "http", up.Listener.Addr().String(), "--url", "https://"+host, "--log-level", "warn")
	tgt := loadTarget{addr: dev.info.HTTPSAddr, host: host, path: "/",
		tlsConfig: &tls.Config{ServerName: host, RootCAs: dev.pool, NextProtos: []string{"http/1.1"}}}
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
	ma := dev.ingress(b).MetricsAddr
	var subID string
	var none, sub []loadResult
	for round := range 4 {
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
		if round == 1 && prof != "" {
			go func() {
				resp, err := http.Get("http://127.0.0.1:6061/debug/pprof/profile?seconds=4")
				if err != nil {
					return
				}
				defer resp.Body.Close()
				data, _ := io.ReadAll(resp.Body)
				_ = os.WriteFile(prof, data, 0o600)
			}()
		}
		r := runLoad(ctx, tgt, 64, dur, 50_000_000)
		s := scrape(b, ma)
		b.Logf("round %d subscribed=%-5v %s  edge shipped %.0f dropped %.0f buffered %.0f; outbox written %.0f dropped %.0f; webhook batches %d",
			round, subscribed, r, s.value(b, "tollgate_edge_traffic_records_shipped_total"), s.value(b, "tollgate_edge_traffic_records_dropped_total"),
			s.value(b, "tollgate_edge_traffic_records_buffered"), s.value(b, "tollgate_events_traffic_written_total"),
			s.value(b, "tollgate_events_traffic_dropped_total"), hooked.Load())
		if subscribed {
			sub = append(sub, r)
		} else {
			none = append(none, r)
		}
	}
	mean := func(rs []loadResult) float64 {
		var t float64
		for _, r := range rs {
			t += r.rps()
		}
		return t / float64(len(rs))
	}
	ratio := 100 * mean(sub) / mean(none)
	b.Logf("HTTPS c64: none %.0f req/s, subscribed (slow webhook) %.0f req/s: %.1f%%", mean(none), mean(sub), ratio)
	b.ReportMetric(ratio, "%subscribed/none")
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
