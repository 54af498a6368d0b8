package httpproxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
)

const (
	benchRequest  = "GET /bench HTTP/1.1\r\nHost: app.test\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
	benchResponse = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n"
)

// rawUpstream is a minimal keep-alive HTTP/1.1 server that answers every
// request head with benchResponse and allocates nothing per request, so
// that allocation figures are the relay's.
func rawUpstream(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 16<<10)
				resp := []byte(benchResponse)
				n := 0
				for {
					k, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += k
					for {
						i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
						if i < 0 {
							break
						}
						if _, err := c.Write(resp); err != nil {
							return
						}
						n = copy(buf, buf[i+4:n])
					}
					if n == len(buf) {
						return
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// directEndpoint's streams are TCP connections straight to addr: the agent
// reduced to nothing, so the figures are the relay's own.
type directEndpoint struct{ addr string }

func (u directEndpoint) ID() string { return "ep_bench" }

func (u directEndpoint) OpenStream(ctx context.Context) (Stream, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// benchProxy serves a proxy in front of a raw upstream and returns both
// addresses.
func benchProxy(tb testing.TB) (proxyAddr, upstreamAddr string) {
	up := rawUpstream(tb)
	p, err := New(Config{}, mapResolver{testHost: directEndpoint{up}})
	if err != nil {
		tb.Fatal(err)
	}
	h := &harness{t: tb, proxy: p}
	addr := h.serve(nil)
	tb.Cleanup(func() { p.Shutdown(context.Background()) })
	return addr, up
}

var benchRequestBytes = []byte(benchRequest)

// roundTrip writes benchRequest on c and reads exactly benchResponse.
func roundTrip(tb testing.TB, c net.Conn, buf []byte) {
	if _, err := c.Write(benchRequestBytes); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf[:len(benchResponse)]); err != nil {
		tb.Fatal(err)
	}
}

func dialBench(tb testing.TB, addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// rawPipe serves a byte pipe to addr per connection, copying through
// buffers both ways: the ceiling for any relay that parses nothing.
func rawPipe(tb testing.TB, addr string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				io.CopyBuffer(writerOnly{u}, readerOnly{c}, make([]byte, 16<<10))
				u.Close()
			}()
			go func() {
				defer wg.Done()
				io.CopyBuffer(writerOnly{c}, readerOnly{u}, make([]byte, 16<<10))
				c.Close()
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// BenchmarkH1 measures one small keep-alive request round trip straight to
// the upstream, through a raw byte pipe, and through the relay, on one
// connection and on 64.
func BenchmarkH1(b *testing.B) {
	proxyAddr, upAddr := benchProxy(b)
	pipeAddr := rawPipe(b, upAddr)
	for _, tc := range []struct{ name, addr string }{{"direct", upAddr}, {"rawpipe", pipeAddr}, {"relayed", proxyAddr}} {
		b.Run(tc.name, func(b *testing.B) {
			c := dialBench(b, tc.addr)
			buf := make([]byte, 1024)
			roundTrip(b, c, buf)
			if string(buf[:len(benchResponse)]) != benchResponse {
				b.Fatalf("got %q", buf[:len(benchResponse)])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				roundTrip(b, c, buf)
			}
		})
		b.Run(tc.name+"-parallel64", func(b *testing.B) {
			conns := make(chan net.Conn, 64)
			for range 64 {
				c := dialBench(b, tc.addr)
				roundTrip(b, c, make([]byte, 1024))
				conns <- c
			}
			b.SetParallelism(max(1, 64/runtimeProcs()))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := <-conns
				buf := make([]byte, 1024)
				for pb.Next() {
					roundTrip(b, c, buf)
				}
			})
		})
	}
}

// TestH1RelayAllocations keeps the relay's steady state free of
// allocations per request (the Tailscale habit for hot paths).
func TestH1RelayAllocations(t *testing.T) {
	proxyAddr, _ := benchProxy(t)
	c := dialBench(t, proxyAddr)
	buf := make([]byte, 1024)
	for range 100 {
		roundTrip(t, c, buf)
	}
	allocs := testing.AllocsPerRun(2000, func() { roundTrip(t, c, buf) })
	t.Logf("%.3f allocations per relayed request", allocs)
	if allocs > 0.5 {
		t.Fatalf("%.3f allocations per relayed request, want 0", allocs)
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// writerOnly and readerOnly hide ReadFrom and WriteTo, so that io.CopyBuffer
// uses the buffer it is given.
type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }
