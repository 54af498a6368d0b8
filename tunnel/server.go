package tunnel

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/codes"
	"go.uber.org/zap"
)

// ServerHandler answers an agent's RPCs; the edge implements it, one value
// per session. Methods run on their own goroutine, may run concurrently
// (Auth never does), and must return when ctx ends (the session is over).
// A nil response is answered as an internal error.
type ServerHandler interface {
	// Auth decides the session. A response with Error set is sent and the
	// session then closes; on success ClientID must identify the session
	// (the session fills Version and, when empty, ClientID).
	Auth(ctx context.Context, req *Auth) *AuthResp
	// Bind binds an endpoint. On success the session fills an empty Proto
	// from the request and an empty ID from the request or a random one.
	Bind(ctx context.Context, req *Bind) *BindResp
	// Unbind releases an endpoint bound on this session.
	Unbind(ctx context.Context, req *Unbind) *UnbindResp
	// SrvInfo reports the edge's region.
	SrvInfo(ctx context.Context) *SrvInfoResp
}

// LabeledTunnelHandler is implemented by a ServerHandler that serves
// StartTunnelWithLabel; without it the session refuses such requests.
type LabeledTunnelHandler interface {
	StartTunnelWithLabel(ctx context.Context, req *StartTunnelWithLabel) *StartTunnelWithLabelResp
}

// PatchTunnelStateHandler is implemented by a ServerHandler that serves
// PatchTunnelState; without it the session refuses such requests.
type PatchTunnelStateHandler interface {
	PatchTunnelState(ctx context.Context, req *PatchTunnelState) *PatchTunnelStateResp
}

// ServerConfig configures a ServerSession. Zero values take the defaults.
type ServerConfig struct {
	// Logger gets the session's debug logs; the session adds remote_addr
	// and transport, the caller adds session_id and the like. nil = none.
	Logger *zap.Logger
	// AuthTimeout is how long an agent has to authenticate; default 10 s.
	AuthTimeout time.Duration
	// HeartbeatInterval and HeartbeatTolerance drive the edge's own
	// heartbeats; defaults 10 s and 15 s.
	HeartbeatInterval  time.Duration
	HeartbeatTolerance time.Duration
	// MinHeartbeatInterval and MinHeartbeatTolerance are the smallest
	// values an agent may ask for in Auth (codes.HeartbeatInterval /
	// codes.HeartbeatTolerance otherwise); default 1 s each, negative = none.
	MinHeartbeatInterval  time.Duration
	MinHeartbeatTolerance time.Duration
	// MaxRPCBytes bounds one RPC request; default 1 MiB.
	MaxRPCBytes int
	// RPCReadTimeout bounds how long an RPC request may take to arrive;
	// default 30 s.
	RPCReadTimeout time.Duration
	// MaxConcurrentRPCs bounds the RPCs served at once; the session stops
	// accepting streams while it is reached. Default 64.
	MaxConcurrentRPCs int
}

func (c ServerConfig) withDefaults() ServerConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.AuthTimeout, 10*time.Second)
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.HeartbeatTolerance, DefaultHeartbeatTolerance)
	def(&c.MinHeartbeatInterval, time.Second)
	def(&c.MinHeartbeatTolerance, time.Second)
	def(&c.RPCReadTimeout, 30*time.Second)
	if c.MaxRPCBytes <= 0 {
		c.MaxRPCBytes = DefaultMaxRPCBytes
	}
	if c.MaxConcurrentRPCs <= 0 {
		c.MaxConcurrentRPCs = 64
	}
	return c
}

// capabilities are the agent's answers at Auth about the commands it
// executes (AuthExtra's *UnsupportedError fields).
type capabilities struct {
	stop, restart, update *string
}

// ServerSession is the edge's side of one agent connection.
type ServerSession struct {
	core
	h      ServerHandler
	cfg    ServerConfig
	rpcSem chan struct{}

	authMu sync.Mutex // serializes Auth requests
	authed atomic.Bool
	caps   atomic.Pointer[capabilities]
}

// NewServerSession returns a session serving h over mux. It starts
// nothing; call Run or Start.
func NewServerSession(mux Mux, h ServerHandler, cfg ServerConfig) *ServerSession {
	cfg = cfg.withDefaults()
	s := &ServerSession{h: h, cfg: cfg, rpcSem: make(chan struct{}, cfg.MaxConcurrentRPCs)}
	s.init(mux, cfg.Logger, cfg.HeartbeatInterval, cfg.HeartbeatTolerance)
	return s
}

// Run serves the session until the Mux dies, ctx ends or Close is called,
// and returns why it ended: the Close reason, ctx's cause,
// ErrHeartbeatTimeout, ErrAuthTimeout, ErrAuthRejected (wrapping the
// refusal), or the connection's error. Before a successful Auth only Auth
// and heartbeats are served; other RPCs get codes.NotAuthenticated.
// Run returns only after every goroutine of the session has ended.
func (s *ServerSession) Run(ctx context.Context) error {
	return runSync(func(end func(error)) (func(), error) { return s.begin(ctx, end) })
}

// Start is Run without the wait, for an edge that serves many sessions: it
// returns at once (an error only if the session was started before) and
// calls ended (nil = nobody), on a goroutine of its own, with what Run
// would return, after every goroutine of the session has ended. Over
// TLS+muxado an idle session started this way keeps no goroutine of its
// own (Run's would hold 4 KiB or more of stack); over QUIC one goroutine
// waits for streams.
func (s *ServerSession) Start(ctx context.Context, ended func(error)) error {
	return startAsync(func(end func(error)) (func(), error) { return s.begin(ctx, end) }, ended)
}

func (s *ServerSession) begin(ctx context.Context, end func(error)) (func(), error) {
	authTimer := time.AfterFunc(s.cfg.AuthTimeout, func() {
		if !s.authed.Load() {
			s.close(ErrAuthTimeout)
		}
	})
	loop, err := s.start(ctx, s.handle, func(err error) {
		authTimer.Stop()
		end(err)
	})
	if err != nil {
		authTimer.Stop()
	}
	return loop, err
}

// handle dispatches one stream the agent opened.
func (s *ServerSession) handle(ctx context.Context, t StreamType, st Stream) {
	switch t {
	case StreamHeartbeat:
		s.echo(st)
	case StreamAuth, StreamBind, StreamUnbind, StreamSrvInfo, StreamStartLabeled, StreamPatchTunnelState:
		select {
		case s.rpcSem <- struct{}{}:
		case <-ctx.Done():
			_ = st.Close()
			return
		}
		s.wg.Go(func() {
			defer func() { <-s.rpcSem }()
			s.serveRPC(ctx, t, st)
		})
	default:
		// Proxy, command and metrics streams only go edge→agent.
		if ce := s.log.Check(zap.DebugLevel, "refusing stream type from agent"); ce != nil {
			ce.Write(zap.Stringer("stream_type", t))
		}
		_ = st.Close()
	}
}

// serveRPC answers one RPC stream.
func (s *ServerSession) serveRPC(ctx context.Context, t StreamType, st Stream) {
	defer st.Close()
	if t == StreamAuth {
		s.serveAuth(ctx, st)
		return
	}
	var req any
	switch t {
	case StreamBind:
		req = &Bind{}
	case StreamUnbind:
		req = &Unbind{}
	case StreamSrvInfo:
		req = &SrvInfo{}
	case StreamStartLabeled:
		req = &StartTunnelWithLabel{}
	case StreamPatchTunnelState:
		req = &PatchTunnelState{}
	}
	if err := readRequest(st, req, s.cfg.MaxRPCBytes, s.cfg.RPCReadTimeout); err != nil {
		_ = WriteRPC(st, &errorResp{Error: fmt.Sprintf("The %s request could not be decoded: %v", t, err)})
		return
	}
	if !s.authed.Load() {
		_ = WriteRPC(st, &errorResp{Error: codeError(codes.NotAuthenticated, "Authenticate the session before sending other requests.")})
		return
	}
	_ = WriteRPC(st, s.dispatch(ctx, req))
}

var internalError = codeError(codes.Internal, "The edge could not process the request. Try again.")

// dispatch calls the handler for an authenticated request.
func (s *ServerSession) dispatch(ctx context.Context, req any) any {
	switch r := req.(type) {
	case *Bind:
		resp := s.h.Bind(ctx, r)
		if resp == nil {
			return &BindResp{Error: internalError}
		}
		if resp.Error == "" {
			if resp.Proto == "" {
				resp.Proto = r.Proto
			}
			if resp.ID == "" {
				resp.ID = r.ID
			}
			if resp.ID == "" {
				resp.ID = randomID()
			}
		}
		return resp
	case *Unbind:
		if resp := s.h.Unbind(ctx, r); resp != nil {
			return resp
		}
	case *SrvInfo:
		if resp := s.h.SrvInfo(ctx); resp != nil {
			return resp
		}
	case *StartTunnelWithLabel:
		lh, ok := s.h.(LabeledTunnelHandler)
		if !ok {
			return &StartTunnelWithLabelResp{Error: codeError(codes.BindOption, "Labeled tunnels are not supported by this edge; bind a URL instead.")}
		}
		if resp := lh.StartTunnelWithLabel(ctx, r); resp != nil {
			return resp
		}
	case *PatchTunnelState:
		ph, ok := s.h.(PatchTunnelStateHandler)
		if !ok {
			return &PatchTunnelStateResp{Error: codeError(codes.BindOption, "Changing an endpoint in place is not supported by this edge; bind it again.")}
		}
		if resp := ph.PatchTunnelState(ctx, r); resp != nil {
			return resp
		}
	}
	return &errorResp{Error: internalError}
}

// serveAuth answers an Auth stream; a refusal closes the session.
func (s *ServerSession) serveAuth(ctx context.Context, st Stream) {
	var req Auth
	if err := readRequest(st, &req, s.cfg.MaxRPCBytes, s.cfg.RPCReadTimeout); err != nil {
		s.refuse(st, &AuthResp{Error: codeError(codes.AuthPayload, "The Auth message could not be decoded.")}, err)
		return
	}
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if s.authed.Load() {
		_ = WriteRPC(st, &AuthResp{Error: codeError(codes.AuthPayload, "This session is already authenticated.")})
		return
	}
	if resp := s.checkHeartbeat(&req.Extra); resp != nil {
		s.refuse(st, resp, nil)
		return
	}
	resp := s.h.Auth(ctx, &req)
	if resp == nil {
		resp = &AuthResp{Error: internalError}
	}
	if resp.Error != "" {
		s.refuse(st, resp, nil)
		return
	}
	if resp.Version == "" {
		resp.Version = ProtocolVersion
	}
	if resp.ClientID == "" {
		resp.ClientID = resp.Extra.AgentSessionID
	}
	if resp.ClientID == "" {
		resp.ClientID = randomID()
	}
	resp.Extra.AgentMetrics = nil // we serve no AgentMetrics streams
	// Authenticated before the response leaves: the agent binds as soon as
	// it reads it.
	s.caps.Store(&capabilities{stop: req.Extra.StopUnsupportedError, restart: req.Extra.RestartUnsupportedError, update: req.Extra.UpdateUnsupportedError})
	s.authed.Store(true)
	if err := WriteRPC(st, resp); err != nil {
		s.close(fmt.Errorf("sending auth response: %w", err))
	}
}

// checkHeartbeat refuses heartbeat settings below the configured minimums.
func (s *ServerSession) checkHeartbeat(x *AuthExtra) *AuthResp {
	if min := s.cfg.MinHeartbeatInterval; min > 0 && x.HeartbeatInterval != 0 && time.Duration(x.HeartbeatInterval) < min {
		return &AuthResp{Error: codeError(codes.HeartbeatInterval, fmt.Sprintf("The heartbeat interval %v is below the minimum %v.", time.Duration(x.HeartbeatInterval), min))}
	}
	if min := s.cfg.MinHeartbeatTolerance; min > 0 && x.HeartbeatTolerance != 0 && time.Duration(x.HeartbeatTolerance) < min {
		return &AuthResp{Error: codeError(codes.HeartbeatTolerance, fmt.Sprintf("The heartbeat tolerance %v is below the minimum %v.", time.Duration(x.HeartbeatTolerance), min))}
	}
	return nil
}

// refuse sends a failed AuthResp and closes the session with
// ErrAuthRejected wrapping the refusal.
func (s *ServerSession) refuse(st Stream, resp *AuthResp, cause error) {
	re := ParseRemoteError(resp.Error)
	if ce := s.log.Check(zap.DebugLevel, "auth refused"); ce != nil {
		ce.Write(zap.String("code", re.Code), zap.NamedError("cause", cause))
	}
	s.setReason(fmt.Errorf("%w: %w", ErrAuthRejected, re))
	respondAndLinger(st, resp)
	s.close(nil)
}

// OpenProxy opens a proxy stream for one public connection. Nothing is
// sent until the stream's first Write, which carries the stream type, the
// header and the first bytes in one frame. The agent must be
// authenticated (ErrNotAuthenticated otherwise).
func (s *ServerSession) OpenProxy(ctx context.Context, hdr *ProxyHeader) (Stream, error) {
	if !s.authed.Load() {
		return nil, ErrNotAuthenticated
	}
	prefix, err := AppendProxyHeader(AppendStreamType(make([]byte, 0, 192), StreamProxy), hdr)
	if err != nil {
		return nil, err
	}
	return openWithPrefix(ctx, s.mux, StreamProxy, prefix)
}

// StopTunnel tells the agent that the edge closed its endpoint bindID,
// with a message and code to show; the agent sends no reply.
func (s *ServerSession) StopTunnel(ctx context.Context, bindID, message string, code codes.Code) error {
	if !s.authed.Load() {
		return ErrNotAuthenticated
	}
	st, err := s.mux.OpenStream(ctx, StreamStopTunnel)
	if err != nil {
		return fmt.Errorf("stop tunnel: %w", err)
	}
	defer st.Close()
	if err := WriteRPC(st, &StopTunnel{ID: bindID, Message: message, ErrorCode: string(code)}); err != nil {
		return fmt.Errorf("stop tunnel: %w", err)
	}
	return nil
}

// Stop asks the agent to exit. It returns ErrUnsupported (wrapped with the
// agent's reason) if the agent said at Auth that it cannot, and a
// *RemoteError if it refuses now.
func (s *ServerSession) Stop(ctx context.Context) error {
	return s.command(ctx, StreamStop, func(c *capabilities) *string { return c.stop }, &Stop{})
}

// Restart asks the agent to restart itself; errors as for Stop.
func (s *ServerSession) Restart(ctx context.Context) error {
	return s.command(ctx, StreamRestart, func(c *capabilities) *string { return c.restart }, &Restart{})
}

// Update asks the agent to update itself to version ("" = latest);
// errors as for Stop.
func (s *ServerSession) Update(ctx context.Context, version string, permitMajor bool) error {
	return s.command(ctx, StreamUpdate, func(c *capabilities) *string { return c.update }, &Update{Version: version, PermitMajorVersion: permitMajor})
}

func (s *ServerSession) command(ctx context.Context, t StreamType, pick func(*capabilities) *string, req any) error {
	caps := s.caps.Load()
	if caps == nil {
		return ErrNotAuthenticated
	}
	if why := pick(caps); why == nil {
		return fmt.Errorf("%s: %w: the agent is too old", t, ErrUnsupported)
	} else if *why != "" {
		return fmt.Errorf("%s: %w: %s", t, ErrUnsupported, *why)
	}
	var resp errorResp
	if err := roundTrip(ctx, s.mux, t, req, &resp, s.cfg.MaxRPCBytes); err != nil {
		return err
	}
	if resp.Error != "" {
		return fmt.Errorf("%s: %w", t, ParseRemoteError(resp.Error))
	}
	return nil
}

// Capabilities reports which commands the agent said at Auth it executes;
// all false before Auth.
func (s *ServerSession) Capabilities() (stop, restart, update bool) {
	c := s.caps.Load()
	if c == nil {
		return false, false, false
	}
	ok := func(p *string) bool { return p != nil && *p == "" }
	return ok(c.stop), ok(c.restart), ok(c.update)
}

// Authenticated reports whether Auth succeeded.
func (s *ServerSession) Authenticated() bool { return s.authed.Load() }

// Close ends the session with reason (nil = ErrClosed), which Run
// returns; the first reason wins. A non-nil reason's text is sent to the
// agent (Mux.CloseWithReason), so it can say why the edge closed it. It
// closes the Mux (over muxado, bytes already queued get up to a second to
// reach the agent) and does not wait for Run.
func (s *ServerSession) Close(reason error) error {
	if reason == nil {
		s.close(nil)
		return nil
	}
	s.setReason(reason)
	return s.mux.CloseWithReason(reason.Error())
}

// GoAway ends the session because the edge is going away on purpose — it
// drains for a restart or a shutdown — so the agent should reconnect at
// once (to this edge's successor or a sibling) rather than back off. It
// sends a muxado GOAWAY with GoAwayCode (over QUIC, the application error
// QUICGoingAwayCode) whose debug data is reason, then closes; Run returns
// an error wrapping ErrGoingAway. Our agent's session then ends with
// ErrGoingAway; the SDKs reconnect on any GOAWAY, on their own schedule
// (docs/agent-protocol.md#restarts): call GoAway as the last step before
// the process exits, so that their first retries find the successor.
func (s *ServerSession) GoAway(reason string) error {
	if reason == "" {
		reason = "the edge is restarting"
	}
	s.setReason(fmt.Errorf("%w: %s", ErrGoingAway, reason))
	return s.mux.GoAway(reason)
}

// Latency returns the round trip of the edge's last heartbeat, 0 before
// the first.
func (s *ServerSession) Latency() time.Duration { return time.Duration(s.hb.latency.Load()) }

// RemoteAddr returns the agent's address.
func (s *ServerSession) RemoteAddr() net.Addr { return s.mux.RemoteAddr() }

// Transport returns "tcp" or "quic".
func (s *ServerSession) Transport() string { return s.mux.Transport() }

// Done is closed when the connection is gone.
func (s *ServerSession) Done() <-chan struct{} { return s.mux.Done() }
