package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/config"
)

// BenchmarkJoin measures one direction of join's bulk throughput over
// loopback TCP: client → proxy stream → join → upstream.
func BenchmarkJoin(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() { // upstream: discard everything
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	client, stream := tcpPair(b)
	up, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		join(stream, up.(*net.TCPConn), nil, nil)
		close(done)
	}()
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := client.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = client.CloseWrite()
	_, _ = io.Copy(io.Discard, client)
	<-done
}

func TestCopyHalfAllocs(t *testing.T) {
	// A warmed pool gives a copy without allocations of its own.
	bufPool.Put(bufPool.Get())
	src := &chunkConn{n: 8}
	allocs := testing.AllocsPerRun(100, func() {
		src.n = 8
		if _, err := copyHalf(discardConn{}, src, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("copyHalf allocates %.1f times per copy", allocs)
	}
}

// chunkConn yields n full reads, then io.EOF.
type chunkConn struct {
	halfConn
	n int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if c.n == 0 {
		return 0, io.EOF
	}
	c.n--
	return len(p), nil
}

// discardConn accepts writes and half-closes.
type discardConn struct{ halfConn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }
func (discardConn) CloseWrite() error           { return nil }

// BenchmarkForwardHTTP measures small keep-alive HTTP/1.1 requests/s
// through the agent's forwarding layer alone (loopback client → join →
// upstream), with the request inspector recording and with it off, so the
// inspector's cost is not hidden behind the edge's. 16 connections run in
// parallel.
//
//	go test ./agent -run '^$' -bench ForwardHTTP
func BenchmarkForwardHTTP(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "12")
		_, _ = w.Write([]byte("hello world\n"))
	}))
	defer up.Close()
	spec, err := config.Endpoint{Name: "web", Proto: "http", Upstream: strings.TrimPrefix(up.URL, "http://")}.Validate()
	if err != nil {
		b.Fatal(err)
	}
	for _, inspect := range []bool{false, true} {
		b.Run(fmt.Sprintf("inspect=%v", inspect), func(b *testing.B) {
			f := &forwarder{spec: spec, log: zap.NewNop(), metrics: &counters{}}
			if inspect {
				f.rec = newCaptureRing(InspectConfig{})
			}
			req := []byte("POST /hook HTTP/1.1\r\nHost: web.example\r\nContent-Length: 64\r\n\r\n" + strings.Repeat("x", 64))
			b.SetParallelism(8) // 16 connections on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				client, stream := tcpPair(b)
				done := make(chan struct{})
				go func() {
					defer close(done)
					f.serve(context.Background(), stream, "203.0.113.9:1")
				}()
				br := bufio.NewReader(client)
				for pb.Next() {
					if _, err := client.Write(req); err != nil {
						b.Error(err)
						return
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				client.Close()
				<-done
			})
		})
	}
}
