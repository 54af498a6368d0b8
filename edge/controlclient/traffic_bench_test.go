package controlclient

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/tollgate/tollgate/traffic"
)

// BenchmarkEncodeTraffic is the edge's CPU per traffic record to encode a
// batch of 1000 for the control plane: encodeTraffic (Batch.AppendJSON and
// klauspost gzip at BestSpeed, reused state) beside what it replaced
// (encoding/json into compress/gzip at its default level). ns/op is per
// batch; ns/record is the figure to set beside the edge's CPU per request.
//
//	go test ./edge/controlclient -run '^$' -bench EncodeTraffic
func BenchmarkEncodeTraffic(b *testing.B) {
	bt := traffic.Batch{EdgeID: "edge_3N8kjjLz35pE8Ivtx5IG04g8W0O", Boot: "3N8kjlIhEpjEaLVxlWRPp9yMmPF", FirstSeq: 1}
	for i := range 1000 {
		bt.Records = append(bt.Records, traffic.Record{Type: traffic.HTTPRequestComplete, Start: time.Now().UTC(),
			Duration: 0.000731 + float64(i)*1e-6, Region: "us", EdgeID: bt.EdgeID, AccountID: "acct_3N8kjjLz35pE8Ivtx5IG04g8W0O",
			EndpointID: "ep_3N8kjp9qLuiXuAKZpyq4griMe7v", SessionID: "ts_3N8kkXwVvryVGhXscUD16mdzyuA", EndpointKind: "https",
			ClientIP: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), TLSVersion: "1.3", Host: "bench.tollgate.localhost",
			Method: "GET", Path: "/api/items?page=2", Proto: "HTTP/1.1", Status: 200, IPPolicy: traffic.IPPolicyNone, BytesOut: int64(100 + i)})
	}
	report := func(b *testing.B, size int) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(bt.Records)), "ns/record")
		b.ReportMetric(float64(size)/float64(len(bt.Records)), "gzip-bytes/record")
	}
	b.Run("encodeTraffic", func(b *testing.B) {
		var size int
		for b.Loop() {
			buf, err := encodeTraffic(&bt)
			if err != nil {
				b.Fatal(err)
			}
			size = buf.Len()
		}
		report(b, size)
	})
	b.Run("encoding-json+compress-gzip", func(b *testing.B) {
		var size int
		for b.Loop() {
			var buf bytes.Buffer
			zw := stdgzip.NewWriter(&buf)
			if err := json.NewEncoder(zw).Encode(&bt); err != nil {
				b.Fatal(err)
			}
			if err := zw.Close(); err != nil {
				b.Fatal(err)
			}
			size = buf.Len()
		}
		report(b, size)
	})
}
