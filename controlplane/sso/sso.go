package sso

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate/tollgate/controlplane/store"
)

// Identity is who an identity provider signed in.
type Identity struct {
	Email   string // as the IdP gave it; the store normalises it
	Name    string // may be ""
	Groups  []string
	Subject string // the IdP's NameID or sub
}

// Config holds a Manager's optional settings.
type Config struct {
	// HTTPClient fetches SAML metadata and talks to OIDC providers.
	// Default: a client with a 15s timeout.
	HTTPClient *http.Client
	// MetadataTTL is how long fetched SAML metadata and OIDC discovery
	// documents are reused. Default 10 minutes.
	MetadataTTL time.Duration
	// Now is the clock of SAML validity checks. Default time.Now.
	Now func() time.Time
}

// Manager builds the SAML service provider and the OIDC relying party of
// an identity provider, caching what it fetched from the IdP. It is safe
// for concurrent use.
type Manager struct {
	cfg   Config
	store *store.Store

	mu    sync.Mutex
	cache map[string]cached // by IdP ID + source (metadata URL or issuer)
}

type cached struct {
	v       any
	fetched time.Time
}

// New returns a Manager over st. It starts nothing.
func New(cfg Config, st *store.Store) *Manager {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.MetadataTTL <= 0 {
		cfg.MetadataTTL = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{cfg: cfg, store: st, cache: map[string]cached{}}
}

// fetchCached returns the value cached under key while it is fresh, else
// calls fetch and caches what it returns.
func fetchCached[T any](ctx context.Context, m *Manager, key string, fetch func(context.Context) (T, error)) (T, error) {
	m.mu.Lock()
	c, ok := m.cache[key]
	m.mu.Unlock()
	if ok && m.cfg.Now().Sub(c.fetched) < m.cfg.MetadataTTL {
		return c.v.(T), nil
	}
	v, err := fetch(ctx)
	if err != nil {
		return v, err
	}
	m.mu.Lock()
	m.cache[key] = cached{v: v, fetched: m.cfg.Now()}
	m.mu.Unlock()
	return v, nil
}

// Forget drops what was cached for identity provider id (after its
// settings change).
func (m *Manager) Forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.cache {
		if len(k) > len(id) && k[:len(id)] == id && k[len(id)] == ' ' {
			delete(m.cache, k)
		}
	}
}
