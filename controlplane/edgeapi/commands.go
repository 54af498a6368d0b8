package edgeapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/snapshot"
)

// maxCommandWait bounds the wait parameter of the command poll.
const maxCommandWait = 60 * time.Second

// serveEdgeCommands is GET /edge/v1/commands. It records that the polling
// edge takes commands for its sessions.
func (s *Server) serveEdgeCommands(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	q := r.URL.Query()
	edgeID := q.Get("edge_id")
	if edgeID == "" || len(edgeID) > 64 {
		return controlplane.BadRequest(codes.EdgeBadRequest, "edge_id is required.")
	}
	var known uint64
	if v := q.Get("known"); v != "" {
		var err error
		if known, err = strconv.ParseUint(v, 10, 64); err != nil {
			return controlplane.BadRequest(codes.EdgeBadRequest, "known must be an edges_version (a non-negative integer).")
		}
	}
	wait := 25 * time.Second
	if v := q.Get("wait"); v != "" {
		sec, err := strconv.Atoi(v)
		if err != nil || sec < 0 {
			return controlplane.BadRequest(codes.EdgeBadRequest, "wait must be a whole number of seconds.")
		}
		wait = min(time.Duration(sec)*time.Second, maxCommandWait)
	}
	ans, err := s.core.Registry().WaitCommands(r.Context(), edgeID, known, wait)
	if err != nil {
		// The edge went away, this process is shutting down, or the store
		// failed.
		return storeUnavailable(s, r, err)
	}
	controlplane.WriteJSON(w, http.StatusOK, ans)
	return nil
}

// serveEdgeCommandResult is POST /edge/v1/commands/results. A result for a
// command nobody waits for any more (the API call timed out) is dropped.
func (s *Server) serveEdgeCommandResult(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	var res snapshot.EdgeCommandResult
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(&res); err != nil {
		return controlplane.BadRequest(codes.EdgeBadRequest, "The command result is not valid JSON: %v", err)
	}
	if res.EdgeID == "" || res.ID == "" {
		return controlplane.BadRequest(codes.EdgeBadRequest, "A command result needs edge_id and id.")
	}
	if err := s.core.Registry().DeliverResult(r.Context(), res); err != nil {
		return storeUnavailable(s, r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
