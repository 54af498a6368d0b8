package httpproxy

import (
	"net"
	"syscall"
)

// maxUnsent is the most response data a client's TCP socket queues unsent
// (TCP_NOTSENT_LOWAT, Linux): bytes beyond what is in flight, which the
// kernel otherwise takes up to its send buffer (tcp_wmem, 4 MiB by
// default) from a client that does not read. Bounding it keeps such a
// client from looking like a fast one to the body buffer (bulkbuf.go) and
// from pinning megabytes of kernel memory; bytes in flight (the congestion
// and receive windows) are not limited, so throughput is not either. At
// 128 KiB a writer wakes with 64 KiB still queued: 100 µs at 600 MiB/s.
const maxUnsent = 128 << 10

// netConner is a connection that wraps another: *tls.Conn, and the
// tunnel's and the edge's wrappers under it.
type netConner interface{ NetConn() net.Conn }

// limitUnsent sets maxUnsent on the TCP connection under c, unwrapping
// NetConn layers (at most a few); it does nothing when there is none.
func limitUnsent(c net.Conn) {
	if sc := sysConnOf(c); sc != nil {
		setNotSentLowat(sc, maxUnsent)
	}
}

// sysConnOf returns the connection with a file descriptor under c,
// unwrapping NetConn layers (at most a few); nil when there is none.
func sysConnOf(c net.Conn) syscall.Conn {
	for range 8 {
		if sc, ok := c.(syscall.Conn); ok {
			return sc
		}
		w, ok := c.(netConner)
		if !ok {
			return nil
		}
		c = w.NetConn()
	}
	return nil
}

// A response body copy that finds its client's socket full waits for it
// holding no buffer (h1conn.readResponses; an HTTP/2 connection's writes
// wait the same way, h2wire.roomFor): a write that blocks holds the
// copy buffer it writes from and, under crypto/tls, the record encrypted
// from it (crypto/tls keeps the record until the write returns), about
// 34 KiB per stalled client; a wait for room holds neither, and the
// bytes not yet read stay in the tunnel stream's receive window, which
// the agent already had to stop at. With TCP_NOTSENT_LOWAT (maxUnsent)
// the socket counts as full while maxUnsent bytes wait unsent, and the
// kernel wakes the writer when half of them went out.

// parkAfter is how much of one response body the copy writes before it
// looks at the client's socket at all: less cannot have filled it (the
// socket takes maxUnsent), and small responses cost no system call.
const parkAfter = maxUnsent / 2

// clientSocket looks at the fullness of a client connection's socket.
// Its zero value finds the socket on first use; where there is none, or
// on a platform without the calls, the socket always counts as writable.
type clientSocket struct {
	rc       syscall.RawConn
	looked   bool
	check    func(fd uintptr) // sets writable; made once, so full allocates nothing
	writable bool
}

func (s *clientSocket) raw(c net.Conn) syscall.RawConn {
	if !s.looked {
		s.looked = true
		if sc := sysConnOf(c); sc != nil {
			s.rc, _ = sc.SyscallConn()
			s.check = func(fd uintptr) { s.writable = socketWritable(fd) }
		}
	}
	return s.rc
}

// full reports whether the socket under c takes no more bytes now.
func (s *clientSocket) full(c net.Conn) bool {
	rc := s.raw(c)
	if rc == nil {
		return false
	}
	s.writable = true
	_ = rc.Control(s.check)
	return !s.writable
}

// awaitRoom waits on s as await does, counted in p.parked meanwhile.
func (p *Proxy) awaitRoom(s *clientSocket, c net.Conn) error {
	p.parked.Add(1)
	defer p.parked.Add(-1)
	return s.await(c)
}

// await blocks until the socket under c takes bytes again; it fails when
// c's write deadline passes first (os.ErrDeadlineExceeded) or c is closed.
func (s *clientSocket) await(c net.Conn) error {
	rc := s.raw(c)
	if rc == nil {
		return nil
	}
	return rc.Write(socketWritable)
}
