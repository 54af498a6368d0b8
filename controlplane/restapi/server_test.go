package restapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/restapi"
)

// TestNewStartsNothing opens no listener and runs no goroutine: the
// handler serves only when the caller serves it.
func TestNewStartsNothing(t *testing.T) {
	st := cptest.OpenStore(t, storetest.DSN(t, "sqlite"))
	s := restapi.New(restapi.Config{}, controlplane.New(controlplane.Config{}, st))
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api_keys", nil))
	cptest.WantError(t, cptest.Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}, 401, "TG_200")
}
