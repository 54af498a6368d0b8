package test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
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

// TestEdgesShareCertStore: two edges with --cert-store on the control
// plane's database obtain the base-domain certificate once between them
// and serve the same one; edges with their own file storage each obtain
// their own.
func TestEdgesShareCertStore(t *testing.T) {
	c := newCluster(t)
	us := c.startEdge("us", "127.0.0.1", "--cert-store", c.dbPath)
	eu := c.startEdge("eu", "127.0.0.2", "--cert-store", c.dbPath)
	name := "shared.tollgate.localhost"
	if a, b := servedSerial(t, c, us, name), servedSerial(t, c, eu, name); a != b {
		t.Fatalf("edges sharing the store serve different certificates: serial %s and %s", a, b)
	}
	ap := c.startEdge("ap", "127.0.0.3") // its own files: its own issuance
	if a, b := servedSerial(t, c, us, name), servedSerial(t, c, ap, name); a == b {
		t.Fatalf("an edge with its own storage serves the shared certificate %s", a)
	}
}
