package dashboard

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/events"
	"github.com/tollgate/tollgate/controlplane/sso"
	"github.com/tollgate/tollgate/controlplane/store"
)

// DefaultSessionTTL is how long a dashboard sign-in lasts.
const DefaultSessionTTL = 12 * time.Hour

// Config holds a Server's optional settings.
type Config struct {
	// SessionTTL is how long a dashboard sign-in lasts. Default
	// DefaultSessionTTL (12h); at least one minute.
	SessionTTL time.Duration
	// SecureCookie marks the dashboard's session cookie Secure on every
	// response, for a dashboard that browsers reach over HTTPS through a
	// TLS-terminating proxy. Without it the cookie is Secure only when the
	// connection itself is TLS.
	SecureCookie bool
	// EventTargets are the rules for event destination targets, as the
	// REST API's (restapi.Config.EventTargets). Default: no file targets.
	EventTargets events.TargetOptions
	// Reservations completes reservations made on the reservations page
	// (default region, TCP address pools), as restapi.Config's
	// DefaultRegion and TCPAddrPools do for the API: give both the same.
	Reservations controlplane.Reservations
	// SignUp opens the public sign-up page (/signup): anyone who reaches
	// the dashboard may create a user with a password and a new account
	// that they administer. Default off (tollgated control --signup turns
	// it on; tollgated dev has it on).
	SignUp bool
	// Now is the clock TOTP codes are checked against (RFC 6238 time
	// steps). Default time.Now.
	Now func() time.Time
	// EventTester sends the events page's test event
	// (events.Deliverer.SendTest); nil refuses tests (codes.EventTestFailed).
	EventTester EventTester
	// PublicHostnames maps a region code to the public hostname of the
	// region's edges: the reservations page shows each reserved domain's
	// DNS target from it, as the REST API's cname_target
	// (controlplane.CNAMETarget). Default: none.
	PublicHostnames map[string]string
	// PublicURL is the dashboard's URL as browsers and identity providers
	// reach it ("https://dash.example.com"): the base of the SAML entity
	// ID and ACS URL and of the OIDC redirect URL. Default: the scheme and
	// Host of each request.
	PublicURL string
	// SSO configures the identity provider clients (sso.Config).
	SSO sso.Config
	// Domains checks the DNS challenge of claimed email domains.
	Domains sso.DomainVerifier
}

// Server is the dashboard over a controlplane.Core. Create it with New; it
// is safe for concurrent use.
type Server struct {
	core  *controlplane.Core
	store *store.Store
	cfg   Config
	log   *zap.Logger
	mux   *http.ServeMux
	sso   *sso.Manager
}

// New returns the dashboard over core. It starts nothing: serve Handler()
// on a listener of your choice. It panics if core is nil
// (controlplane.ErrNoCore), a wiring bug.
func New(cfg Config, core *controlplane.Core) *Server {
	if core == nil {
		panic(controlplane.ErrNoCore)
	}
	if cfg.SessionTTL < time.Minute {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{core: core, store: core.Store(), cfg: cfg, log: core.Logger(), sso: sso.New(cfg.SSO, core.Store())}
	s.mux = s.routes()
	return s
}

// Handler returns the dashboard's http.Handler. Serve it at the root of its
// own listener; with TLS in front of it, its cookie is marked Secure.
func (s *Server) Handler() http.Handler { return s.mux }

// routes builds the dashboard's pages.
func (s *Server) routes() *http.ServeMux {
	events := &eventPages{s}
	identity := &identityPages{s}
	sso := &ssoPages{s}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/style.css", func(w http.ResponseWriter, r *http.Request) {
		dashHeaders(w)
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(dashboardCSS)
	})
	mux.HandleFunc("GET /signin", s.signInPage)
	mux.HandleFunc("POST /signin", s.signIn)
	mux.HandleFunc("POST /signout", s.dashServe(s.signOut))
	mux.HandleFunc("GET /accept", identity.acceptPage)
	mux.HandleFunc("POST /accept", identity.acceptInvitationForm)
	mux.HandleFunc("GET /signup", identity.signUpPage)
	mux.HandleFunc("POST /signup", identity.signUp)
	mux.HandleFunc("GET /reset", identity.resetPage)
	mux.HandleFunc("POST /reset", identity.resetPassword)
	mux.HandleFunc("GET /profile", s.dashServe(viewPage(s, "profile", "Your profile", identity.profileView)))
	mux.HandleFunc("POST /profile/password", s.dashServe(identity.dashChangePassword))
	mux.HandleFunc("POST /profile/totp", s.dashServe(identity.dashStartTOTP))
	mux.HandleFunc("POST /profile/totp/confirm", s.dashServe(identity.dashConfirmTOTP))
	mux.HandleFunc("POST /profile/totp/delete", s.dashServe(identity.dashDeleteTOTP))
	mux.HandleFunc("POST /accounts", s.dashServe(identity.dashCreateAccount))
	mux.HandleFunc("POST /accounts/switch", s.dashServe(identity.dashSwitchAccount))
	mux.HandleFunc("POST /users/{id}/password-reset", s.dashServe(identity.dashPasswordReset))
	mux.HandleFunc("GET /{$}", s.dashServe(viewPage(s, "overview", "Overview", s.overviewView)))
	mux.HandleFunc("POST /sessions/{id}/stop", s.dashServe(s.dashStopSession))
	mux.HandleFunc("GET /credentials", s.dashServe(viewPage(s, "credentials", "Credentials", s.credentialsView)))
	mux.HandleFunc("POST /credentials", s.dashServe(s.dashCreateAuthtoken))
	mux.HandleFunc("POST /credentials/api-keys", s.dashServe(s.dashCreateAPIKey))
	mux.HandleFunc("POST /credentials/{id}/delete", s.dashServe(s.dashDeleteCredential))
	mux.HandleFunc("GET /bot-users", s.dashServe(viewPage(s, "bot-users", "Bot users", s.botsView)))
	mux.HandleFunc("POST /bot-users", s.dashServe(s.dashCreateBot))
	mux.HandleFunc("POST /bot-users/{id}/active", s.dashServe(s.dashSetBotActive))
	mux.HandleFunc("GET /users", s.dashServe(viewPage(s, "users", "Users", s.usersView)))
	mux.HandleFunc("POST /users/invite", s.dashServe(s.dashInvite))
	mux.HandleFunc("GET /ip-policies", s.dashServe(viewPage(s, "ip-policies", "IP policies", s.ipPoliciesView)))
	mux.HandleFunc("GET /reservations", s.dashServe(viewPage(s, "reservations", "Reservations", s.reservationsView)))
	s.manageRoutes(mux)
	mux.HandleFunc("GET /events", s.dashServe(viewPage(s, "events", "Events", events.eventsView)))
	mux.HandleFunc("POST /events/destinations", s.dashServe(events.dashCreateDestination))
	mux.HandleFunc("POST /events/destinations/{id}/test", s.dashServe(events.dashTestDestination))
	mux.HandleFunc("POST /events/destinations/{id}/delete", s.dashServe(events.dashDeleteDestination))
	mux.HandleFunc("POST /events/subscriptions", s.dashServe(events.dashCreateSubscription))
	mux.HandleFunc("POST /events/subscriptions/{id}/delete", s.dashServe(events.dashDeleteSubscription))
	mux.HandleFunc("POST /events/subscriptions/{id}/sources", s.dashServe(events.dashAddSource))
	mux.HandleFunc("POST /events/subscriptions/{id}/sources/{type}/delete", s.dashServe(events.dashDeleteSource))
	sso.ssoRoutes(mux) // sso.go
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		dashHeaders(w)
		s.renderError(w, r, nil, controlplane.Errorf(http.StatusNotFound, codes.DashboardNotFound,
			"There is no dashboard page at %s.", controlplane.Truncate(r.URL.Path, 200)))
	})
	return mux
}

// dashHeaders sets the headers every dashboard response carries: no
// caching (pages show secrets once), no framing, no scripts, no referrer.
func dashHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
