package edge

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/snapshot"
)

// chain returns a whole snapshot at revision 1 and n snapshots derived from
// it by deltas, each adding authtoken cr_<rev> and revoking cr_<rev-1>.
func chain(t *testing.T, n int) []*snapshot.Snapshot {
	t.Helper()
	s, err := snapshot.New(snapshot.Data{Revision: 1, Authtokens: []snapshot.Authtoken{{ID: "cr_1", SecretHash: "h"}}})
	if err != nil {
		t.Fatal(err)
	}
	out := []*snapshot.Snapshot{s}
	for rev := uint64(2); rev <= uint64(n)+1; rev++ {
		next, err := s.Apply(&snapshot.Delta{From: rev - 1, Revision: rev, Authtokens: &snapshot.CollectionDelta[snapshot.Authtoken]{
			Upsert: []snapshot.Authtoken{{ID: fmt.Sprint("cr_", rev), SecretHash: "h"}}, Delete: []string{fmt.Sprint("cr_", rev-1)}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, next)
		s = next
	}
	return out
}

func loadFrom(t *testing.T, dir string) *snapshot.Snapshot {
	t.Helper()
	s, err := newSnapshotPersister(dir, zap.NewNop()).load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantOnly checks s is at rev and holds exactly authtoken cr_<rev>.
func wantOnly(t *testing.T, s *snapshot.Snapshot, rev uint64) {
	t.Helper()
	if s == nil || s.Revision() != rev {
		t.Fatalf("loaded %v, want revision %d", s, rev)
	}
	if _, ok := s.Authtoken(fmt.Sprint("cr_", rev)); !ok || s.Authtokens() != 1 {
		t.Fatalf("revision %d: authtokens %d, cr_%d present %v", rev, s.Authtokens(), rev, ok)
	}
}

// TestSnapshotLogPersistsDeltas: the first snapshot is written whole, the
// deltas after it are appended to the log (snapshot.json stays as it was),
// and loading replays them.
func TestSnapshotLogPersistsDeltas(t *testing.T) {
	dir := t.TempDir()
	p := newSnapshotPersister(dir, zap.NewNop())
	snaps := chain(t, 5)
	for _, s := range snaps {
		p.enqueue(s)
		p.flush()
	}
	base, _ := os.ReadFile(filepath.Join(dir, snapshotFile))
	if !bytes.Contains(base, []byte(`"revision":1`)) {
		t.Fatalf("snapshot.json is not the first whole snapshot: %.80s", base)
	}
	if st, err := os.Stat(filepath.Join(dir, snapshotLogFile)); err != nil || st.Size() == 0 {
		t.Fatalf("no delta log: %v", err)
	}
	wantOnly(t, loadFrom(t, dir), 6)

	// A snapshot that does not follow (a whole one from the feed) is
	// written whole and empties the log.
	whole, _ := snapshot.New(snapshot.Data{Revision: 9, Authtokens: []snapshot.Authtoken{{ID: "cr_9"}}})
	p.enqueue(whole)
	p.flush()
	if st, _ := os.Stat(filepath.Join(dir, snapshotLogFile)); st.Size() != 0 {
		t.Fatalf("log holds %d bytes after a whole snapshot", st.Size())
	}
	wantOnly(t, loadFrom(t, dir), 9)
}

// TestSnapshotLogTornTail: a crash while appending leaves a partial record;
// loading ignores it, serves the last intact revision, and cuts the tail so
// that records appended afterwards are read back after the next restart.
func TestSnapshotLogTornTail(t *testing.T) {
	snaps := chain(t, 4) // revisions 1..5
	for cut := 1; cut < 40; cut += 7 {
		t.Run(fmt.Sprint("cut ", cut), func(t *testing.T) {
			dir := t.TempDir()
			p := newSnapshotPersister(dir, zap.NewNop())
			for _, s := range snaps {
				p.enqueue(s)
				p.flush()
			}
			logPath := filepath.Join(dir, snapshotLogFile)
			full, _ := os.ReadFile(logPath)
			// Tear the last record (4→5) by cut bytes.
			if err := os.WriteFile(logPath, full[:len(full)-cut], 0o600); err != nil {
				t.Fatal(err)
			}
			p2 := newSnapshotPersister(dir, zap.NewNop())
			s, err := p2.load()
			if err != nil {
				t.Fatal(err)
			}
			wantOnly(t, s, 4)
			// The restarted edge goes on from revision 4.
			next := snaps[4] // 4→5 again, then 5→6
			p2.enqueue(next)
			more, _ := next.Apply(&snapshot.Delta{From: 5, Revision: 6, Authtokens: &snapshot.CollectionDelta[snapshot.Authtoken]{
				Upsert: []snapshot.Authtoken{{ID: "cr_6"}}, Delete: []string{"cr_5"}}})
			p2.enqueue(more)
			p2.flush()
			wantOnly(t, loadFrom(t, dir), 6)
		})
	}
	// A corrupt (not short) last record is ignored the same way.
	dir := t.TempDir()
	p := newSnapshotPersister(dir, zap.NewNop())
	for _, s := range snaps {
		p.enqueue(s)
		p.flush()
	}
	logPath := filepath.Join(dir, snapshotLogFile)
	b, _ := os.ReadFile(logPath)
	b[len(b)-3] ^= 0x55
	_ = os.WriteFile(logPath, b, 0o600)
	wantOnly(t, loadFrom(t, dir), 4)
}

// TestSnapshotLogCrashDuringCompaction: a crash after snapshot.json was
// replaced but before the log was emptied leaves records older than the
// base; loading skips them and applies the ones that follow.
func TestSnapshotLogCrashDuringCompaction(t *testing.T) {
	dir := t.TempDir()
	snaps := chain(t, 5) // 1..6
	var log bytes.Buffer
	for _, s := range snaps[1:] {
		if err := snapshot.AppendDeltaRecord(&log, s.Delta()); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := os.Create(filepath.Join(dir, snapshotFile))
	if err := snaps[3].Encode(f); err != nil { // revision 4, whole
		t.Fatal(err)
	}
	f.Close()
	_ = os.WriteFile(filepath.Join(dir, snapshotLogFile), log.Bytes(), 0o600)
	wantOnly(t, loadFrom(t, dir), 6)
}

// TestApplyEnforcesBeforePersisting: a revocation takes effect on the edge
// (the snapshot is installed and watchers are woken) while the disk write
// has not even started.
func TestApplyEnforcesBeforePersisting(t *testing.T) {
	dir := t.TempDir()
	e, err := New(Config{BaseDomain: "tollgate.localhost", DisableQUIC: true, AgentAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", HTTPAddr: "off", DataDir: dir},
		Deps{AgentTLS: &tls.Config{}, Certs: noCerts{}})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	e.snap.disk.beforeWrite = func() { <-release }
	snaps := chain(t, 1)
	changed := e.snap.Changed()
	e.ApplySnapshot(snaps[0])
	<-changed
	changed = e.snap.Changed()
	e.ApplySnapshot(snaps[1]) // revokes cr_1
	select {
	case <-changed:
	default:
		t.Fatal("ApplySnapshot returned before the edge took the snapshot")
	}
	if _, ok := e.Snapshot().Authtoken("cr_1"); ok {
		t.Fatal("the revoked authtoken is still in the edge's snapshot")
	}
	if _, err := os.Stat(filepath.Join(dir, snapshotFile)); err == nil {
		t.Fatal("the snapshot reached the disk before the write was released")
	}
	close(release)
	e.snap.flush()
	wantOnly(t, loadFrom(t, dir), 2)
}
