package agent

// This file holds one agent session's life: Auth, binds, proxy streams,
// the edge's commands, and shutdown. Run in agent.go drives it.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/tunnel"
)

// authRequest builds the Auth message, resuming the previous session
// (ClientId, Cookie) when there is one. ClientSession.Auth fills in the
// protocol versions, heartbeat settings, ClientType and the Stop and
// Restart capabilities (supported: attempt sets OnStop and OnRestart).
func (a *Agent) authRequest() *tunnel.Auth {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &tunnel.Auth{
		ClientID: a.clientID,
		Extra: tunnel.AuthExtra{
			OS:        runtime.GOOS,
			Arch:      runtime.GOARCH,
			Authtoken: tunnel.Secret(a.cfg.Authtoken),
			Version:   a.cfg.Version,
			Hostname:  a.hostname,
			UserAgent: "tollgate/" + a.cfg.Version,
			Metadata:  a.cfg.Metadata,
			Cookie:    a.cookie,
		},
	}
}

// regionRedirect returns the connect address of the configured region when
// the edge serves another region and lists one; without a configured
// region, that of the region whose edge answers fastest (region.go); else "".
func (a *Agent) regionRedirect(ctx context.Context, resp *tunnel.AuthResp, addr string) string {
	want, got := a.cfg.Region, resp.Extra.Region
	if want == "" {
		return a.fastestRegion(ctx, resp, addr, a.probe)
	}
	if got == "" || got == want {
		return ""
	}
	for _, ca := range resp.Extra.ConnectAddresses {
		if ca.Region == want && ca.ServerAddr != "" && ca.ServerAddr != addr {
			return ca.ServerAddr
		}
	}
	a.log.Warn("the edge serves another region than the configured one, and names no edge for it",
		zap.String("region", got), zap.String("configured_region", want), zap.String("server_addr", addr))
	return ""
}

// sessionStarted records an authenticated session.
func (a *Agent) sessionStarted(c *conn, addr string) {
	resp := c.resp
	a.mu.Lock()
	a.clientID = resp.ClientID
	if resp.Extra.Cookie != "" {
		a.cookie = resp.Extra.Cookie
	}
	a.sess = c.sess
	a.status.SessionID = resp.Extra.AgentSessionID
	a.status.ClientID = resp.ClientID
	a.status.Region = resp.Extra.Region
	a.status.Transport = c.transport
	a.status.ServerAddr = addr
	a.status.ConnectedAt = time.Now()
	a.mu.Unlock()
	a.log.Info("agent session established",
		zap.String("session_id", resp.Extra.AgentSessionID), zap.String("region", resp.Extra.Region),
		zap.String("transport", c.transport), zap.String("server_addr", addr))
	if resp.Extra.Banner != "" {
		a.log.Info(resp.Extra.Banner)
	}
	if d := resp.Extra.DeprecationWarning; d != nil {
		a.log.Warn("this agent version is deprecated", zap.String("message", d.Msg), zap.String("next_min", d.NextMin))
	}
}

// sessionEnded marks the session gone and bound endpoints reconnecting.
func (a *Agent) sessionEnded() {
	a.mu.Lock()
	a.sess = nil
	a.status.State = SessionReconnecting
	a.status.Transport = ""
	a.mu.Unlock()
	for _, ep := range a.eps {
		ep.mu.Lock()
		if ep.state == StateOnline {
			ep.state = StateReconnecting
		}
		ep.mu.Unlock()
	}
}

// forgetSession drops ClientId and Cookie so the next Auth starts a new
// session (after Restart). Bind tokens are kept: URLs stay.
func (a *Agent) forgetSession() {
	a.mu.Lock()
	a.clientID, a.cookie = "", ""
	a.mu.Unlock()
}

func (a *Agent) setState(s string) {
	a.mu.Lock()
	a.status.State = s
	a.mu.Unlock()
}

// bindAll binds every endpoint not stopped by the edge, re-using previous
// bind Ids and Tokens. A refusal of a first bind, or a permanent refusal
// of a re-bind, is marked permanent.
func (a *Agent) bindAll(ctx context.Context, c *conn) error {
	for _, ep := range a.eps {
		ep.mu.Lock()
		req := &tunnel.Bind{
			ID:         ep.bindID,
			Proto:      ep.spec.BindProto,
			ForwardsTo: ep.spec.Upstream.String(),
			Opts:       ep.opts,
			Extra:      tunnel.BindExtra{Name: ep.spec.Name, Token: ep.token, Metadata: ep.spec.Metadata, PoolingEnabled: ep.spec.PoolingEnabled},
		}
		stopped, rebind, oldURL := ep.state == StateStopped, ep.publicURL != "", ep.publicURL
		ep.mu.Unlock()
		if stopped {
			continue
		}
		bctx, cancel := context.WithTimeout(ctx, a.cfg.ConnectTimeout)
		resp, err := c.sess.Bind(bctx, req)
		cancel()
		if err != nil {
			var re *tunnel.RemoteError
			if errors.As(err, &re) && (!rebind || re.Permanent()) {
				return &permanent{err: bindError(ep.spec, re)}
			}
			return fmt.Errorf("binding endpoint %q: %w", ep.spec.Name, err)
		}
		ep.mu.Lock()
		if resp.ID != "" {
			ep.bindID = resp.ID
		}
		if resp.Extra.Token != "" {
			ep.token = resp.Extra.Token
		}
		ep.publicURL = resp.URL
		ep.tunnelID = resp.Extra.TunnelID
		ep.state = StateOnline
		ep.mu.Unlock()
		if rebind && oldURL != resp.URL {
			a.log.Warn("endpoint URL changed on reconnect", zap.String("endpoint", ep.spec.Name),
				zap.String("old_url", oldURL), zap.String("url", resp.URL))
		}
		a.log.Info("endpoint online", zap.String("endpoint", ep.spec.Name), zap.String("url", resp.URL),
			zap.String("upstream", ep.spec.Upstream.String()))
	}
	a.rebuildRoutes()
	a.setState(SessionOnline)
	a.readyOnce.Do(func() { close(a.ready) })
	return nil
}

// rebuildRoutes publishes the bind ID → endpoint map of the endpoints
// that are not stopped.
func (a *Agent) rebuildRoutes() {
	m := make(map[string]*endpoint, len(a.eps))
	for _, ep := range a.eps {
		ep.mu.Lock()
		if ep.bindID != "" && ep.state != StateStopped {
			m[ep.bindID] = ep
		}
		ep.mu.Unlock()
	}
	a.routes.Store(&m)
}

// serve accepts proxy streams and forwards each in its own goroutine
// until the session ends, ctx ends, the edge stopped every endpoint, or
// (config.TransportAuto on the fallback transport) a session over
// AutoFirst replaced it. It returns why the session ended (nil when ctx
// ended), or the session that replaced it as next.
func (a *Agent) serve(ctx context.Context, c *conn, addr string, fwdCtx context.Context, fwdWG *sync.WaitGroup) (next *conn, end error) {
	acceptCtx, stopAccepting := context.WithCancel(context.Background())
	acceptDone := make(chan struct{})
	go a.acceptProxies(acceptCtx, c, fwdCtx, fwdWG, acceptDone)
	defer func() {
		stopAccepting()
		<-acceptDone
	}()
	found := make(chan *conn, 1)
	if a.wantsPreferred(c.transport) {
		preferCtx, stopPreferring := context.WithCancel(ctx)
		preferDone := make(chan struct{})
		go func() {
			defer close(preferDone)
			a.returnToPreferred(preferCtx, addr, found)
		}()
		defer func() {
			stopPreferring()
			<-preferDone
			// The edge ends the old session as the new one authenticates,
			// so the old one may have ended first: the new one wins.
			select {
			case n := <-found:
				if next == nil && ctx.Err() == nil {
					end, next = nil, n
				} else if n != next {
					n.close()
				}
			default:
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil, nil
	case <-c.runDone:
		return nil, c.runErr
	case <-a.allStopped:
		return nil, errAllStopped
	case n := <-found:
		return n, nil
	}
}

// acceptProxies is the session's accept loop for proxy streams.
func (a *Agent) acceptProxies(ctx context.Context, c *conn, fwdCtx context.Context, fwdWG *sync.WaitGroup, done chan<- struct{}) {
	defer close(done)
	for {
		hdr, st, err := c.sess.AcceptProxy(ctx)
		if err != nil {
			return
		}
		ep := (*a.routes.Load())[hdr.ID]
		if ep == nil {
			if ce := a.log.Check(zap.DebugLevel, "proxy stream for an unknown endpoint"); ce != nil {
				ce.Write(zap.String("bind_id", hdr.ID), zap.String("remote_addr", hdr.ClientAddr))
			}
			_ = st.Close()
			continue
		}
		fwdWG.Add(1)
		go forwardStream(fwdCtx, fwdWG, ep.fwd, st, hdr.ClientAddr)
	}
}

// forwardStream forwards one proxy stream (named for stack traces).
func forwardStream(ctx context.Context, wg *sync.WaitGroup, f *forwarder, st tunnel.Stream, clientAddr string) {
	defer wg.Done()
	f.serve(ctx, st, clientAddr)
}

// shutdown unbinds every online endpoint (bounded by unbindTimeout) and
// closes the session.
func (a *Agent) shutdown(c *conn) {
	ctx, cancel := context.WithTimeout(context.Background(), unbindTimeout)
	defer cancel()
	for _, ep := range a.eps {
		ep.mu.Lock()
		id, live := ep.bindID, ep.state == StateOnline || ep.state == StateReconnecting
		ep.mu.Unlock()
		if id == "" || !live {
			continue
		}
		if err := c.sess.Unbind(ctx, id); err != nil {
			a.log.Debug("unbind failed", zap.String("endpoint", ep.spec.Name), zap.Error(err))
		}
	}
	c.close()
	a.log.Info("agent session closed")
}

// wait sleeps for the next backoff delay after cause; false means ctx
// ended first.
func (a *Agent) wait(ctx context.Context, bo backoffer, cause error) bool {
	delay := bo.Next()
	a.log.Warn("no session with the edge; reconnecting", zap.Duration("delay", delay), zap.Error(cause))
	a.emit(Event{Kind: EventDisconnected, Err: cause, Delay: delay})
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// onStopTunnel handles the edge's StopTunnel: the endpoint ends and is not
// re-bound; when every endpoint has ended, Run returns.
func (a *Agent) onStopTunnel(st tunnel.StopTunnel) {
	var stopped *endpoint
	all := len(a.eps) > 0
	for _, ep := range a.eps {
		ep.mu.Lock()
		if ep.bindID == st.ID && ep.state != StateStopped {
			ep.state, ep.stopMsg, ep.stopCode = StateStopped, st.Message, st.ErrorCode
			stopped = ep
		}
		all = all && ep.state == StateStopped
		ep.mu.Unlock()
	}
	if stopped == nil {
		a.log.Debug("stop for an unknown endpoint", zap.String("bind_id", st.ID))
		return
	}
	a.rebuildRoutes()
	a.log.Warn("the edge stopped an endpoint", zap.String("endpoint", stopped.spec.Name),
		zap.String("message", st.Message), zap.String("code", st.ErrorCode))
	a.emit(Event{Kind: EventEndpointStopped, Endpoint: stopped.spec.Name, Message: st.Message, Code: st.ErrorCode})
	if all {
		a.allStoppedOnce.Do(func() { close(a.allStopped) })
	}
}

// onStop accepts the edge's Stop; the session then ends with
// tunnel.ErrStopRequested and Run returns nil.
func (a *Agent) onStop() error {
	a.emit(Event{Kind: EventStopRequested})
	return nil
}

// onRestart accepts the edge's Restart; the session then ends with
// tunnel.ErrRestartRequested and Run reconnects with a new session.
func (a *Agent) onRestart() error {
	a.emit(Event{Kind: EventRestartRequested})
	return nil
}

func (a *Agent) emit(e Event) {
	if a.cfg.OnEvent != nil {
		a.cfg.OnEvent(e)
	}
}

// stoppedError is what Run returns when the edge stopped every endpoint:
// the last stop's message and code.
func (a *Agent) stoppedError() error {
	var msg, code string
	for _, ep := range a.eps {
		ep.mu.Lock()
		if ep.stopMsg != "" || ep.stopCode != "" {
			msg, code = ep.stopMsg, ep.stopCode
		}
		ep.mu.Unlock()
	}
	if msg == "" {
		msg = "The edge stopped every endpoint."
	}
	if code == "" {
		code = string(codes.SessionStopped)
	}
	return &codes.Error{Code: codes.Code(code), Message: msg}
}

// bindError turns a bind refusal into the error Run returns, naming the
// endpoint unless it is the command line's only one.
func bindError(spec *config.EndpointSpec, re *tunnel.RemoteError) error {
	prefix := ""
	if spec.Name != config.CommandLineEndpoint {
		prefix = fmt.Sprintf("Endpoint %q: ", spec.Name)
	}
	if re.Code == "" {
		return fmt.Errorf("%s%w", prefix, re)
	}
	return &codes.Error{Code: codes.Code(re.Code), Message: prefix + re.Message, Cause: re}
}

// userError turns a permanent error into what Run returns: a *codes.Error
// carrying the edge's code and message when there is one.
func userError(err error) error {
	var ce *codes.Error
	if errors.As(err, &ce) {
		return ce
	}
	var re *tunnel.RemoteError
	if errors.As(err, &re) && re.Code != "" {
		return &codes.Error{Code: codes.Code(re.Code), Message: re.Message, Cause: err}
	}
	if errors.As(err, &re) {
		return re
	}
	return err
}
