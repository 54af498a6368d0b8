package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/tunnel"
)

// AcceptLoop accepts connections on ln and hands each to handle on its
// own goroutine, until ln closes or ctx ends (nil then). A temporary
// accept error (a net.Error that times out, such as EMFILE) is retried
// after 50ms; any other error is returned.
func AcceptLoop(ctx context.Context, ln net.Listener, handle func(net.Conn)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		go handle(c)
	}
}

// acceptAgentsTCP accepts agents over TLS on TCP, each a muxado session.
func (e *Edge) acceptAgentsTCP(ctx context.Context) error {
	return AcceptLoop(ctx, e.agentLn, func(c net.Conn) { e.handleAgentTCP(ctx, c) })
}

func (e *Edge) handleAgentTCP(ctx context.Context, c net.Conn) {
	tc := tls.Server(tunnel.BatchRecords(c), e.deps.AgentTLS)
	hctx, cancel := context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		e.log.Debug("agent TLS handshake failed", zap.String("remote_addr", c.RemoteAddr().String()), zap.Error(err))
		c.Close()
		return
	}
	e.startAgentSession(ctx, tunnel.NewMuxadoMux(tc, true, tunnel.MuxConfig{}))
}

// acceptAgentsQUIC accepts agents over QUIC.
func (e *Edge) acceptAgentsQUIC(ctx context.Context) error {
	for {
		mux, err := e.quicLn.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) || errors.Is(err, tunnel.ErrClosed) {
				return nil
			}
			e.log.Debug("QUIC accept failed", zap.Error(err))
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		e.startAgentSession(ctx, mux)
	}
}

// errDraining closes an agent connection that arrives while the edge drains.
var errDraining = codes.NewError(codes.SessionStopped, "The edge is shutting down; the agent will reconnect.")

// startAgentSession serves one agent connection until it ends, without a
// goroutine of its own while it idles (tunnel.ServerSession.Start): with
// thousands of agents, a goroutine each would be a tenth of the memory.
func (e *Edge) startAgentSession(ctx context.Context, mux tunnel.Mux) {
	if isClosed(e.stopping) {
		// The QUIC listener stays open while the edge drains (closing it
		// would close every QUIC session), and a TLS handshake may end
		// after the TCP listener closed: a new agent is told to go.
		_ = mux.CloseWithReason(errDraining.Error())
		return
	}
	s := newAgentSession(e, mux.RemoteAddr(), mux.Transport())
	s.ts = tunnel.NewServerSession(mux, s, tunnel.ServerConfig{
		Logger:                s.log,
		MinHeartbeatInterval:  e.cfg.MinHeartbeatInterval,
		MinHeartbeatTolerance: e.cfg.MinHeartbeatInterval,
	})
	e.sessions.add(s)
	e.metrics.sessions.Add(1)
	_ = s.ts.Start(ctx, func(err error) { e.agentSessionEnded(s, err) })
}

// agentSessionEnded forgets a session whose tunnel session ended.
func (e *Edge) agentSessionEnded(s *agentSession, err error) {
	e.sessions.remove(s)
	e.metrics.sessions.Add(-1)
	s.ended(err)
}
