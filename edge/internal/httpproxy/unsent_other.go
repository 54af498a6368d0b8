//go:build !linux

package httpproxy

import (
	"errors"
	"net"
	"syscall"
)

// setNotSentLowat does nothing where TCP_NOTSENT_LOWAT is not known to
// this package: the client's socket buffer then bounds what it takes
// before a write blocks (see limitUnsent).
func setNotSentLowat(syscall.Conn, int) bool { return false }

func notSentLowat(*net.TCPConn) (int, error) {
	return 0, errors.New("TCP_NOTSENT_LOWAT: not on this platform")
}

// socketWritable counts every socket as writable where this package does
// not poll sockets: a full one then blocks the write instead.
func socketWritable(uintptr) bool { return true }
