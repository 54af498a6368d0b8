package events

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/traffic"
)

// BenchmarkIngestTraffic measures IngestTraffic on SQLite: batches of 1000
// http_request_complete.v0 records of one subscribed account, as `tollgated
// dev` hands them over in-process. cpu-ns/record is the process's CPU per
// record (what ingest takes from the data plane); the outbox cap is high
// enough never to drop.
//
//	go test ./controlplane/events -run '^$' -bench IngestTraffic -benchtime 50x
func BenchmarkIngestTraffic(b *testing.B) {
	ctx := context.Background()
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
	d, err := st.CreateEventDestination(ctx, actor, acct.ID, store.EventDestinationCreate{Format: "JSON", Target: json.RawMessage(`{"file":{"path":"x"}}`)})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateEventSubscription(ctx, actor, acct.ID, store.EventSubscriptionCreate{
		Sources: []store.EventSource{{Type: traffic.HTTPRequestComplete}}, DestinationIDs: []string{d.ID}}); err != nil {
		b.Fatal(err)
	}
	dl, err := New(Config{TrafficCap: 1 << 30}, st)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	rec := traffic.Record{Type: traffic.HTTPRequestComplete, Start: time.Now(), Duration: 0.000412, Region: "us", EdgeID: "edge_us",
		AccountID: acct.ID, EndpointID: "ep_2cSjwFetnZnRcG0B7U5fEYBX2V3", SessionID: "ts_2cSjwFetnZnRcG0B7U5fEYBX2V3",
		EndpointKind: "https", ClientIP: netip.MustParseAddr("127.0.0.1"), TLSVersion: "1.3", Host: "bench.tollgate.localhost",
		Method: "GET", Path: "/", Proto: "HTTP/1.1", Status: 200, IPPolicy: traffic.IPPolicyNone, BytesOut: 12}
	recs := make([]traffic.Record, batch)
	for i := range recs {
		recs[i] = rec
	}
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ans, err := dl.IngestTraffic(ctx, traffic.Batch{EdgeID: "edge_us", Boot: "b", FirstSeq: uint64(i * batch), Records: recs})
		if err != nil || ans.Accepted != batch {
			b.Fatalf("%+v %v", ans, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N*batch), "cpu-ns/record")
}

// processCPU returns the process's user and system CPU time so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
