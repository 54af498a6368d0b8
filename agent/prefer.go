package agent

// This file returns a config.TransportAuto agent to AutoFirst: a session
// that had to fall back to the other transport (TCP refused while the edge
// restarted, a network that dropped TCP for a while) moves back once
// AutoFirst works again, instead of staying on the fallback until the next
// disconnect.

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/config"
)

// Retry schedule of the return to AutoFirst: the first try PreferredRetry
// after the session started on the other transport, then each delay
// doubled up to PreferredRetryMax.
const (
	PreferredRetry    = 5 * time.Second
	PreferredRetryMax = 2 * time.Minute
)

// wantsPreferred reports whether a session over transport should try to
// return to AutoFirst.
func (a *Agent) wantsPreferred(transport string) bool {
	return a.cfg.transport == config.TransportAuto && transport != AutoFirst && a.preferredRetry > 0
}

// returnToPreferred tries, on the retry schedule above, to open leg l's
// authenticated session to addr over AutoFirst. The new session resumes
// the current one (same ClientId and Cookie), so the edge retires the old
// session as it authenticates the new one, cutting the connections still
// open on it as any reconnect does (the edge's pooled idle streams among
// them; this happens once per fallback); the caller re-binds the
// endpoints on the new session, whose bind tokens keep the URLs. It sends
// the session on found (buffered) and returns, or returns when ctx ends.
// A failed try costs a TCP and TLS handshake.
//
// attempting is true while a try is in flight: the edge retires the
// current session as the new one authenticates, so the current session may
// end before the try returns, and the caller then waits for the try
// (awaitPreferred) instead of cancelling the session that replaces it.
func (a *Agent) returnToPreferred(ctx context.Context, l *leg, addr string, found chan<- *conn, attempting *atomic.Bool) {
	delay := a.preferredRetry
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		attempting.Store(true)
		c, err := a.attempt(ctx, l, AutoFirst, addr, a.authRequest(l))
		attempting.Store(false)
		if err == nil {
			found <- c
			return
		}
		if ce := a.log.Check(zap.DebugLevel, "the preferred transport still fails"); ce != nil {
			ce.Write(zap.String("transport", AutoFirst), zap.Error(err))
		}
		delay = min(2*delay, PreferredRetryMax)
		t.Reset(delay)
	}
}

// awaitPreferred waits, while a try of returnToPreferred is in flight, for
// its result on found, at most the try's own bound (ConnectTimeout). It
// returns at once when no try is in flight.
func (a *Agent) awaitPreferred(found <-chan *conn, attempting *atomic.Bool) {
	deadline := time.Now().Add(a.cfg.ConnectTimeout)
	for attempting.Load() && len(found) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}
