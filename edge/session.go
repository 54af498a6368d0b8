package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// agentSession is the edge's side of one agent session: it implements
// tunnel.ServerHandler, holds the identity that authenticated, and owns the
// endpoints it bound.
type agentSession struct {
	edge      *Edge
	ts        *tunnel.ServerSession
	id        string // ts_...
	remote    netip.AddrPort
	transport string
	startedAt time.Time
	log       *zap.Logger

	mu         sync.Mutex
	ident      *authn.Identity // nil until Auth succeeds
	secretHash string          // of the authtoken, to notice rotation
	clientID   string
	os         string
	version    string
	metadata   string
	instanceID string               // the agent process's (AuthExtra.InstanceID); "" from SDKs
	endpoints  map[string]*Endpoint // by bind ID
	closed     bool

	// Pool membership (poolhealth.go): out of rotation since its agent
	// did not answer, with what had been heard from it then.
	down      atomic.Bool
	downHeard atomic.Uint64
}

func newAgentSession(e *Edge, remote net.Addr, transport string) *agentSession {
	ap := PeerAddr(remote)
	id := ids.New(ids.PrefixAgentSession)
	return &agentSession{
		edge:      e,
		id:        id,
		remote:    ap,
		transport: transport,
		startedAt: time.Now().UTC(),
		endpoints: make(map[string]*Endpoint),
		log:       e.log.WithLazy(zap.String("session_id", id), zap.String("remote_addr", ap.String()), zap.String("transport", transport)),
	}
}

// Auth verifies the authtoken against the current snapshot, then the
// account's agent IP restriction on the session's source address (TG_115).
func (s *agentSession) Auth(ctx context.Context, req *tunnel.Auth) *tunnel.AuthResp {
	resp := &tunnel.AuthResp{Version: "3"}
	if !slices.Contains(req.Version, "3") && !slices.Contains(req.Version, "2") {
		resp.Error = codes.NewError(codes.AuthPayload, "This agent speaks protocol versions %v; this edge speaks 3 and 2. Upgrade the agent.", req.Version).Error()
		return resp
	}
	if !slices.Contains(req.Version, "3") {
		resp.Version = "2"
	}
	// An edge that drains or is short of memory takes no new session; both
	// refusals are retryable, so the agent reconnects (elsewhere if it can).
	if isClosed(s.edge.stopping) {
		resp.Error = errDraining.Error()
		return resp
	}
	if s.edge.mem.refuse() {
		s.log.Debug("agent session refused by the memory guard")
		resp.Error = errOverloaded.Error()
		return resp
	}
	// Failed authtokens are throttled per client address (guard.go); a
	// throttled address is answered before its token is looked at.
	if rerr := s.edge.guard.agentAuthWait(s.remote.Addr()); rerr != nil {
		resp.Error = rerr.Error()
		return resp
	}
	ident, err := s.edge.verifyAuthtoken(ctx, req.Extra.Authtoken.Reveal())
	if err != nil {
		s.edge.guard.agentAuth.Failed("", s.remote.Addr())
		s.edge.metrics.authFailures.Add(1)
		s.log.Info("agent authentication refused", zap.Error(err))
		resp.Error = err.Error()
		return resp
	}
	if err := s.edge.gates.checkAgentIP(ident.Account.ID, s.remote.Addr(), s.log); err != nil {
		resp.Error = err.Error()
		return resp
	}
	clientID := req.ClientID
	if clientID == "" || len(clientID) > 64 {
		clientID = randomHex(16)
	}
	s.mu.Lock()
	s.ident = ident
	s.secretHash = ident.Authtoken.SecretHash
	s.clientID = clientID
	s.os = req.Extra.OS
	s.version = req.Extra.Version
	s.metadata = req.Extra.Metadata
	if len(req.Extra.InstanceID) <= 64 {
		s.instanceID = req.Extra.InstanceID
	}
	s.mu.Unlock()
	// The session's logger is built from the edge's, lazily: an idle session
	// that logs nothing more holds no encoded copy of its fields (zap keeps
	// a 1 KiB buffer per derived logger once used), so the start line is
	// logged through the edge's logger with the fields spelled out.
	fields := []zap.Field{zap.String("session_id", s.id), zap.String("remote_addr", s.remote.String()),
		zap.String("transport", s.transport), zap.String("account_id", ident.Account.ID),
		zap.String("credential_id", ident.CredentialID)}
	s.log = s.edge.log.WithLazy(fields...)
	s.edge.log.Info("agent session started", append(fields, zap.String("agent_version", req.Extra.Version), zap.String("os", req.Extra.OS))...)
	if req.ClientID != "" {
		s.edge.sessions.replaceResumed(s, clientID, ident.CredentialID)
	}

	resp.ClientID = clientID
	resp.Extra = tunnel.AuthRespExtra{
		Version:          s.edge.cfg.Version,
		Region:           s.edge.cfg.Region,
		AgentSessionID:   s.id,
		AccountName:      ident.Account.Name,
		PlanName:         "self-hosted",
		ConnectAddresses: s.edge.connectAddresses(),
		EdgeID:           s.edge.cfg.EdgeID,
		RegionEdges:      s.edge.regionEdges(),
	}
	s.edge.SessionsChanged()
	return resp
}

// freshCredentialWait is how long an agent's Auth waits for the next
// snapshot when its authtoken's ID is not in the edge's snapshot yet: a
// token created a moment ago through the API reaches the edges within
// milliseconds, and an agent started right after creating it should not be
// refused for good (TG_107 is permanent).
const freshCredentialWait = 2 * time.Second

// verifyAuthtoken checks token against the current snapshot. When the
// token names a credential the snapshot does not hold (not when its secret
// is wrong), it waits for newer snapshots up to freshCredentialWait before
// refusing: with TG_107, or with the retryable TG_2740 while the edge holds
// no snapshot at all.
func (e *Edge) verifyAuthtoken(ctx context.Context, token string) (*authn.Identity, error) {
	deadline := time.NewTimer(freshCredentialWait)
	defer deadline.Stop()
	for {
		changed := e.snap.Changed()
		ident, known, err := authn.CheckAuthtoken(e.snap.Load(), token)
		if !errors.Is(err, authn.ErrAuthtokenInvalid) || known {
			return ident, err
		}
		select {
		case <-changed:
		case <-deadline.C:
			return ident, e.snap.notReadyOr(err)
		case <-ctx.Done():
			return ident, e.snap.notReadyOr(err)
		}
	}
}

// errEdgeNotReady refuses an authtoken the edge cannot check because it
// holds no snapshot yet; agents retry it (it is not permanent).
var errEdgeNotReady = codes.NewError(codes.EdgeNotReady,
	"This edge has not received its first snapshot from the control plane yet, so it cannot check authtokens. The agent will retry; if this lasts, check that the edge reaches its control plane.")

// notReadyOr returns errEdgeNotReady while the edge holds no snapshot
// (none from the control plane, none persisted), else err: TG_107 would
// tell the agent to give up on a credential the edge never saw.
func (h *snapshotHolder) notReadyOr(err error) error {
	if !h.ready() {
		return errEdgeNotReady
	}
	return err
}

// Unbind removes one endpoint of this session.
func (s *agentSession) Unbind(ctx context.Context, req *tunnel.Unbind) *tunnel.UnbindResp {
	s.mu.Lock()
	ep, ok := s.endpoints[req.ID]
	delete(s.endpoints, req.ID)
	s.mu.Unlock()
	if !ok {
		return &tunnel.UnbindResp{Error: codes.NewError(codes.BindURL, "No endpoint with bind ID %q in this session.", req.ID).Error()}
	}
	s.edge.router.unbind(ep)
	s.log.Info("endpoint unbound", zap.String("endpoint", ep.url))
	s.edge.SessionsChanged()
	return &tunnel.UnbindResp{}
}

// SrvInfo answers the region, this edge's ID and the region's live edges.
func (s *agentSession) SrvInfo(ctx context.Context) *tunnel.SrvInfoResp {
	return &tunnel.SrvInfoResp{Region: s.edge.cfg.Region, EdgeID: s.edge.cfg.EdgeID, RegionEdges: s.edge.regionEdges()}
}

// resumes reports whether s is an earlier session of the agent that just
// reconnected as clientID with credentialID.
func (s *agentSession) resumes(clientID, credentialID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && s.ident != nil && s.clientID == clientID && s.ident.CredentialID == credentialID
}

// Identity implements EndpointOwner: the authenticated identity, or nil.
func (s *agentSession) Identity() *authn.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ident
}

// DropEndpoint implements EndpointOwner: it removes ep from this session
// (it was taken over or revoked) and tells the agent why.
func (s *agentSession) DropEndpoint(ep *Endpoint, code codes.Code, msg string) {
	s.mu.Lock()
	if cur, ok := s.endpoints[ep.bindID]; ok && cur == ep {
		delete(s.endpoints, ep.bindID)
	}
	s.mu.Unlock()
	s.edge.router.unbind(ep)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.ts.StopTunnel(ctx, ep.bindID, msg, code); err != nil {
			s.log.Debug("could not send StopTunnel", zap.Error(err))
		}
	}()
	s.log.Info("endpoint stopped", zap.String("endpoint", ep.url), zap.String("code", string(code)), zap.String("reason", msg))
}

// closed is called once when the tunnel session ends: every endpoint goes.
func (s *agentSession) ended(err error) {
	s.mu.Lock()
	s.closed = true
	eps := make([]*Endpoint, 0, len(s.endpoints))
	for _, ep := range s.endpoints {
		eps = append(eps, ep)
	}
	s.endpoints = nil
	authed := s.ident != nil
	s.mu.Unlock()
	for _, ep := range eps {
		s.edge.router.unbind(ep)
	}
	if authed {
		if err == nil || errors.Is(err, context.Canceled) {
			s.log.Info("agent session ended")
		} else {
			s.log.Info("agent session ended", zap.Error(err))
		}
		s.edge.SessionsChanged()
	}
}

// lostEndpoint is an endpoint a new snapshot no longer allows, with the
// refusal its bind would get now.
type lostEndpoint struct {
	ep  *Endpoint
	err *codes.Error
}

// reverify re-checks the session's credential against a new snapshot
// (authn.ReverifyAuthtoken). It returns the endpoints the snapshot no longer
// allows (a narrowed ACL, a released or moved reservation), each with the
// reason, and a non-nil error when the session must close.
func (s *agentSession) reverify(snap *snapshot.Snapshot) ([]lostEndpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ident == nil || s.closed {
		return nil, nil
	}
	ident, err := authn.ReverifyAuthtoken(snap, s.ident.CredentialID, s.secretHash)
	if err != nil {
		return nil, err
	}
	s.ident = ident
	var lost []lostEndpoint
	for _, ep := range s.endpoints {
		if err := s.edge.binds.checkBindAllowed(snap, s.ident, ep.proto, ep.key); err != nil {
			lost = append(lost, lostEndpoint{ep, err})
		}
	}
	return lost, nil
}

// info returns the session as the control plane's API reports it.
func (s *agentSession) info() (snapshot.AgentSession, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ident == nil || s.closed {
		return snapshot.AgentSession{}, false
	}
	out := snapshot.AgentSession{
		ID:           s.id,
		AccountID:    s.ident.Account.ID,
		CredentialID: s.ident.CredentialID,
		PrincipalID:  s.ident.Principal.ID,
		Region:       s.edge.cfg.Region,
		Transport:    s.transport,
		IP:           s.remote.Addr().String(),
		OS:           s.os,
		AgentVersion: s.version,
		Metadata:     s.metadata,
		StartedAt:    s.startedAt,
	}
	for _, ep := range s.endpoints {
		out.Endpoints = append(out.Endpoints, ep.Info())
	}
	return out, true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
