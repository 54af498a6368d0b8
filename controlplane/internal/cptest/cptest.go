// Package cptest runs a control plane for the tests of controlplane and its
// products: a real store (storetest's SQLite or PostgreSQL), the Core, the
// REST API and the edge API on one httptest server (as on the API
// listener), the dashboard, and the dev bootstrap's admin API key. Its
// helpers fail the test on any unexpected error.
package cptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/dashboard"
	"github.com/tollgate/tollgate/controlplane/edgeapi"
	"github.com/tollgate/tollgate/controlplane/events"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/restapi"
	"github.com/tollgate/tollgate/controlplane/scim"
	"github.com/tollgate/tollgate/controlplane/sso"
	"github.com/tollgate/tollgate/controlplane/store"
)

// Config holds the settings of an Env's control plane, which NewEnv hands
// to the Core and the products.
type Config struct {
	// Core (controlplane.Config). RateLimit 0 turns the per-account limit
	// off in tests (-1); tests of the limit set it.
	PollInterval     time.Duration
	RateLimit        float64
	RateBurst        int
	AuthFailureLimit float64
	AuthFailureBurst int
	TrustedProxies   []netip.Prefix
	// REST API (restapi.Config).
	BaseURL       string
	DefaultRegion string
	TCPAddrPools  map[string]restapi.TCPAddrPool
	// PublicHostnames (restapi.Config and dashboard.Config): region →
	// the public hostname reserved domains are CNAMEd to.
	PublicHostnames map[string]string
	// Edge API (edgeapi.Config.Secret).
	EdgeSecret string
	// TrafficEvents gives the edge API an events.Deliverer over the store
	// as its traffic ingester (POST /edge/v1/traffic); it is not run.
	TrafficEvents bool
	// Dashboard (dashboard.Config.SecureCookie).
	DashboardSecureCookie bool
	// EventFileDir gives the REST API and the dashboard an events.Deliverer
	// (not run) as their event tester, file targets under this directory
	// and http:// webhooks (loopback tests).
	EventFileDir string
	// DNSResolver is the DNS server ("host:port") that checks claimed
	// email domains (dashboard.Config.Domains, restapi.Config.Domains).
	DNSResolver string
}

// Env is a control plane under test: a real store, the Core and its
// products, the API listener's handler (REST API, edge API and SCIM) on an
// httptest server, and the dev bootstrap's admin API key.
type Env struct {
	T         *testing.T
	Store     *store.Store
	Core      *controlplane.Core
	API       *restapi.Server
	Edges     *edgeapi.Server
	Dashboard *dashboard.Server
	HTTP      *httptest.Server // the API listener
	Dev       *controlplane.DevCredentials
	Admin     string // the admin's API key token
}

// EachDialect runs fn as a subtest with a new Env per store dialect.
func EachDialect(t *testing.T, fn func(t *testing.T, e *Env)) {
	t.Helper()
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) { fn(t, NewEnv(t, storetest.DSN(t, d), Config{})) })
	}
}

// OpenStore opens the store at dsn, closed when the test ends.
func OpenStore(t testing.TB, dsn string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// NewEnv starts a control plane on the store at dsn with cfg and
// bootstraps it. Admin is set when this Env's bootstrap created the dev
// account (not when another Env on the same database did).
func NewEnv(t *testing.T, dsn string, cfg Config) *Env {
	t.Helper()
	st := OpenStore(t, dsn)
	if cfg.RateLimit == 0 {
		cfg.RateLimit = -1 // tests that exercise the limit set it; the rest go as fast as they can
	}
	core := controlplane.New(controlplane.Config{PollInterval: cfg.PollInterval, RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst,
		AuthFailureLimit: cfg.AuthFailureLimit, AuthFailureBurst: cfg.AuthFailureBurst, TrustedProxies: cfg.TrustedProxies}, st)
	t.Cleanup(core.Close)
	rcfg := restapi.Config{BaseURL: cfg.BaseURL, DefaultRegion: cfg.DefaultRegion, TCPAddrPools: cfg.TCPAddrPools, PublicHostnames: cfg.PublicHostnames,
		Domains: sso.DomainVerifier{Resolver: cfg.DNSResolver}}
	dcfg := dashboard.Config{SecureCookie: cfg.DashboardSecureCookie, PublicHostnames: cfg.PublicHostnames,
		Reservations: controlplane.Reservations{DefaultRegion: cfg.DefaultRegion, TCPAddrPools: cfg.TCPAddrPools},
		Domains:      sso.DomainVerifier{Resolver: cfg.DNSResolver}}
	if cfg.EventFileDir != "" {
		d, err := events.New(events.Config{FileDir: cfg.EventFileDir, AllowHTTPWebhooks: true, EgressAllow: events.LoopbackPrefixes}, st)
		if err != nil {
			t.Fatal(err)
		}
		rcfg.EventTargets, rcfg.EventTester = d.Config().TargetOptions(), d
		dcfg.EventTargets, dcfg.EventTester = d.Config().TargetOptions(), d
	}
	api := restapi.New(rcfg, core)
	ecfg := edgeapi.Config{Secret: cfg.EdgeSecret}
	if cfg.TrafficEvents {
		d, err := events.New(events.Config{}, st)
		if err != nil {
			t.Fatal(err)
		}
		ecfg.Traffic = d
	}
	edges := edgeapi.New(ecfg, core)
	dash := dashboard.New(dcfg, core)
	scimSrv := scim.New(scim.Config{BaseURL: cfg.BaseURL}, core)
	hs := httptest.NewServer(edgeapi.Mount(edges.Handler(), scim.Mount(scimSrv.Handler(), api.Handler())))
	t.Cleanup(hs.Close)
	dev, created, err := controlplane.Bootstrap(Ctx(t), st)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{T: t, Store: st, Core: core, API: api, Edges: edges, Dashboard: dash, HTTP: hs, Dev: dev}
	if created {
		e.Admin = dev.APIKey.Reveal()
	}
	return e
}

// Ctx returns a context that ends after a minute or with the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Response is a finished API call.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Obj decodes the body as a JSON object.
func (r Response) Obj(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %s", r.Status, err, r.Body)
	}
	return m
}

// Call makes an API request with the given key ("" = none). body is sent as
// is when it is a string, JSON-encoded otherwise (nil = no body).
func (e *Env) Call(method, path, key string, body any, hdr ...string) Response {
	e.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			e.T.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = e.HTTP.URL + path
	}
	req, err := http.NewRequestWithContext(Ctx(e.T), method, url, rd)
	if err != nil {
		e.T.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.HTTP.Client().Do(req)
	if err != nil {
		e.T.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.T.Fatal(err)
	}
	return Response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// Must checks the status and returns the decoded object (nil for 204).
func (e *Env) Must(status int, r Response) map[string]any {
	e.T.Helper()
	if r.Status != status {
		e.T.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if status == http.StatusNoContent {
		if len(r.Body) != 0 {
			e.T.Fatalf("204 with a body: %s", r.Body)
		}
		return nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		e.T.Fatalf("Content-Type %q", ct)
	}
	return r.Obj(e.T)
}

// WantError checks an error response: the status, the code, and exactly the
// platform's error body shape.
func WantError(t testing.TB, r Response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	var body struct {
		ErrorCode  string            `json:"error_code"`
		StatusCode int               `json:"status_code"`
		Msg        string            `json:"msg"`
		Details    map[string]string `json:"details"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error body %s: %v", r.Body, err)
	}
	if body.ErrorCode != code || body.StatusCode != status || body.Msg == "" ||
		!strings.HasPrefix(body.Details["operation_id"], "op_") || len(body.Details) != 1 {
		t.Fatalf("error body = %s, want code %s status %d", r.Body, code, status)
	}
	if r.Header.Get("Tollgate-Operation-Id") != body.Details["operation_id"] {
		t.Fatalf("operation ID header %q != body %q", r.Header.Get("Tollgate-Operation-Id"), body.Details["operation_id"])
	}
}

// Revision returns the store's revision.
func (e *Env) Revision() uint64 {
	e.T.Helper()
	r, err := e.Store.Revision(Ctx(e.T))
	if err != nil {
		e.T.Fatal(err)
	}
	return r
}

// Str returns m[k] when it is a string, else "".
func Str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}
