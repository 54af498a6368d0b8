package edge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// A pool member whose agent died without closing its connection (kill -9
// of a QUIC agent, a cut network path) keeps its session until the
// heartbeat watchdog gives up on it (interval + tolerance, 25 s by
// default), and opening a stream to it succeeds, since neither muxado nor
// QUIC waits for the peer to open one: what the edge then sends goes
// nowhere. So a member of a pool (docs/route-ownership.md#pooling) shows
// its agent alive before a public request or connection goes to it:
//
//   - pick skips members taken out of rotation, and members whose session
//     ended;
//   - a stream to a member opens only once something arrived from its
//     agent after the open began (tunnel.ServerSession.AwaitLife: the
//     traffic of a busy session at once, the echo of a heartbeat beat sent
//     for it on an idle one: one round trip). A member that shows nothing
//     within poolProbeTimeout is taken out of rotation, and the request or
//     connection, none of whose bytes went anywhere, goes to another member
//     (httpproxy.ErrEndpointDown; openRaw for TCP and TLS);
//   - a member out of rotation comes back as soon as anything arrives from
//     its agent (its heartbeats, an answer to one of ours); if nothing
//     does, its session ends at the heartbeat timeout and it leaves the
//     pool.
//
// An endpoint alone at its key is never probed: there is nowhere else to
// send the request.

// poolProbeTimeout bounds the wait for a pool member's agent to show
// itself alive before a request or connection goes to another member.
const poolProbeTimeout = 3 * time.Second

// maxMemberTries bounds the members one TCP or TLS connection is offered
// to (httpproxy has the same bound for requests).
const maxMemberTries = 3

// errMemberDown is the error of a stream that could not be opened to a
// pool member because its agent is not answering; another member may
// take the request or connection.
var errMemberDown = errors.New("the agent of this pool member is not answering")

// memberHealth is implemented by an endpoint owner whose liveness the
// edge checks before it sends a pool member work (agentSession). Owners
// without it (the SSH server's sessions) are always taken for alive.
type memberHealth interface {
	// available reports whether the owner may get new work: its session
	// has not ended, and it is in rotation.
	available() bool
	// confirmAlive returns nil once the owner's agent has shown itself
	// alive after the call; else it takes the owner out of rotation and
	// returns an error wrapping errMemberDown.
	confirmAlive(ctx context.Context) error
}

var _ memberHealth = (*agentSession)(nil)

// available implements memberHealth. A member out of rotation is back in
// once anything arrived from its agent since it was taken out.
func (s *agentSession) available() bool {
	select {
	case <-s.ts.Done():
		return false
	default:
	}
	if !s.down.Load() {
		return true
	}
	if n, ok := s.ts.Heard(); ok && n != s.downHeard.Load() {
		if s.down.CompareAndSwap(true, false) {
			s.log.Info("pool member back in rotation: its agent answered")
		}
		return true
	}
	return false
}

// confirmAlive implements memberHealth: a member out of rotation fails at
// once; otherwise it waits up to poolProbeTimeout for the agent. A ctx
// that ends first (the client went away) says nothing about the agent.
func (s *agentSession) confirmAlive(ctx context.Context) error {
	if !s.available() {
		return errMemberDown
	}
	pctx := ctx
	ctx, cancel := context.WithTimeout(ctx, poolProbeTimeout)
	defer cancel()
	err := s.ts.AwaitLife(ctx)
	if err == nil || pctx.Err() != nil {
		return err
	}
	n, _ := s.ts.Heard()
	s.downHeard.Store(n)
	if !s.down.Swap(true) {
		s.edge.metrics.poolMembersDown.Add(1)
		s.log.Warn("pool member out of rotation: its agent did not answer", zap.Duration("waited", poolProbeTimeout), zap.Error(err))
	}
	return fmt.Errorf("%w: %w", errMemberDown, err)
}

// available reports whether ep may get new work (memberHealth).
func (ep *Endpoint) available() bool {
	h, ok := ep.session.(memberHealth)
	return !ok || h.available()
}

// PoolMembersDown returns how many times a pool member was taken out of
// rotation because its agent did not answer
// (tollgate_edge_pool_members_out_of_rotation_total).
func (m *Metrics) PoolMembersDown() int64 { return m.e.metrics.poolMembersDown.Load() }
