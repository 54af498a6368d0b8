package agent

import (
	"io"
	"net"
	"testing"
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
