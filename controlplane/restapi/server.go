package restapi

import (
	"net/http"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/events"
	"github.com/tollgate/tollgate/controlplane/sso"
	"github.com/tollgate/tollgate/controlplane/store"
)

// Config holds a Server's optional settings.
type Config struct {
	// BaseURL is the API's public base URL ("https://api.example.com"),
	// used in every object's uri and next_page_uri. Default: the scheme and
	// Host of each request.
	BaseURL string
	// MaxBodyBytes bounds a request body. Default 1 MiB.
	MaxBodyBytes int64
	// DefaultRegion is the region of a reserved domain or address created
	// without one (a code of the regions package). Default "us", as on the
	// hosted platform (docs/api-compatibility.md#reserved-domains).
	DefaultRegion string
	// TCPAddrPools maps a region code to the TCP addresses the control
	// plane assigns from when a reserved address is created without addr.
	// In a region without a pool, addr is required. Default: no pools.
	TCPAddrPools map[string]TCPAddrPool
	// PublicHostnames maps a region code to the public hostname of the
	// region's edges, which reserved domains show as cname_target
	// (controlplane.CNAMETarget). Default: none, cname_target is null.
	PublicHostnames map[string]string
	// EventTargets are the rules for event destination targets (which
	// are allowed: file targets need FileDir). Default: no file targets.
	EventTargets events.TargetOptions
	// EventTester sends the test event of POST /event_destinations/{id}/test;
	// nil answers 503 (codes.EventTestFailed).
	EventTester EventTester
	// DashboardURL is the dashboard's public URL, the base of the SAML
	// entity ID and ACS URL and the OIDC redirect URL that identity
	// provider answers show. Default: those fields are left out.
	DashboardURL string
	// Domains checks the DNS challenge of POST /account_domains/{id}/verify.
	Domains sso.DomainVerifier
}

// Server is the REST API over a controlplane.Core. Create it with New; it
// is safe for concurrent use. Its resources are served by one handler type
// each (botUserAPI, apiKeyAPI, ...), which share the Server's request
// helpers.
type Server struct {
	core  *controlplane.Core
	store *store.Store
	cfg   Config
	log   *zap.Logger
	mux   *http.ServeMux
}

// New returns the REST API over core. It starts nothing: serve Handler() on
// a listener of your choice. It panics if core is nil
// (controlplane.ErrNoCore), a wiring bug.
func New(cfg Config, core *controlplane.Core) *Server {
	if core == nil {
		panic(controlplane.ErrNoCore)
	}
	cfg.DashboardURL = strings.TrimRight(cfg.DashboardURL, "/")
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	s := &Server{core: core, store: core.Store(), cfg: cfg, log: core.Logger()}
	s.mux = s.routes()
	return s
}

// Handler returns the REST API's http.Handler. Serve it at the root of its
// own listener (with the edge API: edgeapi.Mount).
func (s *Server) Handler() http.Handler { return s.mux }

// methods maps HTTP methods to the operations of one path.
type methods map[string]controlplane.HandlerFunc

// routes builds the API's request router.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	(&botUserAPI{s}).routes(mux)
	(&apiKeyAPI{s}).routes(mux)
	(&credentialAPI{s}).routes(mux)
	(&sessionAPI{s}).routes(mux)
	(&sshCredentialAPI{s}).routes(mux)
	(&reservationAPI{s}).routes(mux)
	(&ipPolicyAPI{s}).routes(mux)
	(&userAPI{s}).routes(mux)
	(&auditAPI{s}).routes(mux)
	(&eventAPI{s}).routes(mux)
	(&ssoAPI{s}).routes(mux) // sso.go
	mux.HandleFunc("/", s.core.NoRoute)
	return mux
}

// route registers the operations of one path; other methods get 405.
func (s *Server) route(mux *http.ServeMux, pattern string, m methods) {
	allowed := make([]string, 0, len(m))
	for k := range m {
		allowed = append(allowed, k)
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		h, ok := m[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			s.core.Serve(w, r, func(http.ResponseWriter, *http.Request, *controlplane.Caller) error {
				return controlplane.Errorf(http.StatusMethodNotAllowed, codes.APIMethodNotAllowed,
					"%s does not support %s; use %s.", pattern, r.Method, allow)
			}, false)
			return
		}
		s.core.Serve(w, r, h, true)
	})
}

// baseURL is the URL prefix of object URIs.
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return strings.TrimRight(s.cfg.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
