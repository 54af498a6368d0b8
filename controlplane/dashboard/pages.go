package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/regions"
)

//go:embed web/*.html
var dashboardTemplateFS embed.FS

//go:embed web/style.css
var dashboardCSS []byte

// dashboardTemplates are the dashboard's pages; each page template
// ("overview", "credentials", ...) renders inside layout.html.
var dashboardTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	// ago renders a time as <time> (UTC, to the minute), which the style
	// sheet keeps on one line. The text is digits and fixed letters only.
	"ago": func(t time.Time) template.HTML {
		if t.IsZero() {
			return ""
		}
		t = t.UTC()
		return template.HTML(`<time datetime="` + t.Format(time.RFC3339) + `">` + t.Format("2006-01-02 15:04 UTC") + `</time>`)
	},
	"join":    strings.Join,
	"has":     slices.Contains[[]string],
	"regions": regions.All,
}).ParseFS(dashboardTemplateFS, "web/*.html"))

// pageView is what every page of a signed-in user shows around its content.
type pageView struct {
	Title     string
	Nav       string // the nav entry to highlight
	Account   *store.Account
	User      *store.User
	Roles     store.Membership
	CanWrite  bool
	FormToken string
	Error     *controlplane.Error
	Notice    string // the banner after a form's action (notice)
	Body      any
	// Accounts are the signed-in user's accounts, for the account
	// switcher; CanSwitch is false for a session signed in with an API
	// key, which belongs to one account.
	Accounts  []store.AccountMembership
	CanSwitch bool
}

// signInView is the sign-in page: the e-mail and password form (with the
// API-key fallback), or with TOTP set the form of the TOTP code.
type signInView struct {
	Next   string
	Error  *controlplane.Error
	Email  string
	TOTP   bool   // the password was right: ask the code
	SignUp bool   // link the sign-up page
	Notice string // a message above the form
}

// render writes template name with status; a template failure is logged and
// answered 500 with a plain message (the page may be half-written, so it is
// rendered to a buffer first).
func (s *Server) render(w http.ResponseWriter, status int, name string, v any) {
	var buf bytes.Buffer
	if err := dashboardTemplates.ExecuteTemplate(&buf, name, v); err != nil {
		s.log.Error("rendering a dashboard page failed", zap.String("page", name), zap.Error(err))
		http.Error(w, "The dashboard failed to render this page ("+string(codes.Internal)+").", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// page renders a page of a signed-in user inside the layout, with an error
// box when ae is set (a form the page shows again).
func (s *Server) page(w http.ResponseWriter, r *http.Request, c *dashCaller, status int, nav, title string, body any, ae *controlplane.Error) error {
	acct, err := s.store.GetAccount(r.Context(), c.AccountID())
	if err != nil {
		return err
	}
	user, err := s.store.GetUser(r.Context(), c.Key.OwnerID)
	if err != nil {
		return err
	}
	accts, _, err := s.store.ListAccountsOf(r.Context(), user.ID, store.Page{})
	if err != nil {
		return err
	}
	s.render(w, status, nav, pageView{Title: title, Nav: nav, Account: acct, User: user, Roles: c.Key.Roles,
		CanWrite: c.CanWrite(), FormToken: c.csrf, Error: ae, Notice: notice(r), Body: body,
		Accounts: accts, CanSwitch: c.sess.Method != store.SignInAPIKey})
	return nil
}

// renderError answers err as an error page with its status, code and
// message (a 5xx only with a generic message; the cause goes to the log).
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, c *dashCaller, err error) {
	ae := controlplane.AsError(err)
	if ae.Status >= 500 {
		s.log.Error("dashboard request failed", zap.String("path", r.URL.Path), zap.Error(err))
	}
	v := pageView{Title: "Error", Error: ae}
	if c != nil {
		v.FormToken = c.csrf
		v.Roles = c.Key.Roles
	}
	s.render(w, ae.Status, "error", v)
}

// viewPage is a page that shows the view build makes.
func viewPage[V any](s *Server, nav, title string, build func(*http.Request, *dashCaller) (V, error)) dashHandler {
	return func(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
		v, err := build(r, c)
		if err != nil {
			return err
		}
		return s.page(w, r, c, http.StatusOK, nav, title, v, nil)
	}
}

// afterAction renders page nav after a form's action whose outcome is err:
// with the error in a box and its status when it is the user's to fix (a
// 4xx; role refusals get codes.DashboardForbidden), or 201 with the
// view show completes (the secret to show once) when it succeeded.
func afterAction[V any](s *Server, w http.ResponseWriter, r *http.Request, c *dashCaller, nav, title string,
	build func(*http.Request, *dashCaller) (V, error), err error, show func(V)) error {
	var ae *controlplane.Error
	if err != nil {
		if ae = controlplane.AsError(dashForbidden(err)); ae.Status >= 500 {
			return err // the error page, without building the view
		}
	}
	v, verr := build(r, c)
	if verr != nil {
		return verr
	}
	if ae != nil {
		return s.page(w, r, c, ae.Status, nav, title, v, ae)
	}
	show(v)
	return s.page(w, r, c, http.StatusCreated, nav, title, v, nil)
}

// overviewView is the overview page: online agent sessions and endpoints.
type overviewView struct {
	Sessions  []controlplane.SessionInfo
	Endpoints []controlplane.OnlineEndpoint
	Stopped   string // the agent session just told to stop (?stopped=ts_...)
}

// overviewView builds the overview page (GET /): the account's online agent
// sessions and endpoints, as the edges last reported them.
func (s *Server) overviewView(r *http.Request, c *dashCaller) (overviewView, error) {
	sessions, err := s.core.Registry().AccountSessions(r.Context(), c.AccountID())
	if err != nil {
		return overviewView{}, err
	}
	v := overviewView{Sessions: sessions, Endpoints: controlplane.EndpointsOf(sessions)}
	if id := r.URL.Query().Get("stopped"); controlplane.CheckID(id, ids.PrefixAgentSession) == nil {
		v.Stopped = id
	}
	return v, nil
}

// dashStopSession is POST /sessions/{id}/stop: the agent of the session
// is told to stop, through the edge that serves it, as with the API's
// POST /tunnel_sessions/{id}/stop. Read/write roles only.
func (s *Server) dashStopSession(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id := r.PathValue("id")
	if err := controlplane.CheckID(id, ids.PrefixAgentSession); err != nil {
		return controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "%q is not an agent session ID (ts_...).", controlplane.Truncate(id, 60))
	}
	if err := s.core.RunSessionCommand(r, &c.Caller, id, controlplane.StopCommand); err != nil {
		return dashForbidden(err)
	}
	http.Redirect(w, r, "/?stopped="+id, http.StatusSeeOther)
	return nil
}

// credentialsView is the credentials page. NewToken is set once, right
// after an authtoken was created.
type credentialsView struct {
	Authtokens     []store.Authtoken
	APIKeys        []store.APIKey
	SSHCredentials []store.SSHCredential
	More           bool // some list holds more than one page: the API lists them all
	NewToken       string
	NewTokenID     string
	NewAPIKey      string
	NewAPIKeyID    string
	Self           string // the signed-in user's ID
	Admin          bool
}

func (s *Server) credentialsView(r *http.Request, c *dashCaller) (*credentialsView, error) {
	v := &credentialsView{Self: c.Key.OwnerID, Admin: c.IsAdmin()}
	var more1, more2, more3 bool
	var err error
	if v.Authtokens, more1, err = s.store.ListAuthtokens(r.Context(), c.AccountID(), store.Page{}); err != nil {
		return nil, err
	}
	if v.APIKeys, more2, err = s.store.ListAPIKeys(r.Context(), c.AccountID(), store.Page{}); err != nil {
		return nil, err
	}
	if v.SSHCredentials, more3, err = s.store.ListSSHCredentials(r.Context(), c.AccountID(), store.Page{}); err != nil {
		return nil, err
	}
	v.More = more1 || more2 || more3
	return v, nil
}

// dashCreateAuthtoken is POST /credentials {description, acl}: a new
// authtoken owned by the signed-in user, whose token the page shows once.
// acl is bind rules separated by commas or new lines.
func (s *Server) dashCreateAuthtoken(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if err := c.RequireWrite(); err != nil {
		return dashForbidden(err)
	}
	a, tok, err := s.store.CreateAuthtoken(r.Context(), c.Actor, c.AccountID(), store.AuthtokenCreate{
		OwnerID: c.Key.OwnerID, Description: strings.TrimSpace(r.PostForm.Get("description")), ACL: splitACL(r.PostForm.Get("acl"))})
	return afterAction(s, w, r, c, "credentials", "Credentials", s.credentialsView, err, func(v *credentialsView) {
		v.NewToken, v.NewTokenID = tok.Reveal(), a.ID // shown once, to its creator
	})
}

// dashDeleteCredential is POST /credentials/{id}/delete {back} for an
// authtoken (cr_), an API key (ak_) or an SSH key (sshcr_): its owner or an administrator deletes it, as
// with the API's DELETE. An authtoken's agent sessions close at every edge
// with the next snapshot; an API key's dashboard sessions end, the caller's
// own included. It returns to back (backTo).
func (s *Server) dashDeleteCredential(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id := r.PathValue("id")
	var (
		what   string
		access controlplane.AccessCheck
		del    func(ctx context.Context, actor store.Actor, accountID, id string) error
	)
	switch {
	case controlplane.CheckID(id, ids.PrefixAuthtoken) == nil:
		what, access, del = "credential", controlplane.AuthtokenAccess(s.store), s.store.DeleteAuthtoken
	case controlplane.CheckID(id, ids.PrefixAPIKey) == nil:
		what, access, del = "API key", controlplane.APIKeyAccess(s.store), s.store.DeleteAPIKey
	case controlplane.CheckID(id, ids.PrefixSSHCredential) == nil:
		what, access, del = "SSH credential", controlplane.SSHCredentialAccess(s.store), s.store.DeleteSSHCredential
	default:
		return controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "%q is not an authtoken (cr_...), API key (ak_...) or SSH key (sshcr_...) ID.", controlplane.Truncate(id, 60))
	}
	if err := access(r.Context(), &c.Caller, id); err != nil {
		return dashForbidden(err) // a missing credential stays a 404
	}
	if err := del(r.Context(), c.Actor, c.AccountID(), id); err != nil {
		return controlplane.NotFound(err, what, id)
	}
	http.Redirect(w, r, doneURL(backTo(r), "credential-deleted", id), http.StatusSeeOther)
	return nil
}

// dashCreateAPIKey is POST /credentials/api-keys {description}: a new API
// key owned by the signed-in user, for the API and `tollgate api`, whose
// token the page shows once. Read/write roles only, as with the API.
func (s *Server) dashCreateAPIKey(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if err := c.RequireWrite(); err != nil {
		return dashForbidden(err)
	}
	k, tok, err := s.store.CreateAPIKey(r.Context(), c.Actor, c.AccountID(), store.APIKeyCreate{
		OwnerID: c.Key.OwnerID, Description: strings.TrimSpace(r.PostForm.Get("description"))})
	return afterAction(s, w, r, c, "credentials", "Credentials", s.credentialsView, err, func(v *credentialsView) {
		v.NewAPIKey, v.NewAPIKeyID = tok.Reveal(), k.ID // shown once, to its owner
	})
}

// dashForbidden gives a role refusal the dashboard's code.
func dashForbidden(err error) error {
	var ae *controlplane.Error
	if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
		return controlplane.Errorf(http.StatusForbidden, codes.DashboardForbidden, "%s", ae.Msg)
	}
	return err
}

// ipPolicyView is one IP policy with its rules.
type ipPolicyView struct {
	store.IPPolicy
	Rules []store.IPPolicyRule
}

type ipPoliciesView struct {
	Policies     []ipPolicyView
	Restrictions []store.IPRestriction
	More         bool
}

// PolicyName is the description of IP policy id, or its ID when it has
// none (or is not on the page).
func (v ipPoliciesView) PolicyName(id string) string {
	for _, p := range v.Policies {
		if p.ID == id && p.Description != "" {
			return p.Description
		}
	}
	return id
}

// ipPoliciesView builds the IP policies page (GET /ip-policies): IP
// policies with their rules, and the IP restrictions that apply them
// (newest 100 of each).
func (s *Server) ipPoliciesView(r *http.Request, c *dashCaller) (ipPoliciesView, error) {
	pols, more1, err := s.store.ListIPPolicies(r.Context(), c.AccountID(), store.Page{})
	if err != nil {
		return ipPoliciesView{}, err
	}
	rules, more2, err := s.store.ListIPPolicyRules(r.Context(), c.AccountID(), store.Page{})
	if err != nil {
		return ipPoliciesView{}, err
	}
	rx, more3, err := s.store.ListIPRestrictions(r.Context(), c.AccountID(), store.Page{})
	if err != nil {
		return ipPoliciesView{}, err
	}
	v := ipPoliciesView{Restrictions: rx, More: more1 || more2 || more3}
	byPolicy := make(map[string][]store.IPPolicyRule)
	for _, ru := range rules {
		byPolicy[ru.IPPolicyID] = append(byPolicy[ru.IPPolicyID], ru)
	}
	for _, p := range pols {
		v.Policies = append(v.Policies, ipPolicyView{IPPolicy: p, Rules: byPolicy[p.ID]})
	}
	return v, nil
}

type reservationsView struct {
	Domains []store.ReservedDomain
	Addrs   []store.ReservedAddr
	More    bool
	// DNS holds, by reserved domain ID, what to point DNS at and the
	// certificate's state (reservationDNS).
	DNS map[string]reservationDNS
}

// reservationDNS is a reserved domain's DNS target (the API's
// cname_target; "" when the domain needs no record) and certificate state.
type reservationDNS struct {
	CNAMETarget string
	Cert        store.CertState
}

// reservationsView builds the reservations page (GET /reservations):
// reserved domains with their regions, DNS targets and certificate states,
// and TCP addresses.
func (s *Server) reservationsView(r *http.Request, c *dashCaller) (reservationsView, error) {
	ds, more1, err := s.store.ListReservedDomains(r.Context(), c.AccountID(), store.Page{})
	if err != nil {
		return reservationsView{}, err
	}
	as, more2, err := s.store.ListReservedAddrs(r.Context(), c.AccountID(), store.Page{})
	if err != nil {
		return reservationsView{}, err
	}
	v := reservationsView{Domains: ds, Addrs: as, More: more1 || more2, DNS: make(map[string]reservationDNS, len(ds))}
	for i := range ds {
		d := &ds[i]
		st, err := s.store.ReservedDomainCertState(r.Context(), d)
		if err != nil {
			s.log.Warn("reading certificate status", zap.String("domain", d.Domain), zap.Error(err))
		}
		v.DNS[d.ID] = reservationDNS{CNAMETarget: controlplane.CNAMETarget(s.cfg.PublicHostnames, d.Domain, d.Region), Cert: st}
	}
	return v, nil
}
