package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/tollgate/tollgate/snapshot"
)

// The region route table (migration 00007_route_holders.sql): which agent
// sessions on which edges hold each public name and TCP address. Edges ask
// the control plane to record a holder when an agent binds (ClaimRoute) and
// to drop it when the endpoint goes (ReleaseRoutes); the control plane
// decides with the ownership rule (decideRoute). Every write bumps the
// store revision, which serialises the rule's read-then-insert across all
// control-plane processes on one database, and the change-log trigger
// carries each holder to every edge's snapshot. Holders are operational
// state: no audit event. A route key is a name as the edge routes it: a
// wildcard endpoint's key is the literal "*.example.com", a different name
// from every specific name under it, so their holders never conflict here
// (docs/wildcard-endpoints.md#route-keys); which one serves a request is
// the edge's most-specific-match rule.

// kindRouteHolder is the change-log kind of route_holders rows.
const kindRouteHolder = "route_holder"

// routeActor is the actor of route-table writes (no audit event names it).
var routeActor = Actor{PrincipalID: "system"}

// EdgeLiveness says which edges count as live for the ownership rule: an
// edge that reported at or after Since (edge_reports), an edge of Local
// (the control plane's in-process edge), the edge that asks, and an edge
// whose holder was recorded at or after Since (an edge that has just
// started and not reported yet). Holders on other edges are gone: they
// never block a bind, and the next write of their route deletes them.
type EdgeLiveness struct {
	Since time.Time
	Local []string
}

// routeRow is a holder as read for the rule, with what says whether its
// edge is live.
type routeRow struct {
	snapshot.RouteHolder
	created  int64
	lastSeen int64
}

func (l EdgeLiveness) live(r *routeRow, asking string) bool {
	since := l.Since.UnixMicro()
	return r.EdgeID == asking || slices.Contains(l.Local, r.EdgeID) || r.lastSeen >= since || r.created >= since
}

// ClaimRoute decides a new bind of c.Holder (region, proto, key, account,
// edge, session, instance, pooling) and records it when allowed. The rule,
// over the live holders of the same region and key on other edges (the
// asking edge arbitrates its own endpoints itself):
//   - no holder: granted;
//   - a holder of another account: refused, whatever the bind presents;
//   - every holder joins c (RouteHolder.Joins: legs of one agent, or a
//     pool): granted as one more holder;
//   - c.Takeover (the edge verified the bind token for the account, proto
//     and key): the holders are deleted (Displaced) and c granted;
//   - otherwise refused, with the first holder as Conflict.
//
// Holders on gone edges are deleted on a grant. Claiming an ID that is
// already recorded is granted again without a change (an edge's retry).
// Errors are the store's only.
func (s *Store) ClaimRoute(ctx context.Context, c snapshot.RouteClaim, live EdgeLiveness) (snapshot.RouteClaimAnswer, error) {
	var ans snapshot.RouteClaimAnswer
	rev, err := s.update(ctx, routeActor, func(ctx context.Context, t *tx) error {
		var err error
		ans, err = decideRoute(ctx, t, c, live)
		return err
	})
	if err != nil {
		return snapshot.RouteClaimAnswer{}, fmt.Errorf("claiming route %s %s: %w", c.Holder.Proto, c.Holder.Key, err)
	}
	if ans.Granted {
		if rev == 0 { // granted before: the holder is in the current revision
			if rev, err = s.Revision(ctx); err != nil {
				return snapshot.RouteClaimAnswer{}, err
			}
		}
		ans.Revision = rev
	}
	return ans, nil
}

// decideRoute applies the ownership rule to c in t (see ClaimRoute) and
// writes what it decided.
func decideRoute(ctx context.Context, t *tx, c snapshot.RouteClaim, live EdgeLiveness) (snapshot.RouteClaimAnswer, error) {
	h := c.Holder
	rows, err := readRouteRows(ctx, t, `WHERE h.region = $1 AND h.route_key = $2`, h.Region, h.Key)
	if err != nil {
		return snapshot.RouteClaimAnswer{}, err
	}
	var others []snapshot.RouteHolder
	var dead []string
	for i := range rows {
		r := &rows[i]
		switch {
		case r.ID == h.ID:
			return snapshot.RouteClaimAnswer{Granted: true}, nil // recorded before
		case !live.live(r, h.EdgeID):
			dead = append(dead, r.ID)
		case r.EdgeID != h.EdgeID:
			others = append(others, r.RouteHolder)
		}
	}
	var ans snapshot.RouteClaimAnswer
	for i := range others {
		if others[i].AccountID != h.AccountID {
			ans.Conflict = &others[i]
			return ans, nil // never across accounts
		}
	}
	joins := true
	for i := range others {
		joins = joins && others[i].Joins(&h)
	}
	if !joins {
		if !c.Takeover {
			ans.Conflict = &others[0]
			return ans, nil
		}
		ans.Displaced = others
		for _, o := range others {
			dead = append(dead, o.ID)
		}
	}
	if err := deleteHolders(ctx, t, dead); err != nil {
		return snapshot.RouteClaimAnswer{}, err
	}
	if _, err := t.exec(ctx, `INSERT INTO route_holders
		(id, region, proto, route_key, account_id, edge_id, session_id, instance_id, pooling, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		h.ID, h.Region, h.Proto, h.Key, h.AccountID, h.EdgeID, h.SessionID, h.InstanceID, h.Pooling, t.stamp()); err != nil {
		return snapshot.RouteClaimAnswer{}, fmt.Errorf("recording the holder: %w", err)
	}
	t.operational = true
	ans.Granted = true
	return ans, nil
}

// readRouteRows reads the holders that where selects (over route_holders h)
// with their edge's last report.
func readRouteRows(ctx context.Context, t *tx, where string, args ...any) ([]routeRow, error) {
	rows, err := t.query(ctx, `SELECT h.id, h.region, h.proto, h.route_key, h.account_id, h.edge_id, h.session_id,
		h.instance_id, h.pooling, h.created_at, COALESCE(r.last_seen, 0)
		FROM route_holders h LEFT JOIN edge_reports r ON r.edge_id = h.edge_id `+where+` ORDER BY h.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading route holders: %w", err)
	}
	defer rows.Close()
	var out []routeRow
	for rows.Next() {
		var r routeRow
		if err := rows.Scan(&r.ID, &r.Region, &r.Proto, &r.Key, &r.AccountID, &r.EdgeID, &r.SessionID,
			&r.InstanceID, &r.Pooling, &r.created, &r.lastSeen); err != nil {
			return nil, fmt.Errorf("reading route holders: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// deleteHolders deletes the holders with the given IDs in t.
func deleteHolders(ctx context.Context, t *tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := deleteHoldersBy(ctx, t, "id", ids, ""); err != nil {
		return fmt.Errorf("deleting route holders: %w", err)
	}
	return nil
}

// deleteHoldersBy deletes, in t, the holders whose column is one of
// values and, when edgeID is not "", that edge edgeID holds. A deletion
// marks t operational (it records no audit event).
func deleteHoldersBy(ctx context.Context, t *tx, column string, values []string, edgeID string) error {
	return byIDs(values).each(column, func(where string, args []any) error {
		q := `DELETE FROM route_holders` + where
		if edgeID != "" {
			q += fmt.Sprintf(` AND edge_id = $%d`, len(args)+1)
			args = append(args, edgeID)
		}
		res, err := t.exec(ctx, q, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			t.operational = true
		}
		return nil
	})
}

// ReleaseRoutes deletes the holders ids of edge edgeID (endpoints unbound,
// sessions ended). Unknown IDs, and IDs of another edge, are ignored. It
// returns the revision that recorded the change, 0 when nothing changed.
func (s *Store) ReleaseRoutes(ctx context.Context, edgeID string, ids []string) (uint64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	rev, err := s.update(ctx, routeActor, func(ctx context.Context, t *tx) error {
		return deleteHoldersBy(ctx, t, "id", ids, edgeID)
	})
	if err != nil {
		return 0, fmt.Errorf("releasing routes of edge %s: %w", edgeID, err)
	}
	return rev, nil
}

// DropEdgeRoutes deletes every holder of the edges (gone, or shut down).
func (s *Store) DropEdgeRoutes(ctx context.Context, edgeIDs []string) error {
	if len(edgeIDs) == 0 {
		return nil
	}
	_, err := s.update(ctx, routeActor, func(ctx context.Context, t *tx) error {
		return deleteHoldersBy(ctx, t, "edge_id", edgeIDs, "")
	})
	if err != nil {
		return fmt.Errorf("dropping the routes of edges %v: %w", edgeIDs, err)
	}
	return nil
}

// SyncRoutes makes sync.Holders the complete list of edge sync.EdgeID's
// holders, in one unit of work: its other holders are deleted, and each
// listed holder not recorded yet is claimed under the ownership rule
// (ClaimRoute, without takeover). Those the rule refuses are returned as
// Conflicts (another session won the name while the edge could not reach
// the control plane): the edge closes them.
func (s *Store) SyncRoutes(ctx context.Context, sync snapshot.RouteSync, live EdgeLiveness) (snapshot.RouteSyncAnswer, error) {
	var ans snapshot.RouteSyncAnswer
	rev, err := s.update(ctx, routeActor, func(ctx context.Context, t *tx) error {
		ans.Conflicts = nil
		have, err := readRouteRows(ctx, t, `WHERE h.edge_id = $1`, sync.EdgeID)
		if err != nil {
			return err
		}
		want := make(map[string]bool, len(sync.Holders))
		for _, h := range sync.Holders {
			want[h.ID] = true
		}
		var drop []string
		recorded := map[string]bool{}
		for _, r := range have {
			if want[r.ID] {
				recorded[r.ID] = true
			} else {
				drop = append(drop, r.ID)
			}
		}
		if err := deleteHolders(ctx, t, drop); err != nil {
			return err
		}
		for _, h := range sync.Holders {
			if recorded[h.ID] {
				continue
			}
			h.EdgeID, h.Region = sync.EdgeID, sync.Region
			a, err := decideRoute(ctx, t, snapshot.RouteClaim{Holder: h}, live)
			if err != nil {
				return err
			}
			if !a.Granted {
				ans.Conflicts = append(ans.Conflicts, h.ID)
			}
		}
		return nil
	})
	if err != nil {
		return snapshot.RouteSyncAnswer{}, fmt.Errorf("syncing the routes of edge %s: %w", sync.EdgeID, err)
	}
	if rev == 0 {
		if rev, err = s.Revision(ctx); err != nil {
			return snapshot.RouteSyncAnswer{}, err
		}
	}
	ans.Revision = rev
	return ans, nil
}

// readRouteHolders reads route holders for the snapshot (every row, or
// those f selects).
func readRouteHolders(ctx context.Context, q *sql.Tx, f rowFilter) ([]snapshot.RouteHolder, error) {
	return readFiltered(ctx, q, f, `SELECT id, region, proto, route_key, account_id, edge_id, session_id, instance_id, pooling
		FROM route_holders`, "id", "", func(r scanner) (snapshot.RouteHolder, error) {
		var h snapshot.RouteHolder
		return h, r.Scan(&h.ID, &h.Region, &h.Proto, &h.Key, &h.AccountID, &h.EdgeID, &h.SessionID, &h.InstanceID, &h.Pooling)
	})
}
