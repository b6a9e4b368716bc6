package daemon

import (
	"errors"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/spawn"
)

// acceptor watches every raw-path listening socket (rawAcceptable) with
// one epoll set and one goroutine, as xinetd watches its sockets with one
// poll(): a goroutine per listener cost 2.5 KB of stack each and most of
// the start-up time of a 1,000-service configuration. Connections are
// still served one goroutine each, but for redirects: their listening
// sockets are watched by the relay's threads instead (acceptEntry.rl),
// which start the sessions themselves.
type acceptor struct {
	d    *Daemon
	once sync.Once
	epfd int
	file *os.File // epfd, registered with the runtime's poller
	err  error

	mu    sync.Mutex
	socks map[int32]*acceptEntry

	work workers
}

// acceptEntry is one registered listener.
type acceptEntry struct {
	r          *svcRun
	sr         *sockRun
	fd         int
	local      netip.AddrPort
	fixedLocal bool
	bo         acceptBackoff
	clock      arrivalClock
	// rl, for a redirect's listener, has it watched by one of the relay's
	// threads instead of the acceptor: that thread accepts, decides and
	// starts the session in its own set, with no goroutine woken on the
	// way (spawn.RelayListener). clones are the entry's copies, one per
	// relay thread; owner is the entry a clone belongs to.
	rl     *spawn.RelayListener
	clones []*acceptEntry
	owner  *acceptEntry
	// use is held shared by a drain from its check that the listener is
	// still in the acceptor's table through its accept, and taken
	// exclusively by remove once the listener is out of the table: when
	// remove returns, no accept on the descriptor is under way or can
	// begin, so the socket may be closed and its number reused. A drain
	// that accepted after that took a connection of whatever socket got
	// the number next (served as this service), or logged a spurious
	// "accept failed" (EBADF). Only the owner's is used.
	use sync.RWMutex
	// inlineFor is the service inline was worked out for (a reload swaps
	// it): whether a connection is served where it is accepted
	// (answersInline, redirectsInline). Only the goroutine that drains
	// the entry uses them: the acceptor's, or a clone's relay set's.
	inlineFor *service.Service
	inline    bool
}

// self is the entry the acceptor knows e by.
func (e *acceptEntry) self() *acceptEntry {
	if e.owner != nil {
		return e.owner
	}
	return e
}

// maxAcceptBurst bounds how many connections one listener takes per
// wake-up, so a flooded service cannot starve the others.
const maxAcceptBurst = 64

func (a *acceptor) init() error {
	a.once.Do(func() {
		a.socks = map[int32]*acceptEntry{}
		a.epfd, a.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if a.err != nil {
			return
		}
		// The epoll descriptor is itself readable when a listener is: let
		// the runtime's poller wait on it, so waiting costs no thread and
		// a wake-up is as cheap as any other network readiness. (Blocking
		// in epoll_wait instead cost a fifth of the daytime rate.)
		if a.err = unix.SetNonblock(a.epfd, true); a.err != nil {
			return
		}
		a.file = os.NewFile(uintptr(a.epfd), "acceptor")
		rc, err := a.file.SyscallConn()
		if err != nil {
			a.err = err
			return
		}
		go a.loop(rc)
	})
	return a.err
}

// add starts watching sr's socket for r.
func (a *acceptor) add(r *svcRun, sr *sockRun) error {
	if err := a.init(); err != nil {
		return err
	}
	e := &acceptEntry{r: r, sr: sr, fd: sr.s.fd(), fixedLocal: sr.s.key.addr.IsValid()}
	// acceptRaw must never block: a socket passed by systemd may come
	// blocking, or one a wait=yes server had. One openSock has just made
	// is non-blocking already (a system call per socket at start-up).
	if !sr.s.fresh.Swap(false) {
		if err := unix.SetNonblock(e.fd, true); err != nil {
			return err
		}
	}
	if e.fixedLocal {
		e.local = netip.AddrPortFrom(sr.s.key.addr, uint16(sr.s.key.port))
	}
	if r.svc.Load().IsRedirect() {
		// A clone per relay thread, each with what one accepting thread
		// keeps (back-off, arrival clock): the threads share the socket.
		// drain's enter still checks the listener under the acceptor's
		// lock, by e.
		for _, rl := range spawn.RelayListeners(e.fd) {
			c := &acceptEntry{r: r, sr: sr, fd: e.fd, local: e.local, fixedLocal: e.fixedLocal, rl: rl, owner: e}
			rl.Ready = func() { a.drain(c) }
			e.clones = append(e.clones, c)
		}
	}
	a.mu.Lock()
	a.socks[int32(e.fd)] = e
	a.mu.Unlock()
	return a.watch(e)
}

func (a *acceptor) watch(e *acceptEntry) error {
	if len(e.clones) > 0 {
		for i, c := range e.clones {
			if err := c.rl.Watch(); err != nil {
				for _, w := range e.clones[:i] {
					w.rl.Unwatch()
				}
				return err
			}
		}
		return nil
	}
	if e.rl != nil {
		return e.rl.Watch()
	}
	return unix.EpollCtl(a.epfd, unix.EPOLL_CTL_ADD, e.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(e.fd)})
}

// remove stops watching sr's socket. Connections already taken are served.
func (a *acceptor) remove(sr *sockRun) {
	fd := sr.s.fd()
	a.mu.Lock()
	e := a.socks[int32(fd)]
	if e != nil && e.sr == sr {
		delete(a.socks, int32(fd))
	}
	a.mu.Unlock()
	if e != nil && e.sr == sr {
		for _, c := range e.clones {
			c.rl.Unwatch()
		}
		// Wait out an accept under way (a non-blocking system call: the
		// drain holding use takes no other lock but the acceptor's own,
		// released above).
		e.use.Lock()
		e.use.Unlock()
	}
	unix.EpollCtl(a.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// unwatch stops watching e's socket, wherever it is watched.
func (a *acceptor) unwatch(e *acceptEntry) {
	switch {
	case len(e.clones) > 0:
		for _, c := range e.clones {
			c.rl.Unwatch()
		}
	case e.rl != nil:
		e.rl.Unwatch()
	default:
		unix.EpollCtl(a.epfd, unix.EPOLL_CTL_DEL, e.fd, nil)
	}
}

func (a *acceptor) current(fd int32) *acceptEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.socks[fd]
}

func (a *acceptor) loop(rc syscall.RawConn) {
	events := make([]unix.EpollEvent, 128)
	for {
		var werr error
		// The events are handled inside the poller's callback, which
		// returns false (wait) once a poll found every listener drained:
		// a wake-up then costs one epoll_wait, not a second one that
		// finds nothing. A connection that arrives after that poll wakes
		// the runtime's poller, which the wait sees. A listener left with
		// connections after its burst raises no new edge in a
		// level-triggered set, so the set is polled again at once then.
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, err := epollPoll(int(fd), events)
				if errors.Is(err, unix.EINTR) {
					continue
				}
				if err != nil {
					werr = err
					return true
				}
				more := n == len(events)
				for i := 0; i < n; i++ {
					if e := a.current(events[i].Fd); e != nil && a.drain(e) {
						more = true
					}
				}
				if !more {
					return false
				}
			}
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			a.d.log.Logf(logging.LevelError, "accept", "epoll_wait: %v; retrying", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
	}
}

// drain accepts what is pending on one listener, up to a burst; more
// reports that it stopped at the burst, with connections perhaps left.
func (a *acceptor) drain(e *acceptEntry) (more bool) {
	d := a.d
	use := &e.self().use
	for i := 0; i < maxAcceptBurst; i++ {
		use.RLock()
		if !a.enter(e) { // counts the connection (upgrade.go)
			use.RUnlock()
			return false // halted meanwhile
		}
		g := e.r.gate.Load()
		if g != nil && !g.take() {
			use.RUnlock()
			d.up.sessionEnd()
			a.queue(e, g)
			return false
		}
		// A redirect's connection goes to the relay, which wants it
		// non-blocking; everything else is handed to a server as is.
		s := e.r.svc.Load()
		nb := s.IsRedirect()
		nfd, remote, err := acceptConn(e.fd, nb)
		use.RUnlock()
		if err != nil {
			d.up.sessionEnd()
			g.done()
			switch {
			case errors.Is(err, unix.EAGAIN):
				return false
			case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
				continue
			}
			a.pause(e, err)
			return false
		}
		e.bo.ok(d)
		at := e.clock.arrived(nfd, time.Now())
		local := e.local
		if !e.fixedLocal {
			if lsa, err := unix.Getsockname(nfd); err == nil {
				local = sockaddrToAddrPort(lsa)
			}
		}
		if s != e.inlineFor {
			e.inlineFor, e.inline = s, answersInline(s) || e.rl != nil && redirectsInline(s)
		}
		if e.inline && d.eng.Instant(s) {
			// A few bytes written to a fresh connection, or a session
			// started on the relay thread that will run it: handing that
			// to a worker cost more than doing it.
			e.r.handleRawCounted(nfd, nb, remote, local, g, at, e.rl)
			continue
		}
		a.work.run(rawJob{r: e.r, fd: nfd, nonblock: nb, remote: remote, local: local, gate: g, at: at})
	}
	return true
}

// queue takes a listener out of the epoll set while its service is at its
// limit of children: new clients wait in the listen backlog, and the
// release of a slot (a child exits) puts it back; level-triggered, the
// set then reports the waiting clients at once.
func (a *acceptor) queue(e *acceptEntry, g *acceptGate) {
	a.unwatch(e)
	g.pause(func() {
		if a.current(int32(e.fd)) == e.self() && !e.sr.stopped() {
			a.watch(e)
		}
	})
}

// pause takes a listener out of the epoll set after an accept error (out
// of descriptors, typically) and puts it back after a back-off: a
// level-triggered set would otherwise report it ready, and fail, in a
// tight loop.
func (a *acceptor) pause(e *acceptEntry, err error) {
	d := a.d
	r := e.r
	e.bo.delay = backoff(e.bo.delay)
	if !d.fdShortage(err, r.svc.Load().ID) {
		d.log.Logf(logging.LevelError, "accept", "accept failed for service %s: %v; retrying", r.svc.Load().ID, err)
	}
	a.unwatch(e)
	time.AfterFunc(e.bo.delay, func() {
		if a.current(int32(e.fd)) == e.self() && !e.sr.stopped() {
			a.watch(e)
		}
	})
}

// answersInline reports whether the acceptor itself may serve s's
// connections: daytime and time, which write a line to a fresh
// connection (its send buffer takes it without blocking) and close, with
// no banner to send, no ident lookup to make and no PROXY header to read. The access decision
// must not block either (access.Engine.Instant).
func answersInline(s *service.Service) bool {
	// A PROXY header is read by a worker, never by the acceptor.
	return s.IsInternal() && (s.Builtin == "daytime" || s.Builtin == "time") && s.ProxyProtocol == 0 &&
		s.Banner == "" && s.BannerSuccess == "" && s.BannerFail == "" &&
		!s.LogOnSuccess.Has(service.LogSuccessUserID) && !s.LogOnFailure.Has(service.LogFailureUserID)
}

// redirectsInline reports whether a relay thread may start s's sessions
// itself: nothing before the session may wait (no PROXY header to read,
// no banner, no ident lookup) and the upstream is one address, which
// the relay connects without blocking.
func redirectsInline(s *service.Service) bool {
	return s.IsRedirect() && s.ProxyProtocol == 0 &&
		s.Banner == "" && s.BannerSuccess == "" && s.BannerFail == "" &&
		!s.LogOnSuccess.Has(service.LogSuccessUserID) && !s.LogOnFailure.Has(service.LogFailureUserID) &&
		spawn.RelaysDirect(s.Redirect.Host, s.Redirect.Port, s.RedirectSource)
}
