package controlclient

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/snapshot"
)

// commandTimeout bounds one command's execution on an agent session: less
// than the control plane's own wait, so that a result still finds it.
const commandTimeout = 10 * time.Second

// commandLoop polls deps.Commands until ctx ends and executes each command
// on its own goroutine. Poll errors are retried with capped backoff.
func (s *Sync) commandLoop(ctx context.Context) {
	src := s.deps.Commands
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
			s.log.Debug("command poll failed", zap.Duration("retry_in", delay), zap.Error(err))
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
			select {
			case s.reportNow <- struct{}{}:
			default:
			}
		}
		for _, cmd := range ans.Commands {
			go s.runCommand(ctx, src, cmd)
		}
	}
}

// runCommand executes one command from the control plane on the edge and
// posts its result.
func (s *Sync) runCommand(ctx context.Context, src CommandSource, cmd snapshot.EdgeCommand) {
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var err error
	switch cmd.Verb {
	case snapshot.EdgeCommandStop:
		err = s.deps.Edge.StopSession(cctx, cmd.SessionID)
	case snapshot.EdgeCommandRestart:
		err = s.deps.Edge.RestartSession(cctx, cmd.SessionID)
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
	s.log.Info("executed a session command from the control plane", zap.String("command", cmd.Verb),
		zap.String("session_id", cmd.SessionID), zap.String("code", string(res.ErrorCode)))
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if perr := src.CommandResult(pctx, res); perr != nil && ctx.Err() == nil {
		s.log.Warn("could not post a command result to the control plane", zap.String("session_id", cmd.SessionID), zap.Error(perr))
	}
}

// truncateMsg bounds a peer-supplied message before it is echoed.
func truncateMsg(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
