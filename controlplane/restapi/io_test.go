package controlplane

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/controlplane/internal/storetest"
)

// FuzzDecodeBody feeds arbitrary bodies to the request decoder: it must
// never panic, and must either fill the struct or answer a 4xx *apiError.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"description":"x","acl":["bind:a.com"]}`, `{"acl":null}`, `{"acl":[1]}`,
		`{"description":5}`, `[]`, `null`, `{"a":1}`, `{"description":"x"} {}`, `{"metadata":"\u0000"}`, `{"owner_id":"usr_1"`} {
		f.Add(s)
	}
	srv := &Server{cfg: ServerConfig{MaxBodyBytes: 1 << 16}}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/credentials", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var dst credentialCreateBody
		err := srv.decodeBody(httptest.NewRecorder(), r, &dst)
		if err == nil {
			return
		}
		var ae *apiError
		if !errors.As(err, &ae) || ae.status < 400 || ae.status > 499 || ae.code == "" || ae.msg == "" {
			t.Fatalf("decodeBody(%q) = %v, want a 4xx *apiError", body, err)
		}
	})
}

func TestServerWithoutStorePanics(t *testing.T) {
	defer func() {
		if p := recover(); p != ErrNoStore {
			t.Fatalf("recovered %v, want ErrNoStore", p)
		}
	}()
	NewServer(nil, ServerConfig{})
}

// TestNewServerStartsNothing opens no listener and runs no goroutine: the
// handler serves only when the caller serves it.
func TestNewServerStartsNothing(t *testing.T) {
	st := openStore(t, storetest.DSN(t, "sqlite"))
	s := NewServer(st, ServerConfig{})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api_keys", nil))
	wantError(t, response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}, 401, "TG_200")
}
