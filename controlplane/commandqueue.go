package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/snapshot"
)

// The command channel carries operator commands on agent sessions (POST
// /tunnel_sessions/{id}/stop and /restart) to edges that run as their own
// processes. Each such edge keeps one long poll of the edge API open
// (WaitCommands); a command for one of its sessions is queued for it and
// wakes the poll; the edge executes it on the agent session and posts the
// outcome (DeliverResult), which answers the API call waiting for it. The
// same poll tells the edge when the set of live edges changed, so that
// agents learn every region's address at once.
//
// Queues live in this process's memory: with several control-plane
// processes on one database, a command reaches only edges polling the
// process that received the API call.

// commandQueue holds one edge's undelivered commands and the API calls
// waiting for their results.
type commandQueue struct {
	pending []snapshot.EdgeCommand
	wake    chan struct{} // buffered 1: a command was queued
	waiting map[string]chan snapshot.EdgeCommandResult
}

// queueLocked returns edgeID's queue, creating it. Call with mu held.
func (g *Registry) queueLocked(edgeID string) *commandQueue {
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
	g      *Registry
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
	g := r.g
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

// RegisterRemoteEdge makes the command channel of edgeID (an edge in
// another process that polls WaitCommands) the command target of the
// sessions it reports, unless an in-process edge holds that ID.
func (g *Registry) RegisterRemoteEdge(edgeID string) {
	g.sessMu.Lock()
	defer g.sessMu.Unlock()
	if _, ok := g.commanders[edgeID]; ok {
		return
	}
	if g.commanders == nil {
		g.commanders = make(map[string]SessionCommander)
	}
	g.commanders[edgeID] = remoteEdge{g: g, edgeID: edgeID}
	g.log.Info("edge polls for session commands", zap.String("edge_id", edgeID))
}

// WaitCommands is one long poll of edgeID's command channel. It answers at
// once when commands are queued for the edge, when the edge set's version
// differs from known, or when the edge has not reported (ReportNeeded);
// else as soon as one of those happens, or after wait with nothing new.
// The commands it answers with are taken from the queue: each is delivered
// once. The answer lists the live edges (Edges). It returns ctx.Err() when
// ctx ends first.
func (g *Registry) WaitCommands(ctx context.Context, edgeID string, known uint64, wait time.Duration) (snapshot.EdgeCommands, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	timedOut := false
	for {
		edges := g.Edges() // drops edges that fell silent, which changes the version
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
			return ans, nil
		}
		select {
		case <-ctx.Done():
			return snapshot.EdgeCommands{}, ctx.Err()
		case <-wake:
		case <-changed:
		case <-timer.C:
			timedOut = true
		}
	}
}

// DeliverResult hands the outcome an edge posted to the API call waiting
// for it. A result for a command nobody waits for any more (the API call
// timed out) is dropped.
func (g *Registry) DeliverResult(res snapshot.EdgeCommandResult) {
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
}
