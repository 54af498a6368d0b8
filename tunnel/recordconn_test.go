package tunnel

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"testing"
)

// countConn counts Write calls.
type countConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestBatchRecords writes 256 KiB (16 TLS records) through a tls.Conn
// over BatchRecords between HoldRecords and ReleaseRecords: the peer reads
// every byte and the records went out a few per write.
func TestBatchRecords(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(tls.Server(c, serverTLS(t)))
		got <- b
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := &countConn{Conn: raw}
	conf := clientTLS(t)
	conf.ServerName = "127.0.0.1"
	tc := tls.Client(BatchRecords(cc), conf)
	t.Cleanup(func() { _ = tc.Close() })
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	rb := recordConnOf(tc)
	if rb == nil {
		t.Fatal("recordConnOf found no recordConn under the tls.Conn")
	}
	data := make([]byte, 256<<10)
	_, _ = rand.Read(data)
	before := cc.writes.Load()
	rb.HoldRecords()
	if _, err := tc.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := rb.ReleaseRecords(); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load() - before; n > int64(len(data)/recordBatchMax)+1 {
		t.Fatalf("%d writes for 16 records", n)
	}
	if _, err := tc.Write([]byte("tail")); err != nil { // not held: written at once
		t.Fatal(err)
	}
	_ = tc.Close()
	if b := <-got; !bytes.Equal(b, append(data, "tail"...)) {
		t.Fatalf("peer read %d bytes, want %d (or different ones)", len(b), len(data)+4)
	}
}
