package dashboard_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
)

// TestReservationsShowDNSTargetAndCertificateState: the reservations page
// shows each reserved domain's DNS target (its region's public hostname)
// and its certificate's state, with the edge's reason while it is not
// issued.
func TestReservationsShowDNSTargetAndCertificateState(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{PublicHostnames: map[string]string{"eu": "eu.edge.example.net"}})
	b := newBrowser(t, serveDashboard(e, "127.0.0.1:0"))
	b.signIn(e.Admin).want(t, http.StatusSeeOther, "")
	e.Must(201, e.Call("POST", "/reserved_domains", e.Admin, map[string]any{"domain": "shop.customer.test", "region": "eu"}))
	e.Must(201, e.Call("POST", "/reserved_domains", e.Admin, map[string]any{"domain": "*.wild.customer.test", "region": "eu"}))
	p := b.get("/reservations").want(t, http.StatusOK, "CNAME <code>eu.edge.example.net</code>")
	p.want(t, http.StatusOK, "No edge of region eu has reported on this certificate yet.")

	err := e.Store.PutCertificateStatus(context.Background(), store.CertificateStatus{Domain: "*.wild.customer.test", Region: "eu",
		JobErrorCode: store.CertErrorDNS, JobMsg: "needs DNS-01: configure --acme-dns", JobStartedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	p = b.get("/reservations").want(t, http.StatusOK, `<span class="cert-failing">failing</span> <code>DNS_ERROR</code>`)
	p.want(t, http.StatusOK, "needs DNS-01: configure --acme-dns")
}
