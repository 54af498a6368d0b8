package certs

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Config configures a Manager. BaseDomain and Issuer are required, and one
// of Storage or DataDir.
type Config struct {
	// BaseDomain is the edge's base domain, e.g. "tunnel.example.com" or
	// "localhost": ASCII (punycode for IDNs), a trailing dot is dropped.
	// Start obtains a certificate for it and, when it has at least two
	// labels, for "*.<BaseDomain>".
	BaseDomain string
	// Storage holds certificates, keys and issuance locks; edges sharing one
	// share certificates. Default: a certmagic.FileStorage at DataDir/certs.
	Storage certmagic.Storage
	// DataDir is the edge's data directory; used only when Storage is nil.
	DataDir string
	// Issuer obtains certificates: a *LocalIssuer in dev (ACME later). A
	// certmagic.PreChecker issuer is asked before any key is generated.
	Issuer certmagic.Issuer
	// Logger receives the manager's and certmagic's logs. Default: no logs.
	Logger *zap.Logger
	// AllowName decides whether a certificate may be obtained on demand,
	// during a handshake, for a name that is neither the base domain nor one
	// label under it (e.g. a reserved custom domain). It receives a
	// lower-case ASCII name (IDNs as punycode), must be fast and must not
	// block: it runs inside handshakes. nil allows only base-domain names.
	// Rate limiting on-demand issuance is the caller's job.
	AllowName func(name string) bool
}

// Manager obtains, stores, renews and serves the edge's public
// certificates. Create it with New, call Start once, use GetCertificate in
// the public tls.Config, and Stop when done.
//
// Server names are served as follows: the base domain and names one label
// under it from the certificates Start obtained (no issuance, no storage
// access); any other name only if AllowName accepts it, from the in-memory
// cache, then storage, then the issuer (on demand, shared by concurrent
// handshakes). When the base domain has a single label ("localhost"), one
// label names are issued on demand instead of served by "*.<base>", since
// OpenSSL (curl) and browsers reject a wildcard directly under a single
// label.
type Manager struct {
	base      string
	wildcard  bool // serve one-label names from "*.<base>"
	issuer    certmagic.Issuer
	storage   certmagic.Storage
	allowName func(string) bool
	log       *zap.Logger

	mu    sync.Mutex // serialises Start and Stop
	phase phase
	run   atomic.Pointer[running] // non-nil while serving
}

type phase int

const (
	phaseNew phase = iota
	phaseRunning
	phaseStopped
)

// running is what Start builds: one certmagic cache and two configs on it.
// managed (no on-demand) holds the base-domain certificates, which the
// cache's maintenance goroutine renews; onDemand serves AllowName's names and
// renews them during handshakes, as certmagic does for on-demand certs.
type running struct {
	cache    *certmagic.Cache
	managed  *certmagic.Config
	onDemand *certmagic.Config
}

// New validates cfg and returns a Manager. It has no side effects: no
// goroutine, no storage access, no issuance. Errors wrap ErrInvalidConfig.
func New(cfg Config) (*Manager, error) {
	base, err := normalizeBase(cfg.BaseDomain)
	if err != nil {
		return nil, err
	}
	if cfg.Issuer == nil {
		return nil, fmt.Errorf("%w: an issuer is required", ErrInvalidConfig)
	}
	storage := cfg.Storage
	if storage == nil {
		if cfg.DataDir == "" {
			return nil, fmt.Errorf("%w: Storage or DataDir is required", ErrInvalidConfig)
		}
		storage = &certmagic.FileStorage{Path: filepath.Join(cfg.DataDir, "certs")}
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Manager{
		base:      base,
		wildcard:  strings.Contains(base, "."),
		issuer:    cfg.Issuer,
		storage:   storage,
		allowName: cfg.AllowName,
		log:       log.Named("certs"),
	}, nil
}

// BaseDomain returns the normalised base domain.
func (m *Manager) BaseDomain() string { return m.base }

// ManagedNames returns the names Start obtains certificates for:
// "*.<base>" (when the base has two labels or more) and "<base>".
func (m *Manager) ManagedNames() []string {
	if m.wildcard {
		return []string{"*." + m.base, m.base}
	}
	return []string{m.base}
}

// Start starts certificate maintenance and obtains, synchronously, the
// certificates of ManagedNames: each is loaded from storage when present
// (and renewed if due) or else issued. It returns when they are ready to
// serve, or with the first error, after which nothing is left running and
// Start may be called again. Cancelling ctx aborts issuance. Start on a
// running Manager returns ErrStarted, after Stop ErrStopped; a concurrent
// Stop waits for Start to return.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.phase {
	case phaseRunning:
		return ErrStarted
	case phaseStopped:
		return ErrStopped
	}

	cmLog := m.log.Named("certmagic")
	var ready atomic.Pointer[running] // read by the cache's goroutine
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(c certmagic.Certificate) (*certmagic.Config, error) {
			r := ready.Load()
			if r == nil {
				return nil, ErrNotStarted
			}
			if m.isManaged(c.Names) {
				return r.managed, nil
			}
			return r.onDemand, nil
		},
		Logger: cmLog,
	})
	tmpl := certmagic.Config{
		Issuers:   []certmagic.Issuer{m.issuer},
		Storage:   m.storage,
		KeySource: certmagic.StandardKeyGenerator{KeyType: certmagic.P256},
		// A handshake never waits on OCSP (DESIGN); the local CA has no
		// responder, and Let's Encrypt ended OCSP in 2025.
		OCSP:   certmagic.OCSPConfig{DisableStapling: true},
		Logger: cmLog,
	}
	r := &running{cache: cache, managed: certmagic.New(cache, tmpl)}
	tmpl.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: m.decide}
	r.onDemand = certmagic.New(cache, tmpl)
	ready.Store(r)

	names := m.ManagedNames()
	if err := r.managed.ManageSync(ctx, names); err != nil {
		cache.Stop()
		return fmt.Errorf("obtaining certificates for %s: %w", strings.Join(names, ", "), err)
	}
	m.run.Store(r)
	m.phase = phaseRunning
	m.log.Info("certificates ready",
		zap.String("base_domain", m.base),
		zap.Strings("names", names),
		zap.String("issuer", m.issuer.IssuerKey()))
	return nil
}

// Stop stops certificate maintenance and makes GetCertificate fail with
// ErrNotStarted. It is idempotent; a stopped Manager cannot be started
// again. Work certmagic already began for a handshake (an on-demand
// issuance) finishes on its own.
func (m *Manager) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.phase = phaseStopped
	if r := m.run.Swap(nil); r != nil {
		r.cache.Stop()
		m.log.Info("certificate maintenance stopped", zap.String("base_domain", m.base))
	}
}

// GetCertificate returns the certificate for hello.ServerName; use it as
// tls.Config.GetCertificate. It fails — and the handshake with it — with
// ErrNotStarted outside Start..Stop, ErrNoServerName without SNI,
// ErrBadServerName for a non-ASCII or malformed name, and ErrNameNotAllowed
// for a name outside the base domain that AllowName does not accept; a
// refused name causes no storage access and no issuance. Base-domain names
// never wait; an on-demand name may wait for storage and the issuer once.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	r := m.run.Load()
	if r == nil {
		return nil, ErrNotStarted
	}
	sni := hello.ServerName
	if sni == "" {
		return nil, ErrNoServerName
	}
	if !validHostname(sni) {
		m.refused(hello, ErrBadServerName)
		return nil, fmt.Errorf("%w: %q", ErrBadServerName, sni)
	}
	name := lowerASCII(sni)
	if name == m.base || (m.wildcard && m.oneLabelUnder(name)) {
		return r.managed.GetCertificate(hello)
	}
	if !m.allowed(name) {
		m.refused(hello, ErrNameNotAllowed)
		return nil, fmt.Errorf("%w: %s", ErrNameNotAllowed, name)
	}
	return r.onDemand.GetCertificate(hello)
}

// decide is certmagic's on-demand DecisionFunc: it runs before a
// certificate for name is loaded from storage, obtained or renewed during a
// handshake. name is lower-case punycode.
func (m *Manager) decide(_ context.Context, name string) error {
	if !m.allowed(name) {
		return fmt.Errorf("%w: %s", ErrNameNotAllowed, name)
	}
	return nil
}

// allowed reports whether a certificate may exist for the lower-case ASCII
// hostname name.
func (m *Manager) allowed(name string) bool {
	if name == m.base || m.oneLabelUnder(name) {
		return true
	}
	return m.allowName != nil && m.allowName(name)
}

// oneLabelUnder reports whether the lower-case hostname name is exactly one
// label under the base domain. name has passed validHostname.
func (m *Manager) oneLabelUnder(name string) bool {
	cut := len(name) - len(m.base) - 1
	return cut > 0 && name[cut] == '.' && name[cut+1:] == m.base &&
		strings.IndexByte(name[:cut], '.') < 0
}

// isManaged reports whether a certificate with these names is one Start
// manages (renewed by the maintenance goroutine) rather than an on-demand
// one (renewed during handshakes).
func (m *Manager) isManaged(names []string) bool {
	if len(names) == 0 {
		return false
	}
	for _, n := range names {
		if n != m.base && (!m.wildcard || n != "*."+m.base) {
			return false
		}
	}
	return true
}

// refused logs a refused handshake at debug level, allocation-free when off.
func (m *Manager) refused(hello *tls.ClientHelloInfo, reason error) {
	if ce := m.log.Check(zap.DebugLevel, "certificate refused"); ce != nil {
		fields := []zap.Field{zap.String("server_name", hello.ServerName), zap.Error(reason)}
		if hello.Conn != nil {
			fields = append(fields, zap.Stringer("remote_addr", hello.Conn.RemoteAddr()))
		}
		ce.Write(fields...)
	}
}
