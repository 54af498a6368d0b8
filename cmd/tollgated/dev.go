package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/dashboard"
	"github.com/tollgate/tollgate/controlplane/edgeapi"
	"github.com/tollgate/tollgate/controlplane/restapi"
	"github.com/tollgate/tollgate/controlplane/scim"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/edge/certs"
	"github.com/tollgate/tollgate/edge/controlclient"
	"github.com/tollgate/tollgate/internal/opsserver"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/regions"
	"github.com/tollgate/tollgate/snapshot"
)

type devOptions struct {
	edgeListenOptions
	logOptions
	dashboardOptions
	eventsOptions
	dataDir string
	apiAddr string
	region  string
	acme    acmeOptions
	// publicHostname is the edge's public name, reserved domains' CNAME
	// target; "" = the base domain.
	publicHostname string

	shutdownTimeout time.Duration
}

func newDevCommand() *cobra.Command {
	cmd, _ := newDev()
	return cmd
}

// newDev is the dev command and the check of its flags.
func newDev() (*cobra.Command, func() error) {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the control plane and one edge in one process, on an embedded store",
		Long: `dev runs a complete Tollgate on one machine: the control plane (REST API,
embedded SQLite store) and one edge with a local certificate authority.

On first start it creates an account, an admin user with an API key, and an
authtoken, and writes them with the addresses to <data-dir>/dev.json. A
restart keeps the account, the credentials and the CA.`,
		Example: `  tollgated dev
  tollgated dev --data-dir /tmp/tg --https-addr 127.0.0.1:9443
  curl --cacert .tollgate/ca.pem https://app.tollgate.localhost:8443/`,
		Args: cobra.NoArgs,
		RunE: withSignals(func(ctx context.Context, stdout io.Writer) error {
			return runDev(ctx, o, stdout)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", ".tollgate", "directory for the store, the CA, certificates and dev.json")
	f.StringVar(&o.apiAddr, "api-addr", "127.0.0.1:4080", "REST API listen address")
	o.traffic.pollDefault = devTrafficPoll
	o.edgeListenOptions.register(f, "127.0.0.1:2222")
	o.dashboardOptions.register(f)
	o.dashboardOptions.registerSignUp(f, true)
	o.eventsOptions.register(f, []string{"127.0.0.0/8", "::1/128"})
	o.logOptions.register(f)
	f.StringVar(&o.region, "region", string(regions.Default), "region code of the edge: one of "+regions.CodeList())
	f.StringVar(&o.publicHostname, "public-hostname", "", "public hostname of the edge, which reserved domains show as their cname_target (default: the base domain)")
	addACMEFlags(f, &o.acme, "")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 20*time.Second, "how long SIGINT or SIGTERM waits for requests in flight before closing agent sessions")
	return withConfigFile(cmd, "dev", o.check), o.check
}

// check validates the flags before anything starts; errors name the flag.
func (o *devOptions) check() error {
	if o.shutdownTimeout <= 0 {
		return codes.NewError(codes.ConfigInvalid, "--shutdown-timeout must be positive.")
	}
	if _, err := regions.Parse(o.region); err != nil {
		return codes.NewError(codes.ConfigInvalid, "--region %q: %v", o.region, err)
	}
	if err := o.dashboardOptions.validate(); err != nil {
		return err
	}
	if err := o.edgeListenOptions.check(); err != nil {
		return err
	}
	_, err := o.addrPools()
	return err
}

// addrPools is the dev control plane's pool of reserved TCP addresses: the
// edge's own TCP host and port range, in its region.
func (o *devOptions) addrPools() (map[string]restapi.TCPAddrPool, error) {
	p, err := addrPool(o.tcpHost, o.tcpPorts)
	if err != nil {
		return nil, codes.NewError(codes.ConfigInvalid, "--tcp-host %q with --tcp-ports %q: %v.", o.tcpHost, o.tcpPorts, err)
	}
	return map[string]restapi.TCPAddrPool{o.region: p}, nil
}

// devFile is <data-dir>/dev.json: what a developer (or a test) needs to use
// the running dev server. It holds secrets, so it is written 0600.
type devFile struct {
	APIURL     string `json:"api_url"`
	APIKey     string `json:"api_key"`
	Authtoken  string `json:"authtoken"`
	AgentAddr  string `json:"agent_addr"`
	HTTPSAddr  string `json:"https_addr"`
	HTTPAddr   string `json:"http_addr"`
	BaseDomain string `json:"base_domain"`
	CAFile     string `json:"ca_file"`
	Region     string `json:"region"`
}

// devIngressFile is <data-dir>/dev-ingress.json: the dev edge's other ways
// in. dev.json keeps exactly its documented keys; this file has the rest.
type devIngressFile struct {
	SSHAddr               string `json:"ssh_addr,omitempty"`
	SSHHostKeyFingerprint string `json:"ssh_host_key_fingerprint,omitempty"`
	TCPHost               string `json:"tcp_host"`
	DashboardURL          string `json:"dashboard_url,omitempty"`
	MetricsAddr           string `json:"metrics_addr,omitempty"`
}

// runDev runs dev with flags that passed o.check.
func runDev(ctx context.Context, o devOptions, stdout io.Writer) error {
	log, stopLog, err := o.logOptions.start()
	if err != nil {
		return err
	}
	defer stopLog()
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return codes.NewError(codes.ConfigInvalid, "--data-dir %q: %v", o.dataDir, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return codes.NewError(codes.ConfigInvalid, "Cannot create the data dir %s: %v", dataDir, err)
	}

	st, err := store.Open(ctx, filepath.Join(dataDir, "tollgate.db"), store.Options{Logger: log.Named("store")})
	if err != nil {
		return codes.NewError(codes.StoreFailed, "Cannot open the store in %s: %v", dataDir, err).WithCause(err)
	}
	defer st.Close()

	apiKey, authtoken, created, err := devCredentials(ctx, st, dataDir, log)
	if err != nil {
		return err
	}

	ca, err := loadCA("--data-dir", dataDir)
	if err != nil {
		return err
	}
	agentCert, err := ca.IssueServerCert(agentCertNames(o.agentAddr, o.baseDomain), []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback})
	if err != nil {
		return err
	}
	// Certificates, keys and the ACME account live in the store, shared by
	// every edge on it; the local CA signs unless --acme-ca names a CA.
	var e *edge.Edge // set below, before certMgr.Start
	certCfg := certs.Config{
		BaseDomain: o.baseDomain,
		Storage:    st.CertStorage(store.CertStorageOptions{Logger: log.Named("store")}),
		Logger:     log,
		Snapshot:   func() *snapshot.Snapshot { return e.Snapshot() },
		Region:     o.region,
		Status:     storeCertStatus{st: st, region: o.region},
	}
	if certCfg.ACME, err = o.acme.acmeConfig(); err != nil {
		return err
	}
	if certCfg.ACME != nil {
		certCfg.AllowSubdomain = func(name string) bool { return e.CertificateAllowed(name) }
	} else {
		if certCfg.Issuer, err = certs.NewLocalIssuer(ca, certs.LocalIssuerConfig{BaseDomain: o.baseDomain}); err != nil {
			return codes.NewError(codes.ConfigInvalid, "--base-domain %q: %v", o.baseDomain, err)
		}
	}
	certMgr, err := certs.New(certCfg)
	if err != nil {
		return codes.NewError(codes.ConfigInvalid, "certificates: %v", err)
	}

	apiLn, err := net.Listen("tcp", o.apiAddr)
	if err != nil {
		return codes.NewError(codes.ListenFailed, "Cannot listen for the API on %s: %v. Free the port or choose another --api-addr.", o.apiAddr, err).WithCause(err)
	}
	defer apiLn.Close()
	apiURL := "http://" + apiLn.Addr().String()
	// Reserved TCP addresses are assigned from the edge's own TCP port
	// range, on its TCP host; random TCP endpoints skip reserved ports.
	pools, err := o.addrPools()
	if err != nil {
		return err
	}
	dashLn, err := o.dashboardOptions.listen()
	if err != nil {
		return err
	}
	if dashLn != nil {
		defer dashLn.Close()
	}
	proxies, _ := o.dashboardOptions.proxies() // validated above
	core := controlplane.New(controlplane.Config{Logger: log.Named("api"), TrustedProxies: proxies}, st)
	defer core.Close()
	deliverer, err := o.eventsOptions.deliverer(st, apiURL, log.Named("events"))
	if err != nil {
		return err
	}
	hostname := o.publicHostname
	if hostname == "" {
		hostname = o.baseDomain
	}
	hostname, err = policy.NormalizeHostname(hostname)
	if err != nil {
		return codes.NewError(codes.ConfigInvalid, "--public-hostname %q: %s; give the edge's host name, e.g. edge.example.com.", o.publicHostname, policy.HostnameReason(err))
	}
	hostnames := map[string]string{o.region: hostname}
	api := restapi.New(restapi.Config{BaseURL: apiURL, DefaultRegion: o.region, TCPAddrPools: pools, PublicHostnames: hostnames,
		EventTargets: deliverer.Config().TargetOptions(), EventTester: deliverer,
		DashboardURL: o.dashboardOptions.ssoURL(dashLn), Domains: o.dashboardOptions.domains()}, core)
	edges := edgeapi.New(edgeapi.Config{}, core) // no edge secret: only the in-process edge
	dcfg := o.dashboardOptions.config()
	dcfg.PublicHostnames = hostnames
	dcfg.EventTargets, dcfg.EventTester = deliverer.Config().TargetOptions(), deliverer
	dcfg.Reservations = controlplane.Reservations{DefaultRegion: o.region, TCPAddrPools: pools}
	dash := dashboard.New(dcfg, core)

	ecfg, err := o.edgeConfig(o.region, dataDir, log)
	if err != nil {
		return err
	}
	alog, err := o.accessLog.open(stdout, log)
	if err != nil {
		return err
	}
	defer alog.close() // after the edge drained (deferred later, run earlier)
	// Traffic records go to the control plane in-process.
	ship, err := o.traffic.start("edge_"+o.region, deliverer.IngestTraffic, log.Named("traffic"))
	if err != nil {
		return err
	}
	defer ship.stop()
	e, err = edge.New(ecfg, edge.Deps{
		AgentTLS:  &tls.Config{Certificates: []tls.Certificate{agentCert}},
		Certs:     certMgr,
		Directory: core.Registry(),
		Leases:    core,
		Traffic:   trafficSinks(alog.sink(), ship),
	})
	if err != nil {
		return codes.NewError(codes.ConfigInvalid, "%v", err)
	}
	// The control plane in-process: the edge follows its feed and reports
	// to it; it calls the edge's StopSession and RestartSession itself.
	ctlSync, err := controlclient.NewSync(controlclient.SyncConfig{Region: o.region, Logger: log.Named("edge")},
		controlclient.SyncDeps{Edge: e, Feed: core, Reporter: core.Registry()})
	if err != nil {
		return codes.NewError(codes.ConfigInvalid, "%v", err)
	}
	core.Registry().RegisterEdge(o.region, e) // API stop/restart of agent sessions; the edge reports as its region
	if err := e.Listen(); err != nil {
		return err
	}
	sshSrv, sshLn, err := o.sshIngress(e, dataDir, log)
	if err != nil {
		return err
	}
	var ingress devIngressFile
	if sshSrv != nil {
		defer sshSrv.Close()
		ingress.SSHAddr, ingress.SSHHostKeyFingerprint = sshLn.Addr().String(), sshSrv.HostKeyFingerprint()
	}
	if err := certMgr.Start(ctx); err != nil {
		return codes.NewError(codes.ConfigInvalid, "Cannot obtain the base-domain certificate: %v", err).WithCause(err)
	}
	defer certMgr.Stop()
	metricsAddr, stopMetrics, err := o.opsOptions.serve(log,
		append(append([]prometheus.Collector{e.Metrics(), ctlSync, certMgr, core.Collector(), deliverer}, alog.collectors()...), ship.collectors()...),
		opsserver.Check{Name: "edge", Ready: func(context.Context) error { return e.Metrics().Ready() }},
		opsserver.Check{Name: "store", Ready: core.Ready})
	if err != nil {
		return err
	}
	defer stopMetrics()

	addrs := e.Addrs()
	core.Registry().RegisterLocalEdge(snapshot.EdgeInfo{ID: "edge_" + o.region, Region: o.region, AgentAddr: addrs.Agent})
	info := devFile{
		APIURL: apiURL, APIKey: apiKey, Authtoken: authtoken,
		AgentAddr: addrs.Agent, HTTPSAddr: addrs.HTTPS, HTTPAddr: addrs.HTTP,
		BaseDomain: o.baseDomain, CAFile: ca.CertFile(), Region: o.region,
	}
	ingress.TCPHost, ingress.DashboardURL, ingress.MetricsAddr = o.tcpHost, dashboardURL(dashLn), metricsAddr
	ingressPath := filepath.Join(dataDir, "dev-ingress.json")
	if err := writeJSONFile(ingressPath, ingress); err != nil {
		return fmt.Errorf("writing %s: %w", ingressPath, err)
	}
	devPath := filepath.Join(dataDir, "dev.json") // last: tests wait for it
	if err := writeJSONFile(devPath, info); err != nil {
		return fmt.Errorf("writing %s: %w", devPath, err)
	}

	scimSrv := scim.New(scim.Config{BaseURL: apiURL}, core) // SCIM provisioning at /scim/v2/ (docs/scim.md)
	apiSrv := newAPIServer(edgeapi.Mount(edges.Handler(), scim.Mount(scimSrv.Handler(), api.Handler())), log)
	// The servers run on a context of their own, not the signal's: ending
	// it closes every connection at once. A signal (or a server failing)
	// drains the edge first, then stops the control plane's servers and
	// the feed, and ends it.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error {
		if err := apiSrv.Serve(apiLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	dashSrv := newDashboardServer(dash.Handler(), log)
	if dashLn != nil {
		g.Go(func() error {
			if err := dashSrv.Serve(dashLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error { return e.Serve(gctx) })
	g.Go(func() error { return ctlSync.Run(gctx) })
	g.Go(func() error { return deliverer.Run(gctx) })
	if sshSrv != nil {
		g.Go(func() error { return sshSrv.Serve(sshLn) })
	}
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-gctx.Done():
		}
		shutdownEdge(log, e, sshSrv, o.shutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := errors.Join(apiSrv.Shutdown(sctx), dashSrv.Shutdown(sctx))
		stopRun()
		if isContextErr(err) {
			return nil
		}
		return err
	})

	publicCA := "" // the local CA
	if certCfg.ACME != nil {
		publicCA = certCfg.ACME.CA
	}
	printDevBanner(stdout, info, ingress, devPath, created, publicCA)
	err = g.Wait()
	if err == nil || errors.Is(err, context.Canceled) {
		log.Info("stopped")
		return nil
	}
	return err
}

// devCredentials returns the dev API key and authtoken: fresh ones on first
// start, the ones in dev.json on later starts, or newly issued ones when
// dev.json is gone or no longer matches the store (secrets are stored only
// as hashes, so they cannot be shown again).
func devCredentials(ctx context.Context, st *store.Store, dataDir string, log *zap.Logger) (apiKey, authtoken string, created bool, err error) {
	creds, created, err := controlplane.Bootstrap(ctx, st)
	if err != nil {
		return "", "", false, codes.NewError(codes.StoreFailed, "Cannot bootstrap the dev account: %v", err).WithCause(err)
	}
	if created {
		return creds.APIKey.Reveal(), creds.Authtoken.Reveal(), true, nil
	}
	var prev devFile
	if b, rerr := os.ReadFile(filepath.Join(dataDir, "dev.json")); rerr == nil && json.Unmarshal(b, &prev) == nil {
		if tokenIsFor(prev.APIKey, creds.APIKeyID) && tokenIsFor(prev.Authtoken, creds.AuthtokenID) {
			return prev.APIKey, prev.Authtoken, false, nil
		}
	}
	log.Warn("dev.json is missing or stale; issuing a new API key and authtoken for the dev admin")
	actor := store.Actor{AccountID: creds.AccountID, PrincipalID: creds.UserID}
	_, ak, err := st.CreateAPIKey(ctx, actor, creds.AccountID, store.APIKeyCreate{OwnerID: creds.UserID, Description: "dev admin key (reissued)"})
	if err != nil {
		return "", "", false, codes.NewError(codes.StoreFailed, "Cannot issue a dev API key: %v", err).WithCause(err)
	}
	_, at, err := st.CreateAuthtoken(ctx, actor, creds.AccountID, store.AuthtokenCreate{OwnerID: creds.UserID, Description: "dev authtoken (reissued)"})
	if err != nil {
		return "", "", false, codes.NewError(codes.StoreFailed, "Cannot issue a dev authtoken: %v", err).WithCause(err)
	}
	return ak.Reveal(), at.Reveal(), true, nil
}

// tokenIsFor reports whether a token "<KSUID>_<secret>" belongs to the
// credential ID "<prefix>_<KSUID>".
func tokenIsFor(token, id string) bool {
	kid, _, err := authn.ParseToken(token)
	return err == nil && id != "" && strings.HasSuffix(id, "_"+kid)
}

// agentCertNames lists the DNS names the agent-ingress certificate carries.
func agentCertNames(agentAddr, base string) []string {
	names := []string{"localhost", base}
	if host, _, err := net.SplitHostPort(agentAddr); err == nil && host != "" && net.ParseIP(host) == nil {
		names = append(names, host)
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	return names
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// printDevBanner prints what dev serves. acmeCA is the ACME directory that
// signs the public certificates, "" when the local CA does (d.CAFile, which
// signs the agent-ingress certificate in either case).
func printDevBanner(w io.Writer, d devFile, in devIngressFile, devPath string, created bool, acmeCA string) {
	_, port, _ := net.SplitHostPort(d.HTTPSAddr)
	fmt.Fprintf(w, "Tollgate dev is ready (region %s)\n", d.Region)
	if acmeCA != "" {
		fmt.Fprintf(w, "  public HTTPS  https://*.%s:%s   (certificates from the ACME CA %s)\n", d.BaseDomain, port, acmeCA)
	} else {
		fmt.Fprintf(w, "  public HTTPS  https://*.%s:%s   (trust %s)\n", d.BaseDomain, port, d.CAFile)
	}
	if d.HTTPAddr != "" {
		fmt.Fprintf(w, "  public HTTP   http://%s   (redirects to HTTPS)\n", d.HTTPAddr)
	}
	fmt.Fprintf(w, "  agents        %s   (TLS over TCP, QUIC over UDP)\n", d.AgentAddr)
	if in.SSHAddr != "" {
		fmt.Fprintf(w, "  SSH           %s   (ssh -R; host key %s)\n", in.SSHAddr, in.SSHHostKeyFingerprint)
	}
	fmt.Fprintf(w, "  TCP endpoints tcp://%s:PORT\n", in.TCPHost)
	fmt.Fprintf(w, "  API           %s\n", d.APIURL)
	if in.DashboardURL != "" {
		fmt.Fprintf(w, "  dashboard     %s   (sign in with api_key from dev.json)\n", in.DashboardURL)
	}
	if in.MetricsAddr != "" {
		fmt.Fprintf(w, "  metrics       http://%s/metrics   (/healthz, /readyz)\n", in.MetricsAddr)
	}
	if created {
		fmt.Fprintf(w, "  API key       %s\n", d.APIKey)
		fmt.Fprintf(w, "  authtoken     %s\n", d.Authtoken)
	}
	fmt.Fprintf(w, "  credentials and addresses: %s (SSH, TCP and dashboard: dev-ingress.json beside it)\n", devPath)
	fmt.Fprintf(w, "\nTry it:\n  tollgate http 3000 --url https://app.%s --authtoken <authtoken> --server-addr %s --root-ca %s\n",
		d.BaseDomain, d.AgentAddr, d.CAFile)
}
