package httpproxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
)

// TestServeConnLimitsUnsent: the TCP connection under a public client
// connection (here under crypto/tls) queues at most maxUnsent bytes unsent
// once the proxy serves it, so a client that does not read is seen to
// stall after its receive window plus maxUnsent, not after the kernel's
// whole send buffer (bulkbuf.go).
func TestServeConnLimitsUnsent(t *testing.T) {
	h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), harnessOpts{})
	cert, roots := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- c.(*net.TCPConn)
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.HandshakeContext(ctx) == nil {
			h.proxy.ServeConn(ctx, tc, testHost, "")
		}
	}()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", ln.Addr().String())
		},
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + testHost + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c := <-accepted
	got, err := notSentLowat(c)
	if err != nil {
		t.Fatal(err)
	}
	if got != maxUnsent {
		t.Fatalf("TCP_NOTSENT_LOWAT %d on the served connection, want %d", got, maxUnsent)
	}
}
