package controlplane

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tollgate/tollgate/snapshot"
	"go.uber.org/zap"
)

// Snapshot returns a snapshot of the store whose revision is greater than
// after, blocking until one exists or ctx ends (then it returns ctx.Err()).
// A caller that holds a revision beyond the store's (a store reset or
// restored from a backup) gets the current snapshot at once, with a lower
// revision than after. Pass 0 to get the current snapshot (at once, unless the store has never
// been written: revision 0 is an empty store). It wakes on commits made through this process's store and polls
// the store revision every PollInterval, so that writes by other processes
// sharing a PostgreSQL database arrive too. Concurrent callers share one
// build per revision. This is the feed edges watch (edge.SnapshotFeed).
func (cp *Core) Snapshot(ctx context.Context, after uint64) (*snapshot.Snapshot, error) {
	if c := cp.snap.Load(); c != nil && c.Revision() > after {
		// A cached snapshot newer than the caller's; check it is current.
		rev, err := cp.store.Revision(ctx)
		if err != nil {
			return nil, fmt.Errorf("snapshot feed: %w", err)
		}
		if c.Revision() >= rev {
			return c, nil
		}
		return cp.build(ctx, rev)
	}
	poll := time.NewTimer(cp.cfg.PollInterval)
	defer poll.Stop()
	for {
		changed := cp.store.Changed() // before reading, so no commit is missed
		rev, err := cp.store.Revision(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("snapshot feed: %w", err)
		}
		if rev > after {
			return cp.build(ctx, rev)
		}
		if rev < after {
			// The caller holds a revision this store never reached: the
			// store was reset or restored from a backup. Its current
			// state is the truth; waiting for rev to pass after could
			// take forever.
			return cp.build(ctx, rev)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		case <-poll.C:
			poll.Reset(cp.cfg.PollInterval)
		}
	}
}

// build returns a snapshot at revision rev or newer, building one unless a
// concurrent caller already has.
func (cp *Core) build(ctx context.Context, rev uint64) (*snapshot.Snapshot, error) {
	if c := cp.snap.Load(); c != nil && c.Revision() >= rev {
		return c, nil
	}
	select {
	case cp.building <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-cp.building }()
	if c := cp.snap.Load(); c != nil && c.Revision() >= rev {
		return c, nil
	}
	start := time.Now()
	snap, err := cp.store.BuildSnapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot feed: %w", err)
	}
	if c := cp.snap.Load(); c == nil || snap.Revision() > c.Revision() {
		cp.snap.Store(snap)
	}
	cp.history.remember(snap)
	cp.log.Debug("snapshot built", zap.Uint64("revision", snap.Revision()),
		zap.Int("authtokens", len(snap.Data().Authtokens)), zap.Duration("took", time.Since(start)))
	return snap, nil
}

// feedHistory is how many recent snapshots the control plane keeps to
// answer feed requests with deltas.
const feedHistory = 32

// history holds the recent snapshots this process built, for deltas.
type history struct {
	mu    sync.Mutex
	snaps []*snapshot.Snapshot // ascending revisions, at most feedHistory
}

// remember keeps snap for deltas.
func (h *history) remember(snap *snapshot.Snapshot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.snaps); n > 0 && h.snaps[n-1].Revision() >= snap.Revision() {
		return
	}
	h.snaps = append(h.snaps, snap)
	if len(h.snaps) > feedHistory {
		h.snaps = slices.Delete(h.snaps, 0, len(h.snaps)-feedHistory)
	}
}

// at returns the remembered snapshot of revision rev.
func (h *history) at(rev uint64) *snapshot.Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.snaps {
		if s.Revision() == rev {
			return s
		}
	}
	return nil
}

// SnapshotAt returns the snapshot of revision rev if it is one of the
// recent snapshots (the last 32) that this process built, to compute a
// delta from; nil otherwise.
func (cp *Core) SnapshotAt(rev uint64) *snapshot.Snapshot { return cp.history.at(rev) }
