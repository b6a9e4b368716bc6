package daemon

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// A daemon that was stopped (SIGSTOP, a debugger, a stalled VM) finds,
// when it resumes, everything that queued in the listen backlog
// meanwhile, and accepts it within milliseconds. Counted at accept, 40
// connections a second over 5 s became 200 in one instant, tripped cps,
// and the suspension reset 152 queued legitimate connections. cps must
// count arrivals as the kernel saw them: a connection's age is how long
// ago its handshake completed, which TCP_INFO gives as the time since
// it last sent data (it has sent none before the daemon writes to it).

// lateAfter is the gap between two accepts after which the next
// connection may have waited in the backlog, and the age from which a
// connection counts as having waited. Shorter stalls (a collection, a
// busy moment) change what cps sees by less than this.
const lateAfter = 250 * time.Millisecond

// arrivalClock tells when the connections one listener accepts arrived.
// It asks the kernel only after a gap between accepts, and then until a
// connection turns out fresh: a daemon keeping up pays nothing for it.
// One goroutine uses it (the listener's accept loop).
type arrivalClock struct {
	last    time.Time
	catchUp bool
}

// arrived returns when the connection on fd arrived, given that it was
// accepted at now.
func (a *arrivalClock) arrived(fd int, now time.Time) time.Time {
	if !a.late(now) {
		return now
	}
	return a.ask(fd, now)
}

// arrivedConn is arrived for a net.Conn, whose descriptor is looked up
// only when the kernel must be asked.
func (a *arrivalClock) arrivedConn(c net.Conn, now time.Time) time.Time {
	if !a.late(now) {
		return now
	}
	return a.ask(connFD(c), now)
}

// late notes an accept at now and reports whether the connection may
// have waited: after a gap, or while catching up.
func (a *arrivalClock) late(now time.Time) bool {
	gap := now.Sub(a.last)
	a.last = now
	return a.catchUp || gap >= lateAfter
}

func (a *arrivalClock) ask(fd int, now time.Time) time.Time {
	if fd < 0 {
		a.catchUp = false
		return now
	}
	age, ok := connAge(fd)
	if !ok || age < lateAfter {
		a.catchUp = false
		return now
	}
	a.catchUp = true
	return now.Add(-age)
}

// connAge is how long ago the kernel completed the handshake of a
// connection the daemon has not written to yet.
func connAge(fd int) (time.Duration, bool) {
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil || ti.State != 1 /* ESTABLISHED */ && ti.State != 8 /* CLOSE_WAIT */ {
		return 0, false
	}
	return time.Duration(ti.Last_data_sent) * time.Millisecond, true
}
