package controlplane

import (
	"context"
	"fmt"
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
func (s *Server) Snapshot(ctx context.Context, after uint64) (*snapshot.Snapshot, error) {
	if c := s.snap.Load(); c != nil && c.Revision() > after {
		// A cached snapshot newer than the caller's; check it is current.
		rev, err := s.store.Revision(ctx)
		if err != nil {
			return nil, fmt.Errorf("snapshot feed: %w", err)
		}
		if c.Revision() >= rev {
			return c, nil
		}
		return s.build(ctx, rev)
	}
	poll := time.NewTimer(s.cfg.PollInterval)
	defer poll.Stop()
	for {
		changed := s.store.Changed() // before reading, so no commit is missed
		rev, err := s.store.Revision(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("snapshot feed: %w", err)
		}
		if rev > after {
			return s.build(ctx, rev)
		}
		if rev < after {
			// The caller holds a revision this store never reached: the
			// store was reset or restored from a backup. Its current
			// state is the truth; waiting for rev to pass after could
			// take forever.
			return s.build(ctx, rev)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		case <-poll.C:
			poll.Reset(s.cfg.PollInterval)
		}
	}
}

// build returns a snapshot at revision rev or newer, building one unless a
// concurrent caller already has.
func (s *Server) build(ctx context.Context, rev uint64) (*snapshot.Snapshot, error) {
	if c := s.snap.Load(); c != nil && c.Revision() >= rev {
		return c, nil
	}
	select {
	case s.building <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.building }()
	if c := s.snap.Load(); c != nil && c.Revision() >= rev {
		return c, nil
	}
	start := time.Now()
	snap, err := s.store.BuildSnapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot feed: %w", err)
	}
	if c := s.snap.Load(); c == nil || snap.Revision() > c.Revision() {
		s.snap.Store(snap)
	}
	s.edges.remember(snap)
	s.log.Debug("snapshot built", zap.Uint64("revision", snap.Revision()),
		zap.Int("authtokens", len(snap.Data().Authtokens)), zap.Duration("took", time.Since(start)))
	return snap, nil
}
