package controlplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/snapshot"
)

// The snapshot feed. Every mutation records the snapshot objects it changed
// in the store's change log (store.Changes). When the store's revision
// moves, the first caller to notice computes the delta from the last
// revision this process knows to the new one, once, by reading only the
// changed rows (feedSteps.advance); every edge that holds the previous
// revision gets that same delta, and an edge further behind gets the
// recent deltas merged. The whole snapshot, for edges that start and for
// the api IP restriction, is kept up to date by applying those deltas to
// the previous one (O(change)); it is rebuilt from the store only at start
// or when the change log no longer reaches back (store.ErrChangesPruned).

// feedStepsMax bounds the recent deltas kept: at most this many revisions
// steps, holding at most feedStepsObjects objects together. An edge behind
// all of them gets its delta from the store's change log directly.
const (
	feedStepsMax     = 256
	feedStepsObjects = 1 << 20
)

// feedSteps holds the deltas of the most recent revisions this process saw,
// contiguous: steps[i].Revision == steps[i+1].From.
type feedSteps struct {
	advancing chan struct{} // one-slot semaphore: one advance at a time

	mu      sync.Mutex
	head    uint64            // the revision the steps reach (0 = none yet)
	steps   []*snapshot.Delta // ascending
	objects int               // sum of the steps' sizes
	merged  map[uint64]*snapshot.Delta
}

// Snapshot returns a snapshot of the store whose revision is greater than
// after, blocking until one exists or ctx ends (then it returns ctx.Err()).
// A caller that holds a revision beyond the store's (a store reset or
// restored from a backup) gets the current snapshot at once, with a lower
// revision than after. Pass 0 to get the current snapshot (at once, unless
// the store has never been written: revision 0 is an empty store). It wakes
// on commits made through this process's store and polls the store revision
// every PollInterval, so that writes by other processes sharing a
// PostgreSQL database arrive too. Concurrent callers share one update per
// revision, and an update costs O(change) (see above). This is the feed
// that `tollgated dev` gives its in-process edge.
func (cp *Core) Snapshot(ctx context.Context, after uint64) (*snapshot.Snapshot, error) {
	if c := cp.snap.Load(); c != nil && c.Revision() > after {
		// A cached snapshot newer than the caller's; check it is current.
		rev, err := cp.store.Revision(ctx)
		if err != nil {
			return nil, fmt.Errorf("snapshot feed: %w", err)
		}
		return cp.current(ctx, rev)
	}
	rev, err := cp.waitRevision(ctx, after)
	if err != nil {
		return nil, err
	}
	return cp.current(ctx, rev)
}

// Feed returns the feed message for an edge that holds revision after (0:
// none), blocking like Snapshot until the store's revision differs from
// after or ctx ends: a delta from after when the change history reaches
// back to it, else a whole snapshot. GET /edge/v1/snapshot serves it.
func (cp *Core) Feed(ctx context.Context, after uint64) (*snapshot.FeedMessage, error) {
	rev, err := cp.waitRevision(ctx, after)
	if err != nil {
		return nil, err
	}
	msg := &snapshot.FeedMessage{Version: snapshot.FeedVersion}
	if after > 0 && rev > after {
		d, err := cp.deltaSince(ctx, after, rev)
		if err == nil {
			msg.Delta = d
			return msg, nil
		}
		if !errors.Is(err, store.ErrChangesPruned) {
			return nil, err
		}
		cp.log.Info("an edge is behind the change history: sending a whole snapshot",
			zap.Uint64("edge_revision", after), zap.Uint64("revision", rev))
	}
	snap, err := cp.current(ctx, rev)
	if err != nil {
		return nil, err
	}
	msg.Snapshot = snap.Data()
	return msg, nil
}

// waitRevision returns the store's revision once it differs from after
// (greater, or lower after a store reset), or ctx's error.
func (cp *Core) waitRevision(ctx context.Context, after uint64) (uint64, error) {
	poll := time.NewTimer(cp.cfg.PollInterval)
	defer poll.Stop()
	for {
		changed := cp.store.Changed() // before reading, so no commit is missed
		rev, err := cp.store.Revision(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("snapshot feed: %w", err)
		}
		// rev < after: the caller holds a revision this store never
		// reached (it was reset or restored from a backup). Its current
		// state is the truth; waiting for rev to pass after could take
		// forever. after 0 with rev 0 (an empty store) waits for a write.
		if rev != after {
			return rev, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-changed:
		case <-poll.C:
			poll.Reset(cp.cfg.PollInterval)
		}
	}
}

// current returns the whole snapshot at revision rev or newer: the cached
// one, brought forward by a delta when it is older, or built from the store
// when there is none or the change log does not reach back to it.
func (cp *Core) current(ctx context.Context, rev uint64) (*snapshot.Snapshot, error) {
	if c := cp.snap.Load(); c != nil && c.Revision() >= rev {
		return c, nil
	}
	select {
	case cp.building <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-cp.building }()
	c := cp.snap.Load()
	if c != nil && c.Revision() >= rev {
		return c, nil
	}
	start := time.Now()
	var next *snapshot.Snapshot
	if c != nil && c.Revision() > 0 && c.Revision() < rev {
		d, err := cp.deltaSince(ctx, c.Revision(), rev)
		if err == nil {
			next, err = c.Apply(d)
		}
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err() // the caller went away (or the process stops): not a failure to report
		}
		if err != nil && !errors.Is(err, store.ErrChangesPruned) {
			cp.log.Warn("could not bring the snapshot forward by a delta; rebuilding it", zap.Error(err))
		}
	}
	if next == nil {
		var err error
		if next, err = cp.store.BuildSnapshot(ctx); err != nil {
			return nil, fmt.Errorf("snapshot feed: %w", err)
		}
		cp.log.Debug("snapshot built", zap.Uint64("revision", next.Revision()),
			zap.Int("objects", next.Len()), zap.Duration("took", time.Since(start)))
	}
	cp.snap.Store(next)
	return next, nil
}

// deltaSince returns the delta from revision after to rev or newer: the
// recent steps merged when after is one of their boundaries (each step is
// computed once per revision, by advance), otherwise read from the store's
// change log. Errors: store.ErrChangesPruned (wrapped) when the log does not
// reach back to after.
func (cp *Core) deltaSince(ctx context.Context, after, rev uint64) (*snapshot.Delta, error) {
	if err := cp.advance(ctx, rev); err != nil {
		return nil, err
	}
	if d := cp.steps.since(after); d != nil {
		return d, nil
	}
	d, err := cp.store.Changes(ctx, after)
	if err != nil {
		return nil, fmt.Errorf("snapshot feed: %w", err)
	}
	return d, nil
}

// advance makes the steps reach revision rev or newer, computing the delta
// from their head once, from the store's change log.
func (cp *Core) advance(ctx context.Context, rev uint64) error {
	f := &cp.steps
	if f.reached(rev) {
		return nil
	}
	select {
	case f.advancing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-f.advancing }()
	if f.reached(rev) {
		return nil
	}
	f.mu.Lock()
	head := f.head
	f.mu.Unlock()
	if head == 0 {
		// No steps yet: they start at the store's current revision;
		// edges behind it get their deltas from the change log.
		cur, err := cp.store.Revision(ctx)
		if err != nil {
			return fmt.Errorf("snapshot feed: %w", err)
		}
		f.reset(cur)
		return nil
	}
	start := time.Now()
	d, err := cp.store.Changes(ctx, head)
	if errors.Is(err, store.ErrChangesPruned) {
		f.reset(0) // the head fell out of the log (or the store was reset)
		return nil
	}
	if err != nil {
		return fmt.Errorf("snapshot feed: %w", err)
	}
	f.push(d)
	cp.log.Debug("snapshot delta computed", zap.Uint64("from", d.From), zap.Uint64("revision", d.Revision),
		zap.Int("objects", d.Size()), zap.Duration("took", time.Since(start)))
	return nil
}

func (f *feedSteps) reached(rev uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.head != 0 && f.head >= rev
}

// reset drops the steps and starts them at head (0: at the next advance).
func (f *feedSteps) reset(head uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.head, f.steps, f.objects, f.merged = head, nil, 0, nil
}

// push appends the delta from the head to a newer revision.
func (f *feedSteps) push(d *snapshot.Delta) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d.From != f.head || d.Revision <= f.head {
		return
	}
	f.steps = append(f.steps, d)
	f.objects += d.Size()
	f.head = d.Revision
	f.merged = nil
	for len(f.steps) > 1 && (len(f.steps) > feedStepsMax || f.objects > feedStepsObjects) {
		f.objects -= f.steps[0].Size()
		f.steps[0] = nil
		f.steps = f.steps[1:]
	}
}

// since returns the delta from after to the head, or nil when after is not
// the start of a kept step (or is the head). Merged deltas are cached until
// the head moves, so that many edges at one revision share one merge.
func (f *feedSteps) since(after uint64) *snapshot.Delta {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := len(f.steps) - 1
	for i >= 0 && f.steps[i].From > after {
		i--
	}
	if i < 0 || f.steps[i].From != after {
		return nil
	}
	if i == len(f.steps)-1 {
		return f.steps[i]
	}
	if d := f.merged[after]; d != nil {
		return d
	}
	d := f.steps[i]
	for _, next := range f.steps[i+1:] {
		m, err := snapshot.Merge(d, next)
		if err != nil {
			return nil // not contiguous: cannot happen, push keeps them so
		}
		d = m
	}
	if f.merged == nil {
		f.merged = map[uint64]*snapshot.Delta{}
	}
	f.merged[after] = d
	return d
}
