package daemon

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/access"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/spawn"
)

// child is one running server process.
type child struct {
	pid    int
	run    *svcRun
	svc    *service.Service
	start  time.Time
	remote netip.AddrPort
	known  bool
	fd     int
	proc   *spawn.Process
	lease  *access.Lease
	done   chan struct{}
	// exitNote replaces the EXIT record (wrap spawn commands log none).
	silent bool
	// limit ends the server at max_duration (sandbox.go); overdue is set
	// when it did, for the EXIT record's reason.
	limit   *time.Timer
	overdue atomic.Bool
}

// exited reports whether the child has been reaped.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// childSet is the registry of running servers (and tcp_wrappers
// commands). It has its own small lock, a leaf: taken after Daemon.mu
// when both are needed, and never held while waiting for anything. A
// serving goroutine records the server it has just started here, so it
// never needs Daemon.mu, and a reload or shutdown that waits for that
// goroutine cannot be waiting for itself.
type childSet struct {
	mu sync.Mutex
	m  map[int]*child
	// kick is non-nil when the daemon reaps orphans (orphans.go): the
	// reaper is woken when a server start ends and when a server is
	// reaped, since a zombie of the daemon's own in front of an orphan
	// stops it. starting counts the starts under way then.
	kick     chan struct{}
	starting int
}

// begin notes a start about to clone a process; started or failed ends
// it. Only counted when orphans are reaped, which must never take the
// new process for an orphan before it is recorded.
func (s *childSet) begin() {
	if s.kick == nil {
		return
	}
	s.mu.Lock()
	s.starting++
	s.mu.Unlock()
}

// started records the new server and ends its start.
func (s *childSet) started(c *child) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[int]*child{}
	}
	s.m[c.pid] = c
	if s.kick != nil {
		s.starting--
	}
	s.mu.Unlock()
	s.wake()
}

// failed ends a start that made no process (or reaped it already).
func (s *childSet) failed() {
	if s.kick == nil {
		return
	}
	s.mu.Lock()
	s.starting--
	s.mu.Unlock()
	s.wake()
}

func (s *childSet) wake() {
	if s.kick != nil {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// add records a child outside a start (tests).
func (s *childSet) add(c *child) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[int]*child{}
	}
	s.m[c.pid] = c
	s.mu.Unlock()
}

// remove forgets c, and only c: its pid may already name a newer server.
// It is called once c has been reaped.
func (s *childSet) remove(c *child) {
	s.mu.Lock()
	if s.m[c.pid] == c {
		delete(s.m, c.pid)
	}
	s.mu.Unlock()
	s.wake()
}

// list returns the running children, in no particular order.
func (s *childSet) list() []*child {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*child, 0, len(s.m))
	for _, c := range s.m {
		out = append(out, c)
	}
	return out
}

// of returns the running servers of one service.
func (s *childSet) of(r *svcRun) []*child {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*child
	for _, c := range s.m {
		if c.run == r {
			out = append(out, c)
		}
	}
	return out
}

// maxForkFailures and forkRetry follow xinetd §7.5: a failed fork is
// retried every 5 s, up to 5 times, unless the service says NORETRY.
const maxForkFailures = 5

var forkRetry = 5 * time.Second

// startServer is spawn.Start; tests replace it to make forks fail, which
// a root process cannot be made to see otherwise.
var startServer = spawn.Start

// spawnServer starts the server of a wait=no request on stdio (its
// connection) and tracks it; after are the records to write after its
// START (records.go). It returns nil when the server could not be
// started now: logged and counted with the lease released, or, after a
// fork failure, retried later on a copy of the connection (xinetd §7.5).
//
// With owned, stdio is the request's own descriptor and spawnServer closes
// it as soon as the server has it: a server that answers and exits at
// once then closes the connection itself, and the daemon never pays for
// the TCP teardown.
func (d *Daemon) spawnServer(r *svcRun, svc *service.Service, stdio *os.File, owned bool, c spawn.Conn, lease *access.Lease, spec *spawn.Spec, attempt int, after ...logging.Record) *child {
	if owned {
		// Closing twice is harmless: *os.File remembers.
		defer stdio.Close()
	}
	if spec == nil {
		if spec = d.specFor(r, svc, c, lease, after...); spec == nil {
			return nil
		}
	}
	ch, retry := d.startOnce(r, svc, stdio, owned, c, lease, spec, attempt, after...)
	if !retry {
		return ch
	}
	// Retry later with a descriptor of our own: the caller closes its copy.
	dup, derr := dupFile(stdio)
	if derr != nil {
		releaseLease(lease)
		return nil
	}
	time.AfterFunc(forkRetry, func() {
		defer dup.Close()
		if d.stopping.Load() || r.removed.Load() {
			d.log.Logf(logging.LevelNotice, "spawn", "dropping retry attempt for service %s", svc.ID)
			releaseLease(lease)
			return
		}
		d.spawnServer(r, svc, dup, false, c, lease, spec, attempt+1, after...)
	})
	return nil
}

// startWaitServer starts the server of a wait=yes socket with the socket
// on its stdio. A wait=yes socket has one server at a time, always: a
// fork failure is retried here, on the serving goroutine and with the
// socket itself, every forkRetry up to maxForkFailures attempts, while
// the socket is served by nobody else (a retry on a copy of the socket
// beside a serving loop that carried on ran several servers on it). It
// returns the server, or nil: with halted, the goroutine was told to
// stop while it waited to retry, and the request is left pending for the
// goroutine that takes the socket over; otherwise the server could not
// start (logged, counted, lease released).
func (r *svcRun) startWaitServer(sr *sockRun, svc *service.Service, c spawn.Conn, lease *access.Lease) (ch *child, halted bool) {
	d := r.d
	spec := d.specFor(r, svc, c, lease)
	if spec == nil {
		return nil, false
	}
	for attempt := 0; ; attempt++ {
		ch, retry := d.startOnce(r, svc, sr.s.osFile(), false, c, lease, spec, attempt)
		if !retry {
			return ch, false
		}
		r.forkWait.Store(true)
		t := time.NewTimer(forkRetry)
		select {
		case <-t.C:
		case <-sr.stop:
			t.Stop()
		}
		r.forkWait.Store(false)
		if sr.stopped() || d.stopping.Load() {
			if d.stopping.Load() || r.removed.Load() {
				d.log.Logf(logging.LevelNotice, "spawn", "dropping retry attempt for service %s", svc.ID)
			}
			releaseLease(lease)
			return nil, true
		}
	}
}

// specFor builds the request's server Spec from the service's template;
// nil when it cannot be built (logged, counted, lease released; a step
// xinetd's child would have failed, such as getpwuid for initgroups,
// with START, after and EXIT as in startOnce).
func (d *Daemon) specFor(r *svcRun, svc *service.Service, c spawn.Conn, lease *access.Lease, after ...logging.Record) *spawn.Spec {
	began := time.Now()
	t, err := r.template(svc)
	if err != nil {
		d.log.Logf(logging.LevelError, "spawn", "service %s: %v", svc.ID, err)
		d.startFailed(svc, c, began, err, after)
		r.cnt.execFail.Add(1)
		releaseLease(lease)
		return nil
	}
	sp := t.Spec(c)
	return &sp
}

// startOnce makes attempt number attempt (from 0) at starting the server
// and, when it starts, records (after following START) and reaps it.
// Otherwise it returns retry when a fork failure may be retried (logged;
// the lease is kept for the retry), or nil alone when the request is over
// (logged, counted, lease released; a start that failed in the new
// process with its START and EXIT records).
func (d *Daemon) startOnce(r *svcRun, svc *service.Service, stdio *os.File, owned bool, c spawn.Conn, lease *access.Lease, spec *spawn.Spec, attempt int, after ...logging.Record) (ch *child, retry bool) {
	if ue := d.unsafeServer(spec); ue != nil {
		d.refuseServer(r, svc, c, ue) // ownership.go
		releaseLease(lease)
		return nil, false
	}
	d.kids.begin()
	began := time.Now()
	proc, err := startServer(*spec, stdio)
	if err != nil {
		d.kids.failed()
		if isForkFailure(err) {
			attempt++
			d.log.Logf(logging.LevelError, "spawn", "%s: fork failed: %s", svc.ID, logging.Errno(unwrapErrno(err)))
			if !svc.Flags.Has(service.FlagNoRetry) && attempt < maxForkFailures {
				return nil, true
			}
			if attempt >= maxForkFailures {
				d.log.Logf(logging.LevelError, "spawn", "service %s: too many consecutive fork failures", svc.ID)
			}
			r.cnt.execFail.Add(1)
			d.record(logging.Record{Event: logging.EventFail, Service: svc, Remote: c.Remote, Local: c.Local,
				Reason: access.ReasonFork.String(), ReasonCode: access.ReasonFork.Code()})
			releaseLease(lease)
			return nil, false
		}
		var se *spawn.StartError
		if d.fdShortage(err, svc.ID) {
			// Said once per interval with a count, not per connection.
		} else if errors.As(err, &se) && se.Step != "exec" {
			// A step before execve (setuid, an rlimit, ...) failed: name it.
			d.log.Logf(logging.LevelError, "spawn", "service %s: %s( %s ) failed: %s", svc.ID, se.Step, se.Arg, logging.Errno(se.Err))
		} else {
			// xinetd's words: the path and strerror (errno = N).
			d.log.Logf(logging.LevelError, "spawn", "execv( %s ) failed: %s", spec.Path, logging.Errno(unwrapErrno(err)))
		}
		d.startFailed(svc, c, began, err, after) // START and EXIT, as xinetd's failed child
		r.cnt.execFail.Add(1)
		releaseLease(lease)
		return nil, false
	}
	fd := int(stdio.Fd())
	if owned {
		stdio.Close()
	}
	ch = &child{pid: proc.Pid, run: r, svc: svc, start: time.Now(), remote: c.Remote, known: c.RemoteKnown,
		fd: fd, proc: proc, lease: lease, done: make(chan struct{})}
	d.kids.started(ch)
	r.cnt.served.Add(1)
	rec := logging.Record{Event: logging.EventStart, Service: svc, PID: ch.pid, Local: c.Local, Proxy: c.Proxy}
	if c.RemoteKnown {
		rec.Remote = c.Remote
	}
	d.started(rec, after)
	d.armMaxDuration(ch)
	go d.reap(ch)
	if r.removed.Load() {
		// A reload removed the service while this server was starting,
		// and may have looked for its servers before this one was
		// recorded: it goes the same way as theirs. (removed is set
		// before that look, and the child recorded before this test.)
		go d.terminate([]*child{ch})
	}
	return ch, false
}

func isForkFailure(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOMEM)
}

func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// reap waits for one child (each has its own waiter, so only our own
// children are ever reaped and os/exec never races a wait(-1) loop),
// then releases its lease and writes its EXIT record with the real
// status. The record is queued before the child leaves the registry and
// before done is closed: whoever waits for either (a shutdown about to
// flush the logs) finds it written.
func (d *Daemon) reap(ch *child) {
	ws, err := spawn.Wait(ch.proc)
	if ch.limit != nil {
		ch.limit.Stop()
	}
	releaseLease(ch.lease)
	if !ch.silent {
		rec := logging.Record{Event: logging.EventExit, Service: ch.svc, PID: ch.pid, Duration: time.Since(ch.start)}
		if ch.known {
			rec.Remote = ch.remote
		}
		if err == nil {
			switch {
			case ws.Signaled():
				rec.Signal = int(ws.Signal())
			case ws.Stopped():
				d.log.Logf(logging.LevelWarning, "child", "service %s: server with pid %d stopped", ch.svc.ID, ch.pid)
			default:
				rec.ExitStatus = ws.ExitStatus()
			}
			rec.Reason = exitReason(ch, ws)
		} else {
			d.log.Logf(logging.LevelError, "child", "service %s: waiting for server %d: %v", ch.svc.ID, ch.pid, err)
		}
		d.record(rec)
	}
	d.kids.remove(ch)
	close(ch.done)
}

// terminateServers ends the servers of a service that is removed or
// whose socket changes: SIGTERM, a grace period, then SIGKILL, on a
// goroutine of their own (the caller may hold locks). The EXIT records
// come from the reaper, with the real status. The service's in-process
// sessions end too: xinetd's redirect sessions are children it kills.
func (d *Daemon) terminateServers(r *svcRun) {
	r.endSessions()
	if victims := d.kids.of(r); len(victims) > 0 {
		go d.terminate(victims)
	}
}

func (d *Daemon) terminate(victims []*child) {
	for _, c := range victims {
		d.log.Logf(logging.LevelWarning, "terminate", "Sending signal %d to %s server %d", int(syscall.SIGTERM), c.svc.ID, c.pid)
	}
	done := make(chan struct{})
	go func() {
		for _, c := range victims {
			spawn.Terminate(c.proc, d.o.Grace)
		}
		close(done)
	}()
	for _, c := range victims {
		select {
		case <-c.done:
		case <-time.After(d.o.Grace + 3*time.Second):
			d.log.Logf(logging.LevelError, "terminate", "Server %d did not exit after SIGKILL", c.pid)
		}
	}
	<-done
}

// runWrapCommand carries out a tcp_wrappers spawn (conn == nil: in the
// background, stdio on /dev/null) or twist (the command replaces the
// server, on the connection), through /bin/sh as tcp_wrappers does. A
// twist that replaces an allowed request's server takes over its lease,
// so it counts as that server until it exits; the lease is released on
// every path.
func (d *Daemon) runWrapCommand(svc *service.Service, cmd string, remote, local netip.AddrPort, conn net.Conn, lease *access.Lease, opts *access.WrapProc) {
	started := false
	defer func() {
		if !started {
			releaseLease(lease)
		}
	}()
	// The spec is built for /bin/sh itself: internal and redirected
	// services have no server of their own to build it from.
	sc := *svc
	sc.Server, sc.Argv = "/bin/sh", []string{"sh", "-c", cmd}
	over, err := d.procOverrides(svc, opts)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return
	}
	sp, err := spawn.BuildSpec(&sc, spawn.Conn{Remote: remote, Local: local, RemoteKnown: remote.IsValid(), Over: over}, d.startEnv, d.db)
	if err != nil {
		d.log.Logf(logging.LevelError, "libwrap", "service %s: %v", svc.ID, err)
		return
	}
	var stdio *os.File
	if conn != nil {
		stdio, err = connFile(conn)
		conn.Close()
	} else {
		stdio, err = os.OpenFile(os.DevNull, os.O_RDWR, 0)
	}
	if err != nil {
		d.log.Logf(logging.LevelError, "libwrap", "service %s: %v", svc.ID, err)
		return
	}
	defer stdio.Close()
	if ue := d.unsafeExec(sp.Path, sp.Cred); ue != nil {
		d.log.Logf(logging.LevelError, "libwrap", "service %s: not running %q: %v", svc.ID, cmd, ue)
		return
	}
	d.kids.begin()
	proc, err := spawn.Start(sp, stdio)
	if err != nil {
		d.kids.failed()
		d.log.Logf(logging.LevelError, "libwrap", "service %s: running %q: %v", svc.ID, cmd, err)
		return
	}
	started = true
	ch := &child{pid: proc.Pid, svc: svc, start: time.Now(), proc: proc, done: make(chan struct{}), silent: conn == nil,
		remote: remote, known: remote.IsValid(), run: &svcRun{}, lease: lease}
	d.kids.started(ch)
	if conn != nil {
		// A twist runs as the request's server (xinetd's child execs it
		// from inside the libwrap check): START now, EXIT from reap.
		rec := logging.Record{Event: logging.EventStart, Service: svc, PID: ch.pid, Local: local}
		if ch.known {
			rec.Remote = remote
		}
		d.record(rec)
	}
	go d.reap(ch)
}

// wrapBanner sends the tcp_wrappers `banners` file for this daemon name.
func (d *Daemon) wrapBanner(c net.Conn, svc *service.Service, w *access.WrapAction) {
	if w == nil || w.Banners == "" || c == nil {
		return
	}
	if w.BannerFile == "" {
		return
	}
	if ue := d.unsafeRead(w.BannerFile); ue != nil {
		d.log.Logf(logging.LevelError, "libwrap", "service %s: banner not sent: %v", svc.ID, ue)
		return
	}
	b, err := os.ReadFile(w.BannerFile)
	if err != nil {
		return // tcp_wrappers sends nothing when the banner file is missing
	}
	if len(b) > 1<<20 {
		b = b[:1<<20]
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(w.Banner(string(b))))
	c.SetWriteDeadline(time.Time{})
}
