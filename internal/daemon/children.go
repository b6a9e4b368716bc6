package daemon

import (
	"errors"
	"net"
	"net/netip"
	"os"
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
	proc   *os.Process
	lease  *access.Lease
	done   chan struct{}
	// exitNote replaces the EXIT record (wrap spawn commands log none).
	silent bool
	// limit ends the server at max_duration (sandbox.go); overdue is set
	// when it did, for the EXIT record's reason.
	limit   *time.Timer
	overdue atomic.Bool
}

// maxForkFailures and forkRetry follow xinetd §7.5: a failed fork is
// retried every 5 s, up to 5 times, unless the service says NORETRY.
const maxForkFailures = 5

var forkRetry = 5 * time.Second

// startServer is spawn.Start; tests replace it to make forks fail, which
// a root process cannot be made to see otherwise.
var startServer = spawn.Start

// spawnServer starts the service's server on stdio and tracks it. It
// returns nil when the server could not be started (already logged and
// counted, lease released).
//
// With owned, stdio is the request's own descriptor and spawnServer closes
// it as soon as the server has it: a server that answers and exits at
// once then closes the connection itself, and the daemon never pays for
// the TCP teardown.
func (d *Daemon) spawnServer(r *svcRun, svc *service.Service, stdio *os.File, owned bool, c spawn.Conn, lease *access.Lease, spec *spawn.Spec, attempt int) *child {
	if owned {
		// Closing twice is harmless: *os.File remembers.
		defer stdio.Close()
	}
	if spec == nil {
		t, err := r.template(svc)
		if err != nil {
			d.log.Logf(logging.LevelError, "spawn", "service %s: %v", svc.ID, err)
			r.cnt.execFail.Add(1)
			releaseLease(lease)
			return nil
		}
		sp := t.Spec(c)
		spec = &sp
	}
	if ue := d.unsafeServer(spec); ue != nil {
		d.refuseServer(r, svc, c, ue) // ownership.go
		releaseLease(lease)
		return nil
	}
	proc, err := startServer(*spec, stdio)
	if err != nil {
		if isForkFailure(err) {
			attempt++
			d.log.Logf(logging.LevelError, "spawn", "%s: fork failed: %s", svc.ID, logging.Errno(unwrapErrno(err)))
			if svc.Flags.Has(service.FlagNoRetry) || attempt >= maxForkFailures {
				if attempt >= maxForkFailures {
					d.log.Logf(logging.LevelError, "spawn", "service %s: too many consecutive fork failures", svc.ID)
				}
				r.cnt.execFail.Add(1)
				d.record(logging.Record{Event: logging.EventFail, Service: svc, Remote: c.Remote, Local: c.Local,
					Reason: access.ReasonFork.String(), ReasonCode: access.ReasonFork.Code()})
				releaseLease(lease)
				return nil
			}
			// Retry later with a descriptor of our own: the caller closes its copy.
			dup, derr := dupFile(stdio)
			if derr != nil {
				releaseLease(lease)
				return nil
			}
			time.AfterFunc(forkRetry, func() {
				defer dup.Close()
				if d.stopping.Load() || r.removed {
					d.log.Logf(logging.LevelNotice, "spawn", "dropping retry attempt for service %s", svc.ID)
					releaseLease(lease)
					return
				}
				d.spawnServer(r, svc, dup, false, c, lease, spec, attempt)
			})
			return nil
		}
		var se *spawn.StartError
		if errors.As(err, &se) && se.Step != "exec" {
			// A step before execve (setuid, an rlimit, ...) failed: name it.
			d.log.Logf(logging.LevelError, "spawn", "service %s: %s( %s ) failed: %s", svc.ID, se.Step, se.Arg, logging.Errno(se.Err))
		} else {
			// xinetd's words: the path and strerror (errno = N).
			d.log.Logf(logging.LevelError, "spawn", "execv( %s ) failed: %s", spec.Path, logging.Errno(unwrapErrno(err)))
		}
		r.cnt.execFail.Add(1)
		releaseLease(lease)
		return nil
	}
	fd := int(stdio.Fd())
	if owned {
		stdio.Close()
	}
	ch := &child{pid: proc.Pid, run: r, svc: svc, start: time.Now(), remote: c.Remote, known: c.RemoteKnown,
		fd: fd, proc: proc, lease: lease, done: make(chan struct{})}
	d.mu.Lock()
	d.children[ch.pid] = ch
	d.mu.Unlock()
	r.cnt.served.Add(1)
	rec := logging.Record{Event: logging.EventStart, Service: svc, PID: ch.pid, Local: c.Local}
	if c.RemoteKnown {
		rec.Remote = c.Remote
	}
	d.record(rec)
	d.armMaxDuration(ch)
	go d.reap(ch)
	return ch
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
// then writes its EXIT record with the real status and releases its lease.
func (d *Daemon) reap(ch *child) {
	ws, err := spawn.Wait(ch.proc)
	if ch.limit != nil {
		ch.limit.Stop()
	}
	d.mu.Lock()
	delete(d.children, ch.pid)
	d.mu.Unlock()
	releaseLease(ch.lease)
	close(ch.done)
	if ch.silent {
		return
	}
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
	}
	d.record(rec)
}

// terminateServersLocked ends the servers of a service that is removed or
// whose socket changes: SIGTERM, a grace period, then SIGKILL. The EXIT
// records come from the reaper, with the real status.
func (d *Daemon) terminateServersLocked(r *svcRun, why string) {
	var victims []*child
	for _, c := range d.children {
		if c.run == r {
			victims = append(victims, c)
		}
	}
	if len(victims) == 0 {
		return
	}
	go d.terminate(victims)
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
	proc, err := spawn.Start(sp, stdio)
	if err != nil {
		d.log.Logf(logging.LevelError, "libwrap", "service %s: running %q: %v", svc.ID, cmd, err)
		return
	}
	started = true
	ch := &child{pid: proc.Pid, svc: svc, start: time.Now(), proc: proc, done: make(chan struct{}), silent: conn == nil,
		remote: remote, known: remote.IsValid(), run: &svcRun{}, lease: lease}
	d.mu.Lock()
	d.children[ch.pid] = ch
	d.mu.Unlock()
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
