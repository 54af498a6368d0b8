package restapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/controlplane"
)

// FuzzDecodeBody feeds arbitrary bodies to the request decoder: it must
// never panic, and must either fill the struct or answer a 4xx *controlplane.Error.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"description":"x","acl":["bind:a.com"]}`, `{"acl":null}`, `{"acl":[1]}`,
		`{"description":5}`, `[]`, `null`, `{"a":1}`, `{"description":"x"} {}`, `{"metadata":"\u0000"}`, `{"owner_id":"usr_1"`} {
		f.Add(s)
	}
	srv := &Server{cfg: Config{MaxBodyBytes: 1 << 16}}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/credentials", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var dst credentialCreateBody
		err := srv.decodeBody(httptest.NewRecorder(), r, &dst)
		if err == nil {
			return
		}
		var ae *controlplane.Error
		if !errors.As(err, &ae) || ae.Status < 400 || ae.Status > 499 || ae.Code == "" || ae.Msg == "" {
			t.Fatalf("decodeBody(%q) = %v, want a 4xx *controlplane.Error", body, err)
		}
	})
}
