package edge

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
)

// rawConns tracks the public connections of TCP and TLS endpoints while
// they are piped to an agent, so that Shutdown can let them finish and
// close the rest when its deadline passes.
type rawConns struct {
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool
	idle    chan struct{} // closed when closing and conns is empty; nil before
}

func newRawConns() *rawConns { return &rawConns{conns: make(map[net.Conn]struct{})} }

// add tracks c; false once draining began (the caller refuses c).
func (r *rawConns) add(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

// remove forgets c, which has ended.
func (r *rawConns) remove(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
	if r.closing && len(r.conns) == 0 && r.idle != nil {
		close(r.idle)
		r.idle = nil
	}
}

// count returns the number of connections in flight.
func (r *rawConns) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// drain refuses new connections and waits until every tracked one ended
// or ctx ends; then it closes the rest and returns how many it closed.
func (r *rawConns) drain(ctx context.Context) int {
	r.mu.Lock()
	r.closing = true
	if len(r.conns) == 0 {
		r.mu.Unlock()
		return 0
	}
	idle := make(chan struct{})
	r.idle = idle
	r.mu.Unlock()
	select {
	case <-idle:
		return 0
	case <-ctx.Done():
	}
	r.mu.Lock()
	left := make([]net.Conn, 0, len(r.conns))
	for c := range r.conns {
		left = append(left, c)
	}
	r.mu.Unlock()
	for _, c := range left {
		c.Close()
	}
	return len(left)
}

// ErrShutdown is returned by a second call of Edge.Shutdown, after the
// first one has finished.
var ErrShutdown = errors.New("edge: already shut down")

// sessionCloseGrace bounds how long Shutdown waits for closed agent
// sessions to be gone, so that the reason reaches the agents before the
// process exits; at least drainFloor when the drain deadline has passed.
const (
	sessionCloseGrace = 2 * time.Second
	drainFloor        = 250 * time.Millisecond
)

// Shutdown drains the edge and returns when it is done:
//
//  1. It stops accepting: the agent (TCP), public HTTPS and HTTP listeners,
//     those of TCP endpoints and the SSH ingress's (Draining) close, so new
//     connections are refused at once (a load balancer or an agent tries
//     another edge); QUIC agents
//     that connect now are closed with codes.SessionStopped at once (the
//     QUIC listener stays open while drain lasts: closing it would close
//     the sessions whose requests are in flight).
//  2. It drains until ctx ends: HTTP requests in flight finish
//     (httpproxy.Proxy.Shutdown: Connection: close on HTTP/1.1, GOAWAY on
//     HTTP/2) and TCP/TLS endpoint connections run to their end; what is
//     left when ctx ends is closed.
//  3. It closes every agent session with a going-away message carrying
//     codes.SessionStopped ("the edge is shutting down",
//     tunnel.ServerSession.GoAway), which makes agents reconnect at once,
//     and waits up to sessionCloseGrace for the sessions to be gone.
//  4. Serve then returns.
//
// The SSH ingress (sshserver.Server) watches Draining: its listener closes
// at step 1 with the edge's, its sessions keep serving requests in flight
// through step 2, and it closes them (sshserver.Server.Shutdown, to be
// called after this) as step 3 closes agent sessions. It returns ctx's
// error when the drain was cut short, ErrShutdown when called again.
func (e *Edge) Shutdown(ctx context.Context) error {
	first := false
	e.stopOnce.Do(func() { close(e.stopping); first = true })
	if !first {
		<-e.stopped
		return ErrShutdown
	}
	defer close(e.stopped)
	start := time.Now()
	e.closeAcceptors()
	sessions := e.sessions.agentSessions()
	e.log.Info("draining: no new connections or agent sessions; waiting for requests in flight",
		zap.Int64("http_connections", e.public.httpConns.Load()),
		zap.Int("tcp_tls_connections", e.public.raw.count()),
		zap.Int("agent_sessions", len(sessions)))

	var (
		wg             sync.WaitGroup
		httpErr, rdErr error
		rawLeft        int
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		httpErr = e.proxy.Shutdown(ctx)
	}()
	go func() {
		defer wg.Done()
		rawLeft = e.public.raw.drain(ctx)
	}()
	if e.httpSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rdErr = e.httpSrv.shutdown(ctx)
		}()
	}
	wg.Wait()
	drained := time.Since(start)

	reason := codes.NewError(codes.SessionStopped, "The edge is shutting down; the agent will reconnect.")
	sessions = e.sessions.agentSessions()
	// Each GoAway lingers until its agent has read the message and hung up
	// (at most a second): send them all at once.
	for _, s := range sessions {
		go func() { _ = s.ts.GoAway(reason.Error()) }() // agents reconnect at once (docs/agent-protocol.md#restarts)
	}
	grace := sessionCloseGrace
	if dl, ok := ctx.Deadline(); ok {
		grace = min(grace, max(time.Until(dl), drainFloor))
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
wait:
	for _, s := range sessions {
		select {
		case <-s.ts.Done():
		case <-timer.C:
			break wait
		}
	}
	e.snap.flush() // the last applied snapshot reaches the disk
	if ctx.Err() != nil {
		e.log.Warn("drain cut short by the shutdown timeout: closed what was left",
			zap.Duration("drain_time", drained), zap.Int("tcp_tls_connections_closed", rawLeft),
			zap.Int("agent_sessions_closed", len(sessions)), zap.Duration("shutdown_time", time.Since(start)))
	} else {
		e.log.Info("drained", zap.Duration("drain_time", drained),
			zap.Int("agent_sessions_closed", len(sessions)), zap.Duration("shutdown_time", time.Since(start)))
	}
	if errors.Is(httpErr, context.DeadlineExceeded) || errors.Is(httpErr, context.Canceled) {
		httpErr = nil // said above
	}
	if errors.Is(rdErr, context.DeadlineExceeded) || errors.Is(rdErr, context.Canceled) {
		rdErr = nil
	}
	if err := errors.Join(httpErr, rdErr); err != nil {
		return err
	}
	return ctx.Err()
}

// Draining returns a channel that is closed when Shutdown begins: ingresses
// outside the edge (sshserver) stop accepting then, as the edge's own
// listeners do (step 1 of Shutdown).
func (e *Edge) Draining() <-chan struct{} { return e.stopping }

// isClosed reports whether ch is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// closeAcceptors closes the listeners that take new work, except the QUIC
// listener (see Shutdown).
func (e *Edge) closeAcceptors() {
	for _, ln := range []net.Listener{e.agentLn, e.httpsLn, e.httpLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if e.tcp != nil {
		e.tcp.closeAll()
	}
}
