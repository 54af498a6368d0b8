package edge

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/snapshot"
)

// The edge persists its snapshot in its data dir as two files:
//
//	snapshot.json  a whole snapshot (snapshot.Data as JSON), replaced
//	               atomically: temporary file, fsync, rename, fsync of the dir
//	snapshot.log   the deltas applied since, in order (snapshot.AppendDeltaRecord),
//	               appended and fsync'd
//
// Persisting runs in the background, after the edge has applied and enforced
// a snapshot, so that a revocation never waits for the disk. A delta that
// follows what is on disk is appended to the log (O(change)); the log is
// compacted into a new snapshot.json when it grows past half the whole
// snapshot's size (and at least snapshotLogMin), or when the next snapshot
// does not follow (a whole snapshot from the feed, a store reset). Loading
// replays the log over snapshot.json and ignores a torn tail (a crash while
// appending), which the next append truncates.

const (
	snapshotLogFile = "snapshot.log"
	// snapshotLogMin is the log size below which it is never compacted.
	snapshotLogMin = 4 << 20
	// persistQueueMax bounds the snapshots waiting to be persisted; past it
	// only the newest is kept and written whole.
	persistQueueMax = 1024
)

// snapshotPersister writes the edge's snapshots to its data dir in the
// background. enqueue never blocks on the disk; one goroutine at a time
// (started on demand, gone when the queue is empty) does the writing.
type snapshotPersister struct {
	dir string
	log *zap.Logger

	mu      sync.Mutex
	pending []*snapshot.Snapshot
	running bool
	idle    *sync.Cond // signalled when running turns false

	// Owned by the writing goroutine (and by load, before any enqueue).
	onDisk   uint64 // revision that snapshot.json plus the log hold; 0 = none
	logSize  int64  // bytes of intact records in the log
	baseSize int64  // bytes of snapshot.json

	// beforeWrite, when set (tests), runs before each batch is written.
	beforeWrite func()
}

func newSnapshotPersister(dir string, log *zap.Logger) *snapshotPersister {
	p := &snapshotPersister{dir: dir, log: log}
	p.idle = sync.NewCond(&p.mu)
	return p
}

func (p *snapshotPersister) basePath() string { return filepath.Join(p.dir, snapshotFile) }
func (p *snapshotPersister) logPath() string  { return filepath.Join(p.dir, snapshotLogFile) }

// load reads snapshot.json and replays the log over it. A missing
// snapshot.json is (nil, nil). Log records that do not follow (older than
// the base: a crash between compaction and truncation) are skipped; a torn
// or corrupt tail, or a delta that does not apply, ends the replay there,
// and the log is cut to what was replayed.
func (p *snapshotPersister) load() (*snapshot.Snapshot, error) {
	f, err := os.Open(p.basePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening persisted snapshot: %w", err)
	}
	defer f.Close()
	cur, err := snapshot.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("reading persisted snapshot %s: %w", p.basePath(), err)
	}
	if st, err := f.Stat(); err == nil {
		p.baseSize = st.Size()
	}
	lf, err := os.Open(p.logPath())
	if errors.Is(err, os.ErrNotExist) {
		p.onDisk = cur.Revision()
		return cur, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening the snapshot log: %w", err)
	}
	defer lf.Close()
	errStop := errors.New("the delta does not follow")
	good, err := snapshot.ReadDeltaLog(lf, func(d *snapshot.Delta) error {
		if d.Revision <= cur.Revision() {
			return nil // compacted into snapshot.json already
		}
		next, err := cur.Apply(d)
		if err != nil {
			return errStop
		}
		cur = next
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("reading the snapshot log: %w", err)
	}
	if st, serr := lf.Stat(); serr == nil && st.Size() > good {
		// A torn tail, or records that do not follow: cut them off, so
		// that what is appended next is read after a restart.
		if terr := os.Truncate(p.logPath(), good); terr != nil {
			return nil, fmt.Errorf("cutting the snapshot log's torn tail: %w", terr)
		}
		p.log.Warn("the snapshot log had a torn or stale tail; ignored it",
			zap.Int64("kept_bytes", good), zap.Int64("dropped_bytes", st.Size()-good))
	}
	p.onDisk, p.logSize = cur.Revision(), good
	return cur, nil
}

// enqueue hands s to the background writer; it does not block on the disk.
func (p *snapshotPersister) enqueue(s *snapshot.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, s)
	if len(p.pending) > persistQueueMax {
		p.pending = []*snapshot.Snapshot{s} // written whole
	}
	if !p.running {
		p.running = true
		go p.run()
	}
}

// flush waits until everything enqueued so far is written (or failed).
func (p *snapshotPersister) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.running {
		p.idle.Wait()
	}
}

// run writes the queue until it is empty, then exits. Its owner is the
// persister; it stops when there is nothing left to write.
func (p *snapshotPersister) run() {
	for {
		p.mu.Lock()
		batch := p.pending
		p.pending = nil
		if len(batch) == 0 {
			p.running = false
			p.idle.Broadcast()
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		if p.beforeWrite != nil {
			p.beforeWrite()
		}
		if err := p.write(batch); err != nil {
			p.log.Error("could not persist snapshot", zap.Uint64("revision", batch[len(batch)-1].Revision()), zap.Error(err))
			p.onDisk = 0 // write a whole snapshot next time
		}
	}
}

// write persists a batch of snapshots applied in order: their deltas
// appended to the log when they follow what is on disk and the log is
// small enough, else the last one whole.
func (p *snapshotPersister) write(batch []*snapshot.Snapshot) error {
	last := batch[len(batch)-1]
	follows := p.onDisk != 0
	rev := p.onDisk
	for _, s := range batch {
		d := s.Delta()
		if d == nil || d.From != rev {
			follows = false
			break
		}
		rev = d.Revision
	}
	if follows && p.logSize < max(snapshotLogMin, p.baseSize/2) {
		return p.appendDeltas(batch)
	}
	return p.writeWhole(last)
}

func (p *snapshotPersister) appendDeltas(batch []*snapshot.Snapshot) error {
	f, err := os.OpenFile(p.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the snapshot log: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() != p.logSize {
		// Bytes past the last intact record (a write that failed half
		// way): cut them, or the records appended now would be lost.
		if err := f.Truncate(p.logSize); err != nil {
			return fmt.Errorf("cutting the snapshot log: %w", err)
		}
	}
	var buf countingWriter
	for _, s := range batch {
		if err := snapshot.AppendDeltaRecord(&buf, s.Delta()); err != nil {
			return err
		}
	}
	if _, err := f.Write(buf.b); err != nil {
		return fmt.Errorf("appending to the snapshot log: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing the snapshot log: %w", err)
	}
	p.logSize += int64(len(buf.b))
	p.onDisk = batch[len(batch)-1].Revision()
	return nil
}

// countingWriter collects the records of one append, written at once.
type countingWriter struct{ b []byte }

func (w *countingWriter) Write(b []byte) (int, error) { w.b = append(w.b, b...); return len(b), nil }

// writeWhole replaces snapshot.json with s (temporary file, fsync, rename,
// fsync of the directory) and then empties the log. A crash between the two
// leaves log records older than the new base, which load skips.
func (p *snapshotPersister) writeWhole(s *snapshot.Snapshot) error {
	tmp, err := os.CreateTemp(p.dir, ".snapshot-*.json")
	if err != nil {
		return fmt.Errorf("persisting snapshot: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := writeSnapshot(tmp, s)
	if err != nil {
		tmp.Close()
		return fmt.Errorf("persisting snapshot: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("persisting snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), p.basePath()); err != nil {
		return fmt.Errorf("persisting snapshot: %w", err)
	}
	syncDir(p.dir)
	if err := os.Truncate(p.logPath(), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("emptying the snapshot log: %w", err)
	}
	p.onDisk, p.logSize, p.baseSize = s.Revision(), 0, n
	return nil
}

// writeSnapshot encodes s into f, fsyncs it and returns its size.
func writeSnapshot(f *os.File, s *snapshot.Snapshot) (int64, error) {
	if err := f.Chmod(0o600); err != nil {
		return 0, err
	}
	if err := s.Encode(f); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return f.Seek(0, io.SeekCurrent)
}

// syncDir fsyncs a directory so that a rename in it is durable; failures
// are ignored (some file systems refuse it).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
