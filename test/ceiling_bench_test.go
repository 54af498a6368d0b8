package test

import (
	"crypto/tls"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testcert"
)

// BenchmarkRelayCeiling measures the most one stream can move through the
// tunnel's byte path on this machine, with none of Tollgate's code in it:
// an upstream writes over plain TCP to an "agent", which relays over TLS
// to an "edge", which relays over TLS to a client — the same three
// loopback hops and four AES-GCM passes as a download through the tunnel,
// without the multiplexer, HTTP or any framing, with io.CopyBuffer and
// 256 KiB buffers. Compare its MiB/s with TunnelVsDirect's bulk figure:
// the tunnel cannot beat this ceiling on the same machine. It reports
// MiB/s, the process's CPU-seconds per GiB (user + system) and its
// context switches per MiB (all three hops together; scripts/bench-bulk
// prints the tunnel's per process).
//
//	go test ./test -run '^$' -bench RelayCeiling -benchtime 1x
func BenchmarkRelayCeiling(b *testing.B) {
	const size = 1 << 30
	cert := testcert.New("localhost")
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert.Cert}}
	cliTLS := &tls.Config{RootCAs: cert.Pool, ServerName: "localhost"}
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ln.Close() })
		return ln
	}
	accept := func(ln net.Listener) net.Conn {
		c, err := ln.Accept()
		if err != nil {
			b.Error(err)
			return nil
		}
		return c
	}
	relay := func(dst, src net.Conn) {
		defer dst.Close()
		defer src.Close()
		if _, err := io.CopyBuffer(dst, src, make([]byte, 256<<10)); err != nil {
			b.Error(err)
		}
	}
	for i := 0; i < b.N; i++ {
		upLn, edgeLn, pubLn := listen(), listen(), listen()
		go func() { // upstream: size bytes, then EOF
			c := accept(upLn)
			if c == nil {
				return
			}
			defer c.Close()
			buf := make([]byte, 256<<10)
			for left := size; left > 0; left -= len(buf) {
				if _, err := c.Write(buf[:min(left, len(buf))]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
		go func() { // edge: TLS from the agent, TLS to the client
			fromAgent := accept(edgeLn)
			toClient := accept(pubLn)
			if fromAgent == nil || toClient == nil {
				return
			}
			relay(tls.Server(toClient, srvTLS), tls.Server(fromAgent, srvTLS))
		}()
		go func() { // agent: plain from the upstream, TLS to the edge
			up, err := net.Dial("tcp", upLn.Addr().String())
			if err != nil {
				b.Error(err)
				return
			}
			edge, err := tls.Dial("tcp", edgeLn.Addr().String(), cliTLS)
			if err != nil {
				b.Error(err)
				return
			}
			relay(edge, up)
		}()
		client, err := tls.Dial("tcp", pubLn.Addr().String(), cliTLS)
		if err != nil {
			b.Fatal(err)
		}
		cpu0, sw0 := cpuSeconds(), contextSwitches()
		t0 := time.Now()
		n, err := io.CopyBuffer(io.Discard, client, make([]byte, 256<<10))
		elapsed := time.Since(t0)
		cpu, sw := cpuSeconds()-cpu0, contextSwitches()-sw0
		client.Close()
		if err != nil || n != size {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		b.ReportMetric(float64(size)/(1<<20)/elapsed.Seconds(), "MiB/s")
		b.ReportMetric(cpu/(float64(size)/(1<<30)), "CPU-s/GiB")
		b.ReportMetric(float64(sw)/(float64(size)/(1<<20)), "ctxsw/MiB")
	}
}

// contextSwitches is the process's voluntary and involuntary context
// switches so far (all its threads).
func contextSwitches() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Nvcsw + ru.Nivcsw
}

// cpuSeconds is the process's user + system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
