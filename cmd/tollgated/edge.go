package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/edge/certs"
	"github.com/tollgate/tollgate/edge/controlclient"
	"github.com/tollgate/tollgate/edge/sshserver"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/internal/opsserver"
	"github.com/tollgate/tollgate/regions"
	"github.com/tollgate/tollgate/snapshot"
)

// Values of tollgated edge --cert-store.
const (
	certStoreControl = "control" // through the control plane's edge API
	certStoreFiles   = "files"   // <data-dir>/certs, this edge alone
)

type edgeOptions struct {
	edgeListenOptions
	logOptions
	region          string
	controlURL      string
	secretFile      string
	controlCA       string
	dataDir         string
	caDir           string
	certStore       string
	advertiseAgent  string
	peerAddr        string
	advertisePeer   string
	publicHTTPSPort int
	acme            acmeOptions
	shutdownTimeout time.Duration
}

func newEdgeCommand() *cobra.Command {
	cmd, _ := newEdge()
	return cmd
}

// newEdge is the edge command and the check of its flags.
func newEdge() (*cobra.Command, func() error) {
	var o edgeOptions
	cmd := &cobra.Command{
		Use:   "edge",
		Short: "Run one regional edge that follows a control plane (tollgated control)",
		Long: `edge runs one regional edge as its own process: agent ingress (TLS over TCP
and QUIC), public HTTPS/HTTP, TCP endpoints and SSH ingress, enforcing the
control plane's snapshot.

It follows the control plane's snapshot feed at --control (deltas from the
revision it holds, a whole snapshot after a gap), authenticated by the edge
secret (first line of --control-secret-file, else $TOLLGATE_EDGE_SECRET; the
control plane's --edge-secret-file). Every snapshot is persisted in
--data-dir; when the control plane is unreachable the edge serves from that
copy: agents with valid credentials connect and public traffic flows. It
reports its agent sessions, executes the API's stop and restart commands, and
learns the other regions' edges, which it tells agents.

Certificates: with --acme-ca from an ACME CA, otherwise from the local CA in
--ca-dir. By default (--cert-store control) certificates, keys, the ACME
account, challenge tokens and issuance locks are kept by the control plane
and reached through its edge API with the edge secret: every edge of the
control plane shares them, obtains each certificate once, answers the
others' HTTP-01 and TLS-ALPN-01 challenges, and reports certificate status
(reserved_domains certificate_management_status). A copy of what the edge
read is kept in <data-dir>/certs-mirror, from which it serves after a
restart while the control plane is down. --cert-store files keeps them in
<data-dir>/certs for this edge alone. An edge never opens the control
plane's database. Without --acme-ca, from the local CA in
--ca-dir (ca.pem, ca-key.pem; created there if missing): give every edge the
same --ca-dir so that agents and clients trust one root. The agent-ingress
certificate is signed by that CA for the agent address's host and IP, or,
with ACME, served by the certificate manager (agents must then dial a name
under --base-domain).

Several edges of one region serve as one: with --peer-addr, an edge accepts
public connections that a sibling edge of the region forwards to it (for an
endpoint whose agent is connected here), over a link authenticated by the
edge secret; keep --peer-addr on a private network. See
docs/regions-multi-edge.md.

The edge's ID (edge_...) is kept in <data-dir>/edge_id. SIGINT or SIGTERM
closes the listeners, drains requests and closes agent sessions with a
reason.`,
		Example: `  tollgated edge --region eu --control http://10.0.0.5:4080 --control-secret-file /etc/tollgate/edge-secret \
      --ca-dir /etc/tollgate/ca --agent-addr 0.0.0.0:4443 --https-addr 0.0.0.0:443 --http-addr 0.0.0.0:80 \
      --base-domain eu.tunnel.example.com --advertise-agent-addr connect.eu.example.com:4443`,
		Args: cobra.NoArgs,
		RunE: withSignals(func(ctx context.Context, stdout io.Writer) error {
			return runEdge(ctx, o, stdout)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.region, "region", "", "region code this edge serves: "+regions.CodeList()+" (required)")
	f.StringVar(&o.controlURL, "control", "", "control plane API base URL, http(s)://HOST:PORT (required)")
	f.StringVar(&o.secretFile, "control-secret-file", "", "file whose first line is the control plane's edge secret (env TOLLGATE_EDGE_SECRET)")
	f.StringVar(&o.controlCA, "control-ca", "", "PEM file of root certificates that verify an https:// --control (default: the system roots)")
	f.StringVar(&o.dataDir, "data-dir", ".tollgate-edge", "directory for the edge ID, the persisted snapshot, keys and certificates")
	f.StringVar(&o.certStore, "cert-store", certStoreControl, `where certificates, keys, the ACME account and issuance locks live: "control" (kept by the control plane through the edge API: every edge shares one issuance and reports certificate status) or "files" (<data-dir>/certs, this edge alone)`)
	f.StringVar(&o.caDir, "ca-dir", "", "directory of the local CA shared by every edge (default: --data-dir); unused with --acme-ca")
	o.edgeListenOptions.register(f, "")
	o.logOptions.register(f)
	f.StringVar(&o.advertiseAgent, "advertise-agent-addr", "", "agent address told to agents and other edges, HOST:PORT (default: the bound --agent-addr)")
	f.StringVar(&o.peerAddr, "peer-addr", "", "edge-to-edge listener where sibling edges of the region forward public connections, HOST:PORT on a private network (default off)")
	f.StringVar(&o.advertisePeer, "advertise-peer-addr", "", "edge-to-edge address told to sibling edges, HOST:PORT (default: the bound --peer-addr)")
	f.IntVar(&o.publicHTTPSPort, "public-https-port", 0, "port in public URLs when a load balancer forwards to --https-addr (default: its port)")
	addACMEFlags(f, &o.acme, "")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 20*time.Second, "how long SIGTERM waits for requests in flight")
	return withConfigFile(cmd, "edge", o.check), o.check
}

// check validates the flags before anything starts; errors name the flag.
func (o *edgeOptions) check() error {
	if o.region == "" {
		return codes.NewError(codes.ConfigInvalid, "--region is required: the region code this edge serves (%s).", regions.CodeList())
	}
	if _, err := regions.Parse(o.region); err != nil {
		return codes.NewError(codes.ConfigInvalid, "--region %q: %v", o.region, err)
	}
	if o.controlURL == "" {
		return codes.NewError(codes.ConfigInvalid, "--control is required: the control plane's API URL, e.g. http://127.0.0.1:4080.")
	}
	if err := checkPeerAddrs(o.peerAddr, o.advertisePeer); err != nil {
		return err
	}
	if o.shutdownTimeout <= 0 {
		return codes.NewError(codes.ConfigInvalid, "--shutdown-timeout must be positive.")
	}
	if o.certStore != certStoreControl && o.certStore != certStoreFiles {
		return codes.NewError(codes.CertStoreDSN,
			"--cert-store %q: an edge keeps certificates through the control plane (--cert-store control, the default) or in its own files (--cert-store files); it never opens the control plane's database. Remove the database from the edge's flags: the control plane shares its certificate storage with every edge that has the edge secret.",
			redactDSN(o.certStore))
	}
	return o.edgeListenOptions.check()
}

// edgeFile is <data-dir>/edge.json: where a running edge listens, for
// operators and tests. It holds no secret.
type edgeFile struct {
	EdgeID     string `json:"edge_id"`
	Region     string `json:"region"`
	ControlURL string `json:"control_url"`
	AgentAddr  string `json:"agent_addr"`
	Advertised string `json:"advertised_agent_addr"`
	HTTPSAddr  string `json:"https_addr"`
	HTTPAddr   string `json:"http_addr,omitempty"`
	SSHAddr    string `json:"ssh_addr,omitempty"`
	PeerAddr   string `json:"peer_addr,omitempty"`
	BaseDomain string `json:"base_domain"`
	TCPHost    string `json:"tcp_host"`
	CAFile     string `json:"ca_file,omitempty"`
	// MetricsAddr serves /metrics, /healthz and /readyz; "" when off.
	MetricsAddr string `json:"metrics_addr,omitempty"`
}

// runEdge runs edge with flags that passed o.check.
func runEdge(ctx context.Context, o edgeOptions, stdout io.Writer) error {
	log, stopLog, err := o.logOptions.start()
	if err != nil {
		return err
	}
	defer stopLog()

	secret, err := readEdgeSecret("--control-secret-file", o.secretFile)
	if err != nil {
		return err
	}
	if secret == "" {
		return codes.NewError(codes.ConfigInvalid, "An edge needs the control plane's edge secret: give --control-secret-file or set TOLLGATE_EDGE_SECRET.")
	}
	var controlTLS *tls.Config
	if o.controlCA != "" {
		pool, err := readCertPool("--control-ca", o.controlCA)
		if err != nil {
			return err
		}
		controlTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}

	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return codes.NewError(codes.ConfigInvalid, "--data-dir %q: %v", o.dataDir, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return codes.NewError(codes.ConfigInvalid, "Cannot create the data dir %s: %v", dataDir, err)
	}
	edgeID, err := loadEdgeID(dataDir)
	if err != nil {
		return err
	}

	acmeCfg, err := o.acme.acmeConfig()
	if err != nil {
		return err
	}
	var e *edge.Edge // set below, before certMgr.Start
	certCfg := certs.Config{
		BaseDomain: o.baseDomain,
		DataDir:    dataDir, // certmagic file storage in <data-dir>/certs
		Logger:     log,
		Snapshot:   func() *snapshot.Snapshot { return e.Snapshot() },
		Region:     o.region,
		ACME:       acmeCfg,
	}
	switch o.certStore {
	case certStoreControl:
		// Certificates shared through the control plane's edge API, with
		// its locks: N edges obtain one certificate, and the
		// reserved_domains API shows their status.
		cs, err := certs.NewControlStorage(certs.ControlStorageConfig{
			URL: o.controlURL, Secret: secret, TLS: controlTLS,
			Mirror: &certmagic.FileStorage{Path: filepath.Join(dataDir, "certs-mirror")},
			Logger: log,
		})
		if err != nil {
			return codes.NewError(codes.ConfigInvalid, "--control: %v", err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			cs.Close(cctx) // after certMgr.Stop (deferred later, run earlier)
		}()
		certCfg.Storage = cs
		certCfg.Status = cs.StatusReporter(o.region)
	case certStoreFiles:
		// certmagic file storage in <data-dir>/certs (certCfg.DataDir)
	}
	var ca *certs.CA
	if acmeCfg != nil {
		certCfg.AllowSubdomain = func(name string) bool { return e.CertificateAllowed(name) }
	} else {
		caDir, flag := o.caDir, "--ca-dir"
		if o.caDir == "" {
			caDir, flag = dataDir, "--data-dir"
		}
		if ca, err = loadCA(flag, caDir); err != nil {
			return err
		}
		if certCfg.Issuer, err = certs.NewLocalIssuer(ca, certs.LocalIssuerConfig{BaseDomain: o.baseDomain}); err != nil {
			return codes.NewError(codes.ConfigInvalid, "--base-domain %q: %v", o.baseDomain, err)
		}
	}
	certMgr, err := certs.New(certCfg)
	if err != nil {
		return codes.NewError(codes.ConfigInvalid, "certificates: %v", err)
	}
	agentTLS := &tls.Config{GetCertificate: certMgr.GetCertificate}
	if ca != nil {
		names, ips := agentCertSANs(o.agentAddr, o.advertiseAgent, o.baseDomain)
		cert, err := ca.IssueServerCert(names, ips)
		if err != nil {
			return err
		}
		agentTLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}

	// The advertised address is known before Listen only when given; with
	// an ephemeral --agent-addr port the client learns it after Listen.
	client, err := controlclient.NewClient(controlclient.ClientConfig{
		URL: o.controlURL, Secret: secret, EdgeID: edgeID, Region: o.region,
		AgentAddr: o.advertiseAgent, TLS: controlTLS, Logger: log.Named("control").With(zap.String("region", o.region)),
	})
	if err != nil {
		return codes.NewError(codes.ConfigInvalid, "--control: %v", err)
	}
	ecfg, err := o.edgeConfig(o.region, dataDir, log)
	if err != nil {
		return err
	}
	ecfg.EdgeID = edgeID
	ecfg.RegionSecret = secret // bind tokens verify on every edge of the region
	ecfg.AdvertiseAgentAddr, ecfg.PublicHTTPSPort = o.advertiseAgent, o.publicHTTPSPort
	ecfg.Peer = edge.PeerConfig{Secret: secret, Addr: o.peerAddr}
	alog, err := o.accessLog.open(stdout, log)
	if err != nil {
		return err
	}
	defer alog.close() // after the edge drained (deferred later, run earlier)
	ship, err := o.traffic.start(edgeID, client.PostTraffic, log.Named("traffic"))
	if err != nil {
		return err
	}
	defer ship.stop()
	e, err = edge.New(ecfg, edge.Deps{
		AgentTLS:  agentTLS,
		Certs:     certMgr,
		Directory: client,
		Leases:    client, // one owner per name region-wide
		Traffic:   trafficSinks(alog.sink(), ship),
	})
	if err != nil {
		return codes.NewError(codes.ConfigInvalid, "%v", err)
	}
	ctlSync, err := controlclient.NewSync(controlclient.SyncConfig{Region: o.region, Logger: log.Named("edge")},
		controlclient.SyncDeps{Edge: e, Feed: client, Reporter: client, Commands: client})
	if err != nil {
		return codes.NewError(codes.ConfigInvalid, "%v", err)
	}
	if err := e.Listen(); err != nil {
		return err
	}
	sshSrv, sshLn, err := o.sshIngress(e, dataDir, log)
	if err != nil {
		return err
	}
	var sshAddr string
	if sshSrv != nil {
		defer sshSrv.Close()
		sshAddr = sshLn.Addr().String()
	}
	addrs := e.Addrs()
	advertised := o.advertiseAgent
	if advertised == "" {
		advertised = addrs.Agent
		client.SetAgentAddr(advertised)
	}
	advertisedPeer := o.advertisePeer
	if advertisedPeer == "" {
		advertisedPeer = addrs.Peer
	}
	client.SetPeerAddr(advertisedPeer)
	if err := certMgr.Start(ctx); err != nil {
		return codes.NewError(codes.ConfigInvalid, "Cannot obtain the base-domain certificate: %v", err).WithCause(err)
	}
	defer certMgr.Stop()
	metricsAddr, stopMetrics, err := o.opsOptions.serve(log,
		append(append([]prometheus.Collector{e.Metrics(), ctlSync, certMgr}, alog.collectors()...), ship.collectors()...),
		opsserver.Check{Name: "edge", Ready: func(context.Context) error { return e.Metrics().Ready() }})
	if err != nil {
		return err
	}
	defer stopMetrics()

	info := edgeFile{
		EdgeID: edgeID, Region: o.region, ControlURL: o.controlURL,
		AgentAddr: addrs.Agent, Advertised: advertised, HTTPSAddr: addrs.HTTPS, HTTPAddr: addrs.HTTP,
		SSHAddr: sshAddr, PeerAddr: advertisedPeer, BaseDomain: o.baseDomain, TCPHost: o.tcpHost,
		MetricsAddr: metricsAddr,
	}
	if ca != nil {
		info.CAFile = ca.CertFile()
	}
	if err := writeJSONFile(filepath.Join(dataDir, "edge.json"), info); err != nil {
		return fmt.Errorf("writing edge.json: %w", err)
	}
	log.Info("edge starting", zap.String("region", o.region), zap.String("edge_id", edgeID),
		zap.String("control_url", o.controlURL), zap.String("agent_addr", addrs.Agent),
		zap.String("advertised_agent_addr", advertised), zap.String("https_addr", addrs.HTTPS),
		zap.String("http_addr", addrs.HTTP), zap.String("ssh_addr", sshAddr), zap.String("peer_addr", advertisedPeer))

	syncCtx, stopSync := context.WithCancel(context.WithoutCancel(ctx)) // revocations apply while draining
	synced := make(chan error, 1)
	go func() { synced <- ctlSync.Run(syncCtx) }()
	defer func() {
		stopSync()
		<-synced
	}()
	// Serve's context is not the signal's: ending it would close every
	// connection at once. A signal drains (shutdownEdge), then ends it.
	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServe()
	served := make(chan error, 1)
	go func() { served <- e.Serve(serveCtx) }()
	var sshServed chan error // nil without SSH ingress: never ready
	if sshSrv != nil {
		sshServed = make(chan error, 1)
		go func() { sshServed <- sshSrv.Serve(sshLn) }()
	}
	printEdgeBanner(stdout, info)

	select {
	case err := <-served:
		if err != nil {
			return fmt.Errorf("edge: %w", err)
		}
		return nil
	case err := <-sshServed:
		if err != nil {
			return fmt.Errorf("edge: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	shutdownEdge(log, e, sshSrv, o.shutdownTimeout)
	stopServe()
	if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("edge: %w", err)
	}
	log.Info("stopped")
	return nil
}

// shutdownEdge drains e (edge.Edge.Shutdown: no new connections or agent
// sessions, requests in flight finish, then agent sessions close with a
// reason) and then the SSH ingress, both within timeout. A drain cut
// short is logged by the edge; context errors are not logged again.
func shutdownEdge(log *zap.Logger, e *edge.Edge, sshSrv *sshserver.Server, timeout time.Duration) {
	log.Info("shutting down: draining requests, then closing agent sessions", zap.Duration("shutdown_timeout", timeout))
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := e.Shutdown(sctx); err != nil && !isContextErr(err) {
		log.Warn("edge shutdown", zap.Error(err))
	}
	if sshSrv != nil {
		if err := sshSrv.Shutdown(sctx); err != nil && !isContextErr(err) {
			log.Warn("SSH ingress shutdown", zap.Error(err))
		}
	}
}

// isContextErr reports whether err is a context's cancellation or
// deadline, which shutdown does not log.
func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// loadEdgeID returns the edge ID kept in <data-dir>/edge_id, creating it
// on first start.
func loadEdgeID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "edge_id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if _, _, perr := ids.Split(id, "edge"); perr != nil {
			return "", codes.NewError(codes.ConfigInvalid, "%s holds no edge ID (%v): remove it to get a new one.", path, perr)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", codes.NewError(codes.ConfigInvalid, "Cannot read %s: %v", path, err)
	}
	id := ids.New("edge")
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", codes.NewError(codes.ConfigInvalid, "Cannot write %s: %v", path, err)
	}
	return id, nil
}

// agentCertSANs lists the names and IPs of the agent-ingress certificate:
// those of agentCertNames, loopback, and the hosts of the bound and the
// advertised agent addresses.
func agentCertSANs(agentAddr, advertised, base string) ([]string, []net.IP) {
	names := agentCertNames(agentAddr, base)
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, addr := range []string{agentAddr, advertised} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsUnspecified() {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(names, host) {
			names = append(names, host)
		}
	}
	return names, ips
}

func printEdgeBanner(w io.Writer, d edgeFile) {
	fmt.Fprintf(w, "Tollgate edge is ready (region %s, %s)\n", d.Region, d.EdgeID)
	fmt.Fprintf(w, "  agents        %s   (advertised as %s)\n", d.AgentAddr, d.Advertised)
	fmt.Fprintf(w, "  public HTTPS  %s   (https://*.%s)\n", d.HTTPSAddr, d.BaseDomain)
	if d.HTTPAddr != "" {
		fmt.Fprintf(w, "  public HTTP   %s   (redirects to HTTPS)\n", d.HTTPAddr)
	}
	if d.SSHAddr != "" {
		fmt.Fprintf(w, "  SSH           %s\n", d.SSHAddr)
	}
	if d.PeerAddr != "" {
		fmt.Fprintf(w, "  edge link     %s   (sibling edges forward here)\n", d.PeerAddr)
	}
	fmt.Fprintf(w, "  control plane %s\n", d.ControlURL)
	if d.MetricsAddr != "" {
		fmt.Fprintf(w, "  metrics       http://%s/metrics   (/healthz, /readyz)\n", d.MetricsAddr)
	}
}

// checkPeerAddrs validates --peer-addr and --advertise-peer-addr: an
// advertised address needs a listener, and a listener on every interface
// needs an advertised address that siblings can dial.
func checkPeerAddrs(peer, advertised string) error {
	if peer == "" {
		if advertised != "" {
			return codes.NewError(codes.ConfigInvalid, "--advertise-peer-addr needs --peer-addr: the edge-to-edge listener it advertises.")
		}
		return nil
	}
	host, _, err := net.SplitHostPort(peer)
	if err != nil {
		return codes.NewError(codes.ConfigInvalid, "--peer-addr %q: use HOST:PORT on a private network, e.g. 10.0.0.5:7443.", peer)
	}
	if advertised != "" {
		if h, p, err := net.SplitHostPort(advertised); err != nil || h == "" || p == "" || p == "0" {
			return codes.NewError(codes.ConfigInvalid, "--advertise-peer-addr %q: use HOST:PORT, the address sibling edges dial.", advertised)
		}
		return nil
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return codes.NewError(codes.ConfigInvalid, "--peer-addr %s listens on every interface: give --advertise-peer-addr HOST:PORT, the address sibling edges dial.", peer)
	}
	return nil
}
