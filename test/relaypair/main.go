// Command relaypair is a benchmark aid for scripts/bench-bulk: the least a
// tunnel of Tollgate's shape can cost on this machine. It runs as two
// processes, as Tollgate does, but carries one TCP connection per
// connection — no multiplexer, no HTTP, no framing — with io.CopyBuffer and
// 256 KiB buffers, as BenchmarkRelayCeiling's relays do:
//
//	client ──TLS──▶ relaypair edge ──TLS──▶ relaypair agent ──TCP──▶ upstream
//
// The same three loopback hops and four AES-GCM passes as a download
// through `tollgated` and `tollgate` (the TLS between the two relays runs
// the other way round: the edge dials the agent, which costs the same per
// byte). Fetched with curl from the same upstream as the tunnel, it tells
// what share of BenchmarkRelayCeiling's figure any two-process tunnel can
// reach here, with curl and the upstream on the same two cores.
//
//	relaypair cert DIR                         # writes DIR/cert.pem, DIR/key.pem (also the CA)
//	relaypair agent LISTEN UPSTREAM DIR        # TLS in, plain TCP out
//	relaypair edge LISTEN AGENT DIR            # TLS in (ALPN http/1.1), TLS out
//
// Not a product: it has no limits, no timeouts and no authentication, and
// listens where it is told (bench-bulk: loopback, ephemeral ports).
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/tollgate/tollgate/internal/testcert"
)

// bufSize is each copy's buffer, as in BenchmarkRelayCeiling.
const bufSize = 256 << 10

// hostName is the name the certificate is for; clients must use it (curl
// --resolve).
const hostName = "relaypair.localhost"

func main() {
	log.SetFlags(0)
	log.SetPrefix("relaypair: ")
	if len(os.Args) < 3 {
		usage()
	}
	switch role, args := os.Args[1], os.Args[2:]; {
	case role == "cert" && len(args) == 1:
		if err := writeCert(args[0]); err != nil {
			log.Fatal(err)
		}
	case (role == "agent" || role == "edge") && len(args) == 3:
		ln, err := net.Listen("tcp", args[0])
		if err != nil {
			log.Fatal(err)
		}
		log.Fatal(serve(role, ln, args[1], args[2]))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage:\n  relaypair cert DIR\n  relaypair agent LISTEN UPSTREAM DIR\n  relaypair edge LISTEN AGENT DIR\n")
	os.Exit(2)
}

// writeCert writes a self-signed certificate for hostName to dir.
func writeCert(dir string) error {
	p := testcert.New(hostName)
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), p.CertPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "key.pem"), p.KeyPEM, 0o600)
}

// serve accepts TLS connections on ln and relays each to a new
// connection to next: TLS for the edge role, plain TCP for the agent's.
// It returns only with the error that stopped it (ln closed).
func serve(role string, ln net.Listener, next, dir string) error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pemBytes, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		return err
	}
	pool.AppendCertsFromPEM(pemBytes)
	srv := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	dial := func() (net.Conn, error) { return net.Dial("tcp", next) }
	if role == "edge" {
		cli := &tls.Config{RootCAs: pool, ServerName: hostName}
		dial = func() (net.Conn, error) { return tls.Dial("tcp", next, cli) }
	}
	ln = tls.NewListener(ln, srv)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			out, err := dial()
			if err != nil {
				log.Print(err)
				return
			}
			defer out.Close()
			go func() {
				_, _ = io.CopyBuffer(out, c, make([]byte, bufSize))
				closeWrite(out)
			}()
			_, _ = io.CopyBuffer(c, out, make([]byte, bufSize))
		}()
	}
}

// closeWrite half-closes c when it can (TCP or TLS), so that the far end
// sees the request's end as the near end sent it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
