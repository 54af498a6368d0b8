package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
)

// env is a control plane under test: a real store, the Server, its API on
// an httptest server, and the dev bootstrap's admin API key.
type env struct {
	t     *testing.T
	store *store.Store
	srv   *Server
	http  *httptest.Server
	dev   *DevCredentials
	admin string // the admin's API key token
}

func eachDialect(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) { fn(t, newEnv(t, storetest.DSN(t, d), ServerConfig{})) })
	}
}

func openStore(t testing.TB, dsn string) *store.Store {
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

func newEnv(t *testing.T, dsn string, cfg ServerConfig) *env {
	t.Helper()
	st := openStore(t, dsn)
	if cfg.RateLimit == 0 {
		cfg.RateLimit = -1 // tests that exercise the limit set it; the rest go as fast as they can
	}
	srv := NewServer(st, cfg)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	dev, created, err := Bootstrap(testCtx(t), st)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st, srv: srv, http: hs, dev: dev}
	if created {
		e.admin = dev.APIKey.Reveal()
	}
	return e
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// response is a finished API call.
type response struct {
	status int
	header http.Header
	body   []byte
}

// obj decodes the body as a JSON object.
func (r response) obj(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %s", r.status, err, r.body)
	}
	return m
}

// call makes an API request with the given key ("" = none). body is sent as
// is when it is a string, JSON-encoded otherwise (nil = no body).
func (e *env) call(method, path, key string, body any, hdr ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = e.http.URL + path
	}
	req, err := http.NewRequestWithContext(testCtx(e.t), method, url, rd)
	if err != nil {
		e.t.Fatal(err)
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
	res, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// must checks the status and returns the decoded object (nil for 204).
func (e *env) must(status int, r response) map[string]any {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if status == http.StatusNoContent {
		if len(r.body) != 0 {
			e.t.Fatalf("204 with a body: %s", r.body)
		}
		return nil
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		e.t.Fatalf("Content-Type %q", ct)
	}
	return r.obj(e.t)
}

// wantError checks an error response: the status, the code, and exactly the
// platform's error body shape.
func wantError(t testing.TB, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var body struct {
		ErrorCode  string            `json:"error_code"`
		StatusCode int               `json:"status_code"`
		Msg        string            `json:"msg"`
		Details    map[string]string `json:"details"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	if body.ErrorCode != code || body.StatusCode != status || body.Msg == "" ||
		!strings.HasPrefix(body.Details["operation_id"], "op_") || len(body.Details) != 1 {
		t.Fatalf("error body = %s, want code %s status %d", r.body, code, status)
	}
	if r.header.Get("Tollgate-Operation-Id") != body.Details["operation_id"] {
		t.Fatalf("operation ID header %q != body %q", r.header.Get("Tollgate-Operation-Id"), body.Details["operation_id"])
	}
}

func (e *env) revision() uint64 {
	e.t.Helper()
	r, err := e.store.Revision(testCtx(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}
