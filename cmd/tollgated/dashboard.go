package main

import (
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/dashboard"
)

// dashboardOptions are the dashboard's flags, and those it shares with the
// API (--trusted-proxies), shared by dev and control.
type dashboardOptions struct {
	dashboardAddr  string
	sessionTTL     time.Duration
	secureCookie   bool
	trustedProxies []string
	signUp         bool
}

func (o *dashboardOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.dashboardAddr, "dashboard-addr", "127.0.0.1:4081", `dashboard (web UI) listen address; "" turns the dashboard off`)
	f.DurationVar(&o.sessionTTL, "dashboard-session-ttl", dashboard.DefaultSessionTTL, "how long a dashboard sign-in lasts (at least 1m)")
	f.BoolVar(&o.secureCookie, "dashboard-secure-cookie", false, "mark the dashboard's session cookie Secure: set it when browsers reach the dashboard over HTTPS through a proxy")
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
	_, err := o.proxies()
	return err
}

// proxies are the parsed --trusted-proxies (controlplane.Config.TrustedProxies).
func (o *dashboardOptions) proxies() ([]netip.Prefix, error) {
	return controlplane.ParseTrustedProxies(o.trustedProxies)
}

// config is the dashboard's configuration from the flags.
func (o *dashboardOptions) config() dashboard.Config {
	return dashboard.Config{SessionTTL: o.sessionTTL, SecureCookie: o.secureCookie, SignUp: o.signUp}
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
