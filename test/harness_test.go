package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bins holds the paths of the binaries TestMain built.
var bins struct {
	tollgated string
	tollgate  string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tollgate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.tollgated = filepath.Join(dir, "tollgated")
	bins.tollgate = filepath.Join(dir, "tollgate")
	for path, pkg := range map[string]string{bins.tollgated: "../cmd/tollgated", bins.tollgate: "../cmd/tollgate"} {
		cmd := exec.Command("go", "build", "-o", path, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// devInfo is <data-dir>/dev.json as `tollgated dev` writes it.
type devInfo struct {
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

// proc is a started binary whose output is captured.
type proc struct {
	t     testing.TB
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   bytes.Buffer // stdout and stderr interleaved
	lines chan string
	done  chan struct{}
	err   error
}

// start runs a binary with args; the process is stopped at cleanup.
func start(t testing.TB, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &proc{t: t, cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- line:
			default:
			}
		}
		_, _ = io.Copy(io.Discard, pr) // past an over-long line: never block the process
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		<-scanned // done means every line the process printed is in out
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("output of %s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), p.output())
		}
	})
	return p
}

// output returns everything the process printed so far.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// stop sends SIGTERM and waits up to d before killing.
func (p *proc) stop(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// wait waits for the process to exit by itself within d.
func (p *proc) wait(d time.Duration) (exitCode int, ok bool) {
	select {
	case <-p.done:
		if p.cmd.ProcessState == nil {
			return -1, true
		}
		return p.cmd.ProcessState.ExitCode(), true
	case <-time.After(d):
		return 0, false
	}
}

// waitFor waits until the process prints a line matching re, returning the
// submatches.
func (p *proc) waitFor(re *regexp.Regexp, d time.Duration) []string {
	p.t.Helper()
	deadline := time.After(d)
	for {
		// Check what is already captured first, so no line is missed.
		if m := re.FindStringSubmatch(p.output()); m != nil {
			return m
		}
		select {
		case <-p.lines:
		case <-p.done:
			if m := re.FindStringSubmatch(p.output()); m != nil {
				return m
			}
			p.t.Fatalf("process exited (%v) before printing %q", p.err, re)
		case <-deadline:
			p.t.Fatalf("timed out after %s waiting for %q", d, re)
		}
	}
}

// devServer is a running `tollgated dev`.
type devServer struct {
	*proc
	dataDir string
	info    devInfo
	pool    *x509.CertPool
}

// startDev starts `tollgated dev` on ephemeral loopback ports in dataDir
// ("" = a new temporary dir) and waits until dev.json is written.
func startDev(t testing.TB, dataDir string, extra ...string) *devServer {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	os.Remove(filepath.Join(dataDir, "dev.json.ready"))
	args := []string{"dev", "--data-dir", dataDir,
		"--api-addr", "127.0.0.1:0", "--agent-addr", "127.0.0.1:0",
		"--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--ssh-addr", "127.0.0.1:0",
		"--dashboard-addr", "127.0.0.1:0"}
	args = append(args, extra...)
	p := start(t, bins.tollgated, nil, args...)
	p.waitFor(regexp.MustCompile(`(?m)^Tollgate dev is ready`), 60*time.Second)
	d := &devServer{proc: p, dataDir: dataDir}
	b, err := os.ReadFile(filepath.Join(dataDir, "dev.json"))
	if err != nil {
		t.Fatalf("reading dev.json: %v", err)
	}
	if err := json.Unmarshal(b, &d.info); err != nil {
		t.Fatalf("dev.json: %v", err)
	}
	pem, err := os.ReadFile(d.info.CAFile)
	if err != nil {
		t.Fatalf("reading CA file: %v", err)
	}
	d.pool = x509.NewCertPool()
	if !d.pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA file %s has no certificate", d.info.CAFile)
	}
	return d
}

// devIngress is <data-dir>/dev-ingress.json: the dev server's ways in
// beside dev.json.
type devIngress struct {
	SSHAddr      string `json:"ssh_addr"`
	TCPHost      string `json:"tcp_host"`
	DashboardURL string `json:"dashboard_url"`
	MetricsAddr  string `json:"metrics_addr"` // with --metrics-addr
}

// ingress reads dev-ingress.json.
func (d *devServer) ingress(t testing.TB) devIngress {
	t.Helper()
	var in devIngress
	b, err := os.ReadFile(filepath.Join(d.dataDir, "dev-ingress.json"))
	if err == nil {
		err = json.Unmarshal(b, &in)
	}
	if err != nil {
		t.Fatalf("reading dev-ingress.json: %v", err)
	}
	return in
}

// httpsPort returns the port of the public HTTPS listener.
func (d *devServer) httpsPort() string {
	_, port, _ := net.SplitHostPort(d.info.HTTPSAddr)
	return port
}

// client returns an HTTP client that trusts the dev CA and dials every
// *.localhost name on the edge's HTTPS listener. h2 selects HTTP/2.
func (d *devServer) client(h2 bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: d.pool},
		ForceAttemptHTTP2:   h2,
		MaxIdleConnsPerHost: 256,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, d.info.HTTPSAddr)
		},
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// agent runs `tollgate` with the dev server's credentials and waits for the
// Forwarding line; it returns the process and the public URL.
func (d *devServer) agent(t testing.TB, args ...string) (*proc, string) {
	t.Helper()
	full := append([]string{}, args...)
	full = append(full, "--authtoken", d.info.Authtoken, "--server-addr", d.info.AgentAddr,
		"--root-ca", d.info.CAFile, "--web-addr", "127.0.0.1:0")
	p := start(t, bins.tollgate, []string{"TOLLGATE_CONFIG=" + filepath.Join(t.TempDir(), "tollgate.yml")}, full...)
	m := p.waitFor(regexp.MustCompile(`Forwarding\s+(\S+)\s+->`), 30*time.Second)
	return p, m[1]
}
