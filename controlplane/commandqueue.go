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
// (WaitCommands) on some control-plane process; a command for one of its
// sessions is queued in the store (store.QueueEdgeCommand) by whichever
// process received the API call; the process the edge polls claims it
// (each command is delivered once) and hands it to the edge; the edge
// executes it on the agent session and posts the outcome (DeliverResult)
// to a process of its choice, which writes it to the store, where the
// process that queued the command waits for it. The same poll tells the
// edge when the set of live edges changed, so that agents learn every
// region's address at once.
//
// A process wakes its own waits at once (Registry.changed) and sees writes
// by other processes within Config.PollInterval (commandPoll for the API
// call waiting for a result).

// commandPoll is how often an API call waiting for a command's result
// re-reads the store.
const commandPoll = 100 * time.Millisecond

// storeEdge is the SessionCommander of an edge in another process: it
// queues each command in the store and waits for the edge's result there.
type storeEdge struct {
	g      *Registry
	edgeID string
}

// StopSession implements SessionCommander.
func (r storeEdge) StopSession(ctx context.Context, sessionID string) error {
	return r.send(ctx, snapshot.EdgeCommandStop, sessionID)
}

// RestartSession implements SessionCommander.
func (r storeEdge) RestartSession(ctx context.Context, sessionID string) error {
	return r.send(ctx, snapshot.EdgeCommandRestart, sessionID)
}

// send queues one command and waits until the edge's result is in the
// store or ctx ends. The command is deleted either way: one the edge has
// not claimed by then is withdrawn.
func (r storeEdge) send(ctx context.Context, verb, sessionID string) error {
	var b [12]byte
	_, _ = rand.Read(b[:])
	cmd := snapshot.EdgeCommand{ID: "cmd_" + hex.EncodeToString(b[:]), Verb: verb, SessionID: sessionID}
	g := r.g
	if err := g.store.QueueEdgeCommand(ctx, r.edgeID, cmd); err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		if _, err := g.store.DeleteEdgeCommand(dctx, cmd.ID); err != nil {
			g.log.Warn("could not drop a finished session command", zap.String("command_id", cmd.ID), zap.Error(err))
		}
	}()
	g.changed()
	tick := time.NewTicker(commandPoll)
	defer tick.Stop()
	for {
		wake := g.changes()
		res, done, err := g.store.EdgeCommandResult(ctx, cmd.ID)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if done {
			if res.ErrorCode == "" {
				return nil
			}
			return codes.NewError(res.ErrorCode, "%s", res.Msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-tick.C:
		}
	}
}

// WaitCommands is one long poll of edgeID's command channel. It answers at
// once when commands are queued for the edge, when the edge set's version
// differs from known, or when the edge should report (ReportNeeded,
// reportNeeded);
// else as soon as one of those happens, or after wait with nothing new.
// The commands it answers with are claimed in the store: each is delivered
// once, by one process. The answer lists the live edges (LiveEdges). It
// returns ctx.Err() when ctx ends first, and store errors.
func (g *Registry) WaitCommands(ctx context.Context, edgeID string, known uint64, wait time.Duration) (snapshot.EdgeCommands, error) {
	if _, err := g.store.MarkEdgePolled(ctx, edgeID); err != nil {
		return snapshot.EdgeCommands{}, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	tick := time.NewTicker(g.poll)
	defer tick.Stop()
	timedOut := false
	for {
		wake := g.changes()
		edges, err := g.LiveEdges(ctx)
		if err != nil {
			return snapshot.EdgeCommands{}, err
		}
		cmds, err := g.store.ClaimEdgeCommands(ctx, edgeID)
		if err != nil {
			return snapshot.EdgeCommands{}, err
		}
		ans := snapshot.EdgeCommands{Commands: cmds, EdgesVersion: edgesVersion(edges), Edges: edges}
		ans.ReportNeeded = g.reportNeeded(edges, edgeID)
		if len(ans.Commands) > 0 || ans.EdgesVersion != known || ans.ReportNeeded || timedOut {
			if ans.Commands == nil {
				ans.Commands = []snapshot.EdgeCommand{}
			}
			return ans, nil
		}
		select {
		case <-ctx.Done():
			return snapshot.EdgeCommands{}, ctx.Err()
		case <-wake:
		case <-tick.C:
		case <-timer.C:
			timedOut = true
		}
	}
}

// reportNeeded says whether edge edgeID should report at once: it has no
// live report; its report predates this process (a restarted control
// plane asks every edge, as it did when reports lived in memory: reports
// the edge could not deliver while the control plane was down are
// recovered at once); or it is older than two report intervals (the edge
// missed one, and probably reports only at its next interval).
func (g *Registry) reportNeeded(edges []snapshot.EdgeInfo, edgeID string) bool {
	for _, e := range edges {
		if e.ID == edgeID {
			return e.LastSeen.Before(g.started) || time.Since(e.LastSeen) > 2*snapshot.EdgeReportInterval
		}
	}
	return true
}

// DeliverResult records the outcome an edge posted, for the API call
// waiting for it in whichever process queued the command. A result for a
// command nobody waits for any more (the API call timed out) is dropped.
func (g *Registry) DeliverResult(ctx context.Context, res snapshot.EdgeCommandResult) error {
	ok, err := g.store.FinishEdgeCommand(ctx, res)
	if err != nil {
		return err
	}
	if ok {
		g.changed()
	}
	return nil
}
