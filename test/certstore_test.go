package test

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/edge/certs"
)

// servedSerial returns the serial number of the certificate an edge serves
// for name.
func servedSerial(t *testing.T, c *cluster, e *edgeProc, name string) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.info.HTTPSAddr,
		&tls.Config{ServerName: name, RootCAs: c.pool})
	if err != nil {
		t.Fatalf("TLS to %s for %s: %v", e.info.HTTPSAddr, name, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// socketsTo lists the TCP connections of process pid whose remote port is
// port (from /proc: its socket fds matched against /proc/net/tcp{,6}).
func socketsTo(t *testing.T, pid, port int) []string {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("listing the fds of %d: %v", pid, err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var found []string
	hexPort := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) > 9 && strings.HasSuffix(fields[2], hexPort) && inodes[fields[9]] {
				found = append(found, line)
			}
		}
	}
	return found
}

// TestEdgesShareCertsThroughControl (issue 13 item 7): a control plane on
// PostgreSQL and two edges of one region that are given no database at all
// (the default --cert-store control) obtain the certificate once between
// them, through the control plane's edge API, and serve the same one; an
// edge's certificate status reaches the reserved_domains API; the edges
// hold no connection to PostgreSQL; an edge given a database DSN refuses
// to start with TG_5104; an edge with --cert-store files gets its own.
func TestEdgesShareCertsThroughControl(t *testing.T) {
	dsn := freshPostgres(t)
	c := newClusterOn(t, dsn)
	// Both start at once: one obtains, the other waits on the lock and
	// loads what the first stored.
	a := c.launchEdge("us-a", "us", "127.0.0.1")
	b := c.launchEdge("us-b", "us", "127.0.0.2")
	a.ready(t)
	b.ready(t)
	for _, e := range []*edgeProc{a, b} {
		if args := strings.Join(e.cmd.Args, " "); strings.Contains(args, "postgres") || strings.Contains(args, "--cert-store") {
			t.Fatalf("an edge was given a database: %s", args)
		}
	}

	name := "shared.tollgate.localhost"
	sa, sb := servedSerial(t, c, a, name), servedSerial(t, c, b, name)
	if sa != sb {
		t.Fatalf("edges of one control plane serve different certificates: serial %s and %s", sa, sb)
	}
	// Obtained once: one edge's log says it obtained the wildcard, the
	// other's that it waited and loaded it; the control plane's storage
	// holds it.
	obtained := 0
	for _, e := range []*edgeProc{a, b} {
		obtained += strings.Count(e.output(), `certificate obtained successfully	{"identifier": "*.tollgate.localhost"`)
	}
	if obtained != 1 {
		t.Fatalf("the wildcard certificate was obtained %d times by two edges sharing the control plane's storage, want 1", obtained)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM certmagic_data WHERE key LIKE 'certificates/%/wildcard_.tollgate.localhost/wildcard_.tollgate.localhost.crt'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("the control plane's storage holds %d wildcard certificates, want 1", n)
	}
	var locks int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM certmagic_locks WHERE holder LIKE 'edge:%'`).Scan(&locks); err != nil {
		t.Fatal(err)
	}
	if locks != 0 {
		t.Fatalf("%d edge locks left after issuance, want 0 (released at Unlock)", locks)
	}

	// Certificate status: the local CA cannot sign a reserved domain
	// outside the base domain, and each edge says so through the edge API.
	rd := c.mustAPI("POST", "/reserved_domains", map[string]any{"domain": "app.example.org", "region": "us"}, 201)
	eventually(t, 15*time.Second, func() error {
		got := c.mustAPI("GET", "/reserved_domains/"+rd["id"].(string), nil, 200)
		st, _ := got["certificate_management_status"].(map[string]any)
		job, _ := st["provisioning_job"].(map[string]any)
		if job == nil || job["error_code"] != certs.StatusDNSError {
			return fmt.Errorf("certificate_management_status = %v", got["certificate_management_status"])
		}
		return nil
	})

	// No edge holds a connection to PostgreSQL; the control plane does.
	for _, e := range []*edgeProc{a, b} {
		if s := socketsTo(t, e.cmd.Process.Pid, 5432); len(s) > 0 {
			t.Fatalf("edge %s holds connections to PostgreSQL:\n%s", e.info.EdgeID, strings.Join(s, "\n"))
		}
	}
	if s := socketsTo(t, c.cp.cmd.Process.Pid, 5432); len(s) == 0 {
		t.Fatal("the control plane holds no connection to PostgreSQL: the socket check sees nothing")
	}

	// An edge given the database refuses to start and says what to do.
	bad := start(t, bins.tollgated, nil, "edge", "--region", "us", "--control", c.cp.apiURL,
		"--control-secret-file", c.secretFile, "--data-dir", filepath.Join(c.dir, "edge-bad"),
		"--cert-store", "postgres://tollgate:hunter2@127.0.0.1:5432/tollgate")
	code, ok := bad.wait(15 * time.Second)
	if !ok || code == 0 {
		t.Fatalf("an edge with --cert-store postgres://... did not fail (exit %d, exited %v):\n%s", code, ok, bad.output())
	}
	if out := bad.output(); !strings.Contains(out, "TG_5104") || !strings.Contains(out, "--cert-store control") || strings.Contains(out, "hunter2") {
		t.Fatalf("the refusal of a database DSN does not give TG_5104 and the way out, or shows the password:\n%s", out)
	}

	// Its own files: its own issuance.
	f := c.launchEdge("eu-files", "eu", "127.0.0.3", "--cert-store", "files").ready(t)
	if sf := servedSerial(t, c, f, name); sf == sa {
		t.Fatalf("an edge with --cert-store files serves the shared certificate %s", sa)
	}
	t.Logf("shared certificate serial %s, served by %s and %s", sa, a.info.HTTPSAddr, b.info.HTTPSAddr)
}
