package edge

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// RouteLeases is the control plane's arbitration of names across the
// edges of a region (docs/route-ownership.md): edge/controlclient.Client
// over the edge API, or the control plane itself in `tollgated dev`. An
// error means the control plane did not decide (unreachable); a refusal is
// an answer. Methods must return when ctx ends.
type RouteLeases interface {
	// ClaimRoute records a new holder of a route, or refuses it.
	ClaimRoute(ctx context.Context, c snapshot.RouteClaim) (snapshot.RouteClaimAnswer, error)
	// ReleaseRoutes drops holders the edge no longer has.
	ReleaseRoutes(ctx context.Context, edgeID string, ids []string) error
	// SyncRoutes replaces the edge's holders with its complete list and
	// returns those it could not record.
	SyncRoutes(ctx context.Context, s snapshot.RouteSync) (snapshot.RouteSyncAnswer, error)
}

// claimTimeout bounds a bind's wait for the control plane's decision;
// past it the edge decides from its cached route table.
const claimTimeout = 5 * time.Second

// leases keeps this edge's holders in the region's route table: it claims
// each bind's route before the bind is installed, releases it when the
// endpoint goes, and reconciles with a sync when the edge starts and after
// the control plane was unreachable. It also watches the route table for
// holders of this edge that another edge's takeover removed, and stops
// their endpoints. A nil RouteLeases (a lone edge) makes every method a
// no-op.
type leases struct {
	rl     RouteLeases
	edgeID string
	region string
	routes *RouteTable
	log    *zap.Logger

	mu       sync.Mutex
	held     map[string]*heldRoute // endpoint ID -> its claim
	releases []string              // endpoint IDs to release at the next flush
	dirty    bool                  // a sync is needed
	wake     chan struct{}         // buffered 1: run has work
}

// heldRoute is an endpoint of this edge whose holder is (or is to be) in
// the route table.
type heldRoute struct {
	ep  *Endpoint
	rev uint64 // the revision that recorded it; 0 = not recorded yet
}

func newLeases(rl RouteLeases, edgeID, region string, routes *RouteTable, log *zap.Logger) *leases {
	return &leases{rl: rl, edgeID: edgeID, region: region, routes: routes, log: log,
		held: make(map[string]*heldRoute), wake: make(chan struct{}, 1), dirty: true}
}

func (l *leases) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// claim decides a new bind region-wide before ep is installed: the control
// plane's answer, or, when it cannot be reached within claimTimeout, the
// same rule applied to the cached route table (the bind is then recorded
// by the next sync). takeover says the bind's token proved the account
// held the name. On success ep releases its holder when it is unbound.
func (l *leases) claim(ctx context.Context, ep *Endpoint, takeover bool) *codes.Error {
	if l.rl == nil {
		return nil
	}
	h := ep.holder(l.edgeID, l.region)
	cctx, cancel := context.WithTimeout(ctx, claimTimeout)
	ans, err := l.rl.ClaimRoute(cctx, snapshot.RouteClaim{Holder: h, Takeover: takeover})
	cancel()
	var rev uint64
	switch {
	case err != nil:
		if conflict := l.routes.conflict(&h, takeover); conflict != nil {
			return bindTakenElsewhere(ep, conflict)
		}
		l.log.Warn("the control plane cannot decide the bind; decided from the cached route table, to be recorded when it answers",
			zap.String("endpoint", ep.url), zap.Error(err))
	case !ans.Granted:
		if ans.Conflict == nil {
			ans.Conflict = &snapshot.RouteHolder{}
		}
		return bindTakenElsewhere(ep, ans.Conflict)
	default:
		rev = ans.Revision
		if rev == 0 {
			rev = 1
		}
	}
	l.mu.Lock()
	l.held[ep.id] = &heldRoute{ep: ep, rev: rev}
	if rev == 0 {
		l.dirty = true
	}
	l.mu.Unlock()
	if rev == 0 {
		l.signal()
	}
	prev := ep.release
	ep.release = sync.OnceFunc(func() {
		if prev != nil {
			prev()
		}
		l.release(ep)
	})
	return nil
}

// bindTakenElsewhere is the refusal of a bind whose name another session
// holds on another edge of the region, saying what to do.
func bindTakenElsewhere(ep *Endpoint, conflict *snapshot.RouteHolder) *codes.Error {
	if conflict.AccountID != "" && conflict.AccountID != ep.accountID {
		return codes.NewError(codes.BindTaken, "%s is bound by another account in this region. Choose another name, or reserve one for your account.", ep.url)
	}
	if ep.pooling && !conflict.Pooling {
		return codes.NewError(codes.BindTaken, "%s is already bound by another agent of your account that did not ask for pooling. Restart that agent with --pooling-enabled (pooling_enabled in the SDKs) so that both share it, stop it, or choose another name.", ep.url)
	}
	return codes.NewError(codes.BindTaken, "%s is already bound by another agent session of your account on an edge of this region. Stop that agent, start every agent of the URL with --pooling-enabled (pooling_enabled in the SDKs) to share it, or choose another name.", ep.url)
}

// release forgets ep's holder and has it released at the next flush.
func (l *leases) release(ep *Endpoint) {
	l.mu.Lock()
	if _, ok := l.held[ep.id]; !ok {
		l.mu.Unlock()
		return
	}
	delete(l.held, ep.id)
	l.releases = append(l.releases, ep.id)
	l.mu.Unlock()
	l.signal()
}

// observe checks a new snapshot for holders of this edge that are gone
// from the route table after they were recorded: another edge took the
// name over (the endpoint stops with TG_334), or the control plane dropped
// them (this edge was taken for gone: the next sync records them again).
// It costs O(holders the delta deleted), O(held) for a whole snapshot.
func (l *leases) observe(snap *snapshot.Snapshot) {
	if l.rl == nil {
		return
	}
	var check []string
	l.mu.Lock()
	if d := snap.Delta(); d != nil {
		if d.RouteHolders != nil {
			for _, id := range d.RouteHolders.Delete {
				if _, ok := l.held[id]; ok {
					check = append(check, id)
				}
			}
		}
	} else {
		for id := range l.held {
			check = append(check, id)
		}
	}
	var stop []*Endpoint
	for _, id := range check {
		hr := l.held[id]
		if hr.rev == 0 || snap.Revision() < hr.rev {
			continue
		}
		if _, ok := snap.RouteHolder(id); ok {
			continue
		}
		h := hr.ep.holder(l.edgeID, l.region)
		if l.routes.conflict(&h, false) != nil {
			delete(l.held, id)
			stop = append(stop, hr.ep)
			continue
		}
		hr.rev, l.dirty = 0, true
	}
	resync := l.dirty
	l.mu.Unlock()
	for _, ep := range stop {
		l.log.Info("endpoint taken over on another edge of the region", zap.String("endpoint", ep.url), zap.String("endpoint_id", ep.id))
		ep.session.DropEndpoint(ep, codes.BindTaken, "This endpoint was taken over by a newer session of the same agent on another edge of the region.")
	}
	if resync {
		l.signal()
	}
}

// run flushes releases and syncs until ctx ends: a sync first (which drops
// what a previous process of this edge left in the route table), then
// whenever a bind could not be recorded, retrying with backoff. At the end
// it drops every holder of this edge (the edge is going away).
func (l *leases) run(ctx context.Context) {
	if l.rl == nil {
		return
	}
	bo := newLeaseBackoff()
	var retry <-chan time.Time
	for {
		if ok := l.flush(ctx); ok {
			bo.Reset()
			retry = nil
		} else if retry == nil {
			retry = time.After(bo.Next())
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			if _, err := l.rl.SyncRoutes(fctx, snapshot.RouteSync{EdgeID: l.edgeID, Region: l.region}); err != nil {
				l.log.Info("could not drop this edge's routes at shutdown; the control plane drops them when the edge is gone", zap.Error(err))
			}
			cancel()
			return
		case <-l.wake:
		case <-retry:
			retry = nil
		}
	}
}

// newLeaseBackoff returns the retry delays of syncs: 250ms doubling to 5s.
func newLeaseBackoff() *tunnel.Backoff {
	return &tunnel.Backoff{Min: 250 * time.Millisecond, Max: 5 * time.Second, Jitter: -1}
}

// flush sends pending releases, and a sync when one is needed. It reports
// whether everything went through.
func (l *leases) flush(ctx context.Context) bool {
	l.mu.Lock()
	rel := l.releases
	l.releases = nil
	dirty := l.dirty
	l.mu.Unlock()
	ok := true
	if len(rel) > 0 && !dirty {
		rctx, cancel := context.WithTimeout(ctx, claimTimeout)
		if err := l.rl.ReleaseRoutes(rctx, l.edgeID, rel); err != nil {
			// The sync that follows drops them: it lists only what is held.
			if ctx.Err() == nil {
				l.log.Warn("could not release routes; syncing instead", zap.Error(err))
			}
			l.mu.Lock()
			l.dirty, dirty = true, true
			l.mu.Unlock()
		}
		cancel()
	}
	if dirty {
		ok = l.sync(ctx)
	}
	return ok
}

// sync sends the complete list of this edge's holders; the ones the
// control plane could not record (another session won the name while it
// was unreachable) stop with TG_334.
func (l *leases) sync(ctx context.Context) bool {
	l.mu.Lock()
	l.dirty = false
	list := make([]snapshot.RouteHolder, 0, len(l.held))
	for _, hr := range l.held {
		list = append(list, hr.ep.holder(l.edgeID, l.region))
	}
	l.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, 2*claimTimeout)
	ans, err := l.rl.SyncRoutes(sctx, snapshot.RouteSync{EdgeID: l.edgeID, Region: l.region, Holders: list})
	cancel()
	if err != nil {
		l.mu.Lock()
		l.dirty = true
		l.mu.Unlock()
		if ctx.Err() == nil {
			l.log.Warn("could not sync this edge's routes with the control plane; retrying", zap.Error(err))
		}
		return false
	}
	conflicts := make(map[string]bool, len(ans.Conflicts))
	for _, id := range ans.Conflicts {
		conflicts[id] = true
	}
	var stop []*Endpoint
	l.mu.Lock()
	for _, h := range list {
		hr, ok := l.held[h.ID]
		if !ok {
			continue // released meanwhile; the next release drops it
		}
		if conflicts[h.ID] {
			delete(l.held, h.ID)
			stop = append(stop, hr.ep)
		} else if hr.rev == 0 {
			hr.rev = ans.Revision
		}
	}
	l.mu.Unlock()
	for _, ep := range stop {
		l.log.Warn("endpoint closed: another session bound its name in the region while the control plane was unreachable",
			zap.String("endpoint", ep.url), zap.String("endpoint_id", ep.id), zap.String("code", string(codes.BindTaken)))
		ep.session.DropEndpoint(ep, codes.BindTaken, "Another agent session bound this name in the region while this edge could not reach its control plane; this endpoint was bound later and is closed.")
	}
	return true
}
