package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/dashboard"
	"github.com/tollgate/tollgate/controlplane/edgeapi"
	"github.com/tollgate/tollgate/controlplane/restapi"
	"github.com/tollgate/tollgate/controlplane/scim"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/internal/opsserver"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/regions"
)

// Names of what `tollgated control` creates in an empty store.
const (
	controlBootstrapDescription = "created by tollgated control on first start"
	controlBootstrapUserName    = "Admin"
)

type controlOptions struct {
	logOptions
	dashboardOptions
	eventsOptions
	storeDSN         string
	apiAddr          string
	baseURL          string
	bootstrapFile    string
	bootstrapEmail   string
	bootstrapAccount string
	edgeSecretFile   string
	tcpAddrPools     []string
	publicHostnames  []string
	rateLimit        float64
	rateBurst        int
	shutdownTimeout  time.Duration
}

func newControlCommand() *cobra.Command {
	cmd, _ := newControl()
	return cmd
}

// newControl is the control command and the check of its flags.
func newControl() (*cobra.Command, func() error) {
	var o controlOptions
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the control plane alone: the REST API and dashboard over an SQLite or PostgreSQL store",
		Long: `control runs the Tollgate control plane without an edge: the REST API over
the store named by --store, an SQLite file path (created if missing) or a
postgres:// URL. The schema is migrated on start.

On first start with an empty store it creates an account, an admin user
(--bootstrap-email) and an API key and an authtoken owned by that user, and
prints them once; with --bootstrap-file it writes them there (mode 0600)
instead. They are stored only as hashes and cannot be shown again.

Edges that run as their own processes (tollgated edge) fetch snapshots from
/edge/v1/ on the API listener, authenticated by the edge secret: the first
line of --edge-secret-file, else TOLLGATE_EDGE_SECRET. Without one, the edge
API answers 403.

The dashboard (web UI) listens on --dashboard-addr; users sign in with one of
their own API keys (bot users cannot), and the account's dashboard IP
restriction applies to every page.

Several control-plane processes may share one PostgreSQL database: the store
revision lives in the database, so each serves the same state; only one of
them bootstraps. SIGINT or SIGTERM drains requests in flight and exits.`,
		Example: `  tollgated control --store /var/lib/tollgate/tollgate.db --api-addr 0.0.0.0:4080
  tollgated control --store 'postgres://tollgate@db:5432/tollgate?sslmode=require' \
      --api-addr :4080 --base-url https://api.example.com --bootstrap-file /run/secrets/tollgate.json`,
		Args: cobra.NoArgs,
		RunE: withSignals(func(ctx context.Context, stdout io.Writer) error {
			return runControl(ctx, o, stdout)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.storeDSN, "store", "tollgate.db", "store: an SQLite file path, or a postgres:// URL (add search_path=SCHEMA for another schema)")
	f.StringVar(&o.apiAddr, "api-addr", "127.0.0.1:4080", "REST API listen address")
	f.StringVar(&o.baseURL, "base-url", "", "public base URL of the API, used in uri and next_page_uri (default http://<api-addr as requested>)")
	f.StringVar(&o.bootstrapFile, "bootstrap-file", "", "write the first-start credentials to this JSON file (mode 0600) instead of printing them")
	f.StringVar(&o.bootstrapEmail, "bootstrap-email", "admin@tollgate.localhost", "e-mail address of the admin user created on first start")
	f.StringVar(&o.bootstrapAccount, "bootstrap-account", "default", "name of the account created on first start")
	f.StringVar(&o.edgeSecretFile, "edge-secret-file", "", "file whose first line is the secret edges authenticate with (env TOLLGATE_EDGE_SECRET)")
	f.StringArrayVar(&o.tcpAddrPools, "tcp-addr-pool", nil, "TCP addresses a region's reserved addresses are assigned from, REGION=HOST:FIRST-LAST (repeatable), e.g. us=1.tcp.example.com:20000-29999")
	f.StringArrayVar(&o.publicHostnames, "public-hostname", nil, "public hostname of a region's edges, REGION=HOST (repeatable), e.g. us=us.edge.example.com: reserved domains of the region show it as their cname_target (the DNS name to CNAME them to)")
	f.Float64Var(&o.rateLimit, "rate-limit", controlplane.DefaultRateLimit, "API requests per second each account may make, per process; 0 or negative turns the limit off")
	f.IntVar(&o.rateBurst, "rate-burst", controlplane.DefaultRateBurst, "API requests each account may make at once")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 20*time.Second, "how long SIGTERM waits for requests in flight")
	o.dashboardOptions.register(f)
	o.dashboardOptions.registerSignUp(f, false)
	o.eventsOptions.register(f, nil)
	o.logOptions.register(f)
	return withConfigFile(cmd, "control", o.check), o.check
}

// check validates the flags before anything starts; errors name the flag.
func (o *controlOptions) check() error {
	if o.baseURL != "" {
		u, err := url.Parse(o.baseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return codes.NewError(codes.ConfigInvalid, "--base-url %q: give http(s)://HOST[:PORT][/PATH].", o.baseURL)
		}
	}
	if o.shutdownTimeout <= 0 {
		return codes.NewError(codes.ConfigInvalid, "--shutdown-timeout must be positive.")
	}
	if o.rateBurst < 1 {
		return codes.NewError(codes.ConfigInvalid, "--rate-burst must be at least 1.")
	}
	if err := o.dashboardOptions.validate(); err != nil {
		return err
	}
	if _, err := parsePublicHostnames(o.publicHostnames); err != nil {
		return err
	}
	_, err := parseAddrPools(o.tcpAddrPools)
	return err
}

// bootstrapInfo is what --bootstrap-file holds. It holds secrets: 0600.
type bootstrapInfo struct {
	APIURL      string `json:"api_url"`
	APIKey      string `json:"api_key"`
	Authtoken   string `json:"authtoken"`
	AccountID   string `json:"account_id"`
	UserID      string `json:"user_id"`
	APIKeyID    string `json:"api_key_id"`
	AuthtokenID string `json:"authtoken_id"`
}

// runControl runs control with flags that passed o.check.
func runControl(ctx context.Context, o controlOptions, stdout io.Writer) error {
	log, stopLog, err := o.logOptions.start()
	if err != nil {
		return err
	}
	defer stopLog()
	edgeSecret, err := readEdgeSecret("--edge-secret-file", o.edgeSecretFile)
	if err != nil {
		return err
	}
	hostnames, err := parsePublicHostnames(o.publicHostnames)
	if err != nil {
		return err
	}
	pools, err := parseAddrPools(o.tcpAddrPools)
	if err != nil {
		return err
	}

	dsn := o.storeDSN
	isPG := strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
	if !isPG && dsn != "" && !strings.HasPrefix(dsn, "file:") {
		if abs, err := filepath.Abs(dsn); err == nil {
			dsn = abs
		}
	}
	st, err := store.Open(ctx, dsn, store.Options{Logger: log.Named("store")})
	if err != nil {
		return codes.NewError(codes.StoreFailed, "Cannot open the store %s: %v", redactDSN(o.storeDSN), err).WithCause(err)
	}
	defer st.Close()

	apiLn, err := net.Listen("tcp", o.apiAddr)
	if err != nil {
		return codes.NewError(codes.ListenFailed, "Cannot listen for the API on %s: %v. Free the port or choose another --api-addr.", o.apiAddr, err).WithCause(err)
	}
	defer apiLn.Close()
	apiURL := "http://" + apiLn.Addr().String()
	dashLn, err := o.dashboardOptions.listen()
	if err != nil {
		return err
	}
	if dashLn != nil {
		defer dashLn.Close()
	}
	publicURL := apiURL
	if o.baseURL != "" {
		publicURL = strings.TrimRight(o.baseURL, "/")
	}

	boot, err := controlBootstrap(ctx, st, o)
	if err != nil {
		return err
	}
	if boot != nil {
		boot.APIURL = publicURL
		if o.bootstrapFile != "" {
			if err := writeJSONFile(o.bootstrapFile, boot); err != nil {
				return fmt.Errorf("writing the bootstrap file %s: %w", o.bootstrapFile, err)
			}
		}
	}

	rate := o.rateLimit
	if rate == 0 {
		rate = -1 // 0 would mean the default: "--rate-limit 0" asks for no limit
	}
	proxies, _ := o.dashboardOptions.proxies() // validated above
	core := controlplane.New(controlplane.Config{
		Logger:         log.Named("api"),
		RateLimit:      rate,
		RateBurst:      o.rateBurst,
		TrustedProxies: proxies,
	}, st)
	defer core.Close()
	deliverer, err := o.eventsOptions.deliverer(st, publicURL, log.Named("events"))
	if err != nil {
		return err
	}
	api := restapi.New(restapi.Config{BaseURL: o.baseURL, TCPAddrPools: pools, PublicHostnames: hostnames,
		EventTargets: deliverer.Config().TargetOptions(), EventTester: deliverer,
		DashboardURL: o.dashboardOptions.ssoURL(dashLn), Domains: o.dashboardOptions.domains()}, core)
	edges := edgeapi.New(edgeapi.Config{Secret: edgeSecret, Traffic: deliverer}, core)
	dcfg := o.dashboardOptions.config()
	dcfg.PublicHostnames = hostnames
	dcfg.EventTargets, dcfg.EventTester = deliverer.Config().TargetOptions(), deliverer
	dcfg.Reservations = controlplane.Reservations{TCPAddrPools: pools}
	dash := dashboard.New(dcfg, core)
	// Requests see their context end when shutdown starts, so that edges'
	// long polls (up to a minute) do not hold the drain.
	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	scimSrv := scim.New(scim.Config{BaseURL: o.baseURL}, core) // SCIM provisioning at /scim/v2/ (docs/scim.md)
	apiSrv := newAPIServer(edgeapi.Mount(edges.Handler(), scim.Mount(scimSrv.Handler(), api.Handler())), log)
	apiSrv.BaseContext = func(net.Listener) context.Context { return baseCtx }
	apiSrv.RegisterOnShutdown(cancelBase)
	served := make(chan error, 1)
	go func() { served <- apiSrv.Serve(apiLn) }()
	dashSrv := newDashboardServer(dash.Handler(), log)
	dashServed := make(chan error, 1)
	if dashLn != nil {
		go func() { dashServed <- dashSrv.Serve(dashLn) }()
	} else {
		dashServed <- http.ErrServerClosed
	}

	// Event delivery runs until the API has drained: events of the last
	// requests are in the outbox and go out now or after a restart.
	evCtx, stopEvents := context.WithCancel(context.Background())
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		_ = deliverer.Run(evCtx)
	}()
	defer func() {
		stopEvents()
		<-evDone
	}()

	metricsAddr, stopMetrics, err := o.opsOptions.serve(log, []prometheus.Collector{core.Collector(), deliverer},
		opsserver.Check{Name: "store", Ready: core.Ready})
	if err != nil {
		return err
	}
	defer stopMetrics()

	printControlBanner(stdout, st.Dialect(), apiURL, dashboardURL(dashLn), metricsAddr, boot, o.bootstrapFile)
	log.Info("control plane serving", zap.String("api_addr", apiLn.Addr().String()),
		zap.String("dashboard_url", dashboardURL(dashLn)), zap.String("store", string(st.Dialect())))

	select {
	case err := <-served:
		return fmt.Errorf("serving the API: %w", err)
	case err := <-dashServed:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving the dashboard: %w", err)
		}
		<-ctx.Done()
	case <-ctx.Done():
	}
	log.Info("shutting down: draining API and dashboard requests")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	for _, srv := range []*http.Server{apiSrv, dashSrv} {
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("requests still running at the shutdown deadline", zap.Error(err))
			_ = srv.Close()
		}
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving the API: %w", err)
	}
	log.Info("stopped")
	return nil
}

// controlBootstrap creates the first account, admin user, API key and
// authtoken when the store is empty (revision 0). It returns what it
// created, or nil when the store had data already or another process
// sharing the database bootstrapped it first.
func controlBootstrap(ctx context.Context, st *store.Store, o controlOptions) (*bootstrapInfo, error) {
	rev, err := st.Revision(ctx)
	if err != nil {
		return nil, codes.NewError(codes.StoreFailed, "Cannot read the store revision: %v", err).WithCause(err)
	}
	if rev != 0 {
		return nil, nil
	}
	res, created, err := st.Bootstrap(ctx, store.BootstrapSpec{
		AccountName: o.bootstrapAccount,
		Email:       o.bootstrapEmail,
		UserName:    controlBootstrapUserName,
		Description: controlBootstrapDescription,
	})
	if err != nil {
		var ce *codes.Error
		if errors.As(err, &ce) {
			return nil, codes.NewError(codes.ConfigInvalid, "Cannot bootstrap the store: %s (check --bootstrap-email and --bootstrap-account).", ce.Message)
		}
		return nil, codes.NewError(codes.StoreFailed, "Cannot bootstrap the store: %v", err).WithCause(err)
	}
	if !created {
		return nil, nil
	}
	return &bootstrapInfo{
		APIKey: res.APIKey.Reveal(), Authtoken: res.Authtoken.Reveal(),
		AccountID: res.AccountID, UserID: res.UserID, APIKeyID: res.APIKeyID, AuthtokenID: res.AuthtokenID,
	}, nil
}

// readEdgeSecret returns the edge secret: the first line of path, else
// $TOLLGATE_EDGE_SECRET, else "" (no edge API). flag names the flag that
// gave path, for the error message.
func readEdgeSecret(flag, path string) (string, error) {
	if path == "" {
		return strings.TrimSpace(os.Getenv("TOLLGATE_EDGE_SECRET")), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", codes.NewError(codes.ConfigInvalid, "Cannot read %s: %v.", flag, err).WithCause(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	secret := strings.TrimSpace(line)
	if len(secret) < 16 {
		return "", codes.NewError(codes.ConfigInvalid, "The edge secret in %s is shorter than 16 characters: use a long random string.", path)
	}
	return secret, nil
}

// parseAddrPools parses --tcp-addr-pool values, REGION=HOST:FIRST-LAST.
func parseAddrPools(vals []string) (map[string]restapi.TCPAddrPool, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	pools := make(map[string]restapi.TCPAddrPool, len(vals))
	for _, v := range vals {
		bad := func(why string) error {
			return codes.NewError(codes.ConfigInvalid, "--tcp-addr-pool %q: %s; give REGION=HOST:FIRST-LAST, e.g. us=1.tcp.example.com:20000-29999.", v, why)
		}
		region, spec, ok := strings.Cut(v, "=")
		if !ok || region == "" {
			return nil, bad("no region")
		}
		if _, dup := pools[region]; dup {
			return nil, bad("a second pool for region " + region)
		}
		i := strings.LastIndexByte(spec, ':')
		if i <= 0 {
			return nil, bad("no HOST:")
		}
		p, err := addrPool(spec[:i], spec[i+1:])
		if err != nil {
			return nil, bad(err.Error())
		}
		pools[region] = p
	}
	return pools, nil
}

// parsePublicHostnames parses --public-hostname values, REGION=HOST, into
// region → hostname (policy.NormalizeHostname's form).
func parsePublicHostnames(vals []string) (map[string]string, error) {
	out := make(map[string]string, len(vals))
	for _, v := range vals {
		region, host, _ := strings.Cut(v, "=")
		if _, err := regions.Parse(region); err != nil {
			return nil, codes.NewError(codes.ConfigInvalid, "--public-hostname %q: give REGION=HOST with a region of %s, e.g. us=us.edge.example.com.", v, regions.CodeList())
		}
		if _, dup := out[region]; dup {
			return nil, codes.NewError(codes.ConfigInvalid, "--public-hostname %q: region %s is given twice.", v, region)
		}
		name, err := policy.NormalizeHostname(host)
		if err != nil {
			return nil, codes.NewError(codes.ConfigInvalid, "--public-hostname %q: the host %s; give REGION=HOST, e.g. us=us.edge.example.com.", v, policy.HostnameReason(err))
		}
		out[region] = name
	}
	return out, nil
}

// addrPool is the pool of TCP addresses on host with ports FIRST-LAST.
func addrPool(host, ports string) (restapi.TCPAddrPool, error) {
	first, last, ok := strings.Cut(ports, "-")
	fp, err1 := strconv.Atoi(strings.TrimSpace(first))
	lp, err2 := strconv.Atoi(strings.TrimSpace(last))
	if !ok || err1 != nil || err2 != nil {
		return restapi.TCPAddrPool{}, errors.New("no port range FIRST-LAST")
	}
	p := restapi.TCPAddrPool{Host: strings.Trim(host, "[]"), FirstPort: fp, LastPort: lp}
	if _, err := store.ValidateAddrPool(store.AddrPool(p)); err != nil {
		return restapi.TCPAddrPool{}, err
	}
	return p, nil
}

// redactDSN hides a password in a postgres:// DSN.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}

func printControlBanner(w io.Writer, dialect store.Dialect, apiURL, dashURL, metricsAddr string, boot *bootstrapInfo, bootFile string) {
	fmt.Fprintf(w, "Tollgate control plane is ready (store %s)\n", dialect)
	fmt.Fprintf(w, "  API           %s\n", apiURL)
	if dashURL != "" {
		fmt.Fprintf(w, "  dashboard     %s   (sign in with your own key)\n", dashURL)
	}
	if metricsAddr != "" {
		fmt.Fprintf(w, "  metrics       http://%s/metrics   (/healthz, /readyz)\n", metricsAddr)
	}
	switch {
	case boot == nil:
	case bootFile != "":
		fmt.Fprintf(w, "  created account %s and admin %s; credentials written to %s\n", boot.AccountID, boot.UserID, bootFile)
	default:
		fmt.Fprintf(w, "  created account %s and admin %s; save these now, they are not shown again:\n", boot.AccountID, boot.UserID)
		fmt.Fprintf(w, "  API key       %s\n", boot.APIKey)
		fmt.Fprintf(w, "  authtoken     %s\n", boot.Authtoken)
	}
}
