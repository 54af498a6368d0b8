package store

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/ids"
)

// BenchmarkBuildSnapshot measures a full snapshot build from a store holding
// 100,000 authtokens (one account, one owner, a third with an ACL).
func BenchmarkBuildSnapshot(b *testing.B) {
	const n = 100_000
	for _, d := range storetest.Dialects {
		b.Run(d+"/authtokens=100k", func(b *testing.B) {
			s := openTest(b, storetest.DSN(b, d))
			ctx := context.Background()
			f := newFixture(b, s)
			seedAuthtokens(b, s, f, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				snap, err := s.BuildSnapshot(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if len(snap.Data().Authtokens) != n {
					b.Fatalf("%d authtokens", len(snap.Data().Authtokens))
				}
			}
		})
	}
}

// seedAuthtokens inserts n authtokens in one unit of work, many rows per
// statement.
func seedAuthtokens(b *testing.B, s *Store, f fixture, n int) {
	b.Helper()
	const batch = 500
	_, err := s.update(context.Background(), f.actor, func(ctx context.Context, t *tx) error {
		for done := 0; done < n; done += batch {
			var q strings.Builder
			q.WriteString(`INSERT INTO authtokens (id, account_id, owner_id, secret_hash, description, metadata, acl, created_at) VALUES `)
			var args []any
			for i := 0; i < batch && done+i < n; i++ {
				if i > 0 {
					q.WriteByte(',')
				}
				p := len(args)
				q.WriteString("($" + strconv.Itoa(p+1) + ",$" + strconv.Itoa(p+2) + ",$" + strconv.Itoa(p+3) + ",$" +
					strconv.Itoa(p+4) + ",'','',$" + strconv.Itoa(p+5) + ",$" + strconv.Itoa(p+6) + ")")
				id, _, hash := authn.NewCredential(ids.PrefixAuthtoken)
				acl := ""
				if (done+i)%3 == 0 {
					acl = "bind:app" + strconv.Itoa(done+i) + ".example.com\nbind:*.example.org"
				}
				args = append(args, id, f.account.ID, f.admin.ID, hash, acl, t.stamp())
			}
			if _, err := t.exec(ctx, q.String(), args...); err != nil {
				return err
			}
		}
		t.audit("benchmark_seeded.v0", f.account.ID, f.account.ID, nil)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
