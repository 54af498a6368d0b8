package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.ngrok.com/ngrok/v2"

	"github.com/tollgate/tollgate/edge/certs"
)

// A multi-region cluster of real processes: one `tollgated control` on
// SQLite and `tollgated edge` processes that follow it, each on its own
// loopback address (127.0.0.0/8 is all loopback on Linux).

const clusterEdgeSecret = "cluster-edge-secret-0123456789abcdef"

// cluster is a control plane, its edges, and what a test needs to reach
// them.
type cluster struct {
	t          testing.TB
	dir        string
	dbPath     string
	secretFile string
	caDir      string
	caFile     string
	pool       *x509.CertPool
	boot       controlBootstrap
	cp         *controlServer
	apiAddr    string // host:port, kept across restarts
	edges      map[string]*edgeProc
	// cpus, when set, pins each role's processes ("control", "edge",
	// "agent") to the CPU list given (taskset -c LIST) from their start,
	// so that Go sizes GOMAXPROCS to it: processes on separate CPUs stand
	// for separate machines (BenchmarkTrafficEvents/split).
	cpus map[string]string
}

// edgeInfo is <data-dir>/edge.json as `tollgated edge` writes it.
type edgeInfo struct {
	EdgeID     string `json:"edge_id"`
	Region     string `json:"region"`
	AgentAddr  string `json:"agent_addr"`
	Advertised string `json:"advertised_agent_addr"`
	HTTPSAddr  string `json:"https_addr"`
	PeerAddr   string `json:"peer_addr"`
	SSHAddr    string `json:"ssh_addr"`
	BaseDomain string `json:"base_domain"`
	// MetricsAddr is set with --metrics-addr.
	MetricsAddr string `json:"metrics_addr"`
}

// edgeProc is a running `tollgated edge`.
type edgeProc struct {
	*proc
	dataDir string
	info    edgeInfo
}

var edgeReady = regexp.MustCompile(`(?m)^Tollgate edge is ready`)

// newCluster starts a control plane on a fresh SQLite store with an edge
// secret, and creates the local CA every edge of the cluster shares.
func newCluster(t testing.TB) *cluster {
	t.Helper()
	return newClusterOn(t, "")
}

// newClusterOn is newCluster with the control plane on the store at dsn
// ("" = a fresh SQLite file).
func newClusterOn(t testing.TB, dsn string) *cluster {
	t.Helper()
	return newClusterPinned(t, dsn, nil, nil)
}

// newClusterPinned is newClusterOn with the roles' processes pinned to
// cpus (cluster.cpus; nil = not pinned) and controlArgs added to the
// control plane's arguments.
func newClusterPinned(t testing.TB, dsn string, cpus map[string]string, controlArgs []string) *cluster {
	t.Helper()
	dir := t.TempDir()
	if dsn == "" {
		dsn = filepath.Join(dir, "cp.db")
	}
	c := &cluster{t: t, dir: dir, dbPath: dsn,
		secretFile: filepath.Join(dir, "edge-secret"), caDir: filepath.Join(dir, "ca"),
		edges: map[string]*edgeProc{}, cpus: cpus}
	if err := os.WriteFile(c.secretFile, []byte(clusterEdgeSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.caDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Created here, once, so that edges starting together share one root.
	ca, err := certs.LoadOrCreateCA(c.caDir)
	if err != nil {
		t.Fatal(err)
	}
	c.caFile, c.pool = ca.CertFile(), ca.CertPool()
	bootFile := filepath.Join(dir, "boot.json")
	c.startControl("127.0.0.1:0", append([]string{"--bootstrap-file", bootFile}, controlArgs...)...)
	c.boot = readBootstrap(t, bootFile)
	u, err := url.Parse(c.cp.apiURL)
	if err != nil {
		t.Fatal(err)
	}
	c.apiAddr = u.Host
	return c
}

// startControl starts (or restarts) the control plane on addr.
func (c *cluster) startControl(addr string, extra ...string) {
	c.t.Helper()
	args := append([]string{"--edge-secret-file", c.secretFile, "--rate-limit", "0"}, extra...)
	args = append([]string{"control", "--store", c.dbPath, "--api-addr", addr, "--dashboard-addr", "127.0.0.1:0", "--log-level", "warn"}, args...)
	bin, args := c.command("control", bins.tollgated, args)
	c.cp = (&controlServer{proc: start(c.t, bin, nil, args...)}).ready()
}

// command returns how to run bin with args for role: under taskset when
// the cluster pins the role (cluster.cpus).
func (c *cluster) command(role, bin string, args []string) (string, []string) {
	list := c.cpus[role]
	if list == "" {
		return bin, args
	}
	return "taskset", append([]string{"-c", list, bin}, args...)
}

// killControl kills the control plane with SIGKILL: no drain, no goodbye.
func (c *cluster) killControl() {
	c.t.Helper()
	_ = c.cp.cmd.Process.Signal(syscall.SIGKILL)
	if _, ok := c.cp.wait(10 * time.Second); !ok {
		c.t.Fatal("the control plane did not die on SIGKILL")
	}
}

// restartControl starts the control plane again on its previous address
// and store.
func (c *cluster) restartControl() {
	c.t.Helper()
	c.startControl(c.apiAddr)
}

// startEdge starts `tollgated edge` for region on loopback ip with
// ephemeral ports and waits until it is ready.
func (c *cluster) startEdge(region, ip string, extra ...string) *edgeProc {
	c.t.Helper()
	e := c.launchEdge(region, region, ip, extra...).ready(c.t)
	c.edges[region] = e
	return e
}

// launchEdge starts `tollgated edge` for region on loopback ip with its own
// data dir, without waiting for it (edges of one region start at once).
func (c *cluster) launchEdge(name, region, ip string, extra ...string) *edgeProc {
	c.t.Helper()
	return c.launchEdgeVia(c.cp, name, region, ip, extra...)
}

// launchEdgeVia is launchEdge for an edge that follows the control plane
// cp (one of several on the cluster's store) instead of the cluster's.
func (c *cluster) launchEdgeVia(cp *controlServer, name, region, ip string, extra ...string) *edgeProc {
	c.t.Helper()
	dataDir := filepath.Join(c.dir, "edge-"+name)
	args := []string{"edge", "--region", region, "--control", cp.apiURL,
		"--control-secret-file", c.secretFile, "--ca-dir", c.caDir, "--data-dir", dataDir,
		"--agent-addr", ip + ":0", "--https-addr", ip + ":0", "--http-addr", "off",
		"--base-domain", "tollgate.localhost", "--log-level", "info"}
	args = append(args, extra...)
	bin, args := c.command("edge", bins.tollgated, args)
	p := start(c.t, bin, nil, args...)
	c.t.Cleanup(func() { stopLogged(c.t, p, "edge "+name) })
	return &edgeProc{proc: p, dataDir: dataDir}
}

// ready waits until a launched edge is ready and reads its edge.json.
func (e *edgeProc) ready(t testing.TB) *edgeProc {
	t.Helper()
	e.waitFor(edgeReady, 30*time.Second)
	b, err := os.ReadFile(filepath.Join(e.dataDir, "edge.json"))
	if err != nil {
		t.Fatalf("reading edge.json: %v", err)
	}
	if err := json.Unmarshal(b, &e.info); err != nil {
		t.Fatalf("edge.json: %v", err)
	}
	return e
}

// waitDirectories waits until every edge has learned every edge's agent
// address from the control plane (it logs "live edges changed").
func (c *cluster) waitDirectories() {
	c.t.Helper()
	var addrs []string
	for _, e := range c.edges {
		addrs = append(addrs, e.info.Region+"="+e.info.Advertised)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, e := range c.edges {
		for !hasLine(e.output(), append([]string{"live edges changed"}, addrs...)...) {
			if time.Now().After(deadline) {
				c.t.Fatalf("edge %s never listed the edges %v:\n%s", e.info.Region, addrs, e.output())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// waitPeerLinks waits until every edge has learned the edge-to-edge
// address (--peer-addr) of every other edge of its region: from then on
// each forwards to the others.
func (c *cluster) waitPeerLinks() {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, e := range c.edges {
		for _, o := range c.edges {
			if o == e || o.info.Region != e.info.Region || o.info.PeerAddr == "" {
				continue
			}
			for !hasLine(e.output(), "live edges changed", "peer="+o.info.PeerAddr) {
				if time.Now().After(deadline) {
					c.t.Fatalf("edge %s never learned the edge-to-edge address %s of %s:\n%s",
						e.info.EdgeID, o.info.PeerAddr, o.info.EdgeID, e.output())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// waitPersisted waits until every edge's persisted snapshot
// (<data-dir>/snapshot.json, or the delta log beside it, snapshot.log)
// mentions id: the edge has applied the change and would serve it after a
// restart.
func (c *cluster) waitPersisted(id string) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, e := range c.edges {
		for {
			b, _ := os.ReadFile(filepath.Join(e.dataDir, "snapshot.json"))
			l, _ := os.ReadFile(filepath.Join(e.dataDir, "snapshot.log"))
			if strings.Contains(string(b), id) || strings.Contains(string(l), id) {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("edge %s never persisted a snapshot with %s", e.info.Region, id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// api calls the control plane's REST API with the admin key.
func (c *cluster) api(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	return restJSON(c.t, c.cp.apiURL, c.boot.APIKey, method, path, body)
}

// mustAPI calls the API and fails unless it answers status.
func (c *cluster) mustAPI(method, path string, body any, status int) map[string]any {
	c.t.Helper()
	got, m := c.api(method, path, body)
	if got != status {
		c.t.Fatalf("%s %s: %d %v, want %d", method, path, got, m, status)
	}
	return m
}

// regions returns GET /regions as region → agent addresses.
func (c *cluster) regions() map[string][]string {
	c.t.Helper()
	m := c.mustAPI("GET", "/regions", nil, 200)
	out := map[string][]string{}
	list, _ := m["regions"].([]any)
	for _, r := range list {
		r, _ := r.(map[string]any)
		id, _ := r["id"].(string)
		edges, _ := r["edges"].([]any)
		for _, e := range edges {
			e, _ := e.(map[string]any)
			addr, _ := e["agent_addr"].(string)
			out[id] = append(out[id], addr)
		}
	}
	return out
}

// sessionRegions returns the region of each online agent session.
func (c *cluster) sessionRegions() map[string]string {
	c.t.Helper()
	m := c.mustAPI("GET", "/tunnel_sessions", nil, 200)
	out := map[string]string{}
	list, _ := m["tunnel_sessions"].([]any)
	for _, s := range list {
		s, _ := s.(map[string]any)
		id, _ := s["id"].(string)
		region, _ := s["region"].(string)
		out[id] = region
	}
	return out
}

// newAuthtoken creates an authtoken owned by the admin; it returns its ID
// and token.
func (c *cluster) newAuthtoken(body map[string]any) (string, string) {
	c.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	m := c.mustAPI("POST", "/credentials", body, 201)
	id, _ := m["id"].(string)
	tok, _ := m["token"].(string)
	if id == "" || tok == "" {
		c.t.Fatalf("credential = %v", m)
	}
	return id, tok
}

// startAgent runs `tollgate` against serverAddr with authtoken. It does not
// wait.
func (c *cluster) startAgent(authtoken, serverAddr string, args ...string) *proc {
	c.t.Helper()
	full := append(append([]string{}, args...), "--authtoken", authtoken, "--server-addr", serverAddr,
		"--root-ca", c.caFile, "--web-addr", "127.0.0.1:0", "--log-level", "info")
	bin, full := c.command("agent", bins.tollgate, full)
	p := start(c.t, bin, []string{"TOLLGATE_CONFIG=" + filepath.Join(c.dir, fmt.Sprintf("agent-%d.yml", time.Now().UnixNano()))}, full...)
	c.t.Cleanup(func() { stopLogged(c.t, p, "agent") })
	return p
}

// stopLogged stops p, logging when it did not exit promptly on SIGTERM.
func stopLogged(t testing.TB, p *proc, what string) {
	t0 := time.Now()
	_ = p.stop(10 * time.Second)
	if d := time.Since(t0); d > 2*time.Second {
		t.Logf("%s took %s to stop:\n%s", what, d, p.output())
	}
}

var forwardingLine = regexp.MustCompile(`Forwarding\s+(\S+)\s+->`)
var sessionLine = regexp.MustCompile(`Session\s+(ts_\S+)\s+\(region (\w+)`)

// agent runs `tollgate` and waits until it forwards; it returns the
// process, its session ID and region, and the public URL.
func (c *cluster) agent(authtoken, serverAddr string, args ...string) (p *proc, sessionID, region, publicURL string) {
	c.t.Helper()
	p = c.startAgent(authtoken, serverAddr, args...)
	publicURL = p.waitFor(forwardingLine, 30*time.Second)[1]
	m := p.waitFor(sessionLine, 5*time.Second)
	return p, m[1], m[2], publicURL
}

// sdkAgent makes an agent of the hosted platform's Go SDK (ngrok-go v2,
// unmodified: one connection) for edge e with authtoken and opts; it
// connects on Connect or its first Forward, and disconnects at cleanup.
func (c *cluster) sdkAgent(authtoken string, e *edgeProc, opts ...ngrok.AgentOption) ngrok.Agent {
	c.t.Helper()
	all := append([]ngrok.AgentOption{ngrok.WithAuthtoken(authtoken), ngrok.WithAgentConnectURL(e.info.AgentAddr),
		ngrok.WithAgentConnectCAs(c.pool)}, opts...)
	ag, err := ngrok.NewAgent(all...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = ag.Disconnect() })
	return ag
}

// client returns an HTTPS client that trusts the cluster's CA and dials
// every name at the HTTPS listener of e.
func (c *cluster) client(e *edgeProc) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: c.pool},
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, e.info.HTTPSAddr)
		},
	}}
}

// delayProxy is a TCP proxy that waits delay after accepting each
// connection before it connects to its target and relays: every
// connection through it, and so its first byte, is delay late.
type delayProxy struct {
	ln     net.Listener
	delay  time.Duration
	target atomic.Pointer[string]
	wg     sync.WaitGroup
}

// newDelayProxy listens on 127.0.0.1; set its target before use.
func newDelayProxy(t testing.TB, delay time.Duration) *delayProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &delayProxy{ln: ln, delay: delay}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *delayProxy) addr() string          { return p.ln.Addr().String() }
func (p *delayProxy) setTarget(addr string) { p.target.Store(&addr) }

func (p *delayProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.relay(c)
	}
}

func (p *delayProxy) relay(c net.Conn) {
	defer c.Close()
	time.Sleep(p.delay) // the point of this proxy: a slow path to the edge
	t := p.target.Load()
	if t == nil {
		return
	}
	up, err := net.DialTimeout("tcp", *t, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); closeWrite(up); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// waitHTTP polls url through client until it answers 200, within d.
func waitHTTP(t testing.TB, client *http.Client, url string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		if last = getOK(client, url); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200 within %s: %v", url, d, last)
}

// hasLine reports whether output holds a line containing every substring.
func hasLine(output string, subs ...string) bool {
	for _, line := range strings.Split(output, "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return true
		}
	}
	return false
}
