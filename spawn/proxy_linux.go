package spawn

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// tcpIdle returns a function reporting how long both connections have
// moved no data, read from the kernel's TCP_INFO (milliseconds since the
// last data segment sent and received). It lets the idle timeout watch a
// session whose bytes never pass through user space. It returns nil when
// either side is not a TCP connection.
func tcpIdle(a, b net.Conn) func() time.Duration {
	ta, ok1 := a.(*net.TCPConn)
	tb, ok2 := b.(*net.TCPConn)
	if !ok1 || !ok2 {
		return nil
	}
	start := time.Now()
	return func() time.Duration {
		idle := time.Since(start)
		for _, c := range []*net.TCPConn{ta, tb} {
			d, ok := sinceData(c)
			if !ok {
				// Closed or unreadable: do not let a failed query look
				// like an idle session.
				return 0
			}
			idle = min(idle, d)
		}
		return idle
	}
}

func sinceData(c *net.TCPConn) (time.Duration, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || ierr != nil {
		return 0, false
	}
	ms := min(info.Last_data_recv, info.Last_data_sent)
	return time.Duration(ms) * time.Millisecond, true
}
