package controlclient

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// Feed delivers control-plane snapshots: Client over HTTP, or the control
// plane itself in `tollgated dev`. Snapshot blocks until a snapshot with a
// revision greater than after exists, or ctx ends.
type Feed interface {
	Snapshot(ctx context.Context, after uint64) (*snapshot.Snapshot, error)
}

// Reporter receives the full list of the edge's online agent sessions
// whenever it changes (Client, or the control plane in-process).
type Reporter interface {
	ReportSessions(ctx context.Context, region string, sessions []snapshot.AgentSession) error
}

// CommandSource carries operator commands for the edge's agent sessions
// from a control plane in another process (Client; in `tollgated dev` the
// control plane calls the edge's StopSession and RestartSession directly).
type CommandSource interface {
	// Commands blocks until the control plane has commands for this edge,
	// or a while passed (then it returns none). ReportNeeded in the answer
	// makes the edge report its sessions at once.
	Commands(ctx context.Context) (snapshot.EdgeCommands, error)
	// CommandResult tells the control plane how a command ended.
	CommandResult(ctx context.Context, res snapshot.EdgeCommandResult) error
}

// SnapshotSink is the edge's snapshot: the one it serves from, and where a
// newer one goes.
type SnapshotSink interface {
	// Snapshot returns the current snapshot; never nil.
	Snapshot() *snapshot.Snapshot
	// ApplySnapshot installs, persists and enforces a snapshot from the
	// feed (an older revision means the control plane's store was reset).
	ApplySnapshot(snap *snapshot.Snapshot)
}

// SessionLister lists the edge's sessions for reports.
type SessionLister interface {
	// Sessions returns the edge's online agent sessions.
	Sessions() []snapshot.AgentSession
	// SessionChanges receives a value after the sessions changed.
	SessionChanges() <-chan struct{}
}

// SessionCommander stops and restarts the edge's sessions; errors are
// *codes.Error (codes.SessionNotFound, ...).
type SessionCommander interface {
	StopSession(ctx context.Context, sessionID string) error
	RestartSession(ctx context.Context, sessionID string) error
}

// Edge is what Sync needs of the edge (an *edge.Edge).
type Edge interface {
	SnapshotSink
	SessionLister
	SessionCommander
}

// SyncConfig configures a Sync.
type SyncConfig struct {
	// Region is the edge's region, named in its reports. Required.
	Region string
	// Logger receives structured logs; the region is added. Default: no
	// logs.
	Logger *zap.Logger
}

// SyncDeps are a Sync's collaborators. Edge and Feed are required;
// Reporter and Commands are optional.
type SyncDeps struct {
	Edge     Edge
	Feed     Feed
	Reporter Reporter
	// Commands is nil when the control plane calls the edge directly.
	Commands CommandSource
}

// Sync keeps one edge in step with its control plane: it follows the
// snapshot feed into the edge, reports the edge's sessions at once on every
// change and every snapshot.EdgeReportInterval regardless, and runs the
// operator's stop and restart commands on them. Create it with NewSync and
// run it with Run.
type Sync struct {
	cfg       SyncConfig
	deps      SyncDeps
	log       *zap.Logger
	reportNow chan struct{} // the control plane asked for a report; buffered 1
	feed      feedState     // for metrics.go
}

// NewSync validates cfg and deps and returns a Sync. It starts nothing.
func NewSync(cfg SyncConfig, deps SyncDeps) (*Sync, error) {
	if cfg.Region == "" || deps.Edge == nil || deps.Feed == nil {
		return nil, errors.New("controlclient: Region, Edge and Feed are required")
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &Sync{cfg: cfg, deps: deps, log: log.With(zap.String("region", cfg.Region)), reportNow: make(chan struct{}, 1)}
	s.feed.since.Store(time.Now().UnixNano())
	s.feed.down.Store(true) // until the feed first answers
	return s, nil
}

// Run follows the feed, reports and runs commands until ctx ends; then it
// returns nil. The edge keeps serving from the snapshot it has while the
// control plane is unreachable; every failure is retried.
func (s *Sync) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { s.watch(gctx); return nil })
	if s.deps.Reporter != nil {
		g.Go(func() error { s.reportLoop(gctx); return nil })
	}
	if s.deps.Commands != nil {
		g.Go(func() error { s.commandLoop(gctx); return nil })
	}
	return g.Wait()
}

// newFeedBackoff returns the retry delays of the snapshot feed and the
// command poll: 250ms doubling to at most 5s, so that a control plane that
// comes back is followed again within seconds; no jitter.
func newFeedBackoff() *tunnel.Backoff {
	return &tunnel.Backoff{Min: 250 * time.Millisecond, Max: 5 * time.Second, Jitter: -1}
}

// watch follows the feed until ctx ends, handing each snapshot to the
// edge. Feed errors are retried with capped exponential backoff; the edge
// keeps serving from what it has meanwhile.
func (s *Sync) watch(ctx context.Context) {
	e := s.deps.Edge
	bo := newFeedBackoff()
	for ctx.Err() == nil {
		snap, err := s.deps.Feed.Snapshot(ctx, e.Snapshot().Revision())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.feed.failed()
			delay := bo.Next()
			s.log.Warn("snapshot feed unavailable; serving from the cached snapshot",
				zap.Uint64("revision", e.Snapshot().Revision()), zap.Duration("retry_in", delay), zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			continue
		}
		bo.Reset()
		s.feed.answered()
		e.ApplySnapshot(snap)
	}
}

// reportLoop reports the edge's sessions at once, on every change, and
// every snapshot.EdgeReportInterval regardless: the control plane counts
// an edge that falls silent as gone.
func (s *Sync) reportLoop(ctx context.Context) {
	tick := time.NewTicker(snapshot.EdgeReportInterval)
	defer tick.Stop()
	changes := s.deps.Edge.SessionChanges()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-changes:
			case <-s.reportNow:
			case <-tick.C:
			}
		}
		list := s.deps.Edge.Sessions()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := s.deps.Reporter.ReportSessions(rctx, s.cfg.Region, list); err != nil && ctx.Err() == nil {
			s.log.Warn("could not report agent sessions to the control plane", zap.Error(err))
		}
		cancel()
	}
}
