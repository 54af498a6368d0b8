package test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testcert"

	"github.com/pires/go-proxyproto"
	"golang.ngrok.com/ngrok/v2"
)

// tcpEcho is a TCP upstream that echoes every connection and half-closes
// its side at the client's EOF. With proxyProto, it first reads a PROXY
// header and reports the source address on seen.
type tcpEcho struct {
	ln   net.Listener
	seen chan string
}

func startTCPEcho(t *testing.T, proxyProto bool) *tcpEcho {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	e := &tcpEcho{ln: ln, seen: make(chan string, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go e.serve(c, proxyProto)
		}
	}()
	return e
}

func (e *tcpEcho) serve(c net.Conn, proxyProto bool) {
	defer c.Close()
	var r io.Reader = c
	if proxyProto {
		br := bufio.NewReader(c)
		h, err := proxyproto.Read(br)
		if err != nil {
			e.seen <- "error: " + err.Error()
			return
		}
		src, _, _ := h.TCPAddrs()
		e.seen <- "v" + strconv.Itoa(int(h.Version)) + " " + src.String()
		r = br
	}
	if _, err := io.Copy(c, r); err != nil {
		return
	}
	_ = c.(*net.TCPConn).CloseWrite()
	// Wait for the peer to close before closing, so nothing is reset.
	_, _ = io.Copy(io.Discard, c)
}

func (e *tcpEcho) port() string {
	_, p, _ := net.SplitHostPort(e.ln.Addr().String())
	return p
}

// tcpAddrOf turns tcp://host:port into 127.0.0.1:port (every TCP host of
// the dev edge is loopback).
func tcpAddrOf(t *testing.T, u string) string {
	t.Helper()
	m := regexp.MustCompile(`^tcp://[^:/]+:(\d+)$`).FindStringSubmatch(u)
	if m == nil {
		t.Fatalf("not a tcp URL: %q", u)
	}
	return "127.0.0.1:" + m[1]
}

// checkEchoTransfer sends size random bytes to addr, half-closes, reads the
// echo to EOF and compares checksums. It returns the local address used.
func checkEchoTransfer(t *testing.T, addr string, size int) string {
	t.Helper()
	return echoTransfer(t, addr, size, true)
}

// echoTransfer is checkEchoTransfer; without halfClose it reads exactly
// size bytes back instead of waiting for EOF (for agents that end both
// directions at the first EOF, as the Go SDK's forwarder does).
func echoTransfer(t *testing.T, addr string, size int, halfClose bool) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(90 * time.Second))
	sent := sha256.New()
	werr := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, io.TeeReader(io.LimitReader(rand.Reader, int64(size)), sent))
		if err == nil && halfClose {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got := sha256.New()
	var r io.Reader = c
	if !halfClose {
		r = io.LimitReader(c, int64(size))
	}
	n, err := io.Copy(got, r)
	if err != nil {
		t.Fatalf("reading the echo: %v after %d bytes", err, n)
	}
	if err := <-werr; err != nil {
		t.Fatalf("sending: %v", err)
	}
	if n != int64(size) || string(got.Sum(nil)) != string(sent.Sum(nil)) {
		t.Fatalf("echo of %d bytes came back as %d bytes with checksum match %v", size, n, string(got.Sum(nil)) == string(sent.Sum(nil)))
	}
	return c.LocalAddr().String()
}

// TestTCPEndpoint: `tollgate tcp` gets a random port of the range; a large
// transfer with half-close keeps its checksum; PROXY v1 and v2 reach the
// upstream with the real client address; once the agent is gone the port
// refuses connections at once.
func TestTCPEndpoint(t *testing.T) {
	dev := startDev(t, "")
	up := startTCPEcho(t, false)
	agent, u := dev.agent(t, "tcp", up.port())
	addr := tcpAddrOf(t, u)
	port, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	if port < 20000 || port > 29999 {
		t.Fatalf("port %d is outside the default range 20000-29999", port)
	}
	checkEchoTransfer(t, addr, 64<<20)

	for _, v := range []string{"1", "2"} {
		t.Run("proxy-proto v"+v, func(t *testing.T) {
			pup := startTCPEcho(t, true)
			_, pu := dev.agent(t, "tcp", pup.port(), "--proxy-proto", v)
			local := checkEchoTransfer(t, tcpAddrOf(t, pu), 1<<20)
			select {
			case seen := <-pup.seen:
				if seen != "v"+v+" "+local {
					t.Fatalf("upstream saw PROXY %q, want %q", seen, "v"+v+" "+local)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream saw no connection")
			}
		})
	}

	if err := agent.stop(10 * time.Second); err != nil {
		t.Logf("agent exit: %v", err)
	}
	eventually(t, 5*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return errors.New("the port still accepts connections")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return err
		}
		return nil
	})
}

// TestTCPPsql runs psql through a TCP endpoint to the PostgreSQL server at
// 127.0.0.1:5432.
func TestTCPPsql(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("this test needs psql: apt-get install postgresql-client (.ci/run does)")
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:5432", 2*time.Second); err != nil {
		t.Fatalf("this test needs PostgreSQL at 127.0.0.1:5432 (.ci/run starts it): %v", err)
	} else {
		c.Close()
	}
	dev := startDev(t, "")
	_, u := dev.agent(t, "tcp", "127.0.0.1:5432")
	_, port, _ := net.SplitHostPort(tcpAddrOf(t, u))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, psql, "-h", "127.0.0.1", "-p", port, "-U", "postgres", "test", "-tA", "-c", "select 1")
	cmd.Env = append(cmd.Environ(), "PGCONNECT_TIMEOUT=10", "PGPASSWORD="+envOr("PGPASSWORD", "postgres"))
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("psql through the tunnel: %v\n%s", err, out)
	}
}

// freePortPair returns two adjacent free loopback ports.
func freePortPair(t *testing.T) (int, int) {
	t.Helper()
	for i := 0; i < 50; i++ {
		a, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := a.Addr().(*net.TCPAddr).Port
		b, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		a.Close()
		if err == nil {
			b.Close()
			return p, p + 1
		}
	}
	t.Fatal("no two adjacent free ports")
	return 0, 0
}

// TestTCPPortRangeExhausted: with a range of two ports, a third endpoint
// gets a clear error and the agent exits.
func TestTCPPortRangeExhausted(t *testing.T) {
	lo, hi := freePortPair(t)
	dev := startDev(t, "", "--tcp-ports", strconv.Itoa(lo)+"-"+strconv.Itoa(hi))
	up := startTCPEcho(t, false)
	seen := map[string]bool{}
	for i := 0; i < 2; i++ {
		_, u := dev.agent(t, "tcp", up.port())
		seen[tcpAddrOf(t, u)] = true
	}
	if !seen["127.0.0.1:"+strconv.Itoa(lo)] || !seen["127.0.0.1:"+strconv.Itoa(hi)] {
		t.Fatalf("the two endpoints got %v, want ports %d and %d", seen, lo, hi)
	}
	p := dev.startAgent(t, "tcp", up.port())
	p.waitFor(regexp.MustCompile(`TG_405`), 30*time.Second)
}

// TestTCPReservedAddr: a reserved address of the account can be bound with
// --url; an address nobody reserved cannot.
func TestTCPReservedAddr(t *testing.T) {
	dev := startDev(t, "")
	lo, _ := freePortPair(t)
	addr := "localhost:" + strconv.Itoa(lo)
	status, body := restJSON(t, dev.info.APIURL, dev.info.APIKey, http.MethodPost, "/reserved_addrs", map[string]any{"addr": addr, "region": dev.info.Region})
	if status != http.StatusCreated {
		t.Fatalf("reserving %s: %d %v", addr, status, body)
	}
	up := startTCPEcho(t, false)
	var u string
	eventually(t, 10*time.Second, func() error { // the snapshot reaches the edge within a second or so
		p := dev.startAgent(t, "tcp", up.port(), "--url", "tcp://"+addr)
		deadline := time.After(15 * time.Second)
		for {
			if m := regexp.MustCompile(`Forwarding\s+(\S+)\s+->`).FindStringSubmatch(p.output()); m != nil {
				u = m[1]
				return nil
			}
			select {
			case <-p.done:
				return errors.New(p.output())
			case <-deadline:
				return errors.New("no Forwarding line: " + p.output())
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	if u != "tcp://"+addr {
		t.Fatalf("bound %s, want tcp://%s", u, addr)
	}
	checkEchoTransfer(t, tcpAddrOf(t, u), 1<<20)

	// Not reserved: refused.
	_, other := freePortPair(t)
	p := dev.startAgent(t, "tcp", up.port(), "--url", "tcp://localhost:"+strconv.Itoa(other))
	p.waitFor(regexp.MustCompile(`TG_7117`), 30*time.Second)
}

// TestTLSPassthrough: a tls endpoint gets the client's TLS stream untouched
// (the client sees the upstream's own certificate), while HTTPS endpoints
// on the same listener are still terminated by the edge.
func TestTLSPassthrough(t *testing.T) {
	dev := startDev(t, "")
	name := "pass." + dev.info.BaseDomain
	upCert, upPool := selfSigned(t, name)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{upCert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	_, u := dev.agent(t, "tls", p, "--url", "tls://"+name)
	if !strings.HasPrefix(u, "tls://"+name) {
		t.Fatalf("URL %q", u)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", dev.info.HTTPSAddr, &tls.Config{ServerName: name, RootCAs: upPool})
	if err != nil {
		t.Fatalf("TLS to the tls endpoint (verifying the upstream's own certificate): %v", err)
	}
	defer c.Close()
	msg := []byte("through the passthrough\n")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != string(msg) {
		t.Fatalf("echo through passthrough: %q %v", buf, err)
	}
	// HTTPS endpoints still terminate at the edge.
	hup := echoUpstream(t)
	_, hu := dev.agent(t, "http", upstreamPort(hup))
	if err := getOK(dev.client(false), hu+"/hello"); err != nil {
		t.Fatal(err)
	}
}

// TestTCPWithGoSDK binds a TCP endpoint with the hosted platform's Go SDK.
func TestTCPWithGoSDK(t *testing.T) {
	dev := startDev(t, "")
	up := startTCPEcho(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ag, err := ngrok.NewAgent(ngrok.WithAuthtoken(dev.info.Authtoken), ngrok.WithAgentConnectURL(dev.info.AgentAddr),
		ngrok.WithAgentConnectCAs(dev.pool))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.Disconnect() })
	fwd, err := ag.Forward(ctx, ngrok.WithUpstream("tcp://"+up.ln.Addr().String()), ngrok.WithURL("tcp://"))
	if err != nil {
		t.Fatalf("SDK Forward: %v", err)
	}
	echoTransfer(t, tcpAddrOf(t, fwd.URL().String()), 4<<20, false)
}

// startAgent runs `tollgate` with the dev server's credentials without
// waiting for anything.
func (d *devServer) startAgent(t *testing.T, args ...string) *proc {
	t.Helper()
	full := append(append([]string{}, args...), "--authtoken", d.info.Authtoken, "--server-addr", d.info.AgentAddr,
		"--root-ca", d.info.CAFile, "--web-addr", "false")
	return start(t, bins.tollgate, []string{"TOLLGATE_CONFIG=" + filepath.Join(t.TempDir(), "tollgate.yml")}, full...)
}

// selfSigned returns a certificate for name and a pool that trusts it.
func selfSigned(t *testing.T, name string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	p := testcert.New(name)
	return p.Cert, p.Pool
}
