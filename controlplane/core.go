package controlplane

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/snapshot"
)

// ServerConfig holds a Server's optional settings.
type ServerConfig struct {
	// Logger receives structured logs. Default: no logs.
	Logger *zap.Logger
	// BaseURL is the API's public base URL ("https://api.example.com"),
	// used in every object's uri and next_page_uri. Default: the scheme and
	// Host of each request.
	BaseURL string
	// PollInterval is how often a waiting Snapshot call reads the store
	// revision, to see writes by other control-plane processes sharing the
	// database. Default 500ms.
	PollInterval time.Duration
	// MaxBodyBytes bounds a request body. Default 1 MiB.
	MaxBodyBytes int64
	// EdgeSecret authenticates edges that run as their own processes on
	// the edge API (/edge/v1/...; see edgeapi.go). Secret: never logged.
	// "" disables the edge API.
	EdgeSecret string
	// RateLimit is the sustained API requests per second each account may
	// make, in this process; RateBurst is how many it may make at once.
	// Over it the API answers 429 with Retry-After (ratelimit.go). Defaults
	// DefaultRateLimit (50) and DefaultRateBurst (100); a negative RateLimit
	// turns the limit off.
	RateLimit float64
	RateBurst int
	// AuthFailureLimit and AuthFailureBurst limit failed authentications per
	// client IP: an address past them gets 429 before its key is checked.
	// Defaults DefaultAuthFailureLimit (1/s) and DefaultAuthFailureBurst
	// (30); a negative AuthFailureLimit turns the limit off.
	AuthFailureLimit float64
	AuthFailureBurst int
	// DefaultRegion is the region of a reserved domain or address created
	// without one (a code of the regions package). Default "us", as on the
	// hosted platform (reference/platform-behaviour.md §1.12).
	DefaultRegion string
	// TCPAddrPools maps a region code to the TCP addresses the control
	// plane assigns from when a reserved address is created without addr.
	// In a region without a pool, addr is required. Default: no pools.
	TCPAddrPools map[string]TCPAddrPool
	// DashboardSessionTTL is how long a dashboard sign-in lasts. Default
	// DefaultDashboardSessionTTL (12h); at least one minute.
	DashboardSessionTTL time.Duration
	// DashboardSecureCookie marks the dashboard's session cookie Secure on
	// every response, for a dashboard that browsers reach over HTTPS through
	// a TLS-terminating proxy. Without it the cookie is Secure only when the
	// connection itself is TLS.
	DashboardSecureCookie bool
}

// Server is the control plane: REST API, snapshot feed and agent-session
// registry over one store. Create it with NewServer; it is safe for
// concurrent use.
type Server struct {
	store *store.Store
	cfg   ServerConfig
	log   *zap.Logger
	mux   *http.ServeMux
	dash  *http.ServeMux // the dashboard (dashboard.go)

	// Snapshot feed: the newest snapshot built, and a one-slot semaphore so
	// that many waiting edges share one build.
	snap     atomic.Pointer[snapshot.Snapshot]
	building chan struct{}

	edges        edgeRegistry     // snapshot history for deltas; edges that reported
	restrictions restrictionCache // api IP restrictions of the newest snapshot

	sessMu     sync.RWMutex
	sessions   map[string]edgeReport       // edge ID -> its latest report
	commanders map[string]SessionCommander // edge ID -> its command target

	rate *rateLimits
}

// NewServer returns a Server over st. It starts nothing: serve Handler() on a
// listener of your choice. It panics if st is nil (ErrNoStore), a wiring bug.
func NewServer(st *store.Store, cfg ServerConfig) *Server {
	if st == nil {
		panic(ErrNoStore)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	s := &Server{
		store:    st,
		cfg:      cfg,
		log:      cfg.Logger,
		building: make(chan struct{}, 1),
		sessions: make(map[string]edgeReport),
		rate:     newRateLimits(cfg),
	}
	if cfg.DashboardSessionTTL < time.Minute {
		s.cfg.DashboardSessionTTL = DefaultDashboardSessionTTL
	}
	s.mux = s.routes()
	s.dash = s.dashboardRoutes()
	return s
}

// Handler returns the REST API's http.Handler. Serve it at the root of its
// own listener.
func (s *Server) Handler() http.Handler { return s.mux }

// Store returns the store the server works on.
func (s *Server) Store() *store.Store { return s.store }
