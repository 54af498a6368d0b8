package edge

import (
	"maps"
	"slices"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/snapshot"
)

// agentSessions returns the agent sessions, copied under e.mu so the
// caller may act on them without holding it.
func (e *Edge) agentSessions() []*agentSession {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Collect(maps.Keys(e.sessions))
}

// attachedSessions returns the attached sessions, copied under e.mu.
func (e *Edge) attachedSessions() []Session {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Collect(maps.Keys(e.attached))
}

// Attach makes s one of the edge's sessions (see Session) until the
// returned detach is called, once, when s has ended. Both schedule a
// session report.
func (e *Edge) Attach(s Session) (detach func()) {
	e.mu.Lock()
	e.attached[s] = struct{}{}
	e.mu.Unlock()
	e.SessionsChanged()
	return func() {
		e.mu.Lock()
		delete(e.attached, s)
		e.mu.Unlock()
		e.SessionsChanged()
	}
}

// replaceResumed closes every other session of the agent that reconnected
// as next: an agent that resumes with its previous ClientId (as ours and the
// SDKs do after a reconnect) has given up on its old connection, even when
// the edge's heartbeat has not noticed yet, and proxy streams opened on it
// would hang. Only a session of the same credential is replaced.
func (e *Edge) replaceResumed(next *agentSession, clientID, credentialID string) {
	e.mu.Lock()
	var old []*agentSession
	for s := range e.sessions {
		if s != next && s.resumes(clientID, credentialID) {
			old = append(old, s)
		}
	}
	e.mu.Unlock()
	for _, s := range old {
		s.log.Info("closing agent session: the agent reconnected", zap.String("new_session_id", next.id))
		s.ts.Close(codes.NewError(codes.SessionStopped, "The agent reconnected; this older connection is closed."))
	}
}

// SessionsChanged schedules a report of the edge's sessions to the
// control plane (SessionChanges).
func (e *Edge) SessionsChanged() {
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// SessionChanges returns the channel that receives a value after the
// edge's sessions or their endpoints changed, at most one pending: the
// control-plane client (edge/controlclient) reports Sessions then. It has
// one reader.
func (e *Edge) SessionChanges() <-chan struct{} { return e.changed }

// Sessions returns the edge's online agent sessions, its own and the
// attached ones, as the control plane's API reports them.
func (e *Edge) Sessions() []snapshot.AgentSession {
	e.mu.Lock()
	defer e.mu.Unlock()
	list := make([]snapshot.AgentSession, 0, len(e.sessions)+len(e.attached))
	for s := range e.sessions {
		if info, ok := s.info(); ok {
			list = append(list, info)
		}
	}
	for s := range e.attached {
		if info, ok := s.Info(); ok {
			list = append(list, info)
		}
	}
	return list
}
