package controlplane

import (
	"net/netip"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/snapshot"
)

// Config holds a Core's optional settings.
type Config struct {
	// Logger receives structured logs, the products' too. Default: no logs.
	Logger *zap.Logger
	// PollInterval is how often a waiting Snapshot call reads the store
	// revision, and a waiting command poll the edge set and command queue,
	// to see writes by other control-plane processes sharing the database.
	// Default 500ms.
	PollInterval time.Duration
	// RateLimit is the sustained API requests per second each account may
	// make, in this process; RateBurst is how many it may make at once.
	// Over it the API answers 429 with Retry-After (ratelimit.go). Defaults
	// DefaultRateLimit (50) and DefaultRateBurst (100); a negative RateLimit
	// turns the limit off.
	RateLimit float64
	RateBurst int
	// AuthFailureLimit and AuthFailureBurst limit failed authentications per
	// client address (ClientAddr; IPv6 by /64): past them, a failed attempt
	// is answered 429 instead of 401. A valid credential is checked first
	// and never refused for its address's failures. User credentials (API
	// keys, invitation tokens) and the edge secret have separate budgets.
	// Defaults DefaultAuthFailureLimit (1/s) and DefaultAuthFailureBurst
	// (30); a negative AuthFailureLimit turns the limit off.
	AuthFailureLimit float64
	AuthFailureBurst int
	// AuthFailureAddrs bounds how many client addresses' failure budgets
	// are remembered, per budget (a bounded cache: a spray of addresses
	// cannot grow memory). Default DefaultAuthFailureAddrs (65,536).
	AuthFailureAddrs int
	// TrustedProxies are the reverse proxies and load balancers whose
	// X-Forwarded-For the API and dashboard believe (ClientAddr): for
	// failed-authentication limits and IP restrictions. Default none: the
	// client address is the TCP peer address, and X-Forwarded-For is never
	// read.
	TrustedProxies []netip.Prefix
}

// Core is what the control plane's products (the REST API, the dashboard
// and the edge API) share over one store: the snapshot feed, the request
// pipeline with caller authentication, rate limits and the api IP
// restriction (Serve), and the Registry of edges and their agent sessions.
// Create it with New; it is safe for concurrent use.
type Core struct {
	store *store.Store
	cfg   Config
	log   *zap.Logger
	reg   *Registry

	// Snapshot feed (feed.go): the newest whole snapshot, kept up to date
	// by applying deltas; a one-slot semaphore so that many waiting callers
	// share one update; and the deltas of recent revisions, each computed
	// once from the store's change log.
	snap     atomic.Pointer[snapshot.Snapshot]
	building chan struct{}
	steps    feedSteps

	restrictions restrictionCache // IP restrictions of the newest snapshot
	rate         *rateLimits
}

// New returns a Core over st. It starts nothing (the failure-limit caches
// start on the first failure; Close stops them). It panics if st is nil
// (ErrNoStore), a wiring bug.
func New(cfg Config, st *store.Store) *Core {
	if st == nil {
		panic(ErrNoStore)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	return &Core{
		store:    st,
		cfg:      cfg,
		log:      cfg.Logger,
		reg:      newRegistry(cfg.Logger, st, cfg.PollInterval),
		building: make(chan struct{}, 1),
		steps:    feedSteps{advancing: make(chan struct{}, 1)},
		rate:     newRateLimits(cfg),
	}
}

// Store returns the store the control plane works on.
func (cp *Core) Store() *store.Store { return cp.store }

// Logger returns the control plane's logger.
func (cp *Core) Logger() *zap.Logger { return cp.log }

// Registry returns the registry of edges, the agent sessions they report
// and their command targets.
func (cp *Core) Registry() *Registry { return cp.reg }
