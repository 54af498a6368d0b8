package controlplane

import (
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/snapshot"
)

// Registry is this process's view of the edges: the directory of live
// edges and where agents reach them (Edges), the agent sessions each edge
// reported (sessions.go), the command target of each edge, and the queues
// of commands for edges in other processes (commandqueue.go). It lives in
// memory, not in the store or the snapshot. Core holds one; it is safe for
// concurrent use.
type Registry struct {
	log *zap.Logger

	sessMu     sync.RWMutex
	sessions   map[string]edgeReport       // edge ID -> its latest report
	commanders map[string]SessionCommander // edge ID -> its command target

	mu    sync.Mutex // guards what follows
	edges map[string]snapshot.EdgeInfo

	// version changes whenever the set of edges or an edge's region or
	// address does; versionCh is closed then (and replaced).
	version   uint64
	versionCh chan struct{}
	queues    map[string]*commandQueue // edge ID → its pending commands
}

// newRegistry returns an empty Registry that logs to log.
func newRegistry(log *zap.Logger) *Registry {
	return &Registry{log: log, sessions: make(map[string]edgeReport)}
}

// changedLocked records a change of the edge set. Call with mu held.
func (g *Registry) changedLocked() {
	if g.version == 0 {
		// Start from the clock, so that an edge holding the version of a
		// previous control-plane process never matches by accident.
		g.version = uint64(time.Now().UnixNano())
	}
	g.version++
	if g.versionCh != nil {
		close(g.versionCh)
	}
	g.versionCh = make(chan struct{})
}

// upsertLocked records an edge, noting a change when it is new or moved.
// Call with mu held.
func (g *Registry) upsertLocked(info snapshot.EdgeInfo) {
	if g.edges == nil {
		g.edges = make(map[string]snapshot.EdgeInfo)
	}
	old, ok := g.edges[info.ID]
	g.edges[info.ID] = info
	if !ok || old.Region != info.Region || old.AgentAddr != info.AgentAddr {
		g.changedLocked()
	}
}

// UpsertEdge records what an edge said about itself in a session report:
// its ID, region, agent address and, in LastSeen, when it reported. A new
// edge, or one that moved, changes the edge set's version.
func (g *Registry) UpsertEdge(info snapshot.EdgeInfo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.upsertLocked(info)
}

// Edges returns the edges that reported within three report intervals,
// ordered by region and ID. Edges silent for longer are dropped together
// with the sessions they reported. It satisfies the edge's EdgeDirectory,
// so `tollgated dev` wires it straight into its edge.
func (g *Registry) Edges() []snapshot.EdgeInfo {
	cutoff := time.Now().Add(-3 * snapshot.EdgeReportInterval)
	g.mu.Lock()
	var out []snapshot.EdgeInfo
	var gone []string
	for id, e := range g.edges {
		if e.LastSeen.Before(cutoff) {
			gone = append(gone, id)
			delete(g.edges, id)
			delete(g.queues, id)
			g.changedLocked()
			continue
		}
		out = append(out, e)
	}
	g.mu.Unlock()
	for _, id := range gone {
		g.log.Warn("edge stopped reporting; forgetting its sessions", zap.String("edge_id", id))
		g.ForgetEdge(id)
	}
	slices.SortFunc(out, func(a, b snapshot.EdgeInfo) int {
		if c := strings.Compare(a.Region, b.Region); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// RegisterLocalEdge records an in-process edge (tollgated dev) so that
// GET /regions lists it; it never expires.
func (g *Registry) RegisterLocalEdge(info snapshot.EdgeInfo) {
	info.LastSeen = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.upsertLocked(info)
}
