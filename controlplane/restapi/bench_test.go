package restapi_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/restapi"
)

// BenchmarkCreateAuthtoken measures the control plane's cost of one
// mutation: POST /credentials (an authtoken create) served by the REST
// handler in process, API key check, validation, the store transaction
// with its change-log and audit rows, and the JSON answer; no network. It
// runs on each store dialect. "with_delta" also computes the snapshot
// delta of the new revision as the feed does for edges (once per
// revision, whatever the number of edges). Besides ns/op and allocs/op it
// reports cpu-ns/op, the process's user+system CPU time per mutation
// (background goroutines included). Run:
//
//	go test ./controlplane/restapi -run '^$' -bench CreateAuthtoken -benchtime 500x
func BenchmarkCreateAuthtoken(b *testing.B) {
	for _, d := range storetest.Dialects {
		for _, withDelta := range []bool{false, true} {
			name := d
			if withDelta {
				name += "/with_delta"
			}
			b.Run(name, func(b *testing.B) {
				benchCreateAuthtoken(b, d, withDelta)
			})
		}
	}
}

func benchCreateAuthtoken(b *testing.B, dialect string, withDelta bool) {
	st := cptest.OpenStore(b, storetest.DSN(b, dialect))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	core := controlplane.New(controlplane.Config{RateLimit: -1}, st)
	b.Cleanup(core.Close)
	h := restapi.New(restapi.Config{}, core).Handler()
	dev, _, err := controlplane.Bootstrap(ctx, st)
	if err != nil {
		b.Fatal(err)
	}
	auth := "Bearer " + dev.APIKey.Reveal()
	body := []byte(`{"description":"bench","acl":["bind:*.example.com"]}`)
	call := func() {
		req := httptest.NewRequest("POST", "/credentials", bytes.NewReader(body))
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 201 {
			b.Fatalf("POST /credentials: %d %s", rec.Code, rec.Body)
		}
	}
	call() // warm: first-use caches, prepared statements
	rev, err := st.Revision(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if withDelta {
		if _, err := core.Feed(ctx, 0); err != nil {
			b.Fatal(err)
		}
	}
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		call()
		if withDelta {
			msg, err := core.Feed(ctx, rev)
			if err != nil || msg.Delta == nil || msg.Delta.Authtokens == nil {
				b.Fatalf("feed after revision %d: %+v, %v (want a delta with the authtoken)", rev, msg, err)
			}
			rev = msg.Delta.Revision
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
