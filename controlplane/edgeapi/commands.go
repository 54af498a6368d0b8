package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/snapshot"
	"go.uber.org/zap"
)

// The edge API's command channel carries operator commands on agent
// sessions (POST /tunnel_sessions/{id}/stop and /restart) to edges that run
// as their own processes. Each such edge keeps one long-poll
// GET /edge/v1/commands open; a command for one of its sessions is queued
// for it and wakes the poll; the edge executes it on the agent session and
// posts the outcome to /edge/v1/commands/results, which answers the API
// call waiting for it. The same poll tells the edge when the set of live
// edges changed, so that agents learn every region's address at once.
//
// Queues live in this process's memory: with several control-plane
// processes on one database, a command reaches only edges polling the
// process that received the API call.

// maxCommandWait bounds the wait parameter of the command poll.
const maxCommandWait = 60 * time.Second

// commandQueue holds one edge's undelivered commands and the API calls
// waiting for their results.
type commandQueue struct {
	pending []snapshot.EdgeCommand
	wake    chan struct{} // buffered 1: a command was queued
	waiting map[string]chan snapshot.EdgeCommandResult
}

// queueLocked returns edgeID's queue, creating it. Call with mu held.
func (g *edgeRegistry) queueLocked(edgeID string) *commandQueue {
	if g.queues == nil {
		g.queues = make(map[string]*commandQueue)
	}
	q := g.queues[edgeID]
	if q == nil {
		q = &commandQueue{wake: make(chan struct{}, 1), waiting: make(map[string]chan snapshot.EdgeCommandResult)}
		g.queues[edgeID] = q
	}
	return q
}

// remoteEdge is the SessionCommander of an edge in another process: it
// queues each command for the edge's poll and waits for the edge's result.
type remoteEdge struct {
	s      *Server
	edgeID string
}

// StopSession implements SessionCommander.
func (r remoteEdge) StopSession(ctx context.Context, sessionID string) error {
	return r.send(ctx, snapshot.EdgeCommandStop, sessionID)
}

// RestartSession implements SessionCommander.
func (r remoteEdge) RestartSession(ctx context.Context, sessionID string) error {
	return r.send(ctx, snapshot.EdgeCommandRestart, sessionID)
}

// send queues one command and waits until the edge posts its result or ctx
// ends. A command the edge has not fetched by then is withdrawn.
func (r remoteEdge) send(ctx context.Context, verb, sessionID string) error {
	var b [12]byte
	_, _ = rand.Read(b[:])
	cmd := snapshot.EdgeCommand{ID: "cmd_" + hex.EncodeToString(b[:]), Verb: verb, SessionID: sessionID}
	done := make(chan snapshot.EdgeCommandResult, 1)
	g := &r.s.edges
	g.mu.Lock()
	q := g.queueLocked(r.edgeID)
	q.pending = append(q.pending, cmd)
	q.waiting[cmd.ID] = done
	select {
	case q.wake <- struct{}{}:
	default:
	}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(q.waiting, cmd.ID)
		for i, c := range q.pending {
			if c.ID == cmd.ID {
				q.pending = append(q.pending[:i:i], q.pending[i+1:]...)
				break
			}
		}
		g.mu.Unlock()
	}()
	select {
	case res := <-done:
		if res.ErrorCode == "" {
			return nil
		}
		return codes.NewError(res.ErrorCode, "%s", res.Msg)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serveEdgeCommands is GET /edge/v1/commands. It registers the polling edge
// as the command target of its sessions.
func (s *Server) serveEdgeCommands(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q := r.URL.Query()
	edgeID := q.Get("edge_id")
	if edgeID == "" || len(edgeID) > 64 {
		return badRequest(codes.EdgeBadRequest, "edge_id is required.")
	}
	var known uint64
	if v := q.Get("known"); v != "" {
		var err error
		if known, err = strconv.ParseUint(v, 10, 64); err != nil {
			return badRequest(codes.EdgeBadRequest, "known must be an edges_version (a non-negative integer).")
		}
	}
	wait := 25 * time.Second
	if v := q.Get("wait"); v != "" {
		sec, err := strconv.Atoi(v)
		if err != nil || sec < 0 {
			return badRequest(codes.EdgeBadRequest, "wait must be a whole number of seconds.")
		}
		wait = min(time.Duration(sec)*time.Second, maxCommandWait)
	}
	s.registerRemoteEdge(edgeID)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	timedOut := false
	for {
		edges := s.Edges() // drops edges that fell silent, which changes the version
		g := &s.edges
		g.mu.Lock()
		if g.versionCh == nil {
			g.changedLocked()
		}
		cq := g.queueLocked(edgeID)
		ans := snapshot.EdgeCommands{Commands: cq.pending, EdgesVersion: g.version}
		_, reported := g.edges[edgeID]
		ans.ReportNeeded = !reported
		changed, wake := g.versionCh, cq.wake
		ready := len(ans.Commands) > 0 || ans.EdgesVersion != known || ans.ReportNeeded || timedOut
		if ready {
			cq.pending = nil
		}
		g.mu.Unlock()
		if ready {
			if ans.Commands == nil {
				ans.Commands = []snapshot.EdgeCommand{}
			}
			ans.Edges = edges
			if ans.Edges == nil {
				ans.Edges = []snapshot.EdgeInfo{}
			}
			writeJSON(w, http.StatusOK, ans)
			return nil
		}
		select {
		case <-r.Context().Done():
			// The edge went away, or this process is shutting down.
			return newAPIError(http.StatusServiceUnavailable, codes.EdgeUnavailable, "The control plane is shutting down; the edge retries.")
		case <-wake:
		case <-changed:
		case <-timer.C:
			timedOut = true
		}
	}
}

// registerRemoteEdge makes edgeID's poll the command target of the
// sessions it reports, unless an in-process edge holds that ID.
func (s *Server) registerRemoteEdge(edgeID string) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if _, ok := s.commanders[edgeID]; ok {
		return
	}
	if s.commanders == nil {
		s.commanders = make(map[string]SessionCommander)
	}
	s.commanders[edgeID] = remoteEdge{s: s, edgeID: edgeID}
	s.log.Info("edge polls for session commands", zap.String("edge_id", edgeID))
}

// serveEdgeCommandResult is POST /edge/v1/commands/results. A result for a
// command nobody waits for any more (the API call timed out) is dropped.
func (s *Server) serveEdgeCommandResult(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var res snapshot.EdgeCommandResult
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(&res); err != nil {
		return badRequest(codes.EdgeBadRequest, "The command result is not valid JSON: %v", err)
	}
	if res.EdgeID == "" || res.ID == "" {
		return badRequest(codes.EdgeBadRequest, "A command result needs edge_id and id.")
	}
	g := &s.edges
	g.mu.Lock()
	var done chan snapshot.EdgeCommandResult
	if q := g.queues[res.EdgeID]; q != nil {
		done = q.waiting[res.ID]
		delete(q.waiting, res.ID)
	}
	g.mu.Unlock()
	if done != nil {
		done <- res // buffered 1, one sender
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
