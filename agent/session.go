package agent

// This file holds one agent session's life: Auth, binds, proxy streams,
// the edge's commands, and shutdown. Run in agent.go drives it.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/tunnel"
)

// authRequest builds leg l's Auth message, resuming the leg's previous
// session (ClientId, Cookie) when there is one. Every leg sends the
// agent's InstanceID and its own LegNumber. ClientSession.Auth fills in the
// protocol versions, heartbeat settings, ClientType and the Stop and
// Restart capabilities (supported: attempt sets OnStop and OnRestart).
func (a *Agent) authRequest(l *leg) *tunnel.Auth {
	a.mu.Lock()
	hostname := a.hostname
	a.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	return &tunnel.Auth{
		ClientID: l.clientID,
		Extra: tunnel.AuthExtra{
			OS:         runtime.GOOS,
			Arch:       runtime.GOARCH,
			Authtoken:  tunnel.Secret(a.cfg.Authtoken),
			Version:    a.cfg.Version,
			Hostname:   hostname,
			UserAgent:  "tollgate/" + a.cfg.Version,
			Metadata:   a.cfg.Metadata,
			Cookie:     l.cookie,
			LegNumber:  uint32(l.n),
			InstanceID: a.instanceID,
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

// bindLeg binds on leg l every endpoint not stopped by the edge, with its
// bind Id and Token. An endpoint the edge named (no URL configured) asks
// for the name it already has, so that every edge of the region serves it
// under one URL. A refusal of a first bind, or a permanent refusal of a
// re-bind, is marked permanent, unless other legs serve the endpoint: then
// this leg leaves it to them, as it does when its edge answers with
// another URL. With orphansOnly it binds only the endpoints that were
// bound and are bound on no leg now (serve).
func (a *Agent) bindLeg(ctx context.Context, l *leg, c *conn, orphansOnly bool) error {
	bit := uint32(1) << l.n
	for _, ep := range a.eps.list {
		ep.mu.Lock()
		if orphansOnly && (ep.on != 0 || ep.publicURL == "") {
			ep.mu.Unlock()
			continue
		}
		req := &tunnel.Bind{
			ID:         ep.bindID,
			Proto:      ep.spec.BindProto,
			ForwardsTo: ep.spec.Upstream.String(),
			Opts:       ep.opts,
			Extra:      tunnel.BindExtra{Name: ep.spec.Name, Token: ep.token, Metadata: ep.spec.Metadata, PoolingEnabled: ep.spec.PoolingEnabled},
		}
		stopped, known, others := ep.state == StateStopped, ep.publicURL, ep.on&^bit != 0
		ep.mu.Unlock()
		if stopped {
			continue
		}
		if known != "" && ep.spec.URL == "" && ep.spec.Kind != config.ProtoTCP {
			// A bind token proves the name only to edges that share its
			// key; the name itself is the same request on every edge.
			spec := *ep.spec
			spec.URL = known
			if opts, err := bindOpts(&spec); err == nil {
				req.Opts = opts
			}
		}
		bctx, cancel := context.WithTimeout(ctx, a.cfg.ConnectTimeout)
		resp, err := c.sess.Bind(bctx, req)
		cancel()
		if err != nil {
			var re *tunnel.RemoteError
			if errors.As(err, &re) {
				switch {
				case known == "":
					return &permanent{err: bindError(ep.spec, re)}
				case others:
					a.log.Warn("an edge refused an endpoint that other connections serve; leaving it to them",
						zap.Int("leg", l.n), zap.String("edge_id", c.resp.Extra.EdgeID), zap.String("endpoint", ep.spec.Name),
						zap.String("code", re.Code), zap.String("reason", re.Message))
					continue
				case re.Permanent():
					return &permanent{err: bindError(ep.spec, re)}
				}
			}
			return fmt.Errorf("binding endpoint %q: %w", ep.spec.Name, err)
		}
		ep.mu.Lock()
		others = ep.on&^bit != 0
		if others && (resp.URL != ep.publicURL || resp.ID != "" && resp.ID != ep.bindID) {
			ep.mu.Unlock()
			a.log.Warn("an edge gave an endpoint another URL than the other connections hold; leaving it to them",
				zap.Int("leg", l.n), zap.String("edge_id", c.resp.Extra.EdgeID), zap.String("endpoint", ep.spec.Name),
				zap.String("url", resp.URL), zap.String("held_url", known))
			uctx, cancel := context.WithTimeout(ctx, a.cfg.ConnectTimeout)
			if err := c.sess.Unbind(uctx, resp.ID); err != nil {
				a.log.Debug("unbind failed", zap.String("endpoint", ep.spec.Name), zap.Error(err))
			}
			cancel()
			continue
		}
		if resp.ID != "" {
			ep.bindID = resp.ID
		}
		if resp.Extra.Token != "" {
			ep.token = resp.Extra.Token
		}
		ep.publicURL = resp.URL
		ep.tunnelID = resp.Extra.TunnelID
		ep.on |= bit
		if ep.state != StateStopped {
			ep.state = StateOnline
		}
		ep.mu.Unlock()
		if known != "" && known != resp.URL {
			a.log.Warn("endpoint URL changed on reconnect", zap.String("endpoint", ep.spec.Name),
				zap.String("old_url", known), zap.String("url", resp.URL))
		}
		a.log.Info("endpoint online", zap.String("endpoint", ep.spec.Name), zap.String("url", resp.URL),
			zap.String("upstream", ep.spec.Upstream.String()), zap.Int("leg", l.n), zap.String("edge_id", c.resp.Extra.EdgeID))
	}
	a.eps.rebuildRoutes()
	return nil
}

// serve accepts leg l's proxy streams and forwards each in its own
// goroutine until the session ends, ctx ends, the edge stopped every endpoint, or
// (config.TransportAuto on the fallback transport) a session over
// AutoFirst replaced it. It returns why the session ended (nil when ctx
// ended), or the session that replaced it as next.
func (a *Agent) serve(ctx context.Context, l *leg, c *conn, addr string, fwd *forwarding) (next *conn, end error) {
	acceptCtx, stopAccepting := context.WithCancel(context.Background())
	acceptDone := make(chan struct{})
	go a.acceptProxies(acceptCtx, c, fwd, acceptDone)
	defer func() {
		stopAccepting()
		<-acceptDone
	}()
	found := make(chan *conn, 1)
	if a.wantsPreferred(c.transport) {
		preferCtx, stopPreferring := context.WithCancel(ctx)
		preferDone := make(chan struct{})
		var attempting atomic.Bool
		go func() {
			defer close(preferDone)
			a.returnToPreferred(preferCtx, l, addr, found, &attempting)
		}()
		defer func() {
			if next == nil && ctx.Err() == nil {
				// This session ended on its own: when a try of the
				// preferred transport is authenticating, the edge retired
				// this one for it; cancelling the try now would close
				// the session that replaces this one.
				a.awaitPreferred(found, &attempting)
			}
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
	// An endpoint that no leg serves any more (its legs ended, others had
	// left it to them) is bound on this leg.
	orphans := a.eps.orphans.wait()
	for {
		if a.eps.hasOrphans() {
			if err := a.bindLeg(ctx, l, c, true); err != nil {
				a.log.Warn("binding the endpoints no connection serves failed", zap.Int("leg", l.n), zap.Error(err))
			}
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
		case <-orphans:
			orphans = a.eps.orphans.wait()
		}
	}
}

// acceptProxies is the session's accept loop for proxy streams.
func (a *Agent) acceptProxies(ctx context.Context, c *conn, fwd *forwarding, done chan<- struct{}) {
	defer close(done)
	for {
		hdr, st, err := c.sess.AcceptProxy(ctx)
		if err != nil {
			return
		}
		ep := (*a.eps.routes.Load())[hdr.ID]
		if ep == nil {
			if ce := a.log.Check(zap.DebugLevel, "proxy stream for an unknown endpoint"); ce != nil {
				ce.Write(zap.String("bind_id", hdr.ID), zap.String("remote_addr", hdr.ClientAddr))
			}
			_ = st.Close()
			continue
		}
		fwd.wg.Add(1)
		go forwardStream(fwd.ctx, &fwd.wg, ep.fwd, st, hdr.ClientAddr)
	}
}

// forwardStream forwards one proxy stream (named for stack traces).
func forwardStream(ctx context.Context, wg *sync.WaitGroup, f *forwarder, st tunnel.Stream, clientAddr string) {
	defer wg.Done()
	f.serve(ctx, st, clientAddr)
}

// shutdown unbinds the endpoints bound on the leg (bound, bounded by
// unbindTimeout) and closes its session.
func (a *Agent) shutdown(l *leg, c *conn, bound []string) {
	ctx, cancel := context.WithTimeout(context.Background(), unbindTimeout)
	defer cancel()
	for _, id := range bound {
		if err := c.sess.Unbind(ctx, id); err != nil {
			a.log.Debug("unbind failed", zap.String("bind_id", id), zap.Error(err))
		}
	}
	c.close()
	a.log.Info("agent session closed", zap.Int("leg", l.n))
}

// wait sleeps for leg l's next backoff delay after cause; false means ctx
// ended first.
func (a *Agent) wait(ctx context.Context, l *leg, bo backoffer, cause error) bool {
	delay := bo.Next()
	online := a.onlineLegs()
	if online > 0 {
		a.log.Warn("lost a connection to an edge; serving through the others, reconnecting",
			zap.Int("leg", l.n), zap.Int("connections", online), zap.Duration("delay", delay), zap.Error(cause))
	} else {
		a.log.Warn("no session with the edge; reconnecting", zap.Duration("delay", delay), zap.Error(cause))
	}
	a.emit(Event{Kind: EventDisconnected, Err: cause, Delay: delay, Leg: l.n, Legs: online})
	return sleep(ctx, delay)
}

// onStopTunnel handles the StopTunnel of leg l's session c: the endpoint
// ends on every leg and is not re-bound; when every endpoint has ended,
// Run returns. A stop from a session the leg has left is ignored.
func (a *Agent) onStopTunnel(l *leg, c *conn, st tunnel.StopTunnel) {
	if l.current() != c {
		a.log.Debug("stop from a session the agent has left", zap.Int("leg", l.n), zap.String("bind_id", st.ID))
		return
	}
	var stopped *endpoint
	var elsewhere uint32
	all := len(a.eps.list) > 0
	for _, ep := range a.eps.list {
		ep.mu.Lock()
		if ep.bindID == st.ID && ep.state != StateStopped {
			ep.state, ep.stopMsg, ep.stopCode = StateStopped, st.Message, st.ErrorCode
			elsewhere, ep.on = ep.on&^(1<<l.n), 0
			stopped = ep
		}
		all = all && ep.state == StateStopped
		ep.mu.Unlock()
	}
	if stopped == nil {
		a.log.Debug("stop for an unknown endpoint", zap.String("bind_id", st.ID))
		return
	}
	a.eps.rebuildRoutes()
	a.unbindElsewhere(st.ID, elsewhere)
	a.log.Warn("the edge stopped an endpoint", zap.String("endpoint", stopped.spec.Name),
		zap.String("message", st.Message), zap.String("code", st.ErrorCode))
	a.emit(Event{Kind: EventEndpointStopped, Endpoint: stopped.spec.Name, Message: st.Message, Code: st.ErrorCode})
	if all {
		a.allStoppedOnce.Do(func() { close(a.allStopped) })
	}
}

// unbindElsewhere unbinds bindID on the legs in mask, in the background
// (Run waits for it), bounded by unbindTimeout.
func (a *Agent) unbindElsewhere(bindID string, mask uint32) {
	for _, o := range a.legs {
		c := o.current()
		if mask&(1<<o.n) == 0 || c == nil {
			continue
		}
		a.bg.Add(1)
		go func() {
			defer a.bg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), unbindTimeout)
			defer cancel()
			if err := c.sess.Unbind(ctx, bindID); err != nil {
				a.log.Debug("unbind failed", zap.Int("leg", o.n), zap.String("bind_id", bindID), zap.Error(err))
			}
		}()
	}
}

// accepts returns the callback that accepts an edge's Stop or Restart
// (kind EventStopRequested or EventRestartRequested) and emits it: the
// session then ends with tunnel.ErrStopRequested (Run returns nil) or
// tunnel.ErrRestartRequested (Run reconnects with a new session).
func (a *Agent) accepts(kind EventKind) func() error {
	return func() error {
		a.emit(Event{Kind: kind})
		return nil
	}
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
	for _, ep := range a.eps.list {
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
