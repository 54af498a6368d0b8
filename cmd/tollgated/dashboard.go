package main

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/dashboard"
	"github.com/tollgate/tollgate/controlplane/sso"
)

// dashboardOptions are the dashboard's flags, and those it shares with the
// API (--trusted-proxies), shared by dev and control.
type dashboardOptions struct {
	dashboardAddr  string
	sessionTTL     time.Duration
	secureCookie   bool
	trustedProxies []string
	signUp         bool
	publicURL      string // --dashboard-url
	dnsResolver    string // --dns-resolver
}

func (o *dashboardOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.dashboardAddr, "dashboard-addr", "127.0.0.1:4081", `dashboard (web UI) listen address; "" turns the dashboard off`)
	f.DurationVar(&o.sessionTTL, "dashboard-session-ttl", dashboard.DefaultSessionTTL, "how long a dashboard sign-in lasts (at least 1m)")
	f.BoolVar(&o.secureCookie, "dashboard-secure-cookie", false, "mark the dashboard's session cookie Secure: set it when browsers reach the dashboard over HTTPS through a proxy")
	f.StringVar(&o.publicURL, "dashboard-url", "", `the dashboard's URL as browsers and identity providers reach it ("https://dash.example.com"): the base of the SAML entity ID, ACS URL and OIDC redirect URL; default the listener's http:// address`)
	f.StringVar(&o.dnsResolver, "dns-resolver", "", `DNS server ("host:port") that checks the TXT records proving claimed email domains; default the system's resolver`)
	f.StringSliceVar(&o.trustedProxies, "trusted-proxies", nil, "CIDR prefixes or addresses of reverse proxies in front of the API and dashboard (comma-separated or repeated): only from these peers does X-Forwarded-For name the client, for failed-login limits and IP restrictions; default none (the TCP peer address)")
}

// registerSignUp adds --signup with its default: off for control (a
// control plane reachable by strangers should not let them create
// accounts), on for dev.
func (o *dashboardOptions) registerSignUp(f *pflag.FlagSet, def bool) {
	f.BoolVar(&o.signUp, "signup", def, "let anyone who reaches the dashboard sign up at /signup: a new user with a password and a new account they administer (docs/dashboard-sign-in.md)")
}

// validate checks the flags before anything listens.
func (o *dashboardOptions) validate() error {
	if o.sessionTTL < time.Minute {
		return codes.NewError(codes.ConfigInvalid, "--dashboard-session-ttl %v is below one minute.", o.sessionTTL)
	}
	if o.publicURL != "" {
		if u, err := url.Parse(o.publicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" && u.Path != "/" {
			return codes.NewError(codes.ConfigInvalid, "--dashboard-url %q must be an http(s) URL without a path, such as https://dash.example.com.", o.publicURL)
		}
	}
	if o.dnsResolver != "" {
		if _, _, err := net.SplitHostPort(o.dnsResolver); err != nil {
			return codes.NewError(codes.ConfigInvalid, "--dns-resolver %q must be host:port, such as 127.0.0.1:53.", o.dnsResolver)
		}
	}
	_, err := o.proxies()
	return err
}

// ssoURL is the dashboard's public URL for single sign-on: --dashboard-url,
// or the listener's address; "" when the dashboard is off.
func (o *dashboardOptions) ssoURL(ln net.Listener) string {
	if o.publicURL != "" {
		return strings.TrimRight(o.publicURL, "/")
	}
	return dashboardURL(ln)
}

// domains checks claimed email domains with --dns-resolver.
func (o *dashboardOptions) domains() sso.DomainVerifier {
	return sso.DomainVerifier{Resolver: o.dnsResolver}
}

// proxies are the parsed --trusted-proxies (controlplane.Config.TrustedProxies).
func (o *dashboardOptions) proxies() ([]netip.Prefix, error) {
	return controlplane.ParseTrustedProxies(o.trustedProxies)
}

// config is the dashboard's configuration from the flags.
func (o *dashboardOptions) config() dashboard.Config {
	return dashboard.Config{SessionTTL: o.sessionTTL, SecureCookie: o.secureCookie, SignUp: o.signUp,
		PublicURL: strings.TrimRight(o.publicURL, "/"), Domains: o.domains()}
}

// listen opens the dashboard's listener; nil, nil when it is off.
func (o *dashboardOptions) listen() (net.Listener, error) {
	if o.dashboardAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", o.dashboardAddr)
	if err != nil {
		return nil, codes.NewError(codes.ListenFailed, "Cannot listen for the dashboard on %s: %v. Free the port, choose another --dashboard-addr, or turn the dashboard off with --dashboard-addr ''.", o.dashboardAddr, err).WithCause(err)
	}
	return ln, nil
}

// dashboardURL is the address a browser opens, or "" when ln is nil.
func dashboardURL(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return "http://" + ln.Addr().String()
}

// newAPIServer is the http.Server of the REST API and the edge API.
func newAPIServer(h http.Handler, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("api")),
	}
}

// newDashboardServer is the http.Server of the dashboard.
func newDashboardServer(h http.Handler, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("dashboard")),
	}
}
