package controlclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/tollgate/tollgate/snapshot"
)

// ClaimRoute asks the control plane to record a new holder of a route
// (POST /edge/v1/routes/claim; edge.RouteLeases). An error means the
// control plane did not decide (unreachable, or its store failed); a
// refusal is an answer with Granted false.
func (c *Client) ClaimRoute(ctx context.Context, claim snapshot.RouteClaim) (snapshot.RouteClaimAnswer, error) {
	var ans snapshot.RouteClaimAnswer
	resp, err := c.send(ctx, http.MethodPost, "/edge/v1/routes/claim", &claim, http.StatusOK, "claiming a route")
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ans); err != nil {
		return ans, fmt.Errorf("claiming a route: decoding the answer: %w", err)
	}
	return ans, nil
}

// ReleaseRoutes tells the control plane that the edge no longer holds ids
// (POST /edge/v1/routes/release).
func (c *Client) ReleaseRoutes(ctx context.Context, edgeID string, ids []string) error {
	resp, err := c.send(ctx, http.MethodPost, "/edge/v1/routes/release", &snapshot.RouteRelease{EdgeID: edgeID, IDs: ids},
		http.StatusNoContent, "releasing routes")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// SyncRoutes sends the edge's complete list of route holders and returns
// those the control plane could not record (PUT /edge/v1/routes).
func (c *Client) SyncRoutes(ctx context.Context, sync snapshot.RouteSync) (snapshot.RouteSyncAnswer, error) {
	var ans snapshot.RouteSyncAnswer
	if sync.Holders == nil {
		sync.Holders = []snapshot.RouteHolder{}
	}
	resp, err := c.send(ctx, http.MethodPut, "/edge/v1/routes", &sync, http.StatusOK, "syncing routes")
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&ans); err != nil {
		return ans, fmt.Errorf("syncing routes: decoding the answer: %w", err)
	}
	return ans, nil
}
