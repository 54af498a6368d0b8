package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/traffic"
)

// BenchmarkDeliver measures events/s through the Deliverer from an SQLite
// outbox to a NATS JetStream stream (the server at TOLLGATE_TEST_NATS,
// default nats://127.0.0.1:4222) and to a webhook on loopback (plain HTTP,
// answering 204 at once): TOLLGATE_BENCH_EVENTS (default 20000)
// http_request_complete.v0 events, written before the clock starts, in
// batches of the default 100. Run it with
//
//	go test ./controlplane/events -run '^$' -bench Deliver -benchtime 1x
func BenchmarkDeliver(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("TOLLGATE_BENCH_EVENTS"))
	if n <= 0 {
		n = 20000
	}
	b.Run("nats", func(b *testing.B) {
		url := os.Getenv("TOLLGATE_TEST_NATS")
		if url == "" {
			url = "nats://127.0.0.1:4222"
		}
		nc, err := nats.Connect(url)
		if err != nil {
			b.Fatalf("NATS at %s: %v (scripts/test starts nats-server -js)", url, err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		var r [6]byte
		_, _ = rand.Read(r[:])
		name, subject := "TG_BENCH_"+hex.EncodeToString(r[:]), "tollgate.bench."+hex.EncodeToString(r[:])
		ctx := context.Background()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage}); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = js.DeleteStream(context.Background(), name) }()
		target, _ := json.Marshal(map[string]any{"nats": map[string]any{"url": url, "subject": subject}})
		benchDeliver(b, n, target)
	})
	b.Run("webhook", func(b *testing.B) {
		var got atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got.Add(1)
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		target, _ := json.Marshal(map[string]any{"webhook": map[string]any{"url": srv.URL + "/hook",
			"secrets": []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}})
		benchDeliver(b, n, target)
		if got.Load() < int64(n) {
			b.Fatalf("the webhook received %d of %d events", got.Load(), n)
		}
	})
}

// benchDeliver writes n traffic events for a destination with target and
// reports how fast a Deliverer delivers them.
func benchDeliver(b *testing.B, n int, target json.RawMessage) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "s.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	acct, err := st.CreateAccount(ctx, store.SystemActor, "a")
	if err != nil {
		b.Fatal(err)
	}
	actor := store.Actor{AccountID: acct.ID, PrincipalID: "system"}
	d, err := st.CreateEventDestination(ctx, actor, acct.ID, store.EventDestinationCreate{Format: "JSON", Target: target})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateEventSubscription(ctx, actor, acct.ID, store.EventSubscriptionCreate{
		Sources: []store.EventSource{{Type: traffic.HTTPRequestComplete}}, DestinationIDs: []string{d.ID}}); err != nil {
		b.Fatal(err)
	}
	dl, err := New(Config{TrafficCap: 1 << 30, AllowHTTPWebhooks: true, EgressAllow: LoopbackPrefixes, PollInterval: 20 * time.Millisecond}, st)
	if err != nil {
		b.Fatal(err)
	}
	rec := traffic.Record{Type: traffic.HTTPRequestComplete, Start: time.Now(), Duration: 0.0004, Region: "us", EdgeID: "edge_us",
		AccountID: acct.ID, EndpointID: "ep_1", EndpointKind: "https", ClientIP: netip.MustParseAddr("127.0.0.1"),
		Host: "bench.example.com", Method: "GET", Path: "/", Proto: "HTTP/1.1", Status: 200, IPPolicy: traffic.IPPolicyNone, BytesOut: 12}
	for seq := 0; seq < n; seq += 1000 {
		recs := make([]traffic.Record, min(1000, n-seq))
		for i := range recs {
			recs[i] = rec
		}
		if _, err := dl.IngestTraffic(ctx, traffic.Batch{EdgeID: "edge_us", Boot: "bench", FirstSeq: uint64(seq), Records: recs}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	go func() { _ = dl.Run(ctx) }()
	for deadline := start.Add(5 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		del, err := st.GetEventDelivery(ctx, acct.ID, d.ID)
		if err != nil {
			b.Fatal(err)
		}
		if del.Delivered >= int64(n) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d delivered in 5 minutes (last error: %s)", del.Delivered, n, del.LastError)
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
}
