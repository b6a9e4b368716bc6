package spawn

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The relay drives redirect sessions without a goroutine per session.
//
// A session's two sockets are registered, edge-triggered, in one of a few
// epoll sets (one per core); each set is waited on by a goroutine of its
// own blocked in epoll_wait (run), which moves the bytes of every ready session itself: read into the set's own buffer, write on,
// and keep what the other side could not take yet in a buffer of the
// session's own until it can. After spliceAfter bytes a direction moves
// through a pipe with splice(2), as before. A session that waits for its
// peers costs its descriptors and a few hundred bytes, not two goroutine
// stacks and two 32 KiB buffers: 10,000 idle sessions took 23 KB each in
// the daemon with goroutines, and take about 1 KB here.
//
// A redirect's listening socket is in every set too (RelayListener): the
// set's goroutine a connection wakes accepts it, decides, connects the
// upstream and starts the session in its own set (ProxyOptions.Relay), as
// an haproxy thread does, with no other goroutine woken on the way.
//
// Everything a session holds belongs to its set's thread, except the
// abort of a cancelled context, which only shuts the sockets down (under
// the session's lock, never after they are closed) so that its thread
// sees them end.

// relayBuf is the read buffer of one set; relayBurst bounds how much one
// direction moves per turn, so that a fast session cannot starve the
// others of its set.
const (
	relayBuf   = 64 << 10
	relayBurst = 4 << 20
)

// relayEnd is one socket of a session as the set's thread sees it:
// whether the last edge said it was readable or writable, and nothing
// has said otherwise since.
type relayEnd struct {
	fd       int
	readable bool
	writable bool
	// drain is set once an edge said more than "data arrived" (the
	// peer's FIN, a hang-up, an error, urgent data): from then on a read
	// goes on until EAGAIN or EOF. Before that, a read shorter than the
	// buffer took everything the socket held, and the next byte to
	// arrive raises a new edge, so no read is made only to hear EAGAIN.
	drain bool
	// out says the set reports e's writability (EPOLLOUT): see wantOut.
	out bool
}

// relayDir is one direction of a session.
type relayDir struct {
	src, dst *relayEnd
	n        *int64 // bytes read from src
	pending  []byte // read, not yet written (a buffer of its own)
	off      int
	eof      bool // src ended; dst gets it once pending is out
	done     bool // dst has had its half-close
	pipe     [2]int
	piped    int // bytes in the pipe
	splicing bool
	preamble int // leading bytes of pending that are the options' Preamble, not counted
}

// relaySession is one proxied connection pair.
type relaySession struct {
	loop     *relayLoop
	client   relayEnd
	upstream relayEnd
	dirs     [2]relayDir // client->upstream, upstream->client
	in, out  int64
	idle     time.Duration
	last     time.Time // last byte moved (idle timeout)
	queued   bool      // on the loop's list of sessions with more to do
	timed    bool      // in the loop's idle heap
	closers  func()    // closes the sockets (after they leave the set)
	done     func(in, out int64, err error)
	stop     func() bool // unregisters the context's abort

	// connecting is set while the relay itself connects the upstream,
	// until connDeadline; target names it in errors. connEv gathers the
	// upstream's edges meanwhile: writable without an error is a
	// completed connect, with no getsockopt needed to say so.
	connecting   bool
	connEv       uint32
	connDeadline time.Time
	target       string

	mu     sync.Mutex // closed and err, shared with the context's abort
	closed bool
	err    error
}

func newRelaySession(cfd, ufd int, o ProxyOptions, closers func(), done func(in, out int64, err error)) *relaySession {
	// The client may have sent its first bytes already (the session's
	// first pass tries); the upstream has not answered yet.
	s := &relaySession{
		client:   relayEnd{fd: cfd, readable: true, writable: true},
		upstream: relayEnd{fd: ufd, writable: true},
		idle:     o.IdleTimeout,
		last:     time.Now(),
		closers:  closers,
		done:     done,
	}
	s.dirs[0] = relayDir{src: &s.client, dst: &s.upstream, n: &s.in}
	s.dirs[1] = relayDir{src: &s.upstream, dst: &s.client, n: &s.out}
	return s
}

// start makes the session's first pass and hands it to l; a cancelled
// ctx aborts it.
func (s *relaySession) start(ctx context.Context, l *relayLoop) {
	s.stop = context.AfterFunc(ctx, func() { s.abort(ctx.Err()) })
	if err := s.first(); err != nil {
		l.finish(s, err)
		return
	}
	if err := l.add(s); err != nil {
		s.stop()
		s.closers()
		s.done(0, 0, fmt.Errorf("spawn: redirect: %w", err))
	}
}

// firstBufs hold what a session's first pass reads: a request's first
// bytes, usually a few hundred.
var firstBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// first moves, in the caller's goroutine and before any set has the
// session, what can be moved at once: typically the client's request,
// there already when the connection is handed over, to an upstream whose
// connect has completed (on a nearby backend it has). A read or write
// that says EAGAIN is what a set's turn would have found too.
//
// What first leaves behind needs no edge of its own: registering a
// socket in the set reports whatever it holds at that moment (the
// client's next bytes, its FIN, urgent data). Writability is asked for
// only where it is needed: for a socket a write found full (wantOut),
// and on both sockets while the upstream connects or the session has an
// idle timeout, so that the set sees such a session at once and keeps
// its deadline.
func (s *relaySession) first() error {
	bp := firstBufs.Get().(*[]byte)
	defer firstBufs.Put(bp)
	var l *relayLoop // none yet
	err := l.pump(s, &s.dirs[0], *bp, len(*bp))
	if err != nil {
		return err
	}
	if s.connecting || s.idle > 0 {
		s.client.out, s.upstream.out = true, true
	}
	return nil
}

// connectError is a failure of the upstream connection itself.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// relayLoop is one epoll set and the thread that waits on it.
type relayLoop struct {
	epfd  int
	mu    sync.Mutex
	byFD  map[int32]*relaySession
	buf   []byte
	more  []*relaySession // sessions stopped at relayBurst
	idle  idleHeap
	limit time.Time // the earliest deadline in idle, zero if none

	// listeners are the listening sockets in the set (RelayListener).
	listeners map[int32]*RelayListener
}

var relayLoops struct {
	once  sync.Once
	loops []*relayLoop
	err   error
	next  atomic.Uint32
}

// relaySet returns the set a new session goes to: rl's, when the caller
// serves rl's readiness (RelayListener.Ready, on that set's goroutine: the
// session then wakes no other thread), else the next in turn.
func relaySet(rl *RelayListener) (*relayLoop, error) {
	relayLoops.once.Do(func() {
		// A set per core: more threads than cores only take turns.
		n := max(1, min(runtime.GOMAXPROCS(0), runtime.NumCPU()))
		for i := 0; i < n; i++ {
			l, err := newRelayLoop()
			if err != nil {
				relayLoops.err = err
				return
			}
			relayLoops.loops = append(relayLoops.loops, l)
		}
	})
	if relayLoops.err != nil {
		return nil, relayLoops.err
	}
	if rl != nil && rl.l != nil {
		return rl.l, nil
	}
	i := relayLoops.next.Add(1)
	return relayLoops.loops[int(i)%len(relayLoops.loops)], nil
}

func newRelayLoop() (*relayLoop, error) {
	// The set stays out of the runtime's poller (it is never wrapped in
	// an os.File): its own thread waits on it, and a poller watching it
	// too would be woken for every readiness in it, for nothing.
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	l := &relayLoop{epfd: epfd, byFD: map[int32]*relaySession{}, buf: make([]byte, relayBuf)}
	if !relayManual {
		go l.run()
	}
	return l, nil
}

// relayYield is how long a set's goroutine runs, at most, between passes
// through the scheduler (see run): half of sysmon's forcePreemptNS
// (10 ms), so that sysmon never finds it on the same scheduling tick
// twice 10 ms apart.
const relayYield = 5 * time.Millisecond

// relayManual makes newRelayLoop leave its set to the caller, who polls
// it (tests that must decide when the relay looks at its sockets).
var relayManual bool

// run is the set's goroutine: as one of haproxy's threads, it sleeps in
// epoll_wait (a blocking system call, its thread with it) and, woken,
// serves everything ready: accepts on the listeners in the set, the
// starts of the sessions they bring, the bytes of the sessions it has. A
// goroutine parked in the runtime's poller instead (as the relay first
// was) costs, per wake-up, the poller's own epoll_wait, the readying of
// the goroutine and a scheduler hand-off to a thread, often a sleeping
// one: with the acceptor and a worker in front, 2.2 context switches per
// proxied connection against 1.2 here (docs/BENCHMARKS.md). It holds no
// lock while it waits, and its wait is a real system call, so the
// runtime hands its P to other work if it sleeps long.
//
// It yields (runtime.Gosched) before a wait when relayYield has passed
// since its last yield, and is not locked to its thread. A goroutine that
// never passes through the scheduler looks to the runtime's monitor
// (sysmon) like one running for ever: past 10 ms it is preempted whenever
// it is caught in Go code, and its P is taken away whenever it is caught
// in a system call, each time; every such take kept sysmon polling every
// 20 us instead of backing off to 10 ms (2,100 wake-ups a second under
// load, a quarter of a context switch per proxied connection), and sent
// the thread through the slow exit of its next system call. A locked
// thread pays a hand-off between two threads for every pass through the
// scheduler (its goroutine may run on no other), so a locked loop could
// not yield cheaply; unlocked, a yield usually resumes the goroutine on
// the same thread at once. Nothing in the loop depends on its thread: a
// listener names its set (ProxyOptions.Relay), no thread id is looked up.
func (l *relayLoop) run() {
	events := make([]unix.EpollEvent, 128)
	yielded := time.Now()
	for {
		timeout := -1
		switch {
		case len(l.more) > 0:
			timeout = 0
		case !l.limit.IsZero():
			d := time.Until(l.limit)
			timeout = int(max(0, (d+time.Millisecond-1)/time.Millisecond))
		}
		if timeout != 0 {
			// About to wait: the quietest moment to yield. A loop that
			// never waits (sessions queued at relayBurst) is preempted by
			// sysmon as any goroutine is, which for one not locked to its
			// thread costs no hand-off either.
			if now := time.Now(); now.Sub(yielded) >= relayYield {
				runtime.Gosched()
				yielded = now
			}
		}
		n, err := unix.EpollWait(l.epfd, events, timeout)
		if err != nil {
			if err != unix.EINTR {
				time.Sleep(10 * time.Millisecond) // cannot happen: the set stays open
			}
			continue
		}
		l.batch(events[:n])
		l.expire()
	}
}

// RelayListener is a listening socket in one of the relay's sets: Ready
// runs on that set's goroutine when the socket is readable, so that the
// sessions it accepts and starts there (ProxyOptions.Relay naming the
// listener) wake no other thread. Ready must not block: it accepts
// without waiting and starts sessions whose upstream the relay connects
// itself (RelaysDirect).
type RelayListener struct {
	l     *relayLoop
	fd    int
	Ready func()
}

// RelayListeners returns, for the listening socket fd, a RelayListener
// in each of the relay's sets, not watched yet. A connection wakes every
// set's thread that waits; the first to accept takes it, the others find
// nothing (EAGAIN), so the threads share a busy listener as haproxy's do
// and each accepts into its own set. Not EPOLLEXCLUSIVE: the kernel then
// wakes only one watcher, and one that withdraws without accepting (an
// entry halted or replaced meanwhile, the old daemon of an upgrade,
// which shares the socket with its successor) would leave the
// connection in the backlog until another one came.
func RelayListeners(fd int) []*RelayListener {
	if relayManual {
		return nil
	}
	if _, err := relaySet(nil); err != nil {
		return nil
	}
	rs := make([]*RelayListener, 0, len(relayLoops.loops))
	for _, l := range relayLoops.loops {
		rs = append(rs, &RelayListener{l: l, fd: fd})
	}
	return rs
}

// Watch starts reporting the socket's readiness to Ready (level-triggered:
// a listener left with connections is reported again).
func (r *RelayListener) Watch() error {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	if r.l.listeners == nil {
		r.l.listeners = map[int32]*RelayListener{}
	}
	if r.l.listeners[int32(r.fd)] == r {
		return nil
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(r.fd)}
	if err := unix.EpollCtl(r.l.epfd, unix.EPOLL_CTL_ADD, r.fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	r.l.listeners[int32(r.fd)] = r
	return nil
}

// Unwatch stops it. A Ready under way on the set's thread finishes.
func (r *RelayListener) Unwatch() {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	if r.l.listeners[int32(r.fd)] == r {
		delete(r.l.listeners, int32(r.fd))
		unix.EpollCtl(r.l.epfd, unix.EPOLL_CTL_DEL, r.fd, nil)
	}
}

// add registers a session; from here on it belongs to the loop. The
// loop's lookups wait for both sockets to be in the set (the lock is held
// over the two epoll_ctl calls, which do not block): otherwise the loop
// could run, even end and close, a session whose second socket is not
// registered yet.
func (l *relayLoop) add(s *relaySession) error {
	s.loop = l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byFD[int32(s.client.fd)] = s
	l.byFD[int32(s.upstream.fd)] = s
	for _, e := range []*relayEnd{&s.client, &s.upstream} {
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, e.fd, &unix.EpollEvent{Events: e.events(), Fd: int32(e.fd)}); err != nil {
			unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, s.client.fd, nil)
			delete(l.byFD, int32(s.client.fd))
			delete(l.byFD, int32(s.upstream.fd))
			return os.NewSyscallError("epoll_ctl", err)
		}
	}
	return nil
}

// lookup finds what an event is for: a session, or else a listener.
func (l *relayLoop) lookup(fd int32) (*relaySession, *RelayListener) {
	l.mu.Lock()
	s := l.byFD[fd]
	var ln *RelayListener
	if s == nil {
		ln = l.listeners[fd]
	}
	l.mu.Unlock()
	return s, ln
}

// batch handles the events of one poll, then the sessions that stopped
// at relayBurst.
func (l *relayLoop) batch(events []unix.EpollEvent) {
	for i := range events {
		e := &events[i]
		s, ln := l.lookup(e.Fd)
		if ln != nil {
			ln.Ready()
			continue
		}
		if s == nil {
			continue // a session that ended in this batch
		}
		end := &s.client
		if int(e.Fd) == s.upstream.fd {
			end = &s.upstream
			if s.connecting {
				s.connEv |= e.Events
			}
		}
		if e.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLPRI) != 0 {
			end.readable = true
		}
		if e.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLPRI) != 0 {
			end.drain = true
		}
		if e.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			end.writable = true
		}
		l.turn(s)
	}
	if len(l.more) > 0 {
		more := l.more
		l.more = nil
		for _, s := range more {
			s.queued = false
			l.turn(s)
		}
	}
}

// turn moves what can be moved of s now, and ends it when both
// directions are done or it failed.
func (l *relayLoop) turn(s *relaySession) {
	if s.closed {
		return
	}
	if !s.timed && (s.connecting || s.idle > 0) {
		// The heap is the loop's: a session enters it on its first turn.
		s.timed = true
		l.idle.add(s, s.deadline())
	}
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err == nil && s.connecting && s.connEv != 0 {
		// The connect has ended, one way or the other: a failed one
		// says EPOLLERR (and EPOLLHUP), and only then is its error read.
		connected := true
		if s.connEv&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			v, gerr := unix.GetsockoptInt(s.upstream.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			switch {
			case gerr != nil:
				err, connected = &connectError{os.NewSyscallError("getsockopt", gerr)}, false
			case v != 0:
				err, connected = &connectError{os.NewSyscallError("connect", unix.Errno(v))}, false
			}
		} else if s.connEv&unix.EPOLLOUT == 0 {
			connected = false // not an end of the connect yet
			s.connEv = 0
		}
		if connected {
			s.connecting = false
			if s.timed && s.idle == 0 {
				l.idle.remove(s)
				s.timed = false
			}
		}
	}
	if err == nil {
		for i := range s.dirs {
			if err = l.pump(s, &s.dirs[i], l.buf, relayBurst); err != nil {
				break
			}
		}
	}
	if err != nil || (s.dirs[0].done && s.dirs[1].done) {
		l.finish(s, err)
	}
}

// pump moves one direction until it must wait, has moved budget bytes
// (the session is then queued for another turn), or fails. l is nil in
// the session's first pass (relaySession.first), before any set has it.
func (l *relayLoop) pump(s *relaySession, d *relayDir, buf []byte, budget int) error {
	moved := 0
	// A write to an upstream whose connect is not known to have ended
	// is how the relay learns it: EAGAIN while the handshake runs, the
	// connect's own error if it failed.
	wrote := func(k int, err error) (int, error) {
		if d.dst == &s.upstream && s.connecting {
			switch {
			case err == nil:
				s.connecting = false
			case err != unix.EAGAIN:
				err = &connectError{os.NewSyscallError("connect", err)}
			}
		}
		if err == unix.EAGAIN {
			d.dst.writable = false
			if werr := l.wantOut(d.dst); werr != nil {
				return 0, werr
			}
		}
		return k, err
	}
	for !d.done {
		// What is waiting for dst first.
		if d.piped > 0 {
			if !d.dst.writable {
				return nil
			}
			k, err := wrote(spliceRaw(d.pipe[0], d.dst.fd, d.piped))
			if err == unix.EAGAIN {
				return nil
			}
			if err != nil {
				return err
			}
			d.piped -= k
			continue
		}
		if d.off < len(d.pending) {
			if !d.dst.writable {
				return nil
			}
			if d.preamble > 0 {
				// The PROXY header and the client's first bytes, when they
				// are there already, go out in one write (one segment for
				// the backend to read); a client that waits for the
				// backend to speak first gets the header alone at once.
				d.preamble = 0
				if d.src.readable && !d.eof && len(d.pending) < len(buf) {
					pre := copy(buf, d.pending)
					k, err := readRelay(d.src.fd, buf[pre:])
					switch {
					case err == unix.EAGAIN:
						d.src.readable = false
					case err != nil:
						return err
					case k == 0:
						d.eof = true
					default:
						if pre+k < len(buf) && !d.src.drain {
							d.src.readable = false // see relayEnd.drain
						}
						*d.n += int64(k)
						moved += k
						if s.idle > 0 {
							s.last = time.Now()
						}
						w, err := wrote(writeRelay(d.dst.fd, buf[:pre+k]))
						if err == unix.EAGAIN {
							w, err = 0, nil
						}
						if err != nil {
							return err
						}
						d.pending, d.off = nil, 0
						if w < pre+k {
							d.pending = append(make([]byte, 0, pre+k-w), buf[w:pre+k]...)
						}
						continue
					}
				}
			}
			k, err := wrote(writeRelay(d.dst.fd, d.pending[d.off:]))
			if err == unix.EAGAIN {
				return nil
			}
			if err != nil {
				return err
			}
			d.off += k
			if d.off == len(d.pending) {
				d.pending, d.off = nil, 0
			}
			continue
		}
		if d.eof {
			d.done = true
			d.closePipe()
			if s.dirs[0].done && s.dirs[1].done {
				// Both ends are closed next, which sends the FIN (each
				// socket's input has been read to its end).
				return nil
			}
			if err := unix.Shutdown(d.dst.fd, unix.SHUT_WR); err != nil && err != unix.ENOTCONN {
				return os.NewSyscallError("shutdown", err)
			}
			return nil
		}
		if !d.src.readable {
			return nil
		}
		if moved >= budget {
			if l != nil && !s.queued {
				s.queued = true
				l.more = append(l.more, s)
			}
			return nil
		}
		if d.splicing {
			// The pipe is empty here: EAGAIN means src has nothing.
			k, err := spliceRaw(d.src.fd, d.pipe[1], 1<<20)
			if err == unix.EAGAIN {
				d.src.readable = false
				return nil
			}
			if err != nil {
				return err
			}
			if k == 0 {
				d.eof = true
				continue
			}
			*d.n += int64(k)
			moved += k
			if s.idle > 0 {
				s.last = time.Now()
			}
			d.piped = k
			continue
		}
		k, err := readRelay(d.src.fd, buf)
		if err == unix.EAGAIN {
			d.src.readable = false
			return nil
		}
		if err != nil {
			return err
		}
		if k == 0 {
			d.eof = true
			continue
		}
		if k < len(buf) && !d.src.drain {
			d.src.readable = false // see relayEnd.drain
		}
		*d.n += int64(k)
		moved += k
		if s.idle > 0 {
			s.last = time.Now()
		}
		w := 0
		if d.dst.writable {
			w, err = wrote(writeRelay(d.dst.fd, buf[:k]))
			if err == unix.EAGAIN {
				w, err = 0, nil
			}
			if err != nil {
				return err
			}
		}
		if w < k {
			d.pending = append(make([]byte, 0, k-w), buf[w:k]...)
		}
		if *d.n >= spliceAfter && !d.splicing {
			d.openPipe()
		}
	}
	return nil
}

// wantOut asks the set for e's writability edges (EPOLLOUT), once a
// write to it has said EAGAIN: a socket that never fills never needs
// them, and registering it without them spares the edge that
// registration would raise at once for a writable socket (a wake-up of
// the set's thread per session that has nothing to do). l is nil
// before the session is registered: add then includes EPOLLOUT.
func (l *relayLoop) wantOut(e *relayEnd) error {
	if e.out {
		return nil
	}
	e.out = true
	if l == nil {
		return nil
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, e.fd, &unix.EpollEvent{Events: e.events(), Fd: int32(e.fd)}); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// events is the mask e is registered with.
func (e *relayEnd) events() uint32 {
	ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLPRI | unix.EPOLLET)
	if e.out {
		ev |= unix.EPOLLOUT
	}
	return ev
}

func (d *relayDir) openPipe() {
	var p [2]int
	if unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK) != nil {
		return // no pipe to be had: go on copying
	}
	unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, 1<<20)
	d.pipe, d.splicing = p, true
}

func (d *relayDir) closePipe() {
	if d.splicing {
		unix.Close(d.pipe[0])
		unix.Close(d.pipe[1])
		d.splicing = false
	}
}

// finish takes the session out of its set, closes its sockets and
// reports.
func (l *relayLoop) finish(s *relaySession, err error) {
	if s.stop != nil {
		s.stop()
	}
	s.mu.Lock()
	if s.err != nil {
		err = s.err // the context's reason comes first
	}
	s.closed = true
	s.mu.Unlock()
	l.mu.Lock()
	delete(l.byFD, int32(s.client.fd))
	delete(l.byFD, int32(s.upstream.fd))
	l.mu.Unlock()
	for i := range s.dirs {
		s.dirs[i].closePipe()
		s.dirs[i].pending = nil
	}
	// Closing a socket takes it out of the set (nothing else holds its
	// file): no EPOLL_CTL_DEL. An event for it already fetched in this
	// batch finds no session, or at worst a new one on a reused number,
	// which it only makes try a read or write that says EAGAIN.
	s.closers()
	if s.timed {
		l.idle.remove(s)
	}
	var ce *connectError
	switch {
	case err == nil:
	case errors.As(err, &ce):
		err = fmt.Errorf("spawn: redirect: %w %s: %w", ErrConnect, s.target, ce.err)
	case errors.Is(err, ErrIdleTimeout):
	default:
		err = fmt.Errorf("spawn: redirect: %w", err)
	}
	s.done(s.in, s.out, err)
}

// deadline is when the session must next be looked at by the clock: the
// connect deadline while connecting, else the end of the idle timeout.
func (s *relaySession) deadline() time.Time {
	if s.connecting {
		return s.connDeadline
	}
	if s.idle > 0 {
		return s.last.Add(s.idle)
	}
	return time.Time{}
}

// abort ends a session from outside its set's thread (a cancelled
// context): the sockets are shut down, which the thread sees.
func (s *relaySession) abort(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.err != nil {
		return
	}
	s.err = err
	unix.Shutdown(s.client.fd, unix.SHUT_RDWR)
	unix.Shutdown(s.upstream.fd, unix.SHUT_RDWR)
}

// Idle timeouts: a heap of sessions by the time they would expire if no
// byte moved; the set's thread waits no longer than the earliest.

type idleItem struct {
	s  *relaySession
	at time.Time
}

type idleHeap struct {
	items []idleItem
	index map[*relaySession]int
}

func (h *idleHeap) Len() int           { return len(h.items) }
func (h *idleHeap) Less(i, j int) bool { return h.items[i].at.Before(h.items[j].at) }
func (h *idleHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].s], h.index[h.items[j].s] = i, j
}
func (h *idleHeap) Push(x any) {
	it := x.(idleItem)
	h.index[it.s] = len(h.items)
	h.items = append(h.items, it)
}
func (h *idleHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	delete(h.index, it.s)
	return it
}

func (h *idleHeap) add(s *relaySession, at time.Time) {
	if h.index == nil {
		h.index = map[*relaySession]int{}
	}
	heap.Push(h, idleItem{s, at})
}

func (h *idleHeap) remove(s *relaySession) {
	if i, ok := h.index[s]; ok {
		heap.Remove(h, i)
	}
}

// expire ends the sessions idle for their timeout and notes the next
// expiry, the set's thread's longest wait.
func (l *relayLoop) expire() {
	now := time.Now()
	for l.idle.Len() > 0 {
		top := l.idle.items[0]
		if top.at.After(now) {
			break
		}
		s := top.s
		at := s.deadline()
		if at.IsZero() {
			heap.Pop(&l.idle) // connected, and no idle timeout
			s.timed = false
			continue
		}
		if at.After(now) {
			l.idle.items[0].at = at
			heap.Fix(&l.idle, 0)
			continue
		}
		heap.Pop(&l.idle)
		s.timed = false
		if s.connecting {
			l.finish(s, &connectError{os.ErrDeadlineExceeded})
		} else {
			l.finish(s, ErrIdleTimeout)
		}
	}
	var next time.Time
	if l.idle.Len() > 0 {
		next = l.idle.items[0].at
	}
	l.limit = next
}

// The set's reads, writes and splices never block (every descriptor in
// it is non-blocking), so they are made raw: no scheduler hand-off for
// each. Only the wait in run is a real system call.

func readRelay(fd int, p []byte) (int, error)  { return rawIO(unix.SYS_READ, fd, p) }
func writeRelay(fd int, p []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, p) }

// rawIO makes a read or write system call, again after EINTR.
func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	for {
		r, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

func spliceRaw(from, to, n int) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(from), 0, uintptr(to), 0, uintptr(n),
			unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}
