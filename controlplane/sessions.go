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

// ReportSessions replaces the list of online agent sessions of the edge
// serving region (one edge per region; use ReportEdgeSessions when a region
// has several). It satisfies the edge's SessionReporter, so `tollgated dev`
// wires the Registry straight into its edge.
func (g *Registry) ReportSessions(ctx context.Context, region string, sessions []SessionInfo) error {
	return g.ReportEdgeSessions(ctx, region, region, sessions)
}

// ReportEdgeSessions replaces the list of online agent sessions of the edge
// edgeID in region. The list is the edge's complete state: sessions missing
// from it are offline. Sessions without a region get region. The registry
// lives in this process's memory; it is not in the store or the snapshot.
func (g *Registry) ReportEdgeSessions(ctx context.Context, edgeID, region string, sessions []SessionInfo) error {
	if err := ctx.Err(); err != nil {
		return err
	}
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
	g.sessMu.Lock()
	defer g.sessMu.Unlock()
	if len(list) == 0 {
		delete(g.sessions, edgeID)
		return nil
	}
	g.sessions[edgeID] = edgeReport{region: region, sessions: list, reportedAt: time.Now()}
	return nil
}

// ForgetEdge drops everything edge edgeID reported, and its command
// target, for an edge known to be gone.
func (g *Registry) ForgetEdge(edgeID string) {
	g.sessMu.Lock()
	delete(g.sessions, edgeID)
	delete(g.commanders, edgeID)
	g.sessMu.Unlock()
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

// RegisterEdge sets the command target of edge edgeID: the same ID its
// session reports use (ReportSessions uses the region). A nil cmd removes
// it. An edge in another process is registered when it polls the edge
// API's command channel (RegisterRemoteEdge). Sessions of an edge without one
// answer commands with 503 (codes.SessionCommandUnavailable).
func (g *Registry) RegisterEdge(edgeID string, cmd SessionCommander) {
	g.sessMu.Lock()
	defer g.sessMu.Unlock()
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
// command target of the edge that serves it (nil when none is registered).
func (g *Registry) SessionEdge(accountID, id string) (SessionInfo, SessionCommander, bool) {
	g.sessMu.RLock()
	defer g.sessMu.RUnlock()
	for edgeID, rep := range g.sessions {
		for _, si := range rep.sessions {
			if si.ID == id && si.AccountID == accountID {
				return si, g.commanders[edgeID], true
			}
		}
	}
	return SessionInfo{}, nil, false
}

// AccountSessions returns the online sessions of an account, newest
// (greatest ID) first.
func (g *Registry) AccountSessions(accountID string) []SessionInfo {
	g.sessMu.RLock()
	var out []SessionInfo
	for _, rep := range g.sessions {
		for _, si := range rep.sessions {
			if si.AccountID == accountID {
				out = append(out, si)
			}
		}
	}
	g.sessMu.RUnlock()
	slices.SortFunc(out, func(a, b SessionInfo) int { return strings.Compare(b.ID, a.ID) })
	return out
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
func (g *Registry) AccountEndpoints(accountID string) []OnlineEndpoint {
	return EndpointsOf(g.AccountSessions(accountID))
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
