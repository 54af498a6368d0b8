package tunnel

import (
	"context"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"
)

// ClientType is what our agent sends as AuthExtra.ClientType by default.
const ClientType = "tollgate"

// unsupportedOperation is the reason our agent gives for commands it has
// no callback for.
const unsupportedOperation = "this agent does not support this operation"

// ClientConfig configures a ClientSession. Zero values take the defaults.
type ClientConfig struct {
	// Logger gets the session's debug logs; the session adds remote_addr
	// and transport. nil = none.
	Logger *zap.Logger
	// HeartbeatInterval and HeartbeatTolerance drive the agent's own
	// heartbeats and are sent in Auth; defaults 10 s and 15 s.
	HeartbeatInterval  time.Duration
	HeartbeatTolerance time.Duration
	// OnStopTunnel is called (on its own goroutine) when the edge closes
	// one of the agent's endpoints. nil = ignored.
	OnStopTunnel func(StopTunnel)
	// OnStop is called when the edge asks the agent to exit; nil = the
	// agent says at Auth that it does not support it. On nil error the
	// session answers success and ends with ErrStopRequested.
	OnStop func() error
	// OnRestart is OnStop's counterpart for restarts; the session ends
	// with ErrRestartRequested.
	OnRestart func() error
	// MaxRPCBytes bounds one RPC response or command; default 1 MiB.
	MaxRPCBytes int
	// ProxyBacklog bounds proxy streams waiting for AcceptProxy; while it
	// is full the session accepts no streams (heartbeats included), so
	// keep calling AcceptProxy. Default 128.
	ProxyBacklog int
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.HeartbeatTolerance == 0 {
		c.HeartbeatTolerance = DefaultHeartbeatTolerance
	}
	if c.MaxRPCBytes <= 0 {
		c.MaxRPCBytes = DefaultMaxRPCBytes
	}
	if c.ProxyBacklog <= 0 {
		c.ProxyBacklog = 128
	}
	return c
}

// ClientSession is the agent's side of a connection to an edge.
type ClientSession struct {
	core
	cfg     ClientConfig
	proxies *proxyQueue
}

// NewClientSession returns a session over mux. It starts nothing; call
// Run or Start (for heartbeats and streams the edge opens), then Auth.
func NewClientSession(mux Mux, cfg ClientConfig) *ClientSession {
	cfg = cfg.withDefaults()
	c := &ClientSession{cfg: cfg, proxies: newProxyQueue(cfg.ProxyBacklog)}
	c.init(mux, cfg.Logger, cfg.HeartbeatInterval, cfg.HeartbeatTolerance)
	return c
}

// Run serves the streams the edge opens (proxy streams go to AcceptProxy;
// StopTunnel, Stop, Restart and Update go to the callbacks) and runs the
// heartbeats, until the Mux dies, ctx ends or Close is called. It returns
// why the session ended, after every goroutine of the session has ended.
func (c *ClientSession) Run(ctx context.Context) error {
	return runSync(func(end func(error)) (func(), error) { return c.begin(ctx, end) })
}

// Start is Run without the wait: it returns at once (an error only if the
// session was started before) and calls ended (nil = nobody), on a
// goroutine of its own, with what Run would return, after every goroutine
// of the session has ended. Over TLS+muxado an idle session started this
// way keeps no goroutine of its own.
func (c *ClientSession) Start(ctx context.Context, ended func(error)) error {
	return startAsync(func(end func(error)) (func(), error) { return c.begin(ctx, end) }, ended)
}

func (c *ClientSession) begin(ctx context.Context, end func(error)) (func(), error) {
	return c.start(ctx, c.handle, func(err error) {
		for _, p := range c.proxies.drain() { // proxies nobody accepted
			_ = p.st.Close()
		}
		end(err)
	})
}

func (c *ClientSession) handle(ctx context.Context, t StreamType, st Stream) {
	switch t {
	case StreamProxy:
		// The header arrives in the same frame as the stream type; the
		// deadline only bounds a misbehaving edge.
		_ = st.SetReadDeadline(time.Now().Add(typeReadTimeout))
		hdr, err := ReadProxyHeader(st)
		_ = st.SetReadDeadline(time.Time{})
		if err != nil {
			c.log.Debug("dropping proxy stream", zap.Error(err))
			_ = st.Close()
			return
		}
		if !c.proxies.push(ctx, proxyStream{hdr, st}) {
			_ = st.Close()
		}
	case StreamHeartbeat:
		c.echo(st)
	case StreamStopTunnel:
		c.wg.Go(func() { c.serveStopTunnel(st) })
	case StreamStop, StreamRestart, StreamUpdate:
		c.wg.Go(func() { c.serveCommand(t, st) })
	default:
		if ce := c.log.Check(zap.DebugLevel, "refusing stream type from edge"); ce != nil {
			ce.Write(zap.Stringer("stream_type", t))
		}
		_ = st.Close()
	}
}

func (c *ClientSession) serveStopTunnel(st Stream) {
	defer st.Close()
	var req StopTunnel
	if err := readRequest(st, &req, c.cfg.MaxRPCBytes, typeReadTimeout); err != nil {
		c.log.Debug("bad stop tunnel request", zap.Error(err))
		return
	}
	if c.cfg.OnStopTunnel != nil {
		c.cfg.OnStopTunnel(req)
	}
}

func (c *ClientSession) serveCommand(t StreamType, st Stream) {
	defer st.Close()
	var req Update // Stop and Restart are {}; Update's fields are unused
	if err := readRequest(st, &req, c.cfg.MaxRPCBytes, typeReadTimeout); err != nil {
		_ = WriteRPC(st, &errorResp{Error: fmt.Sprintf("The %s request could not be decoded: %v", t, err)})
		return
	}
	var cb func() error
	var reason error
	switch t {
	case StreamStop:
		cb, reason = c.cfg.OnStop, ErrStopRequested
	case StreamRestart:
		cb, reason = c.cfg.OnRestart, ErrRestartRequested
	}
	if cb == nil {
		_ = WriteRPC(st, &errorResp{Error: unsupportedOperation})
		return
	}
	if err := cb(); err != nil {
		_ = WriteRPC(st, &errorResp{Error: err.Error()})
		return
	}
	c.setReason(reason)
	respondAndLinger(st, &errorResp{})
	c.close(nil)
}

// capability returns the AuthExtra value for a command: "" if supported.
func capability(supported bool) *string {
	s := unsupportedOperation
	if supported {
		s = ""
	}
	return &s
}

// Auth authenticates the session. Empty fields of req are filled: the
// protocol versions, the heartbeat settings, ClientType, and the command
// capabilities from the callbacks. A refusal returns the response and a
// *RemoteError (see IsPermanent).
func (c *ClientSession) Auth(ctx context.Context, req *Auth) (*AuthResp, error) {
	r := *req
	if len(r.Version) == 0 {
		r.Version = ProtocolVersions
	}
	if r.Extra.HeartbeatInterval == 0 {
		r.Extra.HeartbeatInterval = int64(c.cfg.HeartbeatInterval)
	}
	if r.Extra.HeartbeatTolerance == 0 {
		r.Extra.HeartbeatTolerance = int64(c.cfg.HeartbeatTolerance)
	}
	if r.Extra.ClientType == "" {
		r.Extra.ClientType = ClientType
	}
	if r.Extra.StopUnsupportedError == nil {
		r.Extra.StopUnsupportedError = capability(c.cfg.OnStop != nil)
	}
	if r.Extra.RestartUnsupportedError == nil {
		r.Extra.RestartUnsupportedError = capability(c.cfg.OnRestart != nil)
	}
	if r.Extra.UpdateUnsupportedError == nil {
		r.Extra.UpdateUnsupportedError = capability(false)
	}
	var resp AuthResp
	if err := roundTrip(ctx, c.mux, StreamAuth, &r, &resp, c.cfg.MaxRPCBytes); err != nil {
		return nil, err
	}
	if resp.Error != "" {
		return &resp, fmt.Errorf("auth: %w", ParseRemoteError(resp.Error))
	}
	return &resp, nil
}

// Bind asks for an endpoint. A refusal returns the response and a
// *RemoteError.
func (c *ClientSession) Bind(ctx context.Context, req *Bind) (*BindResp, error) {
	var resp BindResp
	if err := roundTrip(ctx, c.mux, StreamBind, req, &resp, c.cfg.MaxRPCBytes); err != nil {
		return nil, err
	}
	if resp.Error != "" {
		return &resp, fmt.Errorf("bind: %w", ParseRemoteError(resp.Error))
	}
	return &resp, nil
}

// Unbind releases the endpoint with bind ID id.
func (c *ClientSession) Unbind(ctx context.Context, id string) error {
	var resp UnbindResp
	if err := roundTrip(ctx, c.mux, StreamUnbind, &Unbind{ID: id}, &resp, c.cfg.MaxRPCBytes); err != nil {
		return err
	}
	if resp.Error != "" {
		return fmt.Errorf("unbind: %w", ParseRemoteError(resp.Error))
	}
	return nil
}

// SrvInfo asks for the edge's region.
func (c *ClientSession) SrvInfo(ctx context.Context) (*SrvInfoResp, error) {
	var resp SrvInfoResp
	if err := roundTrip(ctx, c.mux, StreamSrvInfo, &SrvInfo{}, &resp, c.cfg.MaxRPCBytes); err != nil {
		return nil, err
	}
	return &resp, nil
}

// AcceptProxy returns the next proxy stream the edge opened (delivered by
// Run or Start) with its header; the stream's raw bytes follow the header.
func (c *ClientSession) AcceptProxy(ctx context.Context) (*ProxyHeader, Stream, error) {
	for {
		if p, ok := c.proxies.tryPop(); ok {
			return p.hdr, p.st, nil
		}
		select {
		case <-c.proxies.ready:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-c.mux.Done():
			if p, ok := c.proxies.tryPop(); ok {
				return p.hdr, p.st, nil
			}
			return nil, nil, c.endErr()
		}
	}
}

// Latency returns the round trip of the agent's last heartbeat, 0 before
// the first.
func (c *ClientSession) Latency() time.Duration { return time.Duration(c.hb.latency.Load()) }

// Close ends the session; Run returns ErrClosed.
func (c *ClientSession) Close() error {
	c.close(ErrClosed)
	return nil
}

// Done is closed when the connection is gone.
func (c *ClientSession) Done() <-chan struct{} { return c.mux.Done() }

// RemoteAddr returns the edge's address.
func (c *ClientSession) RemoteAddr() net.Addr { return c.mux.RemoteAddr() }
