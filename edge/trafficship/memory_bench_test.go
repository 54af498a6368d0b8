package trafficship

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/traffic"
)

// BenchmarkBufferMemory measures the heap a Shipper's buffer holds when it
// is full at its default caps, the control plane unreachable: at
// DefaultMaxRecords with records of a short path (the record cap binds),
// and at DefaultMaxBytes with distinct 2 KiB paths (the byte cap binds).
// The figures are MiB of heap and bytes per record, against the buffer's
// own count of encoded bytes (Counts.Bytes). Run it with
//
//	go test ./edge/trafficship -run '^$' -bench BufferMemory -benchtime 1x
func BenchmarkBufferMemory(b *testing.B) {
	for _, c := range []struct {
		name string
		path int
	}{{"record-cap/path=16B", 16}, {"byte-cap/path=2KiB", 2048}} {
		b.Run(c.name, func(b *testing.B) {
			r := &recorder{wants: map[string][]string{"acct_2cSjwFetnZnRcG0B7U5fEYBX2V3": {traffic.HTTPRequestComplete}}}
			s := New(Config{}, r.post)
			var last time.Time
			_ = s.flush(context.Background(), &last)
			r.down = true
			before := heap()
			path := "/" + strings.Repeat("p", c.path-1)
			for i := 0; i < DefaultMaxRecords+1000; i++ {
				s.Record(traffic.Record{Type: traffic.HTTPRequestComplete, Start: time.Now(), Duration: 0.0004, Region: "us", EdgeID: "edge_us",
					AccountID: "acct_2cSjwFetnZnRcG0B7U5fEYBX2V3", EndpointID: fmt.Sprintf("ep_2cSjwFetnZnRcG0B7U5fEY%05d", i%100),
					SessionID: "ts_2cSjwFetnZnRcG0B7U5fEYBX2V3", EndpointKind: "https", ClientIP: netip.MustParseAddr("203.0.113.7"),
					TLSVersion: "1.3", Host: "app.example.com", Method: "GET", Path: path + strconv.Itoa(i), Proto: "HTTP/2.0",
					Status: 200, IPPolicy: traffic.IPPolicyNone, BytesOut: 12})
			}
			held := heap() - before
			cnt := s.Counts()
			if cnt.Dropped == 0 {
				b.Fatalf("the buffer never filled: %+v", cnt)
			}
			b.ReportMetric(float64(held)/(1<<20), "heap-MiB")
			b.ReportMetric(float64(held)/float64(cnt.Buffered), "heap-B/record")
			b.ReportMetric(float64(cnt.Bytes)/(1<<20), "encoded-MiB")
			b.ReportMetric(float64(cnt.Buffered), "records")
			runtime.KeepAlive(s)
		})
	}
}

func heap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
