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
	for range 8 {
		if sc, ok := c.(syscall.Conn); ok {
			setNotSentLowat(sc, maxUnsent)
			return
		}
		w, ok := c.(netConner)
		if !ok {
			return
		}
		c = w.NetConn()
	}
}
