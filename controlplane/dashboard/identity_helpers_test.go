package dashboard_test

import (
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/controlplane/dashboard"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// testPassword passes the password rules.
const testPassword = "correct horse battery staple"

// failedSignIn is the audit event type of a refused sign-in.
const failedSignIn = "dashboard_sign_in_failed.v0"

// onlyFailuresSince checks that since revision rev the audit logs of
// accounts (""for the control plane's own) hold only failed sign-ins:
// a refused sign-in is audited and changes nothing else.
func onlyFailuresSince(t *testing.T, e *cptest.Env, rev uint64, accounts ...string) {
	t.Helper()
	seen := 0
	for _, acct := range accounts {
		evs, _, err := e.Store.ListAuditEvents(cptest.Ctx(t), acct, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Revision <= rev {
				break
			}
			if ev.Type != failedSignIn {
				t.Fatalf("a refused sign-in wrote %s (%s) to the log of %q", ev.Type, ev.ObjectID, acct)
			}
			seen++
		}
	}
	if uint64(seen) != e.Revision()-rev {
		t.Fatalf("%d failed sign-ins audited, but the store moved %d revisions", seen, e.Revision()-rev)
	}
}

// clock is a settable clock for TOTP checks.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// serveIdentity serves a dashboard over e's core with cfg (sign-up and
// clock) at addr and returns its base URL.
func serveIdentity(e *cptest.Env, addr string, cfg dashboard.Config) string {
	e.T.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		e.T.Fatalf("listening on %s: %v", addr, err)
	}
	hs := httptest.NewUnstartedServer(dashboard.New(cfg, e.Core).Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	e.T.Cleanup(hs.Close)
	return hs.URL
}

// passwordSignIn posts the password form.
func (b *browser) passwordSignIn(email, password string) page {
	b.t.Helper()
	return b.do(http.MethodPost, "/signin", url.Values{"email": {email}, "password": {password}, "next": {"/"}})
}

// code posts the TOTP step of a sign-in.
func (b *browser) code(c string) page {
	b.t.Helper()
	return b.do(http.MethodPost, "/signin", url.Values{"code": {c}, "next": {"/"}})
}

// sessionID returns the dashboard session the browser's cookie names, or
// "".
func (b *browser) sessionID() string {
	b.t.Helper()
	u, _ := url.Parse(b.base)
	for _, ck := range b.c.Jar.Cookies(u) {
		if ck.Name == dashboard.CookieName {
			kid, _, _ := strings.Cut(ck.Value, "_")
			return ids.PrefixDashboardSession + "_" + kid
		}
	}
	return ""
}

// fresh drops the browser's cookies.
func (b *browser) fresh() {
	jar, _ := cookiejar.New(nil)
	b.c.Jar = jar
}

// withPassword gives user uid the test password.
func withPassword(t *testing.T, e *cptest.Env, uid string) {
	t.Helper()
	if err := e.Store.SetPassword(cptest.Ctx(t), store.SystemActor, uid, authn.HashPassword(testPassword), ""); err != nil {
		t.Fatal(err)
	}
}

// codeAt is the TOTP code of secret at time at.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// find returns the first submatch of re in a page, failing without one.
func find(t *testing.T, p page, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("page (%d) has no %s: %s", p.status, re, p.body)
	}
	return m[1]
}

// lastOfType returns the newest audit event of typ in the account's log.
func lastOfType(t *testing.T, e *cptest.Env, accountID, typ string) store.AuditEvent {
	t.Helper()
	evs, _, err := e.Store.ListAuditEvents(cptest.Ctx(t), accountID, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Type == typ {
			return ev
		}
	}
	t.Fatalf("no %s in the log of %q", typ, accountID)
	return store.AuditEvent{}
}
