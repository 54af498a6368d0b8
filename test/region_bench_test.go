package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.ngrok.com/ngrok/v2"
)

// BenchmarkBindReachableThroughSibling measures, with real processes (one
// `tollgated control` on SQLite, two `tollgated edge` of one region with
// --peer-addr, the Go SDK connected to edge a), how long after a bind on
// edge a the new name is reachable through edge b: the route reaches b's
// route table through the control plane's feed, and b forwards to a over
// the edge-to-edge link. Each iteration binds a new hostname, then sends
// requests to b (each on a new connection: b decides at the TLS
// ClientHello) until one answers 200, and unbinds. It reports the delay's
// p50, p99 and max from the SDK's Forward returning ("-ms"), and p50 from
// the Forward call ("from-call-p50-ms", the bind's own round trip
// included). The target is 1 s. Polling costs one TLS handshake
// per try (a few ms on loopback), which bounds the resolution. Run:
//
//	go test ./test -run '^$' -bench BindReachableThroughSibling -benchtime 50x
func BenchmarkBindReachableThroughSibling(b *testing.B) {
	c := newCluster(b)
	ea := c.launchEdge("a", "us", "127.0.0.1", "--peer-addr", "127.0.0.1:0", "--public-https-port", "443")
	eb := c.launchEdge("b", "us", "127.0.0.2", "--peer-addr", "127.0.0.2:0", "--public-https-port", "443")
	c.edges["a"], c.edges["b"] = ea.ready(b), eb.ready(b)
	c.waitPeerLinks()
	ag := c.sdkAgent(c.boot.Authtoken, ea)
	up := echoUpstreamTB(b)
	client := c.client(eb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := ag.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	var afterBind, fromCall []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		url := fmt.Sprintf("https://bind%d-%d.tollgate.localhost", b.N, i)
		t0 := time.Now()
		fwd, err := ag.Forward(ctx, ngrok.WithUpstream(up.URL), ngrok.WithURL(url))
		if err != nil {
			b.Fatalf("bind %s: %v", url, err)
		}
		t1 := time.Now()
		for tries := 0; ; tries++ {
			err := getOK(client, url+"/")
			if err == nil {
				break
			}
			if time.Since(t1) > 10*time.Second {
				b.Fatalf("%s not reachable through edge b after 10 s and %d tries: %v", url, tries, err)
			}
		}
		t2 := time.Now()
		afterBind = append(afterBind, t2.Sub(t1))
		fromCall = append(fromCall, t2.Sub(t0))
		b.StopTimer()
		if err := fwd.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(afterBind, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(afterBind, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(afterBind, 100)), "max-ms")
	b.ReportMetric(ms(percentile(fromCall, 50)), "from-call-p50-ms")
}
