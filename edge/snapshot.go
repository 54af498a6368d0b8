package edge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// SnapshotFeed delivers control-plane snapshots. In `tollgated dev` the
// control plane implements it in-process; a standalone edge uses an HTTP
// client of the control plane's feed. Snapshot blocks until a snapshot with
// a revision greater than after exists, or ctx ends.
type SnapshotFeed interface {
	Snapshot(ctx context.Context, after uint64) (*snapshot.Snapshot, error)
}

// snapshotFile is the name of the persisted snapshot in the data dir.
const snapshotFile = "snapshot.json"

// snapshotHolder holds the newest snapshot the edge has seen. Reads are a
// single atomic load.
type snapshotHolder struct {
	cur  atomic.Pointer[snapshot.Snapshot]
	path string // "" = do not persist

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after each applied snapshot
}

func newSnapshotHolder(dataDir string) *snapshotHolder {
	h := &snapshotHolder{changed: make(chan struct{})}
	if dataDir != "" {
		h.path = filepath.Join(dataDir, snapshotFile)
	}
	empty, _ := snapshot.New(snapshot.Data{})
	h.cur.Store(empty)
	return h
}

// Load returns the current snapshot; never nil.
func (h *snapshotHolder) Load() *snapshot.Snapshot { return h.cur.Load() }

// Changed returns a channel closed once the next snapshot has been
// installed and applied. Take it before Load to miss nothing.
func (h *snapshotHolder) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

func (h *snapshotHolder) notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.changed)
	h.changed = make(chan struct{})
}

// loadPersisted reads the persisted snapshot, if there is one. A missing file
// is not an error; a corrupt one is reported and ignored.
func (h *snapshotHolder) loadPersisted() (bool, error) {
	if h.path == "" {
		return false, nil
	}
	f, err := os.Open(h.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("opening persisted snapshot: %w", err)
	}
	defer f.Close()
	s, err := snapshot.Decode(f)
	if err != nil {
		return false, fmt.Errorf("reading persisted snapshot %s: %w", h.path, err)
	}
	h.cur.Store(s)
	return true, nil
}

// swap installs s if it is newer than the current snapshot and persists it
// (write to a temporary file, fsync, rename, so a crash never leaves a torn
// file). It reports whether s was installed.
func (h *snapshotHolder) swap(s *snapshot.Snapshot) (bool, error) {
	for {
		old := h.cur.Load()
		if s.Revision() <= old.Revision() && old.Revision() != 0 {
			return false, nil
		}
		if h.cur.CompareAndSwap(old, s) {
			break
		}
	}
	return true, h.persist(s)
}

func (h *snapshotHolder) persist(s *snapshot.Snapshot) error {
	if h.path == "" {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(h.path), ".snapshot-*.json")
	if err != nil {
		return fmt.Errorf("persisting snapshot: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("persisting snapshot: %w", err)
	}
	if err := s.Encode(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("persisting snapshot: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("persisting snapshot: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("persisting snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), h.path); err != nil {
		return fmt.Errorf("persisting snapshot: %w", err)
	}
	return nil
}

// newFeedBackoff returns the retry delays of the snapshot feed and the
// command poll: 250ms doubling to at most 5s, so that a control plane that
// comes back is followed again within seconds; no jitter.
func newFeedBackoff() *tunnel.Backoff {
	return &tunnel.Backoff{Min: 250 * time.Millisecond, Max: 5 * time.Second, Jitter: -1}
}

// watch follows feed until ctx ends, calling apply after each installed
// snapshot. Feed errors are retried with capped exponential backoff; the
// edge keeps serving from what it has meanwhile.
func (h *snapshotHolder) watch(ctx context.Context, feed SnapshotFeed, log *zap.Logger, apply func(*snapshot.Snapshot)) {
	bo := newFeedBackoff()
	for ctx.Err() == nil {
		s, err := feed.Snapshot(ctx, h.Load().Revision())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			delay := bo.Next()
			log.Warn("snapshot feed unavailable; serving from the cached snapshot",
				zap.Uint64("revision", h.Load().Revision()), zap.Duration("retry_in", delay), zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			continue
		}
		bo.Reset()
		if after := h.Load().Revision(); s.Revision() < after {
			// The feed answers with an older revision only when its store
			// is older than ours (restored from a backup, or reset): it is
			// the truth now.
			log.Warn("the control plane's snapshot is older than this edge's: its store was reset or restored; taking its snapshot",
				zap.Uint64("edge_revision", after), zap.Uint64("control_plane_revision", s.Revision()))
			h.cur.Store(s)
			if perr := h.persist(s); perr != nil {
				log.Error("could not persist snapshot", zap.Error(perr))
			}
			apply(s)
			h.notify()
			continue
		}
		installed, perr := h.swap(s)
		if perr != nil {
			log.Error("could not persist snapshot", zap.Error(perr))
		}
		if installed {
			log.Debug("snapshot applied", zap.Uint64("revision", s.Revision()))
			apply(s)
			h.notify()
		}
	}
}
