package certs

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/tollgate/tollgate/snapshot"
	"go.uber.org/zap"
)

// Config configures a Manager. BaseDomain is required, exactly one of
// Issuer or ACME, and one of Storage or DataDir.
type Config struct {
	// BaseDomain is the edge's base domain, e.g. "tunnel.example.com" or
	// "localhost": ASCII (punycode for IDNs), a trailing dot is dropped.
	BaseDomain string
	// Storage holds certificates, keys, the ACME account and issuance
	// locks; edges sharing one share certificates and obtain each once.
	// Default: a certmagic.FileStorage at DataDir/certs.
	Storage certmagic.Storage
	// DataDir is the edge's data directory; used only when Storage is nil.
	DataDir string
	// Issuer obtains certificates from a local CA (a *LocalIssuer in dev).
	// Start obtains "<BaseDomain>" and "*.<BaseDomain>" synchronously. A
	// certmagic.PreChecker issuer is asked before any key is generated.
	Issuer certmagic.Issuer
	// ACME obtains certificates from an ACME CA instead of Issuer. Start
	// returns at once: "*.<BaseDomain>" (only with ACME.DNS) and
	// "<BaseDomain>" are obtained in the background, and until the
	// wildcard is held a name under the base domain gets its own
	// certificate at its first handshake (if AllowSubdomain accepts it).
	ACME *ACMEConfig
	// Logger receives the manager's and certmagic's logs. Default: no logs.
	Logger *zap.Logger

	// Snapshot returns the edge's current snapshot; its reserved domains
	// (in Region) may have certificates: obtained as soon as they appear
	// (ACME), or at their first handshake. A reserved "*.example.com"
	// allows each "<label>.example.com" on demand. The key type follows
	// the reservation's PrivateKeyType ("rsa" → RSA 2048, else ECDSA
	// P-256); a change applies at the next renewal. nil: no reservations.
	Snapshot func() *snapshot.Snapshot
	// Region limits Snapshot's reservations to one region; "" = all.
	Region string
	// AllowName decides whether a certificate may be obtained on demand,
	// during a handshake, for a name that is neither under the base domain
	// nor reserved in Snapshot. It receives a lower-case ASCII name (IDNs
	// as punycode), must be fast and must not block: it runs inside
	// handshakes. nil allows none. Rate limiting on-demand issuance is the
	// caller's job.
	AllowName func(name string) bool
	// AllowSubdomain decides, with ACME while "*.<BaseDomain>" is not held,
	// whether a name one label under the base domain may get its own
	// certificate at its first handshake (e.g. only names that an endpoint
	// is bound to, so a random SNI spends none of the CA's rate limit).
	// Same rules as AllowName. nil allows every one-label name.
	AllowSubdomain func(name string) bool
	// Status receives certificate status changes (ACME issuance, renewal,
	// failures with their retry time). Optional.
	Status StatusReporter

	// RenewCheckInterval is how often held certificates are checked for
	// renewal (and ARI windows refreshed). Default 10m (certmagic's).
	RenewCheckInterval time.Duration
	// ReservationPoll is how often Snapshot is checked for new or removed
	// reservations. Default 2s.
	ReservationPoll time.Duration
}

// Manager obtains, stores, renews and serves the edge's public
// certificates. Create it with New, call Start once, use GetCertificate in
// the public tls.Config, and Stop when done.
//
// Server names are served as follows: the base domain and names one label
// under it from the certificates Start obtained (no issuance, no storage
// access); any other name only if it is reserved in Snapshot or AllowName
// accepts it, from the in-memory cache, then storage, then the issuer (on
// demand, shared by concurrent handshakes). With the local issuer, when the
// base domain has a single label ("localhost"), one label names are issued
// on demand instead of served by "*.<base>", since OpenSSL (curl) and
// browsers reject a wildcard directly under a single label. A name whose
// certificate is in the cache is served from it without waiting on the CA,
// storage or OCSP; renewal happens in the background.
type Manager struct {
	base      string
	wildcard  bool // serve one-label names from "*.<base>"
	issuer    certmagic.Issuer
	acme      *ACMEConfig // nil: local issuer
	storage   certmagic.Storage
	snapshot  func() *snapshot.Snapshot
	region    string
	allowName func(string) bool
	allowSub  func(string) bool
	reporter  StatusReporter
	renewEach time.Duration
	pollEach  time.Duration
	log       *zap.Logger

	mu    sync.Mutex // serialises Start and Stop
	phase phase
	run   atomic.Pointer[running] // non-nil while serving

	wildcardHeld atomic.Bool
	status       *statusTracker
}

type phase int

const (
	phaseNew phase = iota
	phaseRunning
	phaseStopped
)

// Key types of reserved domains' certificates.
const (
	keyECDSA = "ecdsa"
	keyRSA   = "rsa"
	// keyWildcardDNS marks a reserved wildcard domain in
	// running.managedCustom: managed by running.wild over DNS-01.
	keyWildcardDNS = "wildcard-dns01"
)

// running is what Start builds: one certmagic cache and configs on it.
// managed holds the base-domain certificates (and, with ACME, serves every
// cached certificate); wild obtains "*.<base>" over DNS-01 (ACME with DNS
// only); custom[key type] manages reserved names and renews certificates
// obtained on demand (ACME only); onDemand[key type] obtains certificates
// during handshakes.
type running struct {
	cache      *certmagic.Cache
	managed    *certmagic.Config
	wild       *certmagic.Config
	custom     map[string]*certmagic.Config
	onDemand   map[string]*certmagic.Config
	httpIssuer *certmagic.ACMEIssuer // answers HTTP-01; nil with the local issuer

	cancel context.CancelFunc // ends background issuance
	stop   chan struct{}
	wg     sync.WaitGroup

	mu            sync.Mutex
	managedCustom map[string]string   // reserved name → key type, managed in custom
	seen          map[string]struct{} // names obtained on demand
}

// New validates cfg and returns a Manager. It has no side effects: no
// goroutine, no storage access, no issuance. Errors wrap ErrInvalidConfig.
func New(cfg Config) (*Manager, error) {
	base, err := normalizeBase(cfg.BaseDomain)
	if err != nil {
		return nil, err
	}
	if (cfg.Issuer == nil) == (cfg.ACME == nil) {
		return nil, fmt.Errorf("%w: exactly one of an issuer and an ACME config is required", ErrInvalidConfig)
	}
	var acmeCfg *ACMEConfig
	if cfg.ACME != nil {
		c, err := cfg.ACME.validate()
		if err != nil {
			return nil, err
		}
		acmeCfg = &c
	}
	storage := cfg.Storage
	if storage == nil {
		if cfg.DataDir == "" {
			return nil, fmt.Errorf("%w: Storage or DataDir is required", ErrInvalidConfig)
		}
		storage = &certmagic.FileStorage{Path: filepath.Join(cfg.DataDir, "certs")}
	}
	if cfg.RenewCheckInterval < 0 || cfg.ReservationPoll < 0 {
		return nil, fmt.Errorf("%w: negative interval", ErrInvalidConfig)
	}
	if cfg.ReservationPoll == 0 {
		cfg.ReservationPoll = 2 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	wildcard := strings.Contains(base, ".") && (acmeCfg == nil || acmeCfg.DNS != nil)
	return &Manager{
		base:      base,
		wildcard:  wildcard,
		issuer:    cfg.Issuer,
		acme:      acmeCfg,
		storage:   storage,
		snapshot:  cfg.Snapshot,
		region:    cfg.Region,
		allowName: cfg.AllowName,
		allowSub:  cfg.AllowSubdomain,
		reporter:  cfg.Status,
		renewEach: cfg.RenewCheckInterval,
		pollEach:  cfg.ReservationPoll,
		log:       log.Named("certs"),
	}, nil
}

// BaseDomain returns the normalised base domain.
func (m *Manager) BaseDomain() string { return m.base }

// ManagedNames returns the names Start obtains certificates for:
// "*.<base>" (when the base has two labels or more, and, with ACME, DNS-01
// is configured) and "<base>".
func (m *Manager) ManagedNames() []string {
	if m.wildcard {
		return []string{"*." + m.base, m.base}
	}
	return []string{m.base}
}

// Start starts certificate maintenance. With the local issuer it obtains,
// synchronously, the certificates of ManagedNames: each is loaded from
// storage when present (and renewed if due) or else issued, and it returns
// when they are ready to serve, or with the first error, after which
// nothing is left running and Start may be called again; cancelling ctx
// aborts issuance. With ACME it returns at once and obtains them in the
// background (retrying with backoff), since the CA's challenges need the
// edge's listeners to be serving. Start on a running Manager returns
// ErrStarted, after Stop ErrStopped; a concurrent Stop waits for Start to
// return.
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
	m.status = newStatusTracker(m.log, m.reporter, m.storage, m.noteCached)
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(c certmagic.Certificate) (*certmagic.Config, error) {
			r := ready.Load()
			if r == nil {
				return nil, ErrNotStarted
			}
			return m.configFor(r, c.Names), nil
		},
		RenewCheckInterval: m.renewEach,
		Logger:             cmLog,
	})
	bg, cancel := context.WithCancel(context.Background())
	r := &running{
		cache:         cache,
		custom:        map[string]*certmagic.Config{},
		onDemand:      map[string]*certmagic.Config{},
		cancel:        cancel,
		stop:          make(chan struct{}),
		managedCustom: map[string]string{},
		seen:          map[string]struct{}{},
	}
	if m.acme == nil {
		m.buildLocal(r, cmLog)
	} else {
		m.buildACME(r, cmLog)
	}
	ready.Store(r)

	names := m.ManagedNames()
	if m.acme == nil {
		if err := r.managed.ManageSync(ctx, names); err != nil {
			cancel()
			cache.Stop()
			return fmt.Errorf("obtaining certificates for %s: %w", strings.Join(names, ", "), err)
		}
	} else {
		if r.wild != nil {
			if err := r.wild.ManageAsync(bg, []string{"*." + m.base}); err != nil {
				cancel()
				cache.Stop()
				return fmt.Errorf("managing *.%s: %w", m.base, err)
			}
		}
		if err := r.managed.ManageAsync(bg, []string{m.base}); err != nil {
			cancel()
			cache.Stop()
			return fmt.Errorf("managing %s: %w", m.base, err)
		}
	}
	if m.reporter != nil {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			m.status.run(r.stop)
		}()
	}
	if m.acme != nil && m.snapshot != nil {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			m.watchReservations(bg, r)
		}()
	}
	if m.acme == nil && m.snapshot != nil {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			m.watchLocalReservations(bg, r)
		}()
	}
	m.run.Store(r)
	m.phase = phaseRunning
	issuer := "acme " + m.caString()
	m.log.Info("certificate manager started",
		zap.String("base_domain", m.base),
		zap.Strings("names", names),
		zap.String("issuer", issuer))
	return nil
}

// caString names the issuer for logs.
func (m *Manager) caString() string {
	if m.acme != nil {
		return m.acme.CA
	}
	return m.issuer.IssuerKey()
}

// buildLocal sets up r for the local issuer: managed serves the base
// names; onDemand issues one-label names under a single-label base and
// AllowName's names. Stapling is off: the local CA has no responder.
func (m *Manager) buildLocal(r *running, cmLog *zap.Logger) {
	tmpl := certmagic.Config{
		Issuers:   []certmagic.Issuer{m.issuer},
		Storage:   m.storage,
		KeySource: certmagic.StandardKeyGenerator{KeyType: certmagic.P256},
		OCSP:      certmagic.OCSPConfig{DisableStapling: true},
		OnEvent:   m.status.onEvent,
		Logger:    cmLog,
	}
	r.managed = certmagic.New(r.cache, tmpl)
	tmpl.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: m.decide}
	r.onDemand[keyECDSA] = certmagic.New(r.cache, tmpl)
}

// buildACME sets up r for ACME: an HTTP-01/TLS-ALPN-01 issuer for single
// names, a DNS-01 issuer for the wildcard, and a managed and an on-demand
// config per key type. Stapling is on where certificates are loaded in the
// background (managed, wild, custom) and off on the on-demand configs, so
// a handshake never waits on an OCSP responder; maintenance staples those
// later.
func (m *Manager) buildACME(r *running, cmLog *zap.Logger) {
	tmpl := certmagic.Config{
		Storage:   m.storage,
		KeySource: certmagic.StandardKeyGenerator{KeyType: certmagic.P256},
		OnEvent:   m.status.onEvent,
		Logger:    cmLog,
	}
	r.managed = certmagic.New(r.cache, tmpl)
	perName, wildcard := m.acme.issuers(r.managed, cmLog.Named("acme"))
	r.httpIssuer = perName
	r.managed.Issuers = []certmagic.Issuer{perName}
	if wildcard != nil {
		w := tmpl
		w.Issuers = []certmagic.Issuer{wildcard}
		r.wild = certmagic.New(r.cache, w)
	}
	for kt, kg := range map[string]certmagic.KeyType{keyECDSA: certmagic.P256, keyRSA: certmagic.RSA2048} {
		c := tmpl
		c.KeySource = certmagic.StandardKeyGenerator{KeyType: kg}
		c.Issuers = []certmagic.Issuer{perName}
		r.custom[kt] = certmagic.New(r.cache, c)
		c.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: m.decide}
		c.OCSP = certmagic.OCSPConfig{DisableStapling: true}
		r.onDemand[kt] = certmagic.New(r.cache, c)
	}
}

// configFor is the cache's GetConfigForCert: the config that renews a
// certificate with these names.
func (m *Manager) configFor(r *running, names []string) *certmagic.Config {
	if r.wild != nil && slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "*.") }) {
		return r.wild // "*.<base>" and reserved wildcard domains renew over DNS-01
	}
	if m.isManaged(names) {
		return r.managed
	}
	if m.acme == nil {
		return r.onDemand[keyECDSA]
	}
	kt := keyECDSA
	if len(names) > 0 {
		kt = m.keyType(names[0])
	}
	return r.custom[kt]
}

// Stop stops certificate maintenance and background issuance and makes
// GetCertificate fail with ErrNotStarted. It is idempotent; a stopped
// Manager cannot be started again. Work certmagic already began for a
// handshake (an on-demand issuance) finishes on its own.
func (m *Manager) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.phase = phaseStopped
	if r := m.run.Swap(nil); r != nil {
		r.cancel()
		close(r.stop)
		r.wg.Wait()
		r.cache.Stop()
		m.log.Info("certificate maintenance stopped", zap.String("base_domain", m.base))
	}
}

// GetCertificate returns the certificate for hello.ServerName; use it as
// tls.Config.GetCertificate. It fails — and the handshake with it — with
// ErrNotStarted outside Start..Stop, ErrNoServerName without SNI,
// ErrBadServerName for a non-ASCII or malformed name, and ErrNameNotAllowed
// for a name that may have no certificate; a refused name causes no storage
// access and no issuance. A name whose certificate is held never waits; a
// name without one may wait for storage and the issuer once (shared by
// concurrent handshakes). A TLS-ALPN-01 validation handshake (ALPN
// "acme-tls/1" only) gets the challenge certificate.
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
	if r.httpIssuer != nil && len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ACMETLSALPNProto {
		return r.managed.GetCertificate(hello) // only an active challenge's certificate
	}
	name := lowerASCII(sni)
	if m.acme == nil {
		if name == m.base || (m.wildcard && m.oneLabelUnder(name)) {
			return r.managed.GetCertificate(hello)
		}
		if !m.allowed(name) {
			m.refused(hello, ErrNameNotAllowed)
			return nil, fmt.Errorf("%w: %s", ErrNameNotAllowed, name)
		}
		if w := m.localWildcard(name); w != "" {
			return m.localWildcardCert(r, hello, name, w)
		}
		return r.onDemand[keyECDSA].GetCertificate(hello)
	}
	if !m.allowed(name) {
		m.refused(hello, ErrNameNotAllowed)
		return nil, fmt.Errorf("%w: %s", ErrNameNotAllowed, name)
	}
	if len(r.cache.AllMatchingCertificates(name)) > 0 {
		return r.managed.GetCertificate(hello) // from the cache, no handshake maintenance
	}
	return r.onDemand[m.keyType(name)].GetCertificate(hello)
}

// localWildcard returns the reserved wildcard domain that covers name when
// the local CA signs it (UnderBase): then name is served from that
// wildcard's certificate, not one of its own. "" otherwise.
func (m *Manager) localWildcard(name string) string {
	rd, ok := m.reservation(name)
	if !ok || !strings.HasPrefix(rd.Domain, "*.") || rd.Domain == name || !UnderBase(m.base, rd.Domain) {
		return ""
	}
	return lowerASCII(rd.Domain)
}

// localWildcardCert serves name from the local CA's certificate for the
// reserved wildcard w, obtaining it first when the background watcher
// (watchLocalReservations) has not yet: the local CA signs at once, and
// certmagic's issuance lock makes concurrent handshakes obtain it once.
func (m *Manager) localWildcardCert(r *running, hello *tls.ClientHelloInfo, name, w string) (*tls.Certificate, error) {
	if len(r.cache.AllMatchingCertificates(name)) == 0 {
		ctx := context.Background()
		if hello.Context() != nil {
			ctx = hello.Context()
		}
		if err := r.managed.ManageSync(ctx, []string{w}); err != nil {
			return nil, fmt.Errorf("obtaining %s for %s: %w", w, name, err)
		}
	}
	return r.managed.GetCertificate(hello)
}

// HandleHTTPChallenge answers an ACME HTTP-01 validation request
// (GET /.well-known/acme-challenge/<token>) for a challenge this edge, or
// any edge sharing its storage, has presented, and reports whether it did.
// The public HTTP listener calls it before anything else. It answers
// nothing with the local issuer or outside Start..Stop.
func (m *Manager) HandleHTTPChallenge(w http.ResponseWriter, req *http.Request) bool {
	r := m.run.Load()
	if r == nil || r.httpIssuer == nil || !certmagic.LooksLikeHTTPChallenge(req) {
		return false
	}
	return r.httpIssuer.HandleHTTPChallenge(w, req)
}

// Status returns what the manager knows of name's certificate: expiry,
// renewal time and any failing provisioning job. false if nothing yet.
func (m *Manager) Status(name string) (Status, bool) {
	if m.status == nil {
		return Status{}, false
	}
	return m.status.get(lowerASCII(name))
}

// WildcardHeld reports whether "*.<base>" is in the cache (so names under
// the base domain need no certificate of their own).
func (m *Manager) WildcardHeld() bool { return m.wildcardHeld.Load() }

// noteCached is called when certmagic caches a managed certificate.
func (m *Manager) noteCached(sans []string) {
	if slices.Contains(sans, "*."+m.base) {
		m.wildcardHeld.Store(true)
	}
	r := m.run.Load()
	if r == nil || len(sans) == 0 {
		return
	}
	for _, c := range r.cache.AllMatchingCertificates(sans[0]) {
		if c.Leaf != nil && slices.Equal(c.Names, sans) {
			m.status.noteHeld(sans[0], "", c.Leaf)
			return
		}
	}
}

// decide is certmagic's on-demand DecisionFunc: it runs before a
// certificate for name is loaded from storage, obtained or renewed during a
// handshake. name is lower-case punycode.
func (m *Manager) decide(_ context.Context, name string) error {
	if !m.allowed(name) {
		return fmt.Errorf("%w: %s", ErrNameNotAllowed, name)
	}
	if r := m.run.Load(); r != nil {
		r.mu.Lock()
		r.seen[name] = struct{}{}
		r.mu.Unlock()
	}
	return nil
}

// allowed reports whether a certificate may exist for the lower-case ASCII
// hostname name: the base domain; a name one label under it (with ACME and
// no wildcard held, if it is reserved or AllowSubdomain accepts it); a
// name reserved in the snapshot; or a name AllowName accepts.
func (m *Manager) allowed(name string) bool {
	if name == m.base {
		return true
	}
	if m.oneLabelUnder(name) {
		if m.acme == nil || m.wildcardHeld.Load() || m.allowSub == nil {
			return true
		}
		if _, ok := m.reservation(name); ok {
			return true
		}
		return m.allowSub(name)
	}
	if _, ok := m.reservation(name); ok {
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

// isManaged reports whether a certificate with these names is one of the
// base-domain certificates Start manages.
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
