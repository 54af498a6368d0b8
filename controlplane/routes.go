package controlplane

import (
	"context"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/snapshot"
)

// Route leases: the control plane arbitrates which account holds each
// public name and TCP address of a region (store.ClaimRoute has the rule).
// Edges in other processes call these through the edge API
// (/edge/v1/routes...); `tollgated dev` gives its edge the Core itself.
// An edge counts as live here as it does in the region list: it reported
// within three report intervals, or it is this process's edge.

// liveness returns who counts as a live edge now.
func (g *Registry) liveness() store.EdgeLiveness {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := store.EdgeLiveness{Since: cutoff()}
	for id := range g.local {
		l.Local = append(l.Local, id)
	}
	return l
}

// ClaimRoute decides and records a new holder of a route for the edge that
// asks (store.ClaimRoute). Errors are the store's.
func (cp *Core) ClaimRoute(ctx context.Context, c snapshot.RouteClaim) (snapshot.RouteClaimAnswer, error) {
	return cp.store.ClaimRoute(ctx, c, cp.reg.liveness())
}

// ReleaseRoutes deletes holders of edge edgeID that it no longer has.
func (cp *Core) ReleaseRoutes(ctx context.Context, edgeID string, ids []string) error {
	_, err := cp.store.ReleaseRoutes(ctx, edgeID, ids)
	return err
}

// SyncRoutes makes s.Holders the edge's complete list of holders and
// returns the ones another holder won meanwhile (store.SyncRoutes).
func (cp *Core) SyncRoutes(ctx context.Context, s snapshot.RouteSync) (snapshot.RouteSyncAnswer, error) {
	return cp.store.SyncRoutes(ctx, s, cp.reg.liveness())
}
