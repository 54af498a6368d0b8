package edgeapi

import (
	"encoding/json"
	"net/http"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/regions"
	"github.com/tollgate/tollgate/snapshot"
)

// Route leases (controlplane/routes.go): an edge records the holder of a
// name or TCP address when an agent binds it, releases it when the
// endpoint goes, and syncs its complete list when it starts and after the
// control plane was unreachable.

// Bounds on route requests, so that no edge request grows the store
// without limit: field sizes, and holders per sync or release.
const (
	maxRouteField   = 300
	maxRouteHolders = 100_000
	maxRouteBody    = 64 << 20
)

func (s *Server) routeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /edge/v1/routes/claim", s.edgeOnly(s.serveRouteClaim))
	mux.HandleFunc("POST /edge/v1/routes/release", s.edgeOnly(s.serveRouteRelease))
	mux.HandleFunc("PUT /edge/v1/routes", s.edgeOnly(s.serveRouteSync))
}

// checkHolder refuses a holder with a missing or oversized field, an
// unknown region or proto. edgeLevel skips the fields a sync fills in.
func checkHolder(h *snapshot.RouteHolder, edgeLevel bool) error {
	fields := []string{h.ID, h.Key, h.AccountID, h.SessionID}
	if !edgeLevel {
		fields = append(fields, h.EdgeID, h.Region)
	}
	for _, f := range fields {
		if f == "" || len(f) > maxRouteField {
			return controlplane.BadRequest(codes.EdgeBadRequest, "A route holder needs id, key, account_id, session_id, edge_id and region, each at most %d bytes.", maxRouteField)
		}
	}
	if len(h.InstanceID) > maxRouteField {
		return controlplane.BadRequest(codes.EdgeBadRequest, "A route holder's instance_id is at most %d bytes.", maxRouteField)
	}
	switch h.Proto {
	case "https", "tcp", "tls":
	default:
		return controlplane.BadRequest(codes.EdgeBadRequest, "A route holder's proto is https, tcp or tls, not %q.", h.Proto)
	}
	if !edgeLevel {
		if _, err := regions.Parse(h.Region); err != nil {
			return controlplane.BadRequest(codes.EdgeBadRequest, "A route holder's region must be a region code: %v", err)
		}
	}
	return nil
}

// serveRouteClaim is POST /edge/v1/routes/claim: a snapshot.RouteClaim,
// answered with the snapshot.RouteClaimAnswer (200 whether granted or
// refused).
func (s *Server) serveRouteClaim(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	var c snapshot.RouteClaim
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&c); err != nil {
		return controlplane.BadRequest(codes.EdgeBadRequest, "The route claim is not valid JSON: %v", err)
	}
	if err := checkHolder(&c.Holder, false); err != nil {
		return err
	}
	ans, err := s.core.ClaimRoute(r.Context(), c)
	if err != nil {
		return storeUnavailable(s, r, err)
	}
	controlplane.WriteJSON(w, http.StatusOK, ans)
	return nil
}

// serveRouteRelease is POST /edge/v1/routes/release: a
// snapshot.RouteRelease; 204.
func (s *Server) serveRouteRelease(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	var rel snapshot.RouteRelease
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRouteBody)).Decode(&rel); err != nil {
		return controlplane.BadRequest(codes.EdgeBadRequest, "The route release is not valid JSON: %v", err)
	}
	if rel.EdgeID == "" || len(rel.IDs) > maxRouteHolders {
		return controlplane.BadRequest(codes.EdgeBadRequest, "A route release needs edge_id and at most %d ids.", maxRouteHolders)
	}
	if err := s.core.ReleaseRoutes(r.Context(), rel.EdgeID, rel.IDs); err != nil {
		return storeUnavailable(s, r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// serveRouteSync is PUT /edge/v1/routes: a snapshot.RouteSync, answered
// with the snapshot.RouteSyncAnswer.
func (s *Server) serveRouteSync(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	var sync snapshot.RouteSync
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRouteBody)).Decode(&sync); err != nil {
		return controlplane.BadRequest(codes.EdgeBadRequest, "The route sync is not valid JSON: %v", err)
	}
	if sync.EdgeID == "" || len(sync.EdgeID) > maxRouteField || len(sync.Holders) > maxRouteHolders {
		return controlplane.BadRequest(codes.EdgeBadRequest, "A route sync needs edge_id and at most %d holders.", maxRouteHolders)
	}
	if _, err := regions.Parse(sync.Region); err != nil {
		return controlplane.BadRequest(codes.EdgeBadRequest, "A route sync's region must be a region code: %v", err)
	}
	for i := range sync.Holders {
		if err := checkHolder(&sync.Holders[i], true); err != nil {
			return err
		}
	}
	ans, err := s.core.SyncRoutes(r.Context(), sync)
	if err != nil {
		return storeUnavailable(s, r, err)
	}
	controlplane.WriteJSON(w, http.StatusOK, ans)
	return nil
}
