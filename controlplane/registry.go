package controlplane

import (
	"context"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/snapshot"
)

// storeTimeout bounds a registry read or write of the store made without
// a caller's context (Edges, for the in-process edge).
const storeTimeout = 5 * time.Second

// staleCommand is the age past which a queued session command is deleted
// whatever became of it: well past sessionCommandTimeout.
const staleCommand = 4 * sessionCommandTimeout

// Registry is the control plane's view of the edges: the directory of live
// edges and where agents reach them (Edges), the agent sessions each edge
// reported (sessions.go), and the commands for their sessions
// (commandqueue.go).
//
// What edges in other processes report (PUT /edge/v1/sessions) and the
// commands queued for them live in the store (store.EdgeState,
// store.QueueEdgeCommand), so every control-plane process sharing the
// database lists the same edges and sessions and any of them can command
// any session. An edge in this process (`tollgated dev`) is kept in memory
// with its command target (RegisterLocalEdge, ReportSessions,
// RegisterEdge), as before. Core holds one; it is safe for concurrent use.
type Registry struct {
	log   *zap.Logger
	store *store.Store
	poll  time.Duration // how often waits re-read the store
	// started is when this process's registry was made: an edge whose
	// report is older reports again (reportNeeded).
	started time.Time

	mu         sync.Mutex
	sessions   map[string]edgeReport       // in-process edge ID -> its latest report
	commanders map[string]SessionCommander // in-process edge ID -> its command target
	local      map[string]snapshot.EdgeInfo
	// signal is closed (and replaced) when this process wrote edge state a
	// wait may be waiting for: a report, a queued command, a result.
	// Writes by other processes are seen by polling the store.
	signal chan struct{}
}

// newRegistry returns an empty Registry over st that logs to log; waits
// re-read the store every poll.
func newRegistry(log *zap.Logger, st *store.Store, poll time.Duration) *Registry {
	return &Registry{log: log, store: st, poll: poll, started: time.Now(), sessions: make(map[string]edgeReport), signal: make(chan struct{})}
}

// changed wakes the waits of this process.
func (g *Registry) changed() {
	g.mu.Lock()
	close(g.signal)
	g.signal = make(chan struct{})
	g.mu.Unlock()
}

// changes returns the channel the next changed closes.
func (g *Registry) changes() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.signal
}

// cutoff is the last-seen time before which an edge counts as gone: three
// report intervals ago.
func cutoff() time.Time { return time.Now().Add(-3 * snapshot.EdgeReportInterval) }

// Report records what edge rep.EdgeID (an edge in another process) said
// in a session report: its region, agent address and complete list of
// online sessions (sessions missing from it are offline; sessions without
// a region get the edge's). It also forgets edges silent for three report
// intervals, and commands older than staleCommand.
func (g *Registry) Report(ctx context.Context, rep snapshot.EdgeReport) error {
	rep.Sessions = g.cleanSessions(rep.EdgeID, rep.Region, rep.Sessions)
	if err := g.store.PutEdgeReport(ctx, rep); err != nil {
		return err
	}
	gone, err := g.store.DeleteEdgesSilentSince(ctx, cutoff())
	for _, id := range gone {
		g.log.Warn("edge stopped reporting; forgetting its sessions and routes", zap.String("edge_id", id))
	}
	g.changed()
	if err != nil {
		return err
	}
	if err := g.store.DropEdgeRoutes(ctx, gone); err != nil {
		return err
	}
	return g.store.DeleteEdgeCommandsQueuedBefore(ctx, time.Now().Add(-staleCommand))
}

// LiveEdges returns the edges that reported within three report intervals,
// and the edges of this process, ordered by region and ID.
func (g *Registry) LiveEdges(ctx context.Context) ([]snapshot.EdgeInfo, error) {
	states, err := g.store.EdgeStates(ctx, cutoff(), false)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	out := make([]snapshot.EdgeInfo, 0, len(states)+len(g.local))
	for _, e := range g.local {
		out = append(out, e)
	}
	local := len(out)
	g.mu.Unlock()
	for _, st := range states {
		if !slices.ContainsFunc(out[:local], func(e snapshot.EdgeInfo) bool { return e.ID == st.Info.ID }) {
			out = append(out, st.Info)
		}
	}
	slices.SortFunc(out, func(a, b snapshot.EdgeInfo) int {
		if c := strings.Compare(a.Region, b.Region); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Edges is LiveEdges for callers without a context. On a store failure it
// logs and returns this process's edges. It satisfies the edge's
// EdgeDirectory, so `tollgated dev` wires it straight into its edge.
func (g *Registry) Edges() []snapshot.EdgeInfo {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	out, err := g.LiveEdges(ctx)
	if err != nil {
		g.log.Warn("cannot read the live edges from the store", zap.Error(err))
		g.mu.Lock()
		defer g.mu.Unlock()
		out = out[:0]
		for _, e := range g.local {
			out = append(out, e)
		}
	}
	return out
}

// edgesVersion is a digest of the edge set (IDs, regions, agent and
// edge-to-edge addresses): the same set gives the same version in every process, and
// never 0.
func edgesVersion(edges []snapshot.EdgeInfo) uint64 {
	h := fnv.New64a()
	for _, e := range edges {
		h.Write([]byte(e.ID))
		h.Write([]byte{0})
		h.Write([]byte(e.Region))
		h.Write([]byte{0})
		h.Write([]byte(e.AgentAddr))
		h.Write([]byte{0})
		h.Write([]byte(e.PeerAddr))
		h.Write([]byte{0})
	}
	if v := h.Sum64(); v != 0 {
		return v
	}
	return 1
}

// RegisterLocalEdge records an in-process edge (tollgated dev) so that
// GET /regions lists it; it never expires.
func (g *Registry) RegisterLocalEdge(info snapshot.EdgeInfo) {
	info.LastSeen = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	g.mu.Lock()
	if g.local == nil {
		g.local = make(map[string]snapshot.EdgeInfo)
	}
	g.local[info.ID] = info
	g.mu.Unlock()
	g.changed()
}
