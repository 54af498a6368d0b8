package controlplane

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate/tollgate/controlplane/store"
)

// TestCurrentCanceledIsQuiet: a caller whose context ends while the cached
// snapshot is being brought forward (an edge that hangs up, or the process
// stopping) gets its context's error, and nothing is logged as a failure.
func TestCurrentCanceledIsQuiet(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "tollgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	core, logs := observer.New(zapcore.WarnLevel)
	cp := New(Config{Logger: zap.New(core)}, st)
	if _, err := st.CreateAccount(ctx, store.SystemActor, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Snapshot(ctx, 0); err != nil { // caches it
		t.Fatal(err)
	}
	if _, err := st.CreateAccount(ctx, store.SystemActor, "b"); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	// current picks at random between its turn to build and the ended
	// context: enough tries reach the delta with the context ended.
	for i := 0; i < 40; i++ {
		if _, err := cp.current(canceled, rev); !errors.Is(err, context.Canceled) {
			t.Fatalf("current with an ended context = %v, want context.Canceled", err)
		}
	}
	for _, e := range logs.All() {
		t.Errorf("logged %s %q %v", e.Level, e.Message, e.ContextMap())
	}
}
