package controlplane

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/regions"
	"github.com/tollgate/tollgate/snapshot"
)

// The control plane's API for edges that run as their own processes
// (`tollgated edge --control URL`), served on the API listener:
//
//	GET /edge/v1/snapshot?after=REV[&wait=SECONDS]
//	    → 200 snapshot.FeedMessage: a delta from REV when this process still
//	      holds the snapshot at REV, else a whole snapshot; 204 when nothing
//	      newer than REV appeared within wait (default 25 s, at most 60 s).
//	      after=0, or an after beyond the store's revision (a store that was
//	      reset), gets a whole snapshot at once.
//	PUT /edge/v1/sessions   body snapshot.EdgeReport
//	    → 200 snapshot.EdgeReportAnswer: every live edge, so that edges can
//	      tell agents where each region is (ConnectAddresses)
//	GET /edge/v1/commands?edge_id=ID&known=VERSION[&wait=SECONDS]
//	    → 200 snapshot.EdgeCommands: operator commands for the edge's agent
//	      sessions, and the live edges when they changed since VERSION;
//	      answered at once when there is either, else after wait
//	      (edgecommands.go)
//	POST /edge/v1/commands/results   body snapshot.EdgeCommandResult → 204
//
// All authenticate with "Authorization: Bearer <edge secret>", the secret
// given to the control plane as ServerConfig.EdgeSecret (compared as SHA-256
// hashes in constant time). Without an edge secret the edge API answers 403:
// only the in-process edge of `tollgated dev` exists.
//
// GET /regions (API key, any role) lists the edges that reported within
// three snapshot.EdgeReportIntervals, by region.

// feedHistory is how many recent snapshots the control plane keeps to
// answer feed requests with deltas.
const feedHistory = 32

// maxFeedWait bounds the wait parameter of the snapshot feed.
const maxFeedWait = 60 * time.Second

// edgeRegistry holds recent snapshots for deltas and the edges that
// reported.
type edgeRegistry struct {
	mu    sync.Mutex
	snaps []*snapshot.Snapshot // ascending revisions, at most feedHistory
	edges map[string]snapshot.EdgeInfo

	// version changes whenever the set of edges or an edge's region or
	// address does; versionCh is closed then (and replaced).
	version   uint64
	versionCh chan struct{}
	queues    map[string]*commandQueue // edge ID → its pending commands
}

// changedLocked records a change of the edge set. Call with mu held.
func (g *edgeRegistry) changedLocked() {
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
func (g *edgeRegistry) upsertLocked(info snapshot.EdgeInfo) {
	if g.edges == nil {
		g.edges = make(map[string]snapshot.EdgeInfo)
	}
	old, ok := g.edges[info.ID]
	g.edges[info.ID] = info
	if !ok || old.Region != info.Region || old.AgentAddr != info.AgentAddr {
		g.changedLocked()
	}
}

// remember keeps snap for deltas.
func (g *edgeRegistry) remember(snap *snapshot.Snapshot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := len(g.snaps); n > 0 && g.snaps[n-1].Revision() >= snap.Revision() {
		return
	}
	g.snaps = append(g.snaps, snap)
	if len(g.snaps) > feedHistory {
		g.snaps = slices.Delete(g.snaps, 0, len(g.snaps)-feedHistory)
	}
}

// at returns the remembered snapshot of revision rev.
func (g *edgeRegistry) at(rev uint64) *snapshot.Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range g.snaps {
		if s.Revision() == rev {
			return s
		}
	}
	return nil
}

func (s *Server) edgeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /edge/v1/snapshot", s.edgeOnly(s.serveFeed))
	mux.HandleFunc("PUT /edge/v1/sessions", s.edgeOnly(s.serveEdgeReport))
	mux.HandleFunc("GET /edge/v1/commands", s.edgeOnly(s.serveEdgeCommands))
	mux.HandleFunc("POST /edge/v1/commands/results", s.edgeOnly(s.serveEdgeCommandResult))
	s.route(mux, "/regions", methods{http.MethodGet: s.listRegions})
}

// edgeOnly authenticates an edge request with the edge secret.
func (s *Server) edgeOnly(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, func(w http.ResponseWriter, r *http.Request, c *caller) error {
			if s.cfg.EdgeSecret == "" {
				return newAPIError(http.StatusForbidden, codes.EdgeAuth,
					"This control plane accepts no edges: start it with an edge secret (tollgated control --edge-secret-file).")
			}
			scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			if !strings.EqualFold(scheme, "Bearer") || !authn.SecretMatches(strings.TrimSpace(tok), authn.HashSecret(s.cfg.EdgeSecret)) {
				return newAPIError(http.StatusUnauthorized, codes.EdgeAuth,
					"The edge secret is missing or wrong: give the edge the control plane's edge secret (tollgated edge --control-secret-file).")
			}
			return h(w, r, c)
		}, false)
	}
}

func (s *Server) serveFeed(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q := r.URL.Query()
	after, err := strconv.ParseUint(q.Get("after"), 10, 64)
	if q.Get("after") == "" {
		after, err = 0, nil
	}
	if err != nil {
		return badRequest(codes.EdgeBadRequest, "after must be a store revision (a non-negative integer).")
	}
	wait := 25 * time.Second
	if v := q.Get("wait"); v != "" {
		sec, err := strconv.Atoi(v)
		if err != nil || sec < 0 {
			return badRequest(codes.EdgeBadRequest, "wait must be a whole number of seconds.")
		}
		wait = min(time.Duration(sec)*time.Second, maxFeedWait)
	}
	rev, err := s.store.Revision(r.Context())
	if err != nil {
		return newAPIError(http.StatusServiceUnavailable, codes.EdgeUnavailable, "The control plane cannot read its store; the edge keeps its snapshot and retries.")
	}
	if after > rev {
		s.log.Warn("an edge holds a snapshot newer than the store: sending the store's whole snapshot",
			zap.Uint64("edge_revision", after), zap.Uint64("store_revision", rev))
		after = 0 // a reset store: the edge must take what there is
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	snap, err := s.Snapshot(ctx, after)
	if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		if r.Context().Err() != nil {
			// The edge went away, or this process is shutting down.
			return newAPIError(http.StatusServiceUnavailable, codes.EdgeUnavailable, "The control plane is shutting down; the edge keeps its snapshot and retries.")
		}
		return newAPIError(http.StatusServiceUnavailable, codes.EdgeUnavailable, "The control plane could not build a snapshot; the edge keeps its own and retries.")
	}
	s.edges.remember(snap)
	var msg snapshot.FeedMessage
	if base := s.edges.at(after); after > 0 && base != nil {
		msg.Delta = snapshot.Diff(base.Data(), snap.Data())
	} else {
		msg.Snapshot = snap.Data()
	}
	w.Header().Set("Content-Type", "application/json")
	var out interface {
		Write([]byte) (int, error)
	} = w
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		defer zw.Close()
		out = zw
	}
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(out).Encode(&msg)
}

func (s *Server) serveEdgeReport(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var rep snapshot.EdgeReport
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
	if err := dec.Decode(&rep); err != nil {
		return badRequest(codes.EdgeBadRequest, "The session report is not valid JSON: %v", err)
	}
	if rep.EdgeID == "" || rep.Region == "" {
		return badRequest(codes.EdgeBadRequest, "A session report needs edge_id and region.")
	}
	if _, err := regions.Parse(rep.Region); err != nil {
		return badRequest(codes.EdgeBadRequest, "A session report's region must be a region code: %v", err)
	}
	s.edges.mu.Lock()
	s.edges.upsertLocked(snapshot.EdgeInfo{ID: rep.EdgeID, Region: rep.Region, AgentAddr: rep.AgentAddr, LastSeen: time.Now().UTC()})
	s.edges.mu.Unlock()
	if err := s.ReportEdgeSessions(r.Context(), rep.EdgeID, rep.Region, rep.Sessions); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, snapshot.EdgeReportAnswer{Edges: s.Edges()})
	return nil
}

// Edges returns the edges that reported within three report intervals,
// ordered by region and ID. Edges silent for longer are dropped together
// with the sessions they reported.
func (s *Server) Edges() []snapshot.EdgeInfo {
	cutoff := time.Now().Add(-3 * snapshot.EdgeReportInterval)
	s.edges.mu.Lock()
	var out []snapshot.EdgeInfo
	var gone []string
	for id, e := range s.edges.edges {
		if e.LastSeen.Before(cutoff) {
			gone = append(gone, id)
			delete(s.edges.edges, id)
			delete(s.edges.queues, id)
			s.edges.changedLocked()
			continue
		}
		out = append(out, e)
	}
	s.edges.mu.Unlock()
	for _, id := range gone {
		s.log.Warn("edge stopped reporting; forgetting its sessions", zap.String("edge_id", id))
		s.ForgetEdge(id)
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
func (s *Server) RegisterLocalEdge(info snapshot.EdgeInfo) {
	info.LastSeen = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	s.edges.mu.Lock()
	defer s.edges.mu.Unlock()
	s.edges.upsertLocked(info)
}

type regionJSON struct {
	ID    string          `json:"id"`
	Edges []regionEdgeOut `json:"edges"`
}

type regionEdgeOut struct {
	ID        string `json:"id"`
	AgentAddr string `json:"agent_addr"`
}

func (s *Server) listRegions(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if err := noBody(r); err != nil {
		return err
	}
	regions := []regionJSON{}
	for _, e := range s.Edges() {
		if n := len(regions); n == 0 || regions[n-1].ID != e.Region {
			regions = append(regions, regionJSON{ID: e.Region})
		}
		last := &regions[len(regions)-1]
		last.Edges = append(last.Edges, regionEdgeOut{ID: e.ID, AgentAddr: e.AgentAddr})
	}
	writeJSON(w, http.StatusOK, map[string]any{"regions": regions})
	return nil
}
