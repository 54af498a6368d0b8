package dashboard_test

import (
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/events"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
)

// TestDashboardEvents: on the events page an administrator creates a file
// and a webhook destination, sends each a test event (the file holds it;
// the webhook to a closed port shows why not, 502), creates a subscription
// with a source and a CEL filter (a filter that does not compile shows the
// compiler's message and stores nothing), sees the destinations' delivery
// status and the subscription's source, and deletes both; a read-only
// developer sees the page without the forms and is refused every action.
func TestDashboardEvents(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dir := t.TempDir()
			e := cptest.NewEnv(t, storetest.DSN(t, d), cptest.Config{EventFileDir: dir})
			base := serveDashboard(e, "127.0.0.1:0")
			admin := newBrowser(t, base)
			admin.signIn(e.Admin).want(t, http.StatusSeeOther, "")
			if p := admin.get("/events").want(t, http.StatusOK, "No event destinations"); !strings.Contains(p.body, `id="create-destination"`) {
				t.Fatal("an administrator is not offered the destination form")
			}
			acct := e.Dev.AccountID
			count := func() (int, int) {
				t.Helper()
				ds, _, err := e.Store.ListEventDestinations(cptest.Ctx(t), acct, store.Page{})
				if err != nil {
					t.Fatal(err)
				}
				ss, _, err := e.Store.ListEventSubscriptions(cptest.Ctx(t), acct, store.Page{})
				if err != nil {
					t.Fatal(err)
				}
				return len(ds), len(ss)
			}

			// Bad targets are refused with the API's code and store nothing.
			admin.post("/events", "/events/destinations", url.Values{"kind": {"webhook"}, "url": {"ftp://x"}}).
				want(t, http.StatusBadRequest, string(codes.EventTargetInvalid))
			admin.post("/events", "/events/destinations", url.Values{"kind": {"json"}, "target": {`{"nats": {}, "file": {}}`}}).
				want(t, http.StatusBadRequest, string(codes.EventTargetInvalid))
			admin.post("/events", "/events/destinations", url.Values{"kind": {"carrier-pigeon"}}).
				want(t, http.StatusBadRequest, string(codes.DashboardBadInput))
			admin.post("/events", "/events/destinations", url.Values{"kind": {"webhook"}, "url": {"http://169.254.169.254/latest/"},
				"secret": {"whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtMDEyMzQ1Njc4"}}).want(t, http.StatusBadRequest, string(codes.EventEgressForbidden))
			if n, _ := count(); n != 0 {
				t.Fatalf("%d destinations after refused forms", n)
			}

			admin.post("/events", "/events/destinations", url.Values{"kind": {"file"}, "path": {"audit.jsonl"}, "description": {"to a file"}}).
				want(t, http.StatusSeeOther, "")
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			closed := "http://" + ln.Addr().String() + "/hook"
			ln.Close()
			admin.post("/events", "/events/destinations", url.Values{"kind": {"webhook"}, "url": {closed}, "secret": {"whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtMDEyMzQ1Njc4"}, "description": {"to a hook"}}).
				want(t, http.StatusSeeOther, "")
			ds, _, err := e.Store.ListEventDestinations(cptest.Ctx(t), acct, store.Page{})
			if err != nil || len(ds) != 2 {
				t.Fatalf("destinations %v, %v", ds, err)
			}
			var fileID, hookID string
			for _, x := range ds {
				if x.Description == "to a file" {
					fileID = x.ID
				} else {
					hookID = x.ID
				}
			}
			p := admin.get("/events").want(t, http.StatusOK, fileID)
			if !strings.Contains(p.body, hookID) || strings.Contains(p.body, "whsec_c2Vj") {
				t.Fatalf("the list lacks the webhook or shows its secret: %s", p.body)
			}
			if !regexp.MustCompile(`<td class="delivered">0</td><td class="pending">0</td>`).MatchString(p.body) {
				t.Fatalf("no delivery status: %s", p.body)
			}

			p = admin.post("/events", "/events/destinations/"+fileID+"/test", nil).want(t, http.StatusOK, "delivered to")
			m := regexp.MustCompile(`Test event <code>([^<]+)</code>`).FindStringSubmatch(p.body)
			if m == nil {
				t.Fatalf("no test event ID: %s", p.body)
			}
			raw, err := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
			if err != nil || !strings.Contains(string(raw), m[1]) || !strings.Contains(string(raw), events.TestEventType) {
				t.Fatalf("the file holds %q, %v; want test event %s", raw, err, m[1])
			}
			admin.post("/events", "/events/destinations/"+hookID+"/test", nil).want(t, http.StatusBadGateway, string(codes.EventTestFailed))
			admin.post("/events", "/events/destinations/ed_nope/test", nil).want(t, http.StatusBadRequest, string(codes.DashboardBadInput))

			// Subscriptions: a filter that does not compile shows the
			// compiler's message and stores nothing.
			typ := events.Types()[0].Type
			p = admin.post("/events", "/events/subscriptions", url.Values{"type": {typ}, "filter": {"event_type =="}, "destination_id": {fileID}}).
				want(t, http.StatusBadRequest, string(codes.EventFilterInvalid))
			if !strings.Contains(p.body, "not valid CEL") || !strings.Contains(p.body, "Syntax error") {
				t.Fatalf("no compiler message: %s", p.body)
			}
			admin.post("/events", "/events/subscriptions", url.Values{"type": {"no_such.v0"}, "destination_id": {fileID}}).
				want(t, http.StatusBadRequest, string(codes.EventTypeInvalid))
			if _, n := count(); n != 0 {
				t.Fatalf("%d subscriptions after refused forms", n)
			}
			admin.post("/events", "/events/subscriptions", url.Values{"type": {typ}, "filter": {"true"}, "description": {"all of them"},
				"destination_id": {fileID, hookID}}).want(t, http.StatusSeeOther, "")
			ss, _, err := e.Store.ListEventSubscriptions(cptest.Ctx(t), acct, store.Page{})
			if err != nil || len(ss) != 1 || len(ss[0].DestinationIDs) != 2 || len(ss[0].Sources) != 1 || ss[0].Sources[0].Filter != "true" {
				t.Fatalf("subscriptions %+v, %v", ss, err)
			}
			sub := ss[0].ID
			p = admin.get("/events").want(t, http.StatusOK, sub)
			if !strings.Contains(p.body, "<code>"+typ+"</code> if <code>true</code>") {
				t.Fatalf("the subscription's source is not listed: %s", p.body)
			}

			// Sources of the subscription: added with a CEL filter (one that
			// does not compile, or a type it has, is refused and stores
			// nothing), and removed.
			srcPath := "/events/subscriptions/" + sub + "/sources"
			typ2 := events.Types()[1].Type
			sources := func() []store.EventSource {
				x, err := e.Store.GetEventSubscription(cptest.Ctx(t), acct, sub)
				if err != nil {
					t.Fatal(err)
				}
				return x.Sources
			}
			p = admin.post("/events", srcPath, url.Values{"type": {typ2}, "filter": {"object.id =="}}).
				want(t, http.StatusBadRequest, string(codes.EventFilterInvalid))
			if !strings.Contains(p.body, "Syntax error") {
				t.Fatalf("no compiler message: %s", p.body)
			}
			admin.post("/events", srcPath, url.Values{"type": {typ}}).want(t, http.StatusConflict, string(codes.EventSourceExists))
			if n := len(sources()); n != 1 {
				t.Fatalf("%d sources after refused forms", n)
			}
			if id := admin.post("/events", srcPath, url.Values{"type": {typ2}, "filter": {`object.id.startsWith("x")`}, "fields": {"object.id"}}).
				done(t, "/events", "source-added"); id != sub {
				t.Fatalf("the banner names %q, want %s", id, sub)
			}
			if got := sources(); len(got) != 2 || got[1].Type != typ2 || got[1].Filter != `object.id.startsWith("x")` || len(got[1].Fields) != 1 {
				t.Fatalf("sources after adding: %+v", got)
			}
			p = admin.get("/events").want(t, http.StatusOK, typ2)
			if !strings.Contains(p.body, `action="`+srcPath+"/"+typ2+`/delete"`) {
				t.Fatalf("no remove button for the new source: %s", p.body)
			}
			admin.post("/events", srcPath+"/"+typ+"/delete", nil).done(t, "/events", "source-removed")
			if got := sources(); len(got) != 1 || got[0].Type != typ2 {
				t.Fatalf("sources after removing: %+v", got)
			}
			admin.post("/events", srcPath+"/"+typ+"/delete", nil).want(t, http.StatusNotFound, "")
			admin.post("/events", srcPath+"/no_such.v0/delete", nil).want(t, http.StatusBadRequest, string(codes.EventTypeInvalid))

			// A read-only developer reads but changes nothing.
			inv := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations", e.Admin, map[string]any{"email": "ro@example.com"}))
			acc := e.Must(http.StatusCreated, e.Call(http.MethodPost, "/invitations/accept", "", map[string]any{"token": cptest.Str(inv, "accept_token"), "name": "RO"}))
			ro := newBrowser(t, base)
			ro.signIn(cptest.Str(acc["api_key"].(map[string]any), "token")).want(t, http.StatusSeeOther, "")
			if p := ro.get("/events").want(t, http.StatusOK, sub); strings.Contains(p.body, `id="create-destination"`) ||
				strings.Contains(p.body, "/delete") || strings.Contains(p.body, "/test") {
				t.Fatal("a read-only developer is offered the forms")
			}
			rev := e.Revision()
			forbidden := string(codes.DashboardForbidden)
			ro.post("/events", "/events/destinations", url.Values{"kind": {"file"}, "path": {"x.jsonl"}}).want(t, http.StatusForbidden, forbidden)
			ro.post("/events", "/events/destinations/"+fileID+"/test", nil).want(t, http.StatusForbidden, forbidden)
			ro.post("/events", "/events/destinations/"+fileID+"/delete", nil).want(t, http.StatusForbidden, forbidden)
			ro.post("/events", "/events/subscriptions", url.Values{"type": {typ}, "destination_id": {fileID}}).want(t, http.StatusForbidden, forbidden)
			ro.post("/events", "/events/subscriptions/"+sub+"/delete", nil).want(t, http.StatusForbidden, forbidden)
			ro.post("/events", srcPath, url.Values{"type": {typ}}).want(t, http.StatusForbidden, forbidden)
			ro.post("/events", srcPath+"/"+typ2+"/delete", nil).want(t, http.StatusForbidden, forbidden)
			if n, k := count(); e.Revision() != rev || n != 2 || k != 1 {
				t.Fatal("a refused form changed the store")
			}
			// Without the form token the page's actions are refused as the others'.
			ro.do(http.MethodPost, "/events/subscriptions/"+sub+"/delete", url.Values{}).want(t, http.StatusForbidden, "")

			admin.post("/events", "/events/destinations/"+fileID+"/delete", nil).want(t, http.StatusConflict, string(codes.EventDestinationInUse))
			admin.post("/events", "/events/subscriptions/"+sub+"/delete", nil).want(t, http.StatusSeeOther, "")
			admin.post("/events", "/events/destinations/"+hookID+"/delete", nil).want(t, http.StatusSeeOther, "")
			admin.post("/events", "/events/destinations/"+hookID+"/delete", nil).want(t, http.StatusNotFound, "")
			if n, k := count(); n != 1 || k != 0 {
				t.Fatalf("after deleting: %d destinations, %d subscriptions", n, k)
			}
		})
	}
}
