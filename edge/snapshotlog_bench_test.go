package edge

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/snapshot"
)

// benchSnapshot returns a snapshot of n authtokens shaped like the store's.
func benchSnapshot(b *testing.B, n int) *snapshot.Snapshot {
	b.Helper()
	d := snapshot.Data{Revision: 1, Accounts: []snapshot.Account{{ID: "acct_1", Active: true}},
		Principals: []snapshot.Principal{{ID: "bot_1", Kind: snapshot.PrincipalBot, Active: true, AccountIDs: []string{"acct_1"}}}}
	d.Authtokens = make([]snapshot.Authtoken, n)
	for i := range d.Authtokens {
		a := snapshot.Authtoken{ID: fmt.Sprintf("cr_%027d", i), AccountID: "acct_1", OwnerID: "bot_1", SecretHash: fmt.Sprintf("%064x", i)}
		if i%3 == 0 {
			a.ACL = []string{"bind:app" + strconv.Itoa(i) + ".example.com", "bind:*.example.org"}
		}
		d.Authtokens[i] = a
	}
	s, err := snapshot.New(d)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func revoke(b *testing.B, s *snapshot.Snapshot, i int) *snapshot.Snapshot {
	next, err := s.Apply(&snapshot.Delta{From: s.Revision(), Revision: s.Revision() + 1,
		Authtokens: &snapshot.CollectionDelta[snapshot.Authtoken]{Delete: []string{fmt.Sprintf("cr_%027d", i)}}})
	if err != nil {
		b.Fatal(err)
	}
	return next
}

// BenchmarkEdgePersist compares, at 1,000,000 authtokens, persisting one
// revocation as this version does (a delta appended to the log, fsync'd)
// with the previous version's whole-snapshot write (JSON, fsync, rename),
// reported once as ms/whole-write.
func BenchmarkEdgePersist(b *testing.B) {
	const n = 1_000_000
	s := benchSnapshot(b, n)
	p := newSnapshotPersister(b.TempDir(), zap.NewNop())
	t0 := time.Now()
	if err := p.writeWhole(s); err != nil {
		b.Fatal(err)
	}
	whole := time.Since(t0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s = revoke(b, s, i)
		if err := p.write([]*snapshot.Snapshot{s}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(whole.Milliseconds()), "ms/whole-write")
}

// BenchmarkEdgeColdStart is an edge starting from its data dir at
// 1,000,000 authtokens: decoding snapshot.json and replaying 1,000 logged
// revocations.
func BenchmarkEdgeColdStart(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	s := benchSnapshot(b, n)
	p := newSnapshotPersister(dir, zap.NewNop())
	if err := p.writeWhole(s); err != nil {
		b.Fatal(err)
	}
	var batch []*snapshot.Snapshot
	for i := 0; i < 1000; i++ {
		s = revoke(b, s, i)
		batch = append(batch, s)
	}
	if err := p.appendDeltas(batch); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := newSnapshotPersister(dir, zap.NewNop()).load()
		if err != nil || got.Revision() != s.Revision() || got.Authtokens() != n-1000 {
			b.Fatalf("%v %v", err, got)
		}
	}
}
