package edge

import (
	"net/netip"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/policy"
)

// RecheckAgentIP re-applies the account's `agent` IP restriction to a live
// agent or SSH session from addr after a new snapshot: a non-nil error
// (TG_115) says the session must close. Unlike CheckAgentIP it logs
// nothing and emits no dry-run event (the caller logs the closing; a
// dry-run restriction was reported when the session started), so it is
// cheap to call for every session on every snapshot. Each refusal counts
// in AgentIPClosed.
func (e *Edge) RecheckAgentIP(accountID string, addr netip.Addr) *codes.Error {
	d := e.gates.restrictions().Check(accountID, policy.SurfaceAgent, addr.Unmap())
	if d.Allowed {
		return nil
	}
	e.metrics.agentIPClosed.Add(1)
	return errAgentIPRestricted(addr.Unmap())
}

// AgentIPClosed returns how many live agent and SSH sessions a new agent
// IP restriction closed (RecheckAgentIP) since the edge started.
func (m *Metrics) AgentIPClosed() int64 { return m.e.metrics.agentIPClosed.Load() }

// recheckAgentIP closes s when the snapshot's agent IP restriction no
// longer admits its address, and reports whether it did.
func (s *agentSession) recheckAgentIP() bool {
	ident := s.Identity()
	if ident == nil {
		return false
	}
	err := s.edge.RecheckAgentIP(ident.Account.ID, s.remote.Addr())
	if err == nil {
		return false
	}
	s.log.Info("closing agent session: the account's agent IP restriction now refuses its address",
		zap.String("code", string(err.Code)))
	s.ts.Close(err)
	return true
}
