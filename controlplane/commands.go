package controlplane

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
)

// sessionCommandTimeout bounds how long a stop or restart waits for the
// agent's answer.
const sessionCommandTimeout = 15 * time.Second

// SessionCommand is one operator command on an agent session: StopCommand
// or RestartCommand.
type SessionCommand struct {
	verb  string // "stop" or "restart", for messages
	event string // audit event type
	run   func(SessionCommander, context.Context, string) error
}

// The operator commands on agent sessions
// (docs/api-compatibility.md#tunnel-sessions): StopCommand makes the agent
// exit; RestartCommand makes it
// reconnect with a new session ID.
var (
	StopCommand = SessionCommand{verb: "stop", event: "tunnel_session_stopped.v0",
		run: func(c SessionCommander, ctx context.Context, id string) error { return c.StopSession(ctx, id) }}
	RestartCommand = SessionCommand{verb: "restart", event: "tunnel_session_restarted.v0",
		run: func(c SessionCommander, ctx context.Context, id string) error { return c.RestartSession(ctx, id) }}
)

// RunSessionCommand sends cmd to the agent of session id through the edge
// that serves it, and records it in the audit log: the part of a stop or
// restart that the API and the dashboard share. Read/write roles only. It
// waits at most sessionCommandTimeout for the agent's answer.
func (cp *Core) RunSessionCommand(r *http.Request, c *Caller, id string, cmd SessionCommand) error {
	if err := c.RequireWrite(); err != nil {
		return err
	}
	si, target, ok, err := cp.reg.SessionEdge(r.Context(), c.AccountID(), id)
	if err != nil {
		return err
	}
	if !ok {
		return NotFound(store.ErrNotFound, "tunnel session", id)
	}
	if target == nil {
		return Errorf(http.StatusServiceUnavailable, codes.SessionCommandUnavailable,
			"The edge in region %s that serves tunnel session %s takes no commands from this control plane; stop the agent where it runs.", si.Region, id)
	}
	ctx, cancel := context.WithTimeout(r.Context(), sessionCommandTimeout)
	defer cancel()
	if err := cmd.run(target, ctx, id); err != nil {
		return commandError(err, cmd.verb, id)
	}
	payload := map[string]any{"credential_id": si.CredentialID, "region": si.Region}
	if err := cp.store.RecordEvent(r.Context(), c.Actor, c.AccountID(), cmd.event, id, payload); err != nil {
		// The agent has acted; the caller's request succeeded. The log keeps
		// what the audit log could not.
		cp.log.Error("could not record a session command in the audit log", zap.String("session_id", id),
			zap.String("command", cmd.verb), zap.String("principal_id", c.Actor.PrincipalID), zap.Error(err))
	}
	return nil
}

// commandError maps a SessionCommander error to the API's answer.
func commandError(err error, verb, id string) error {
	var ce *codes.Error
	if errors.As(err, &ce) {
		switch ce.Code {
		case codes.SessionNotFound:
			return NotFound(store.ErrNotFound, "tunnel session", id)
		case codes.SessionCommandUnsupported, codes.SessionCommandRefused:
			return &Error{Status: http.StatusConflict, Code: ce.Code, Msg: ce.Message, Cause: err}
		case codes.SessionCommandFailed:
			return &Error{Status: http.StatusBadGateway, Code: ce.Code, Msg: ce.Message, Cause: err}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Status: http.StatusGatewayTimeout, Code: codes.SessionCommandFailed,
			Msg: "The agent of tunnel session " + id + " did not answer the " + verb + " command in time.", Cause: err}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &Error{Status: http.StatusBadGateway, Code: codes.SessionCommandFailed,
		Msg: "The " + verb + " command did not reach the agent of tunnel session " + id + ". Retry; the session may be ending.", Cause: err}
}
