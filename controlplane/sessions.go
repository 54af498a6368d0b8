package controlplane

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
	"go.uber.org/zap"
)

// SessionInfo is what an edge reports about one online agent session and
// its endpoints: id (ts_), credential_id (cr_ or sshcr_), account_id,
// principal_id, ip, os, agent_version, metadata, region, transport ("tcp",
// "quic" or "ssh"), started_at, and endpoints (ep_ id, public_url, proto,
// forwards_to, started_at). It is snapshot.AgentSession, the type the edge
// builds.
type SessionInfo = snapshot.AgentSession

// edgeReport is one edge's latest list of sessions.
type edgeReport struct {
	region     string
	sessions   []SessionInfo
	reportedAt time.Time
}

// ReportSessions replaces the list of online agent sessions of the
// in-process edge serving region (its ID is the region). It satisfies the
// edge's SessionReporter, so `tollgated dev` wires the Registry straight
// into its edge.
func (g *Registry) ReportSessions(ctx context.Context, region string, sessions []SessionInfo) error {
	return g.ReportEdgeSessions(ctx, region, region, sessions)
}

// ReportEdgeSessions replaces the list of online agent sessions of the
// in-process edge edgeID in region; it is kept in this process's memory
// (edges in other processes report through Report, into the store). The
// list is the edge's complete state: sessions missing from it are
// offline. Sessions without a region get region.
func (g *Registry) ReportEdgeSessions(ctx context.Context, edgeID, region string, sessions []SessionInfo) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	list := g.cleanSessions(edgeID, region, sessions)
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(list) == 0 {
		delete(g.sessions, edgeID)
		return nil
	}
	g.sessions[edgeID] = edgeReport{region: region, sessions: list, reportedAt: time.Now()}
	return nil
}

// cleanSessions drops sessions with malformed IDs (logged), gives sessions
// without a region the edge's, and copies the endpoint lists.
func (g *Registry) cleanSessions(edgeID, region string, sessions []SessionInfo) []SessionInfo {
	list := make([]SessionInfo, 0, len(sessions))
	for _, si := range sessions {
		if _, _, err := ids.Split(si.ID, ids.PrefixAgentSession); err != nil {
			g.log.Warn("edge reported an agent session with a malformed ID; ignored",
				zap.String("edge_id", edgeID), zap.String("session_id", si.ID))
			continue
		}
		if si.Region == "" {
			si.Region = region
		}
		si.Endpoints = slices.Clone(si.Endpoints)
		list = append(list, si)
	}
	return list
}

// ForgetEdge drops everything edge edgeID reported, its queued commands
// and its command target, for an edge known to be gone.
func (g *Registry) ForgetEdge(ctx context.Context, edgeID string) error {
	g.mu.Lock()
	delete(g.sessions, edgeID)
	delete(g.commanders, edgeID)
	delete(g.local, edgeID)
	g.mu.Unlock()
	g.changed()
	if err := g.store.DropEdgeRoutes(ctx, []string{edgeID}); err != nil {
		return err
	}
	return g.store.DeleteEdgeReport(ctx, edgeID)
}

// SessionCommander executes operator commands on the agent sessions of one
// edge (POST /tunnel_sessions/{id}/stop and /restart,
// docs/api-compatibility.md#tunnel-sessions). The edge implements it; each
// command travels to the agent over its session (docs/agent-protocol.md,
// stream types 4 Restart and 5 Stop).
//
// The methods return nil once the agent has accepted the command. Other
// outcomes are a *codes.Error (possibly wrapped) whose Code says which:
// codes.SessionNotFound (the edge has no such session),
// codes.SessionCommandUnsupported (the agent does not execute the command),
// codes.SessionCommandRefused (the agent answered with an error) or
// codes.SessionCommandFailed (no answer). They must return when ctx ends.
type SessionCommander interface {
	StopSession(ctx context.Context, sessionID string) error
	RestartSession(ctx context.Context, sessionID string) error
}

// RegisterEdge sets the command target of the in-process edge edgeID: the
// same ID its session reports use (ReportSessions uses the region). A nil
// cmd removes it. Edges in other processes take commands through the store
// (commandqueue.go) once they poll the edge API's command channel.
// Sessions of an edge without either answer commands with 503
// (codes.SessionCommandUnavailable).
func (g *Registry) RegisterEdge(edgeID string, cmd SessionCommander) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cmd == nil {
		delete(g.commanders, edgeID)
		return
	}
	if g.commanders == nil {
		g.commanders = make(map[string]SessionCommander)
	}
	g.commanders[edgeID] = cmd
}

// SessionEdge finds the account's online session id: its report and the
// command target of the edge that serves it (nil when the edge takes no
// commands). ok is false when no live edge reports the session.
func (g *Registry) SessionEdge(ctx context.Context, accountID, id string) (si SessionInfo, cmd SessionCommander, ok bool, err error) {
	g.mu.Lock()
	for edgeID, rep := range g.sessions {
		for _, si := range rep.sessions {
			if si.ID == id && si.AccountID == accountID {
				cmd := g.commanders[edgeID]
				g.mu.Unlock()
				return si, cmd, true, nil
			}
		}
	}
	g.mu.Unlock()
	states, err := g.store.EdgeStates(ctx, cutoff(), true)
	if err != nil {
		return SessionInfo{}, nil, false, err
	}
	for _, st := range states {
		for _, si := range st.Sessions {
			if si.ID == id && si.AccountID == accountID {
				if st.PolledAt.IsZero() {
					return si, nil, true, nil
				}
				return si, storeEdge{g: g, edgeID: st.Info.ID}, true, nil
			}
		}
	}
	return SessionInfo{}, nil, false, nil
}

// AccountSessions returns the online sessions of an account on every live
// edge, newest (greatest ID) first.
func (g *Registry) AccountSessions(ctx context.Context, accountID string) ([]SessionInfo, error) {
	states, err := g.store.EdgeStates(ctx, cutoff(), true)
	if err != nil {
		return nil, err
	}
	var out []SessionInfo
	for _, st := range states {
		for _, si := range st.Sessions {
			if si.AccountID == accountID {
				out = append(out, si)
			}
		}
	}
	g.mu.Lock()
	for _, rep := range g.sessions {
		for _, si := range rep.sessions {
			if si.AccountID == accountID {
				out = append(out, si)
			}
		}
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b SessionInfo) int { return strings.Compare(b.ID, a.ID) })
	return out, nil
}

// OnlineEndpoint is an endpoint with the session that serves it.
type OnlineEndpoint struct {
	snapshot.Endpoint
	Session *SessionInfo
}

// Region is the region of the edge serving the endpoint (templates).
func (e OnlineEndpoint) Region() string { return e.Session.Region }

// SessionID is the agent session serving the endpoint (templates).
func (e OnlineEndpoint) SessionID() string { return e.Session.ID }

// AccountEndpoints returns the online endpoints of an account, newest
// first.
func (g *Registry) AccountEndpoints(ctx context.Context, accountID string) ([]OnlineEndpoint, error) {
	sessions, err := g.AccountSessions(ctx, accountID)
	if err != nil {
		return nil, err
	}
	return EndpointsOf(sessions), nil
}

// EndpointsOf returns the endpoints of sessions, newest first; each points
// at its session in sessions.
func EndpointsOf(sessions []SessionInfo) []OnlineEndpoint {
	var out []OnlineEndpoint
	for i := range sessions {
		for _, ep := range sessions[i].Endpoints {
			out = append(out, OnlineEndpoint{Endpoint: ep, Session: &sessions[i]})
		}
	}
	slices.SortFunc(out, func(a, b OnlineEndpoint) int { return strings.Compare(b.ID, a.ID) })
	return out
}
