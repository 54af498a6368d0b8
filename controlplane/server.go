package controlplane

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/controlplane/store"
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
}

// Server is the control plane: REST API, snapshot feed and agent-session
// registry over one store. Create it with NewServer; it is safe for
// concurrent use.
type Server struct {
	store *store.Store
	cfg   ServerConfig
	log   *zap.Logger
	mux   *http.ServeMux

	// Snapshot feed: the newest snapshot built, and a one-slot semaphore so
	// that many waiting edges share one build.
	snap     atomic.Pointer[config.Snapshot]
	building chan struct{}

	sessMu   sync.RWMutex
	sessions map[string]edgeReport // edge ID -> its latest report
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
	}
	s.mux = s.routes()
	return s
}

// Handler returns the REST API's http.Handler. Serve it at the root of its
// own listener.
func (s *Server) Handler() http.Handler { return s.mux }

// Store returns the store the server works on.
func (s *Server) Store() *store.Store { return s.store }
