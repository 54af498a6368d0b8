package store

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/controlplane/internal/storetest"
)

// benchAuthtokens is the store size of the change-log benchmarks:
// TOLLGATE_BENCH_AUTHTOKENS, default 1,000,000.
func benchAuthtokens() int {
	if n, err := strconv.Atoi(os.Getenv("TOLLGATE_BENCH_AUTHTOKENS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// BenchmarkRevocationAtScale measures, in a store of benchAuthtokens
// authtokens, the control plane's cost of one revocation: the mutation
// itself (DeleteAuthtoken: its transaction with the change-log trigger),
// then the delta computed from the change log (Changes), which the feed does
// once per revision; and for comparison one whole BuildSnapshot (what the
// previous version did after every write).
func BenchmarkRevocationAtScale(b *testing.B) {
	n := benchAuthtokens()
	for _, d := range storetest.Dialects {
		b.Run(d+"/authtokens="+strconv.Itoa(n), func(b *testing.B) {
			s := openTest(b, storetest.DSN(b, d))
			ctx := context.Background()
			f := newFixture(b, s)
			seedAuthtokens(b, s, f, n)
			var ids []string
			rows, err := s.rdb.QueryContext(ctx, `SELECT id FROM authtokens LIMIT 5000`)
			if err != nil {
				b.Fatal(err)
			}
			for rows.Next() {
				var id string
				_ = rows.Scan(&id)
				ids = append(ids, id)
			}
			rows.Close()
			next := 0
			b.Run("mutation", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if err := s.DeleteAuthtoken(ctx, f.actor, f.account.ID, ids[next%len(ids)]); err != nil {
						b.Fatal(err)
					}
					next++
				}
			})
			b.Run("delta", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					if err := s.DeleteAuthtoken(ctx, f.actor, f.account.ID, ids[next%len(ids)]); err != nil {
						b.Fatal(err)
					}
					next++
					r := rev(b, s)
					b.StartTimer()
					d, err := s.Changes(ctx, r-1)
					if err != nil || d.Authtokens == nil || len(d.Authtokens.Delete) != 1 {
						b.Fatalf("%v %+v", err, d)
					}
				}
			})
			// One whole rebuild, whatever b.N (it takes seconds at 1M):
			// reported as ms/rebuild.
			b.Run("rebuild", func(b *testing.B) {
				t0 := time.Now()
				snap, err := s.BuildSnapshot(ctx)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(time.Since(t0).Microseconds())/1000, "ms/rebuild")
				b.ReportMetric(float64(snap.Authtokens()), "authtokens")
			})
		})
	}
}
