package edge

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// commandGrace is how long the edge waits, after an agent accepted Stop or
// Restart, for the agent to close its session itself before the edge closes
// it: our agent and the SDKs close at once; one that does not must not keep
// its endpoints.
const commandGrace = 5 * time.Second

// StopSession asks the agent of session sessionID to exit
// (reference/platform-behaviour.md §1.14; stream type 5 of
// reference/agent-protocol.md). It returns nil once the agent accepted;
// otherwise a *codes.Error with codes.SessionNotFound,
// codes.SessionCommandUnsupported (the agent said at Auth that it cannot),
// codes.SessionCommandRefused (it answered with an error) or
// codes.SessionCommandFailed. It makes Edge a controlplane.SessionCommander.
func (e *Edge) StopSession(ctx context.Context, sessionID string) error {
	return e.command(ctx, sessionID, "stop", (*tunnel.ServerSession).Stop)
}

// RestartSession asks the agent of session sessionID to restart: it
// reconnects with a new session ID (stream type 4). Errors as StopSession.
func (e *Edge) RestartSession(ctx context.Context, sessionID string) error {
	return e.command(ctx, sessionID, "restart", (*tunnel.ServerSession).Restart)
}

func (e *Edge) command(ctx context.Context, sessionID, verb string, send func(*tunnel.ServerSession, context.Context) error) error {
	s := e.sessionByID(sessionID)
	if s == nil {
		if ss, ok := e.sshSessionByID(sessionID); ok {
			// An SSH client has no stop or restart command: the edge
			// closes the connection and says why.
			if verb == "restart" {
				return codes.NewError(codes.SessionCommandUnsupported,
					"Session %s is an SSH reverse tunnel, which cannot restart itself; stop it instead.", sessionID)
			}
			ss.closeWithMessage("the session was stopped through the API [" + string(codes.SessionStopped) + "]")
			return nil
		}
		return codes.NewError(codes.SessionNotFound, "This edge has no agent session %s; it may have ended.", sessionID)
	}
	err := send(s.ts, ctx)
	var re *tunnel.RemoteError
	switch {
	case err == nil:
		s.log.Info("agent accepted a command from the API", zap.String("command", verb))
		go s.closeAfterCommand(verb, commandGrace)
		return nil
	case errors.Is(err, tunnel.ErrNotAuthenticated):
		return codes.NewError(codes.SessionNotFound, "This edge has no agent session %s; it may have ended.", sessionID).WithCause(err)
	case errors.Is(err, tunnel.ErrUnsupported):
		return codes.NewError(codes.SessionCommandUnsupported,
			"The agent of session %s does not support the %s command (it said so when it connected). Stop or restart it where it runs.",
			sessionID, verb).WithCause(err)
	case errors.As(err, &re):
		return codes.NewError(codes.SessionCommandRefused, "The agent of session %s refused to %s: %s",
			sessionID, verb, truncateMsg(re.Error(), 300)).WithCause(err)
	case ctx.Err() != nil:
		return codes.NewError(codes.SessionCommandFailed, "The agent of session %s did not answer the %s command in time.",
			sessionID, verb).WithCause(err)
	}
	return codes.NewError(codes.SessionCommandFailed, "The %s command could not be sent to the agent of session %s; the session may be ending.",
		verb, sessionID).WithCause(err)
}

// sessionByID returns the authenticated, open session with this ID, or nil.
func (e *Edge) sessionByID(id string) *agentSession {
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.sessions {
		if s.id == id && s.identity() != nil {
			return s
		}
	}
	return nil
}

// closeAfterCommand closes the session, with a reason the agent can show,
// if the agent has not closed it within grace of accepting verb. It runs on
// its own goroutine and ends with the session or the edge.
func (s *agentSession) closeAfterCommand(verb string, grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-s.ts.Done():
		return
	case <-s.edge.stopping:
		return // Shutdown closes every session
	case <-t.C:
	}
	s.log.Info("closing agent session: the agent accepted a command but kept the session open", zap.String("command", verb))
	s.ts.Close(codes.NewError(codes.SessionStopped, "The session was closed by an API %s command.", verb))
}

// truncateMsg bounds a peer-supplied message before it is echoed.
func truncateMsg(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// CommandSource carries operator commands for this edge's agent sessions
// from a control plane in another process (ControlClient; in `tollgated
// dev` the control plane calls StopSession and RestartSession directly).
// Optional.
type CommandSource interface {
	// Commands blocks until the control plane has commands for this edge,
	// or a while passed (then it returns none). ReportNeeded in the answer
	// makes the edge report its sessions at once.
	Commands(ctx context.Context) (snapshot.EdgeCommands, error)
	// CommandResult tells the control plane how a command ended.
	CommandResult(ctx context.Context, res snapshot.EdgeCommandResult) error
}

// commandTimeout bounds one command's execution on an agent session: less
// than the control plane's own wait, so that a result still finds it.
const commandTimeout = 10 * time.Second

// commandLoop polls deps.Commands until ctx ends and executes each command
// on its own goroutine. Poll errors are retried with capped backoff.
func (e *Edge) commandLoop(ctx context.Context) {
	src := e.deps.Commands
	bo := newFeedBackoff()
	asked := false // the previous answer asked for a report too
	for ctx.Err() == nil {
		ans, err := src.Commands(ctx)
		if err == nil && ans.ReportNeeded && asked {
			// The report we sent has not arrived (or failed): do not spin.
			err = errors.New("the control plane still has no session report from this edge")
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			delay := bo.Next()
			e.log.Debug("command poll failed", zap.Duration("retry_in", delay), zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			asked = false
			continue
		}
		bo.Reset()
		asked = ans.ReportNeeded
		if ans.ReportNeeded {
			e.sessionsChanged()
		}
		for _, cmd := range ans.Commands {
			go e.runRemoteCommand(ctx, src, cmd)
		}
	}
}

// runRemoteCommand executes one command from the control plane and posts
// its result.
func (e *Edge) runRemoteCommand(ctx context.Context, src CommandSource, cmd snapshot.EdgeCommand) {
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var err error
	switch cmd.Verb {
	case snapshot.EdgeCommandStop:
		err = e.StopSession(cctx, cmd.SessionID)
	case snapshot.EdgeCommandRestart:
		err = e.RestartSession(cctx, cmd.SessionID)
	default:
		err = codes.NewError(codes.SessionCommandUnsupported, "This edge does not know the command %q; upgrade it.", truncateMsg(cmd.Verb, 40))
	}
	res := snapshot.EdgeCommandResult{ID: cmd.ID}
	if err != nil {
		var ce *codes.Error
		if !errors.As(err, &ce) {
			ce = codes.NewError(codes.SessionCommandFailed, "The %s command failed on the edge.", cmd.Verb)
		}
		res.ErrorCode, res.Msg = ce.Code, ce.Message
	}
	e.log.Info("executed a session command from the control plane", zap.String("command", cmd.Verb),
		zap.String("session_id", cmd.SessionID), zap.String("code", string(res.ErrorCode)))
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if perr := src.CommandResult(pctx, res); perr != nil && ctx.Err() == nil {
		e.log.Warn("could not post a command result to the control plane", zap.String("session_id", cmd.SessionID), zap.Error(perr))
	}
}
