package edge

import (
	"maps"
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/snapshot"
)

// sessionSet holds the edge's live sessions: its own agent sessions and
// the sessions other ingresses attached (Attach), and the one-slot signal
// that they changed. Its methods copy under its lock, so callers act on
// sessions without holding it.
type sessionSet struct {
	mu       sync.Mutex
	agents   map[*agentSession]struct{}
	attached map[Session]struct{} // sessions of other ingresses (Attach)
	changed  chan struct{}        // sessions changed; buffered 1
}

func newSessionSet() *sessionSet {
	return &sessionSet{agents: make(map[*agentSession]struct{}), attached: make(map[Session]struct{}), changed: make(chan struct{}, 1)}
}

// add and remove track an agent session.
func (ss *sessionSet) add(s *agentSession) {
	ss.mu.Lock()
	ss.agents[s] = struct{}{}
	ss.mu.Unlock()
}

func (ss *sessionSet) remove(s *agentSession) {
	ss.mu.Lock()
	delete(ss.agents, s)
	ss.mu.Unlock()
}

// agentSessions returns the agent sessions.
func (ss *sessionSet) agentSessions() []*agentSession {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return slices.Collect(maps.Keys(ss.agents))
}

// attachedSessions returns the attached sessions.
func (ss *sessionSet) attachedSessions() []Session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return slices.Collect(maps.Keys(ss.attached))
}

// attach adds s until the returned detach is called; both signal a change.
func (ss *sessionSet) attach(s Session) (detach func()) {
	ss.mu.Lock()
	ss.attached[s] = struct{}{}
	ss.mu.Unlock()
	ss.notify()
	return func() {
		ss.mu.Lock()
		delete(ss.attached, s)
		ss.mu.Unlock()
		ss.notify()
	}
}

// notify signals a change, at most one pending.
func (ss *sessionSet) notify() {
	select {
	case ss.changed <- struct{}{}:
	default:
	}
}

// byID returns the authenticated, open agent session with this ID, or nil.
func (ss *sessionSet) byID(id string) *agentSession {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for s := range ss.agents {
		if s.id == id && s.Identity() != nil {
			return s
		}
	}
	return nil
}

// attachedByID returns the attached session with this ID, or nil.
func (ss *sessionSet) attachedByID(id string) Session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for s := range ss.attached {
		if s.ID() == id {
			return s
		}
	}
	return nil
}

// replaceResumed closes every other session of the agent that reconnected
// as next: an agent that resumes with its previous ClientId (as ours and the
// SDKs do after a reconnect) has given up on its old connection, even when
// the edge's heartbeat has not noticed yet, and proxy streams opened on it
// would hang. Only a session of the same credential is replaced.
func (ss *sessionSet) replaceResumed(next *agentSession, clientID, credentialID string) {
	ss.mu.Lock()
	var old []*agentSession
	for s := range ss.agents {
		if s != next && s.resumes(clientID, credentialID) {
			old = append(old, s)
		}
	}
	ss.mu.Unlock()
	for _, s := range old {
		s.log.Info("closing agent session: the agent reconnected", zap.String("new_session_id", next.id))
		s.ts.Close(codes.NewError(codes.SessionStopped, "The agent reconnected; this older connection is closed."))
	}
}

// list returns every session's report, own and attached.
func (ss *sessionSet) list() []snapshot.AgentSession {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	list := make([]snapshot.AgentSession, 0, len(ss.agents)+len(ss.attached))
	for s := range ss.agents {
		if info, ok := s.info(); ok {
			list = append(list, info)
		}
	}
	for s := range ss.attached {
		if info, ok := s.Info(); ok {
			list = append(list, info)
		}
	}
	return list
}

// Attach makes s one of the edge's sessions (see Session) until the
// returned detach is called, once, when s has ended. Both schedule a
// session report.
func (e *Edge) Attach(s Session) (detach func()) { return e.sessions.attach(s) }

// SessionsChanged schedules a report of the edge's sessions to the
// control plane (SessionChanges).
func (e *Edge) SessionsChanged() { e.sessions.notify() }

// SessionChanges returns the channel that receives a value after the
// edge's sessions or their endpoints changed, at most one pending: the
// control-plane client (edge/controlclient) reports Sessions then. It has
// one reader.
func (e *Edge) SessionChanges() <-chan struct{} { return e.sessions.changed }

// Sessions returns the edge's online agent sessions, its own and the
// attached ones, as the control plane's API reports them.
func (e *Edge) Sessions() []snapshot.AgentSession { return e.sessions.list() }
