package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/internal/testcert"
)

// An edge certificate the agent cannot verify ends Run at once with
// TG_9006, naming the issuer and saying what to pass, on every transport.
func TestAgentUnverifiedEdgeCertificate(t *testing.T) {
	other := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(other, testcert.New("127.0.0.1").CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, transport, rootCA, want string }{
		{"system roots, tcp", "tcp", "", "system's trusted roots"},
		{"system roots, quic", "quic", "", "system's trusted roots"},
		{"system roots, auto", "auto", "", "system's trusted roots"},
		{"another CA", "tcp", other, other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEdge(t, edgeOpts{tcp: true, quic: true})
			cfg := baseConfig(t, e, tc.transport, config.Endpoint{Name: "web", Proto: "http", Upstream: "8080"})
			cfg.RootCAFile = tc.rootCA
			ra := startAgent(t, cfg)
			err := ra.waitDone(t)
			var ce *codes.Error
			if !errors.As(err, &ce) || ce.Code != codes.EdgeCertUnverified || !IsUsageError(err) {
				t.Fatalf("Run = %v, want TG_9006", err)
			}
			for _, s := range []string{"pass --root-ca FILE", `signed by "CN=127.0.0.1"`, tc.want, e.addr} {
				if !strings.Contains(strings.ToLower(ce.Message), strings.ToLower(s)) {
					t.Fatalf("message %q lacks %q", ce.Message, s)
				}
			}
			if ra.bo.next.Load() != 0 {
				t.Fatalf("%d backoffs: an unverifiable certificate must not be retried", ra.bo.next.Load())
			}
		})
	}
}

// --url http://NAME is refused with TG_9007, never bound as https.
func TestNewRefusesPlainHTTPURL(t *testing.T) {
	for _, ep := range []config.Endpoint{
		{Name: config.CommandLineEndpoint, Proto: "http", URL: "http://app.example.com", Upstream: "8080"},
		{Name: "web", URL: "http://app.example.com", Upstream: "8080"},
	} {
		_, err := New(Config{Authtoken: "x_y", ServerAddr: "edge.example.com:4443", Endpoints: []config.Endpoint{ep}}, nil)
		var ce *codes.Error
		if !errors.As(err, &ce) || ce.Code != codes.PlainHTTPURL || !IsUsageError(err) ||
			!strings.Contains(ce.Message, "--url https://app.example.com") {
			t.Fatalf("%+v: New = %v, want TG_9007 suggesting https", ep, err)
		}
	}
	if _, err := New(Config{Authtoken: "x_y", ServerAddr: "edge.example.com:4443", Endpoints: []config.Endpoint{
		{Name: "web", Proto: "http", URL: "https://app.example.com", Upstream: "8080"}}}, nil); err != nil {
		t.Fatalf("https URL: %v", err)
	}
}

// A taken default web port moves to the next free one; a taken explicit
// one stays TG_9001.
func TestListenWebFallback(t *testing.T) {
	// Three consecutive ports; hold the first two.
	var held []net.Listener
	var base int
	for tries := 0; tries < 50 && len(held) < 2; tries++ {
		for _, l := range held {
			l.Close()
		}
		held = held[:0]
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base = ln.Addr().(*net.TCPAddr).Port
		held = append(held, ln)
		if base+2 > 65535 {
			continue
		}
		if ln2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+1)); err == nil {
			held = append(held, ln2)
		}
	}
	if len(held) < 2 {
		t.Fatal("no two consecutive free ports")
	}
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	addr := "127.0.0.1:" + strconv.Itoa(base)

	_, err := listenWeb(addr, 0)
	var ce *codes.Error
	if !errors.As(err, &ce) || ce.Code != codes.ListenFailed {
		t.Fatalf("explicit taken address: %v, want TG_9001", err)
	}
	_, err = listenWeb(addr, 1)
	if !errors.As(err, &ce) || ce.Code != codes.ListenFailed || !strings.Contains(ce.Message, strconv.Itoa(base+1)) {
		t.Fatalf("both taken: %v, want TG_9001 naming the last port", err)
	}
	ln, err := listenWeb(addr, 5)
	if err != nil {
		// base+2 may have been taken by someone else meanwhile; any later
		// port is fine as long as it is one of the next five.
		t.Fatalf("fallback: %v", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if port <= base+1 || port > base+5 {
		t.Fatalf("fallback took port %d, want %d..%d", port, base+2, base+5)
	}

	// Through Run: the Agent reports where it listens.
	a, err := New(Config{Authtoken: "x_y", ServerAddr: "127.0.0.1:1", WebAddr: addr, WebAddrTries: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitFor(t, "the web address", func() bool { return a.WebAddr() != "" })
	if _, p, _ := net.SplitHostPort(a.WebAddr()); p == strconv.Itoa(base) || p == strconv.Itoa(base+1) {
		t.Fatalf("agent web address %s is a taken port", a.WebAddr())
	}
	cancel()
	<-done
}

func TestApplyWebAddrTries(t *testing.T) {
	var c Config
	c.Apply(config.AgentSettings{})
	if c.WebAddr != config.DefaultWebAddr || c.WebAddrTries != DefaultWebAddrTries {
		t.Fatalf("default: %q tries %d", c.WebAddr, c.WebAddrTries)
	}
	explicit := config.DefaultWebAddr
	c.Apply(config.AgentSettings{WebAddr: &explicit})
	if c.WebAddrTries != 0 {
		t.Fatalf("explicit --web-addr: tries %d, want 0", c.WebAddrTries)
	}
}

// Without a web address nothing could show captured requests: nothing is
// recorded.
func TestNoWebAddrNoRecording(t *testing.T) {
	eps := []config.Endpoint{{Name: "web", Proto: "http", Upstream: "8080"}}
	a, err := New(Config{Authtoken: "x_y", ServerAddr: "e:1", WebAddr: "false", Endpoints: eps}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.rec != nil || a.eps.list[0].fwd.rec != nil {
		t.Fatal("recording without a web address")
	}
	a, err = New(Config{Authtoken: "x_y", ServerAddr: "e:1", WebAddr: "127.0.0.1:0", Endpoints: eps}, nil)
	if err != nil || a.rec == nil || a.eps.list[0].fwd.rec != a.rec {
		t.Fatalf("recording with a web address: %v", err)
	}
}
