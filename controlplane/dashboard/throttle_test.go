package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
)

// TestDashboardSignInThrottle: wrong keys at sign-in spend the address's
// failure budget (the API's) and are then answered 429; the right key
// still signs in, and a wrong invitation token is answered 429 too.
func TestDashboardSignInThrottle(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{AuthFailureLimit: 0.5, AuthFailureBurst: 2})
	b := newBrowser(t, serveDashboard(e, "127.0.0.1:0"))
	kid, _, _ := strings.Cut(e.Admin, "_")
	wrong := kid + "_wrongsecretwrongsecretwrongsecr"
	for i := 0; i < 2; i++ {
		b.signIn(wrong).want(t, http.StatusUnauthorized, string(codes.DashboardSignIn))
	}
	p := b.signIn(wrong).want(t, http.StatusTooManyRequests, string(codes.APIRateLimited))
	if p.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	b.do(http.MethodPost, "/accept", url.Values{"token": {kid + "_wrongsecretwrongsecretwrongsecr"}, "name": {"x"}}).
		want(t, http.StatusTooManyRequests, string(codes.APIRateLimited))
	// The valid key signs in regardless of the address's failures.
	if p := b.signIn(e.Admin); p.status != http.StatusSeeOther || p.location != "/" {
		t.Fatalf("sign-in with the valid key while the address is throttled = %d %q: %s", p.status, p.location, p.body)
	}
}
