package store

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/controlplane/internal/storetest"
)

// BenchmarkAppendTrafficEvents measures the outbox's ingest of traffic
// events as rows of one event each (what the ingest wrote before it
// packed a batch's events into one row per account and type, and still
// writes for a record the packed encoding cannot hold), in batches of 1000
// (an edge's batch), with payloads the size of a real
// http_request_complete.v0 event (~520 bytes) and IDs as random as the
// derived ones; rows/s is the figure. Run it with
//
//	go test ./controlplane/store -run '^$' -bench AppendTrafficEvents
//
// ids=hashed gives the events IDs spread over the ID index as a hash
// spreads them (how events.TrafficEventID derived them before);
// ids=ordered gives them in the order of the edge's sequence numbers after
// a per-run prefix (how it derives them now).
func BenchmarkAppendTrafficEvents(b *testing.B) {
	for _, d := range storetest.Dialects {
		for _, ordered := range []bool{false, true} {
			name := d + "/ids=hashed"
			if ordered {
				name = d + "/ids=ordered"
			}
			b.Run(name, func(b *testing.B) { benchAppendTraffic(b, d, ordered) })
		}
	}
}

func benchAppendTraffic(b *testing.B, d string, ordered bool) {
	benchAppendTrafficOn(b, openTest(b, storetest.DSN(b, d)), ordered)
}

func benchAppendTrafficOn(b *testing.B, s *Store, ordered bool) {
	{
		{
			ctx := context.Background()
			f := newFixture(b, s)
			const batch = 1000
			payload := `{"event_id":"ev_t%030x","event_timestamp":"2026-12-07T04:20:01.3Z","event_type":"http_request_complete.v0",` +
				`"timestamp":"2026-12-07T04:20:01.2Z","duration_seconds":0.000412,"region":"us","edge_id":"edge_us",` +
				`"account_id":"acct_2cSjwFetnZnRcG0B7U5fEYBX2V3","endpoint_id":"ep_2cSjwFetnZnRcG0B7U5fEYBX2V3",` +
				`"agent_session_id":"ts_2cSjwFetnZnRcG0B7U5fEYBX2V3","endpoint_kind":"https","client_ip":"127.0.0.1",` +
				`"tls_version":"1.3","host":"bench.tollgate.localhost","method":"GET","path":"/","proto":"HTTP/1.1",` +
				`"status":200,"ip_policy_decision":"none","bytes_in":0,"bytes_out":12}`
			seq := 0
			mk := func() []TrafficEvent {
				evs := make([]TrafficEvent, batch)
				for i := range evs {
					seq++
					id := fmt.Sprintf("ev_t%030x", uint64(seq)*0x9E3779B97F4A7C15) // spread like hashes
					if ordered {
						id = fmt.Sprintf("ev_t%016x%016x", uint64(0x5eed5eed5eed5eed), seq)
					}
					evs[i] = TrafficEvent{ID: id, AccountID: f.account.ID, Type: "http_request_complete.v0",
						Payload: []byte(fmt.Sprintf(payload, seq)), At: time.Now()}
				}
				return evs
			}
			batches := make([][]TrafficEvent, b.N)
			for i := range batches {
				batches[i] = mk()
			}
			b.ReportAllocs()
			cpu0 := processCPU(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := s.AppendTrafficEvents(ctx, batches[i], nil)
				if err != nil || res.Written != batch {
					b.Fatalf("%+v %v", res, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
			// CPU (user + system) per row: what ingest takes from the
			// data plane of `tollgated dev`, unlike the wall time, which
			// the disk's fsyncs dominate.
			b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N*batch), "cpu-ns/row")
		}
	}
}

// processCPU returns the process's user and system CPU time so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
