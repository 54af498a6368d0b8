package edge

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/tunnel"
)

// commandGrace is how long the edge waits, after an agent accepted Stop or
// Restart, for the agent to close its session itself before the edge closes
// it: our agent and the SDKs close at once; one that does not must not keep
// its endpoints.
const commandGrace = 5 * time.Second

// StopSession asks the agent of session sessionID to exit
// (docs/api-compatibility.md#tunnel-sessions; stream type 5 of
// docs/agent-protocol.md). It returns nil once the agent accepted;
// otherwise a *codes.Error with codes.SessionNotFound,
// codes.SessionCommandUnsupported (the agent said at Auth that it cannot),
// codes.SessionCommandRefused (it answered with an error) or
// codes.SessionCommandFailed. An attached session (Attach: an SSH session)
// is stopped by its own Stop. It makes Edge a controlplane.SessionCommander.
func (e *Edge) StopSession(ctx context.Context, sessionID string) error {
	return e.command(ctx, sessionID, "stop", (*tunnel.ServerSession).Stop)
}

// RestartSession asks the agent of session sessionID to restart: it
// reconnects with a new session ID (stream type 4). Errors as StopSession;
// an attached session answers with its own Restart.
func (e *Edge) RestartSession(ctx context.Context, sessionID string) error {
	return e.command(ctx, sessionID, "restart", (*tunnel.ServerSession).Restart)
}

func (e *Edge) command(ctx context.Context, sessionID, verb string, send func(*tunnel.ServerSession, context.Context) error) error {
	s := e.sessions.byID(sessionID)
	if s == nil {
		if as := e.sessions.attachedByID(sessionID); as != nil {
			if verb == "restart" {
				return as.Restart(ctx)
			}
			return as.Stop(ctx)
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
