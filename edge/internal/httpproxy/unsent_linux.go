package httpproxy

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// setNotSentLowat sets TCP_NOTSENT_LOWAT on c to n bytes (see
// limitUnsent). It reports whether the option was set.
func setNotSentLowat(c syscall.Conn, n int) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n)
	}); err != nil {
		return false
	}
	return serr == nil
}

// notSentLowat returns c's TCP_NOTSENT_LOWAT (for tests).
func notSentLowat(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT)
	}); err != nil {
		return 0, err
	}
	return v, gerr
}

// socketWritable reports whether the socket fd takes more bytes now
// (POLLOUT; with TCP_NOTSENT_LOWAT, fewer than that many wait unsent),
// or is in error or hung up, which the next write reports. A failed poll
// (EINTR) counts as writable: the write then finds out.
func socketWritable(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, 0)
	return err != nil || n > 0
}
