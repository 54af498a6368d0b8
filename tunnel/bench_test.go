package tunnel

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// benchChunk is the size of each Write, as io.Copy does; benchChunkBig
// lets muxado frames fill the window.
const (
	benchChunk    = 32 << 10
	benchChunkBig = 1 << 20
)

// benchTransports are the configurations the bulk and round-trip
// benchmarks compare.
var benchTransports = []struct {
	name      string
	transport string
	cfg       MuxConfig
}{
	{"muxado-batched-4MiB", "tcp", MuxConfig{}},
	{"muxado-batched-4MiB-untuned", "tcp", MuxConfig{fixedWindow: true}},
	{"muxado-batched-256KiB", "tcp", MuxConfig{MaxWindowSize: DefaultWindowSize}},
	{"muxado-unbatched-4MiB", "tcp", MuxConfig{DisableWriteBatching: true}},
	{"muxado-unbatched-256KiB", "tcp", MuxConfig{DisableWriteBatching: true, MaxWindowSize: DefaultWindowSize}},
	{"quic", "quic", MuxConfig{}},
}

// BenchmarkBulkOneStream measures one stream's throughput from agent to
// edge over loopback TLS (or QUIC): MB/s is the figure.
func BenchmarkBulkOneStream(b *testing.B) {
	for _, chunk := range []int{benchChunk, benchChunkBig} {
		for _, bt := range benchTransports {
			b.Run(fmt.Sprintf("%s/write-%dKiB", bt.name, chunk>>10), func(b *testing.B) { benchBulk(b, bt.transport, bt.cfg, chunk) })
		}
	}
}

func benchBulk(b *testing.B, transport string, cfg MuxConfig, chunk int) {
	{
		{
			client, server := muxPair(b, transport, cfg)
			ctx := testCtx(b, time.Minute)
			st, err := client.OpenStream(ctx, StreamProxy)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := st.Write([]byte{0}); err != nil {
				b.Fatal(err)
			}
			_, sst, err := server.AcceptStream(ctx)
			if err != nil {
				b.Fatal(err)
			}
			read := make(chan int64, 1)
			go func() {
				n, _ := io.CopyBuffer(io.Discard, sst, make([]byte, benchChunk))
				read <- n
			}()
			buf := make([]byte, chunk)
			b.SetBytes(int64(chunk))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := st.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			_ = st.CloseWrite()
			n := <-read
			b.StopTimer()
			if want := int64(b.N)*int64(chunk) + 1; n != want {
				b.Fatalf("read %d bytes, wrote %d", n, want)
			}
		}
	}
}

// BenchmarkBulkTLSBaseline is the ceiling: one TLS connection, no mux.
func BenchmarkBulkTLSBaseline(b *testing.B) {
	for _, chunk := range []int{benchChunk, benchChunkBig} {
		b.Run(fmt.Sprintf("write-%dKiB", chunk>>10), func(b *testing.B) { benchTLS(b, chunk) })
	}
}

func benchTLS(b *testing.B, chunk int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	read := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			read <- 0
			return
		}
		tc := tls.Server(c, serverTLS(b))
		n, _ := io.CopyBuffer(io.Discard, tc, make([]byte, benchChunk))
		read <- n
		_ = tc.Close()
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), clientTLS(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, chunk)
	b.SetBytes(int64(chunk))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = conn.CloseWrite()
	<-read
}

// BenchmarkProxyRoundTrip measures the small-request path: the edge opens
// a proxy stream with its header, writes a small request, the agent
// accepts it and answers, the edge reads the answer; a new stream each
// time, as for an unpooled HTTP/1.1 client connection.
func BenchmarkProxyRoundTrip(b *testing.B) {
	for _, bt := range benchTransports {
		b.Run(bt.name, func(b *testing.B) {
			cm, sm := muxPair(b, bt.transport, bt.cfg)
			server := NewServerSession(sm, &fakeHandler{}, ServerConfig{})
			client := NewClientSession(cm, ClientConfig{})
			serr, cerr := make(chan error, 1), make(chan error, 1)
			go func() { serr <- server.Run(context.Background()) }()
			go func() { cerr <- client.Run(context.Background()) }()
			b.Cleanup(func() {
				_ = client.Close()
				_ = server.Close(nil)
				<-serr
				<-cerr
			})
			ctx := testCtx(b, 5*time.Minute)
			if _, err := client.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err != nil {
				b.Fatal(err)
			}
			go func() { // the agent: answer each stream and close it
				resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				buf := make([]byte, 512)
				for {
					_, st, err := client.AcceptProxy(ctx)
					if err != nil {
						return
					}
					_, _ = st.Read(buf)
					_, _ = st.Write(resp)
					_ = st.Close()
				}
			}()
			hdr := &ProxyHeader{ID: "bind_1", ClientAddr: "203.0.113.7:51000", Proto: "https", EdgeType: "3"}
			req := []byte("GET / HTTP/1.1\r\nHost: app.example.test\r\n\r\n")
			buf := make([]byte, 512)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				st, err := server.OpenProxy(ctx, hdr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := st.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadAtLeast(st, buf, 40); err != nil {
					b.Fatal(err)
				}
				_ = st.Close()
			}
		})
	}
}

// idlePairsPerOp is how many session pairs one op of
// BenchmarkIdleSessionMemory opens: enough that process-wide state (pools,
// the runtime's caches) hardly shows in the per-pair figures, even at
// -benchtime 1x.
const idlePairsPerOp = 1024

// BenchmarkIdleSessionMemory reports the heap and stack idle,
// authenticated session pairs (agent and edge side, heartbeats running)
// hold, over TLS+muxado and over QUIC: B/side is half of a pair's heap
// spans and stacks in use (the edge's share is about half), heapB/pair and
// stackB/pair split it; liveB/side counts live heap objects instead of
// spans (no fragmentation, so steadier from run to run); goroutines/pair
// counts what an idle pair keeps.
// Pools are emptied (two collections) before each reading: they are per
// process, not per session.
func BenchmarkIdleSessionMemory(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) { benchIdle(b, tr) })
	}
}

func benchIdle(b *testing.B, transport string) {
	ln := newTestListener(b, transport, MuxConfig{})
	ctx := testCtx(b, 5*time.Minute)
	n := b.N * idlePairsPerOp
	sessions := make([]*ServerSession, 0, n)
	clients := make([]*ClientSession, 0, n)
	var running sync.WaitGroup // every Run, so the next benchmark starts clean
	var before, after runtime.MemStats
	baseGoroutines := runtime.NumGoroutine()
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		acc := make(chan Mux, 1)
		go func() { m, _ := ln.accept(ctx); acc <- m }()
		var cm Mux
		var err error
		if transport == "tcp" {
			cm, err = DialTCP(ctx, ln.addr, clientTLS(b), MuxConfig{})
		} else {
			cm, err = DialQUIC(ctx, ln.addr, clientTLS(b))
		}
		if err != nil {
			b.Fatal(err)
		}
		sm := <-acc
		if sm == nil {
			b.Fatal("accept failed")
		}
		s := NewServerSession(sm, &fakeHandler{}, ServerConfig{})
		c := NewClientSession(cm, ClientConfig{})
		running.Add(2) // Start, as the edge and the agent do: Run's goroutine is no part of a session
		if err := s.Start(ctx, func(error) { running.Done() }); err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx, func(error) { running.Done() }); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err != nil {
			b.Fatal(err)
		}
		sessions, clients = append(sessions, s), append(clients, c)
	}
	waitFor(b, time.Minute, "first heartbeats answered and done", func() bool {
		for i := range sessions {
			if !sessions[i].core.beatIdle() || !clients[i].core.beatIdle() {
				return false
			}
		}
		return true
	})
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapInuse) - float64(before.HeapInuse)
	stack := float64(after.StackInuse) - float64(before.StackInuse)
	live := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	b.ReportMetric((heap+stack)/float64(2*n), "B/side")
	b.ReportMetric((live+stack)/float64(2*n), "liveB/side")
	b.ReportMetric(heap/float64(n), "heapB/pair")
	b.ReportMetric(stack/float64(n), "stackB/pair")
	b.ReportMetric(float64(runtime.NumGoroutine()-baseGoroutines)/float64(n), "goroutines/pair")
	for i := range sessions {
		_ = clients[i].Close()
		_ = sessions[i].Close(nil)
	}
	running.Wait()
}
