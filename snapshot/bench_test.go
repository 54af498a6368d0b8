package snapshot

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
)

// benchData returns a Data with n authtokens shaped like the store's (one
// account and owner, a third with an ACL).
func benchData(n int) Data {
	d := Data{Revision: 1, Accounts: []Account{{ID: "acct_1", Active: true}},
		Principals: []Principal{{ID: "bot_1", Kind: PrincipalBot, Active: true, AccountIDs: []string{"acct_1"}}}}
	d.Authtokens = make([]Authtoken, n)
	for i := range d.Authtokens {
		a := Authtoken{ID: fmt.Sprintf("cr_%027d", i), AccountID: "acct_1", OwnerID: "bot_1",
			SecretHash: fmt.Sprintf("%064x", i)}
		if i%3 == 0 {
			a.ACL = []string{"bind:app" + strconv.Itoa(i) + ".example.com", "bind:*.example.org"}
		}
		d.Authtokens[i] = a
	}
	return d
}

var benchSizes = []int{100_000, 1_000_000}

// revocation is the delta of one authtoken deletion.
func revocation(from uint64, i int) *Delta {
	return &Delta{From: from, Revision: from + 1,
		Authtokens: &CollectionDelta[Authtoken]{Delete: []string{fmt.Sprintf("cr_%027d", i)}}}
}

// BenchmarkApplyDelta is the edge's cost of one revocation: Apply on the
// copy-on-write indexes (this version).
func BenchmarkApplyDelta(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("authtokens=%d", n), func(b *testing.B) {
			s, err := New(benchData(n))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if s, err = s.Apply(revocation(s.Revision(), i%n)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOldDeltaPath is what the previous version did per revocation:
// the control plane's Diff of two whole snapshots (per edge), then the
// edge's Delta.Apply on Data and a full re-index (New).
func BenchmarkOldDeltaPath(b *testing.B) {
	for _, n := range benchSizes {
		from := benchData(n)
		to := from
		to.Revision = 2
		to.Authtokens = append([]Authtoken(nil), from.Authtokens[1:]...)
		b.Run(fmt.Sprintf("diff/authtokens=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if d := Diff(&from, &to); d.Size() != 1 {
					b.Fatal(d.Size())
				}
			}
		})
		b.Run(fmt.Sprintf("apply+reindex/authtokens=%d", n), func(b *testing.B) {
			d := Diff(&from, &to)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out, err := d.Apply(&from)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := New(out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLookup is an authtoken lookup through the sharded index.
func BenchmarkLookup(b *testing.B) {
	const n = 1_000_000
	s, _ := New(benchData(n))
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("cr_%027d", (i*7919)%n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := s.Authtoken(keys[i%len(keys)]); !ok {
			b.Fatal("missing")
		}
	}
}

// BenchmarkMemoryPerCredential reports the heap an edge holds per
// authtoken: a snapshot of n authtokens (as decoded from the feed) and the
// same after 1,000 single-revocation deltas (shards shared with it).
func BenchmarkMemoryPerCredential(b *testing.B) {
	const n = 1_000_000
	for i := 0; i < b.N; i++ {
		heap := func() uint64 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return m.HeapAlloc
		}
		before := heap()
		s, _ := New(benchData(n))
		built := heap()
		snaps := []*Snapshot{s}
		for j := 0; j < 1000; j++ {
			s, _ = s.Apply(revocation(s.Revision(), j))
			snaps = append(snaps, s)
		}
		kept := heap()
		b.ReportMetric(float64(built-before)/n, "bytes/credential")
		b.ReportMetric(float64(kept-built)/1000, "bytes/retained-delta")
		runtime.KeepAlive(snaps)
	}
}
