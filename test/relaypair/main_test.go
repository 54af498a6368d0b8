package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// TestRelayPair runs both roles on loopback, as scripts/bench-bulk does,
// and fetches a 4 MiB body from an upstream through them over HTTPS: the
// client must get every byte, so the benchmark measures a working relay.
func TestRelayPair(t *testing.T) {
	body := make([]byte, 4<<20)
	_, _ = rand.Read(body)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(body)
	}))
	defer up.Close()
	dir := t.TempDir()
	if err := writeCert(dir); err != nil {
		t.Fatal(err)
	}
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	agentLn, edgeLn := listen(), listen()
	go func() { _ = serve("agent", agentLn, up.Listener.Addr().String(), dir) }()
	go func() { _ = serve("edge", edgeLn, agentLn.Addr().String(), dir) }()

	pemBytes, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: hostName},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", edgeLn.Addr().String())
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + hostName + "/bulk")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || !bytes.Equal(got, body) {
		t.Fatalf("status %d, TLS %v, %d of %d bytes equal to the upstream's", resp.StatusCode, resp.TLS != nil, len(got), len(body))
	}
}
