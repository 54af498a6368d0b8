package agent

// This file holds one leg's life: a leg is one of the agent's
// connections to an edge of its region (Config.HAConnections of them). Each
// leg is an agent session of its own (Auth with the agent's InstanceID and
// the leg's LegNumber, then the binds of every endpoint with the same bind
// IDs and tokens); runLeg keeps it connected, on an edge that no other leg
// holds (edges.go), until Run ends.

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/tunnel"
)

// maxDuplicateTries bounds the immediate redials of a leg that landed on
// an edge another leg holds (one load-balanced address in front of the
// region's edges); after that it waits a backoff delay.
const maxDuplicateTries = 4

// leg is one connection of the agent to an edge.
type leg struct {
	n int // 0..HAConnections-1; Auth's LegNumber

	mu       sync.Mutex // guards the fields below
	clientID string     // the edge's ClientId of this leg's session, to resume it
	cookie   string
	c        *conn // current session; nil between sessions
	st       LegStatus
}

// forwarding owns the goroutines that forward proxy streams: they outlive
// a session, but not Run.
type forwarding struct {
	ctx context.Context
	wg  sync.WaitGroup
}

// runLeg keeps leg l connected and its endpoints bound until ctx ends or
// the agent must stop. It returns nil when ctx ends or the edge sent Stop,
// the *codes.Error of a permanent refusal, or stoppedError when the edge
// stopped every endpoint; Run then ends the other legs. Leg 0 makes the
// region choice (regionRedirect) on its first session; the other legs
// start once leg 0 has bound every endpoint.
func (a *Agent) runLeg(ctx context.Context, l *leg, fwd *forwarding) error {
	bo := a.newBackoff()
	chooseRegion := l.n == 0
	redirected := false
	duplicates := 0
	var next *conn // a session that replaced the previous one (prefer.go)
	for {
		var c *conn
		var err error
		var addr string
		if next != nil {
			c, next, addr = next, nil, l.serverAddr()
		} else {
			wake := a.edges.changed()
			t, ok := a.edges.pick(l.n, a.homeAddr())
			if !ok {
				if !a.idle(ctx, l, wake) {
					return nil
				}
				continue
			}
			addr = t.addr
			l.setConnecting(addr)
			c, err = a.connect(ctx, l, addr)
			if err == nil && chooseRegion && !redirected {
				if to := a.regionRedirect(ctx, c.resp, addr); to != "" {
					a.log.Info("reconnecting to the edge of the configured region",
						zap.String("region", a.cfg.Region), zap.String("server_addr", to))
					redirected = true
					a.setHome(to)
					c.close()
					a.edges.release(l.n, false)
					continue
				}
			}
		}
		if err == nil {
			chooseRegion = false
			a.edges.update(c.resp.Extra.RegionEdges)
			if !a.edges.connected(l.n, c.resp.Extra.EdgeID, addr) {
				c.close()
				if ce := a.log.Check(zap.DebugLevel, "reached an edge that another connection holds; trying another"); ce != nil {
					ce.Write(zap.Int("leg", l.n), zap.String("edge_id", c.resp.Extra.EdgeID), zap.String("server_addr", addr))
				}
				if duplicates++; duplicates < maxDuplicateTries {
					continue
				}
				duplicates = 0
				if !sleep(ctx, bo.Next()) {
					return nil
				}
				continue
			}
			duplicates = 0
			a.legStarted(l, c, addr)
			if err = a.bindLeg(ctx, l, c, false); err != nil {
				a.legEnded(l)
				c.close()
			}
		}
		if err != nil {
			a.edges.release(l.n, true)
			if ctx.Err() != nil {
				return nil
			}
			if isPermanent(err) || tunnel.IsPermanent(err) {
				return userError(err)
			}
			if !a.wait(ctx, l, bo, err) {
				return nil
			}
			continue
		}

		bo.Reset()
		a.legOnline(l, c, addr)
		a.readyOnce.Do(func() { close(a.ready) })
		replaced, end := a.serve(ctx, l, c, addr, fwd)
		bound := a.legEnded(l)
		switch {
		case replaced != nil:
			c.close()
			a.log.Info("the preferred transport works again; moved the session to it",
				zap.Int("leg", l.n), zap.String("transport", replaced.transport), zap.String("from", c.transport))
			next = replaced
			continue
		case ctx.Err() != nil:
			a.shutdown(l, c, bound)
			a.edges.release(l.n, false)
			return nil
		case errors.Is(end, tunnel.ErrStopRequested):
			c.close()
			a.log.Info("the edge asked the agent to stop", zap.Int("leg", l.n))
			return nil
		case errors.Is(end, tunnel.ErrRestartRequested):
			c.close()
			a.edges.release(l.n, false)
			a.log.Info("the edge asked the agent to restart; reconnecting with a new session", zap.Int("leg", l.n))
			l.forgetSession()
			continue
		case errors.Is(end, errAllStopped):
			a.shutdown(l, c, bound)
			return a.stoppedError()
		case errors.Is(end, tunnel.ErrGoingAway):
			// The edge drains for a restart: a sibling (or its successor)
			// is expected at once, so reconnect without a delay; the
			// draining edge counts as failed, so the leg moves to another
			// edge when the region has one. The backoff (reset above)
			// paces the attempts after a failure.
			c.close()
			a.edges.release(l.n, true)
			a.log.Info("the edge is going away; reconnecting now", zap.Int("leg", l.n), zap.Error(end))
			a.emit(Event{Kind: EventDisconnected, Err: end, Leg: l.n, Legs: a.onlineLegs()})
			continue
		}
		c.close()
		a.edges.release(l.n, true)
		if !a.wait(ctx, l, bo, end) {
			return nil
		}
	}
}

// idle parks a leg that has no edge of its own (the region has fewer live
// edges than legs, or its edges do not list their region) until the edges
// change (wake, from before the pick) or ctx ends; false means ctx ended.
// The first time, it says why at info level.
func (a *Agent) idle(ctx context.Context, l *leg, wake <-chan struct{}) bool {
	l.setIdle()
	a.fewerOnce.Do(func() {
		if a.edges.target() == 1 && !a.edges.listed() {
			a.log.Info("the edge does not list its region's edges; keeping one connection",
				zap.Int("ha_connections", a.cfg.HAConnections))
			return
		}
		a.log.Info("the region has fewer live edges than HA connections; keeping one connection per edge",
			zap.Int("ha_connections", a.cfg.HAConnections), zap.Int("connections", a.edges.target()))
	})
	select {
	case <-ctx.Done():
		return false
	case <-wake:
		return true
	}
}

// sleep waits d; false means ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// refreshRegion asks an edge of an online leg for the region's live edges
// every regionRefresh (SrvInfo), so that legs without an edge of their own
// learn of edges that joined; it returns when ctx ends.
func (a *Agent) refreshRegion(ctx context.Context) {
	if a.regionRefresh <= 0 {
		return
	}
	t := time.NewTicker(a.regionRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, l := range a.legs {
			c := l.current()
			if c == nil {
				continue
			}
			ictx, cancel := context.WithTimeout(ctx, a.cfg.ConnectTimeout)
			info, err := c.sess.SrvInfo(ictx)
			cancel()
			if err != nil {
				if ce := a.log.Check(zap.DebugLevel, "asking the edge for its region's edges failed"); ce != nil {
					ce.Write(zap.Int("leg", l.n), zap.Error(err))
				}
				continue
			}
			a.edges.update(info.RegionEdges)
			break
		}
	}
}

// legStarted records an authenticated session of leg l.
func (a *Agent) legStarted(l *leg, c *conn, addr string) {
	resp := c.resp
	l.mu.Lock()
	l.clientID = resp.ClientID
	if resp.Extra.Cookie != "" {
		l.cookie = resp.Extra.Cookie
	}
	l.c = c
	l.st.SessionID = resp.Extra.AgentSessionID
	l.st.ClientID = resp.ClientID
	l.st.EdgeID = resp.Extra.EdgeID
	l.st.Region = resp.Extra.Region
	l.st.Transport = c.transport
	l.st.ServerAddr = addr
	l.st.ConnectedAt = time.Now()
	l.mu.Unlock()
	a.log.Info("agent session established", zap.Int("leg", l.n),
		zap.String("session_id", resp.Extra.AgentSessionID), zap.String("edge_id", resp.Extra.EdgeID),
		zap.String("region", resp.Extra.Region), zap.String("transport", c.transport), zap.String("server_addr", addr))
	if l.n != 0 {
		return
	}
	if resp.Extra.Banner != "" {
		a.log.Info(resp.Extra.Banner)
	}
	if d := resp.Extra.DeprecationWarning; d != nil {
		a.log.Warn("this agent version is deprecated", zap.String("message", d.Msg), zap.String("next_min", d.NextMin))
	}
}

// legOnline marks leg l online once its endpoints are bound, says which
// edges the agent holds, and emits EventConnected.
func (a *Agent) legOnline(l *leg, c *conn, addr string) {
	l.mu.Lock()
	l.st.State = SessionOnline
	l.mu.Unlock()
	a.mu.Lock()
	a.everOnline = true
	a.mu.Unlock()
	online := a.onlineLegs()
	if a.cfg.HAConnections > 1 {
		a.log.Info("connections to the region's edges", zap.Strings("edges", a.edges.held()),
			zap.Int("connections", online), zap.Int("ha_connections", a.cfg.HAConnections))
	}
	a.emit(Event{Kind: EventConnected, Leg: l.n, Legs: online, EdgeID: c.resp.Extra.EdgeID,
		ServerAddr: addr, SessionID: c.resp.Extra.AgentSessionID})
}

// legEnded marks leg l's session gone and the endpoints it alone served
// reconnecting; it returns the bind IDs that were bound on it.
func (a *Agent) legEnded(l *leg) []string {
	l.mu.Lock()
	l.c = nil
	l.st.State = SessionReconnecting
	l.st.Transport = ""
	l.mu.Unlock()
	var bound []string
	orphaned := false
	bit := uint32(1) << l.n
	for _, ep := range a.eps.list {
		ep.mu.Lock()
		if ep.on&bit != 0 {
			ep.on &^= bit
			bound = append(bound, ep.bindID)
			orphaned = orphaned || ep.on == 0
		}
		if ep.on == 0 && ep.state == StateOnline {
			ep.state = StateReconnecting
		}
		ep.mu.Unlock()
	}
	if orphaned {
		a.eps.orphans.fire()
	}
	return bound
}

// wakeup is a broadcast: wait returns a channel that the next fire closes.
type wakeup struct {
	mu sync.Mutex
	ch chan struct{}
}

func (w *wakeup) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *wakeup) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// onlineLegs counts the legs whose session is online.
func (a *Agent) onlineLegs() int {
	n := 0
	for _, l := range a.legs {
		l.mu.Lock()
		if l.st.State == SessionOnline {
			n++
		}
		l.mu.Unlock()
	}
	return n
}

// current returns the leg's session; nil between sessions.
func (l *leg) current() *conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
}

// serverAddr returns the address of the leg's last session.
func (l *leg) serverAddr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.ServerAddr
}

func (l *leg) setConnecting(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st.SessionID == "" {
		l.st.State = SessionConnecting
	} else {
		l.st.State = SessionReconnecting
	}
	l.st.ServerAddr = addr
}

func (l *leg) setIdle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.State = LegIdle
	l.st.ServerAddr, l.st.EdgeID, l.st.Transport = "", "", ""
}

// forgetSession drops ClientId and Cookie so the leg's next Auth starts a
// new session (after Restart). Bind tokens are kept: URLs stay.
func (l *leg) forgetSession() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clientID, l.cookie = "", ""
}

// status returns the leg's status with its session's latest latency.
func (l *leg) status() LegStatus {
	l.mu.Lock()
	st, c := l.st, l.c
	l.mu.Unlock()
	if c != nil {
		st.Latency = c.sess.Latency()
	}
	return st
}
