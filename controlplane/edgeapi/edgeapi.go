package edgeapi

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/regions"
	"github.com/tollgate/tollgate/snapshot"
)

// PathPrefix is where the edge API's routes live on the API listener.
const PathPrefix = "/edge/v1/"

// maxFeedWait bounds the wait parameter of the snapshot feed.
const maxFeedWait = 60 * time.Second

// Config holds a Server's optional settings.
type Config struct {
	// Secret authenticates edges that run as their own processes. Secret:
	// never logged. "" disables the edge API: every request gets 403.
	Secret string
	// CertLockTTL is how long an edge's certificate lock outlives its last
	// renewal. Default DefaultCertLockTTL.
	CertLockTTL time.Duration
	// Traffic takes edges' traffic batches (POST /edge/v1/traffic); nil
	// answers every batch with no wants, so edges send none.
	Traffic TrafficIngester
}

// Server is the edge API over a controlplane.Core. Create it with New; it
// is safe for concurrent use.
type Server struct {
	core  *controlplane.Core
	store *store.Store
	cfg   Config
	log   *zap.Logger
	mux   *http.ServeMux
}

// New returns the edge API over core. It starts nothing: serve Handler()
// on the API listener with Mount. It panics if core is nil
// (controlplane.ErrNoCore), a wiring bug.
func New(cfg Config, core *controlplane.Core) *Server {
	if core == nil {
		panic(controlplane.ErrNoCore)
	}
	s := &Server{core: core, store: core.Store(), cfg: cfg, log: core.Logger()}
	s.mux = s.routes()
	return s
}

// Handler returns the edge API's http.Handler: the routes under PathPrefix,
// and the API's 404 for any other path.
func (s *Server) Handler() http.Handler { return s.mux }

// Mount returns the handler of the API listener, which the edge API shares
// with the REST API (edges are given the API's URL): requests whose path
// starts with PathPrefix go to edges, all others to api.
func Mount(edges, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, PathPrefix) {
			edges.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// routes builds the edge API's request router.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /edge/v1/snapshot", s.edgeOnly(s.serveFeed))
	mux.HandleFunc("PUT /edge/v1/sessions", s.edgeOnly(s.serveEdgeReport))
	mux.HandleFunc("GET /edge/v1/commands", s.edgeOnly(s.serveEdgeCommands))
	mux.HandleFunc("POST /edge/v1/commands/results", s.edgeOnly(s.serveEdgeCommandResult))
	s.certRoutes(mux)
	s.routeRoutes(mux)
	s.trafficRoutes(mux)
	mux.HandleFunc("/", s.core.NoRoute)
	return mux
}

// edgeOnly authenticates an edge request with the edge secret. It is
// served without the API's key check, so the API keys' failure budget
// never applies: a wrong or missing secret charges the edge secret's own
// budget per client address (controlplane.Core.ChargeEdgeAuthFailure) and
// past it is answered 429; the right secret is never refused.
func (s *Server) edgeOnly(h controlplane.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.core.Serve(w, r, func(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
			if s.cfg.Secret == "" {
				return controlplane.Errorf(http.StatusForbidden, codes.EdgeAuth,
					"This control plane accepts no edges: start it with an edge secret (tollgated control --edge-secret-file).")
			}
			scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			if !strings.EqualFold(scheme, "Bearer") || !authn.SecretMatches(strings.TrimSpace(tok), authn.HashSecret(s.cfg.Secret)) {
				if tooMany := s.core.ChargeEdgeAuthFailure(w, r); tooMany != nil {
					return tooMany
				}
				return controlplane.Errorf(http.StatusUnauthorized, codes.EdgeAuth,
					"The edge secret is missing or wrong: give the edge the control plane's edge secret (tollgated edge --control-secret-file).")
			}
			return h(w, r, c)
		}, false)
	}
}

// serveFeed is GET /edge/v1/snapshot?after=REV&wait=SECONDS: a
// snapshot.FeedMessage (version snapshot.FeedVersion) holding the delta from
// revision after, computed once per revision from the store's change log
// (controlplane.Core.Feed), or a whole snapshot for after=0 or an edge
// behind the change history; 204 when nothing changed within wait.
func (s *Server) serveFeed(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	q := r.URL.Query()
	after, err := strconv.ParseUint(q.Get("after"), 10, 64)
	if q.Get("after") == "" {
		after, err = 0, nil
	}
	if err != nil {
		return controlplane.BadRequest(codes.EdgeBadRequest, "after must be a store revision (a non-negative integer).")
	}
	wait := 25 * time.Second
	if v := q.Get("wait"); v != "" {
		sec, err := strconv.Atoi(v)
		if err != nil || sec < 0 {
			return controlplane.BadRequest(codes.EdgeBadRequest, "wait must be a whole number of seconds.")
		}
		wait = min(time.Duration(sec)*time.Second, maxFeedWait)
	}
	rev, err := s.store.Revision(r.Context())
	if err != nil {
		return controlplane.Errorf(http.StatusServiceUnavailable, codes.EdgeUnavailable, "The control plane cannot read its store; the edge keeps its snapshot and retries.")
	}
	if after > rev {
		s.log.Warn("an edge holds a snapshot newer than the store: sending the store's whole snapshot",
			zap.Uint64("edge_revision", after), zap.Uint64("store_revision", rev))
		after = 0 // a reset store: the edge must take what there is
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	msg, err := s.core.Feed(ctx, after)
	if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		if r.Context().Err() != nil {
			// The edge went away, or this process is shutting down.
			return controlplane.Errorf(http.StatusServiceUnavailable, codes.EdgeUnavailable, "The control plane is shutting down; the edge keeps its snapshot and retries.")
		}
		s.log.Warn("snapshot feed failed", zap.Error(err))
		return controlplane.Errorf(http.StatusServiceUnavailable, codes.EdgeUnavailable, "The control plane could not build a snapshot; the edge keeps its own and retries.")
	}
	w.Header().Set("Content-Type", "application/json")
	var out interface {
		Write([]byte) (int, error)
	} = w
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		defer zw.Close()
		out = zw
	}
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(out).Encode(msg)
}

// serveEdgeReport is PUT /edge/v1/sessions.
func (s *Server) serveEdgeReport(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	var rep snapshot.EdgeReport
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
	if err := dec.Decode(&rep); err != nil {
		return controlplane.BadRequest(codes.EdgeBadRequest, "The session report is not valid JSON: %v", err)
	}
	if rep.EdgeID == "" || rep.Region == "" {
		return controlplane.BadRequest(codes.EdgeBadRequest, "A session report needs edge_id and region.")
	}
	if _, err := regions.Parse(rep.Region); err != nil {
		return controlplane.BadRequest(codes.EdgeBadRequest, "A session report's region must be a region code: %v", err)
	}
	reg := s.core.Registry()
	if err := reg.Report(r.Context(), rep); err != nil {
		return storeUnavailable(s, r, err)
	}
	edges, err := reg.LiveEdges(r.Context())
	if err != nil {
		return storeUnavailable(s, r, err)
	}
	controlplane.WriteJSON(w, http.StatusOK, snapshot.EdgeReportAnswer{Edges: edges})
	return nil
}

// storeUnavailable logs a store failure behind an edge request and answers
// 503, which the edge retries.
func storeUnavailable(s *Server, r *http.Request, err error) error {
	if r.Context().Err() == nil {
		s.log.Warn("edge API: the store failed", zap.String("path", r.URL.Path), zap.Error(err))
	}
	return controlplane.Errorf(http.StatusServiceUnavailable, codes.EdgeUnavailable, "The control plane cannot reach its store; the edge retries.")
}
