package trafficship

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tollgate/tollgate/traffic"
)

// BenchmarkShipperRecord is the edge's CPU per request for traffic events
// when the request's account subscribes: Record (encoding the record into
// the buffer) and, per 1000 records, the batch the shipper sends, written
// as PostTraffic writes it (AppendBinary; the HTTP request itself not
// counted). Set it beside the edge's CPU per request (about 15-30 µs in
// BenchmarkTrafficEvents).
//
//	go test ./edge/trafficship -run '^$' -bench ShipperRecord
func BenchmarkShipperRecord(b *testing.B) {
	acct := "acct_2cSjwFetnZnRcG0B7U5fEYBX2V3"
	var sent []byte
	post := func(_ context.Context, bt traffic.Batch) (traffic.Answer, error) {
		var err error
		sent, err = bt.AppendBinary(sent[:0])
		return traffic.Answer{Accepted: bt.Count, Wants: map[string][]string{acct: {traffic.HTTPRequestComplete}}}, err
	}
	s := New(Config{}, post)
	ctx := context.Background()
	var last time.Time
	if err := s.flush(ctx, &last); err != nil {
		b.Fatal(err)
	}
	r := traffic.Record{Type: traffic.HTTPRequestComplete, Duration: 0.0004, Region: "us", EdgeID: "edge_us",
		AccountID: acct, EndpointID: "ep_2cSjwFetnZnRcG0B7U5fEYBX2V3", SessionID: "ts_2cSjwFetnZnRcG0B7U5fEYBX2V3",
		EndpointKind: "https", ClientIP: netip.MustParseAddr("203.0.113.7"), TLSVersion: "1.3", Host: "app.example.com",
		Method: "GET", Path: "/api/items?page=2", Proto: "HTTP/1.1", Status: 200, IPPolicy: traffic.IPPolicyNone, BytesOut: 12}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Start = time.Now()
		r.BytesOut = int64(i)
		s.Record(r)
		if i++; i%DefaultBatchSize == 0 {
			if err := s.flush(ctx, &last); err != nil {
				b.Fatal(err)
			}
		}
	}
	if c := s.Counts(); c.Dropped != 0 {
		b.Fatalf("dropped %d", c.Dropped)
	}
}
