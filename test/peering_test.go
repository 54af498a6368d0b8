package test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestEdgePeerLink: two `tollgated edge` of one region started with
// --peer-addr listen for edge-to-edge links, report the addresses through
// the control plane, and each learns the other's (the address its route
// table forwards to); the link refuses a client without the edge secret.
// A listener on every interface without --advertise-peer-addr is a
// configuration error.
func TestEdgePeerLink(t *testing.T) {
	c := newCluster(t)
	a := c.launchEdge("a", "us", "127.0.0.1", "--peer-addr", "127.0.0.1:0").ready(t)
	b := c.launchEdge("b", "us", "127.0.0.2", "--peer-addr", "127.0.0.2:0").ready(t)
	for _, e := range []*edgeProc{a, b} {
		if host, port, err := net.SplitHostPort(e.info.PeerAddr); err != nil || port == "0" || !strings.HasPrefix(e.info.HTTPSAddr, host+":") {
			t.Fatalf("edge.json peer_addr %q (https %s)", e.info.PeerAddr, e.info.HTTPSAddr)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, pair := range [][2]*edgeProc{{a, b}, {b, a}} {
		for !hasLine(pair[0].output(), "live edges changed", "peer="+pair[1].info.PeerAddr) {
			if time.Now().After(deadline) {
				t.Fatalf("edge %s never learned the edge-to-edge address %s:\n%s", pair[0].info.EdgeID, pair[1].info.PeerAddr, pair[0].output())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A TLS client that is not an edge: no handshake for h2/http1.1, and
	// nothing but a closed connection when it offers the link's ALPN.
	if _, err := tls.Dial("tcp", a.info.PeerAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}); err == nil {
		t.Fatal("a web client completed a TLS handshake with the edge-to-edge listener")
	}
	if out, err := exec.Command("curl", "-sk", "--max-time", "10", "https://"+a.info.PeerAddr+"/").CombinedOutput(); err == nil {
		t.Fatalf("curl reached the edge-to-edge listener: %q", out)
	}
	tc, err := tls.Dial("tcp", a.info.PeerAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"tollgate-muxado/1"}})
	if err == nil {
		_, _ = io.WriteString(tc, strings.Repeat("x", 300))
		_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, rerr := tc.Read(make([]byte, 16)); n != 0 || rerr == nil {
			t.Fatalf("a client without the edge secret read %d bytes", n)
		}
		tc.Close()
	}
	for !hasLine(a.output(), "edge-to-edge link refused") {
		if time.Now().After(deadline) {
			t.Fatalf("edge a did not log the refused link:\n%s", a.output())
		}
		time.Sleep(20 * time.Millisecond)
	}

	out, err := exec.Command(bins.tollgated, "edge", "--region", "us", "--control", "http://127.0.0.1:1",
		"--control-secret-file", c.secretFile, "--data-dir", t.TempDir(), "--peer-addr", "0.0.0.0:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--advertise-peer-addr") {
		t.Fatalf("--peer-addr 0.0.0.0:0 without --advertise-peer-addr: %v\n%s", err, out)
	}
}

// TestForwardAcrossEdgeProcesses: two `tollgated edge` of one region with
// --peer-addr; an agent connected to edge a only. An HTTPS request and a
// TCP connection sent to edge b reach the agent through a, as soon as the
// bind is in b's route table (issue 13 item 2).
func TestForwardAcrossEdgeProcesses(t *testing.T) {
	c := newCluster(t)
	a := c.launchEdge("a", "us", "127.0.0.1", "--peer-addr", "127.0.0.1:0").ready(t)
	b := c.launchEdge("b", "us", "127.0.0.2", "--peer-addr", "127.0.0.2:0").ready(t)
	deadline := time.Now().Add(20 * time.Second)
	for !hasLine(b.output(), "live edges changed", "peer="+a.info.PeerAddr) {
		if time.Now().After(deadline) {
			t.Fatalf("edge b never learned a's edge-to-edge address:\n%s", b.output())
		}
		time.Sleep(20 * time.Millisecond)
	}

	const appURL = "https://fwd.tollgate.localhost"
	up := namedUpstream(t, "served-by-a")
	if _, _, _, got := c.agent(c.boot.Authtoken, a.info.AgentAddr, "http", upstreamPort(up), "--url", appURL, "--transport", "tcp"); !strings.HasPrefix(got, appURL) {
		t.Fatalf("the agent forwards %s, want %s", got, appURL)
	}
	eventually(t, 10*time.Second, func() error {
		resp, err := c.client(b).Get(appURL + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "served-by-a" {
			return fmt.Errorf("through edge b: %d %s", resp.StatusCode, body)
		}
		return nil
	})

	// A TCP endpoint on a: b listens on its port and forwards.
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			conn, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer conn.Close(); _, _ = io.Copy(conn, conn) }()
		}
	}()
	_, echoPort, _ := net.SplitHostPort(echo.Addr().String())
	_, _, _, tcpURL := c.agent(c.boot.Authtoken, a.info.AgentAddr, "tcp", echoPort, "--transport", "tcp")
	_, port, err := net.SplitHostPort(strings.TrimPrefix(tcpURL, "tcp://"))
	if err != nil {
		t.Fatalf("TCP URL %q: %v", tcpURL, err)
	}
	eventually(t, 10*time.Second, func() error {
		conn, err := net.DialTimeout("tcp", "127.0.0.2:"+port, 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "ping"); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
			return fmt.Errorf("echo through edge b: %q, %v", buf, err)
		}
		return nil
	})
}
