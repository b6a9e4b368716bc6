package daemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/spawn"
)

// Seamless upgrade (gxinetd -upgrade): the running daemon starts a fresh
// copy of its binary, with its own command line, and hands it every
// listening socket over a socket pair (handover.go). The new daemon reads
// the configuration and serves; the old one then stops accepting (the
// sockets stay open: the new daemon has them), tells the new one which of
// its servers still hold wait=yes sockets, lets its in-process sessions
// finish and exits. Nothing is ever closed that a client could connect
// to, so no connection is refused; one the old daemon accepted is served
// to its end by it.

// upgradeState is the daemon's part in upgrades, on both sides.
type upgradeState struct {
	store fdStore
	ctl   control

	// sess counts the connections the daemon has accepted and not yet
	// finished with in-process (up to the server's start, or to the end
	// of a builtin's or a redirect's session). The old daemon waits for
	// it after an upgrade. Every count is taken where the connection is
	// accepted, so once the accept loops are halted no new one can come.
	sess  sync.WaitGroup
	nsess atomic.Int64

	// A daemon started by -upgrade: the channel until the hand-over is
	// done, and the sockets taken over until the first configuration
	// takes them (also those systemd passed back from its store).
	in          *handoverIn
	inherited   map[sockKey]*sock
	metricsLn   net.Listener
	metricsAddr string
}

func (u *upgradeState) sessionStart() {
	u.sess.Add(1)
	u.nsess.Add(1)
}

func (u *upgradeState) sessionEnd() {
	u.nsess.Add(-1)
	u.sess.Done()
}

// handleCounted serves a connection the Go accept path counted.
func (r *svcRun) handleCounted(c net.Conn, g *acceptGate, at time.Time) {
	defer r.d.up.sessionEnd()
	r.handleStream(c, g, at)
}

// handleRawCounted serves a connection the acceptor counted (enter).
func (r *svcRun) handleRawCounted(fd int, nonblock bool, remote, local netip.AddrPort, g *acceptGate, at time.Time, rl *spawn.RelayListener) {
	defer r.d.up.sessionEnd()
	r.handleRaw(fd, nonblock, remote, local, g, at, rl)
}

// enter is the acceptor's check that a listener is still watched, and
// counts the connection it is about to accept under the same lock that
// remove takes: once a halt has removed the listener, nothing more is
// counted for it.
func (a *acceptor) enter(e *acceptEntry) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.socks[int32(e.fd)] != e.self() {
		return false
	}
	a.d.up.sessionStart()
	return true
}

// Where the daemon was started from, and as what: the successor is this
// path again (a package upgrade replaces the file there), run from the
// same directory with the same arguments.
var startDir, startExe = startPlace()

func startPlace() (dir, exe string) {
	dir, _ = os.Getwd()
	if len(os.Args) > 0 {
		a := os.Args[0]
		switch {
		case strings.Contains(a, "/"):
			if !filepath.IsAbs(a) && dir != "" {
				a = filepath.Join(dir, a)
			}
			return dir, a
		default:
			if p, err := exec.LookPath(a); err == nil {
				if abs, err := filepath.Abs(p); err == nil {
					return dir, abs
				}
			}
		}
	}
	exe, _ = os.Executable()
	return dir, exe
}

// upgradeReadyTimeout bounds how long the new daemon may take to serve.
const upgradeReadyTimeout = 60 * time.Second

// handed is one socket passed to the successor.
type handed struct {
	id   int
	sk   *sock
	wait bool
}

// successor is the new daemon while the hand-over runs.
type successor struct {
	pid     int
	proc    *os.Process
	conn    *hoConn
	socks   []handed
	paused  bool // our rpcbind loop waits (rpc.go)
	refused bool // it said why it would not start, having touched nothing
	reaped  bool
	state   *os.ProcessState
}

// upgrade carries out one -upgrade request, in the run loop (so no reload
// runs meanwhile). It returns exit = true when the daemon has handed over
// and must now exit with code.
//
// Daemon.change is held from the snapshot of the sockets to the end of
// the cut-over, so the set handed over is the set this daemon serves
// until it stops: no bind retry, interface change or suspension opens or
// closes a socket in between. Nothing that serves a request takes change,
// and the new daemon, the one process waited for, knows nothing of it.
func (d *Daemon) upgrade(req *ctlRequest, sigs <-chan os.Signal) (code int, exit bool) {
	c := &d.up.ctl
	c.busy.Store(true)
	defer c.busy.Store(false)
	if d.pid1 {
		req.fail("gxinetd runs as PID 1 and cannot be replaced; restart it instead")
		return 0, false
	}
	d.log.Logf(logging.LevelNotice, "upgrade", "upgrade requested: starting %s", startExe)
	d.change.Lock()
	s, err := d.startSuccessor()
	if err != nil {
		d.change.Unlock()
		d.log.Logf(logging.LevelError, "upgrade", "upgrade failed: %v; still serving", err)
		req.fail("%v; pid %d still serves", err, os.Getpid())
		return 0, false
	}
	if err := s.waitReady(); err != nil {
		reset := s.abort()
		if s.paused {
			d.rpc.resume(reset)
		}
		d.change.Unlock()
		d.log.Logf(logging.LevelError, "upgrade", "upgrade failed: %v; still serving", err)
		req.fail("%v; pid %d still serves", err, os.Getpid())
		return 0, false
	}
	// Committed: the new daemon serves.
	perr := d.cutOver(s)
	d.change.Unlock()
	if perr != "" {
		req.fail("pid %d serves, but writing the pidfile failed: %s", s.pid, perr)
	} else {
		req.answer(ctlReply{Pid: s.pid})
	}
	return d.drainAfterUpgrade(s.pid, req.cmd.drain, sigs), true
}

// startSuccessor starts the new daemon and passes it every socket. The
// caller holds change.
func (d *Daemon) startSuccessor() (*successor, error) {
	conn, theirs, err := hoPair()
	if err != nil {
		return nil, err
	}
	defer theirs.Close()
	s := &successor{conn: conn}

	// What is passed: every service's sockets, systemd's unclaimed ones,
	// the metrics listener and the control socket. The descriptors are
	// duplicated under the lock, so a socket closed meanwhile cannot take
	// its number away.
	type out struct {
		meta hoSock
		fd   int
	}
	var outs []out
	dupFD := func(fd int) int {
		if fd < 0 {
			return -1
		}
		n, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return -1
		}
		return n
	}
	var serving []string
	d.mu.Lock()
	for _, r := range d.runs {
		serving = append(serving, r.svc.Load().ID)
		for k, sr := range r.socks.all() {
			fd := dupFD(sr.s.fd())
			if fd < 0 {
				continue
			}
			h := handed{id: len(outs), sk: sr.s, wait: waitMode(r, sr)}
			m := hoSock{ID: h.id, Use: "service", Key: hoKeyOf(k), Activated: sr.s.activated, Wait: h.wait}
			if sr.s.key != k {
				sk := hoKeyOf(sr.s.key)
				m.Sock = &sk
			}
			s.socks = append(s.socks, h)
			outs = append(outs, out{m, fd})
		}
	}
	for k, sk := range d.activated {
		if fd := dupFD(sk.fd()); fd >= 0 {
			outs = append(outs, out{hoSock{ID: len(outs), Use: "systemd", Key: hoKeyOf(k), Activated: true}, fd})
		}
	}
	d.unlock()
	if d.metrics != nil {
		if fd := dupConn(d.metrics.ln); fd >= 0 {
			outs = append(outs, out{hoSock{ID: len(outs), Use: "metrics", Addr: d.metrics.addr}, fd})
		}
	}
	if d.up.ctl.ln != nil {
		if fd := dupConn(d.up.ctl.ln); fd >= 0 {
			outs = append(outs, out{hoSock{ID: len(outs), Use: "control", Addr: d.up.ctl.path}, fd})
		}
	}
	closeOuts := func(outs []out) {
		for _, o := range outs {
			unix.Close(o.fd)
		}
	}

	// rpcbind's mappings stay as they are from here on: the new daemon
	// takes them over as registered, and nothing is withdrawn and made
	// again (a client asking rpcbind meanwhile would miss the service).
	have, paused := d.rpc.pause()
	s.paused = paused

	stdio, err := stdioFiles()
	if err != nil {
		closeOuts(outs)
		conn.close()
		if paused {
			d.rpc.resume(false)
		}
		return nil, err
	}
	defer func() {
		for _, f := range stdio {
			f.Close()
		}
	}()
	env := os.Environ()[:0:0]
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, envHandover+"=") {
			env = append(env, e)
		}
	}
	v := "3"
	if d.o.Foreground && !d.o.DontFork && !d.o.Debug {
		v += ",detached"
	}
	env = append(env, envHandover+"="+v)
	proc, err := os.StartProcess(startExe, os.Args, &os.ProcAttr{Dir: startDir, Env: env,
		Files: append(stdio, theirs)})
	if err != nil {
		closeOuts(outs)
		conn.close()
		if paused {
			d.rpc.resume(false)
		}
		return nil, fmt.Errorf("starting %s: %w", startExe, err)
	}
	s.pid, s.proc = proc.Pid, proc
	d.log.Logf(logging.LevelNotice, "upgrade", "new daemon pid %d started; handing over %d %s", s.pid, len(outs), plural(len(outs), "socket"))

	metas, fds := make([]hoSock, len(outs)), make([]int, len(outs))
	for i, o := range outs {
		metas[i], fds[i] = o.meta, o.fd
	}
	if err := conn.sendSocks(metas, fds); err != nil {
		reset := s.abort()
		if paused {
			d.rpc.resume(reset)
		}
		return nil, fmt.Errorf("handing the sockets to pid %d: %w%s", s.pid, err, s.exitNote())
	}
	if err := conn.send(&hoMsg{Type: "state", RPC: mappingsOut(have), Serving: serving}, nil); err != nil {
		reset := s.abort()
		if paused {
			d.rpc.resume(reset)
		}
		return nil, fmt.Errorf("handing over to pid %d: %w%s", s.pid, err, s.exitNote())
	}
	return s, nil
}

// dupConn duplicates a listener's descriptor. Not through File and Fd:
// Fd would switch the socket, shared with everyone who has it, to
// blocking mode, and this daemon's own accept would then block in the
// kernel where no deadline reaches it.
func dupConn(c any) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	rc.Control(func(s uintptr) {
		if n, err := unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0); err == nil {
			fd = n
		}
	})
	return fd
}

// stdioFiles is what the new daemon gets as 0, 1 and 2: ours, or
// /dev/null for any we do not have.
func stdioFiles() ([]*os.File, error) {
	var out []*os.File
	for fd := 0; fd < 3; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			if n, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3); err == nil {
				out = append(out, os.NewFile(uintptr(n), fmt.Sprintf("stdio%d", fd)))
				continue
			}
		}
		f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// waitMode reports whether a socket is served by a wait=yes loop, whose
// server has the socket itself.
func waitMode(r *svcRun, sr *sockRun) bool {
	if !sr.s.gate.isOpen() {
		return true
	}
	s := r.svc.Load()
	switch {
	case sr.s.stream() && (!s.Wait || s.IsInternal()):
		return false
	case sr.s.stream():
		return true
	case sr.s.pc != nil && s.IsInternal():
		return false
	}
	return true
}

// waitReady waits until the new daemon serves, or why it does not.
func (s *successor) waitReady() error {
	m, fds, err := s.conn.recv(upgradeReadyTimeout)
	closeFDs(fds)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("the new daemon (pid %d) did not report serving within %s", s.pid, upgradeReadyTimeout)
	case errors.Is(err, io.EOF), errors.Is(err, unix.ECONNRESET):
		// ECONNRESET: it exited with our messages unread.
		return fmt.Errorf("the new daemon (pid %d) exited before serving%s", s.pid, s.exitNote())
	case err != nil:
		return fmt.Errorf("the new daemon (pid %d): %w", s.pid, err)
	case m.Type == "failed":
		s.refused = true
		return fmt.Errorf("the new daemon (pid %d) refused to start: %s", s.pid, m.Reason)
	case m.Type != "ready":
		return fmt.Errorf("the new daemon (pid %d) said %q", s.pid, m.Type)
	}
	return nil
}

// exitNote waits a little for an exited successor and says how it ended.
func (s *successor) exitNote() string {
	st, ok := s.reap(5 * time.Second)
	if !ok {
		return ""
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf(" (killed by signal %d)", int(ws.Signal()))
	}
	return fmt.Sprintf(" (status %d); its messages are in its log", st.ExitCode())
}

// reap waits up to timeout for the successor to exit, then kills it.
func (s *successor) reap(timeout time.Duration) (*os.ProcessState, bool) {
	if s.reaped {
		return s.state, s.state != nil
	}
	s.reaped = true
	ch := make(chan *os.ProcessState, 1)
	go func() {
		st, _ := s.proc.Wait()
		ch <- st
	}()
	select {
	case s.state = <-ch:
	case <-time.After(timeout):
		s.proc.Kill()
		s.state = <-ch
	}
	return s.state, s.state != nil
}

// abort ends a successor that will not serve: closing the channel makes
// one still starting give up, and one that does not is killed. It reports
// whether the successor may have changed rpcbind's mappings, so that ours
// must be made again: only a refusal is sure to have touched nothing.
func (s *successor) abort() (reset bool) {
	s.conn.close()
	if s.proc != nil {
		s.reap(5 * time.Second)
	}
	return !s.refused
}

// cutOver stops this daemon serving once the successor does: every accept
// loop halts (the sockets stay open, the successor has them), the servers
// still holding wait=yes sockets are named to the successor, the pidfile
// and systemd's main pid move to it. It returns why the pidfile could not
// be written, if so. The caller holds change.
func (d *Daemon) cutOver(s *successor) (pidfileErr string) {
	// Everything that could open, close or reopen a socket later stops
	// too: bind retries, interface changes, suspensions' ends, fork
	// retries.
	d.stopping.Store(true)
	d.up.store.handedOver.Store(true)
	all := d.takeAllSocks(false)
	// As in a reload: halted with change alone held.
	haltAll(all)
	d.stopMetrics()
	d.up.ctl.stopControl(true)

	// The halted wait=yes loops left their servers recorded as the
	// sockets' holders; a gate not yet open (this daemon was itself an
	// upgrade's) still waits for its predecessor's servers.
	var ids, pidfds []int
	for _, h := range s.socks {
		if !h.wait {
			continue
		}
		if ch := h.sk.holder; ch != nil {
			if fd, ok := holderPidfd(ch); ok {
				ids, pidfds = append(ids, h.id), append(pidfds, fd)
			}
		}
		for _, fd := range h.sk.gate.pending() {
			ids, pidfds = append(ids, h.id), append(pidfds, fd)
		}
	}
	held := len(ids)
	for first := true; first || len(ids) > 0; first = false {
		n := min(len(ids), maxFDsPerMsg)
		m := &hoMsg{Type: "cutover", Holders: ids[:n], Last: n == len(ids)}
		if err := s.conn.send(m, pidfds[:n]); err != nil {
			d.log.Logf(logging.LevelError, "upgrade", "telling pid %d which servers hold wait=yes sockets: %v", s.pid, err)
		}
		closeFDs(pidfds[:n])
		ids, pidfds = ids[n:], pidfds[n:]
	}
	if held > 0 {
		d.log.Logf(logging.LevelNotice, "upgrade", "%d %s still %s wait=yes sockets; pid %d serves them once they exit",
			held, plural(held, "server"), map[bool]string{true: "holds", false: "hold"}[held == 1], s.pid)
	}
	m, _, err := s.conn.expect(30*time.Second, "pidfile")
	switch {
	case err != nil:
		pidfileErr = fmt.Sprintf("no answer (%v)", err)
	case m.Reason != "":
		pidfileErr = m.Reason
	}
	notifyMainPID(s.pid)
	s.conn.send(&hoMsg{Type: "main"}, nil)
	s.conn.close()

	// Our copies go; the successor's keep every socket open.
	d.mu.Lock()
	for _, r := range d.runs {
		for _, sr := range r.socks.all() {
			sr.s.Close()
		}
		r.socks = nil
	}
	for k, sk := range d.activated {
		sk.Close()
		delete(d.activated, k)
	}
	d.unlock()
	return pidfileErr
}

// holderPidfd opens a pidfd for a server that holds a wait=yes socket, if
// it still runs. The server is our child and not yet reaped while its
// waiter has not finished (done open), so its pid names it; the waitid
// check rules out the moment between the waiter's reaping and done.
func holderPidfd(ch *child) (int, bool) {
	select {
	case <-ch.done:
		return -1, false
	default:
	}
	fd, err := openPidfdNonblock(ch.pid)
	if err != nil {
		return -1, false
	}
	var info unix.Siginfo
	_, _, e := unix.RawSyscall6(unix.SYS_WAITID, unix.P_PIDFD, uintptr(fd), uintptr(unsafe.Pointer(&info)),
		unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, 0, 0)
	if e != 0 || info.Signo != 0 {
		// Not our child any more (reaped), or exited: it holds nothing.
		unix.Close(fd)
		return -1, false
	}
	return fd, true
}

func openPidfdNonblock(pid int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_PIDFD_OPEN, uintptr(pid), unix.PIDFD_NONBLOCK, 0)
	if e == unix.EINVAL {
		r, _, e = unix.RawSyscall(unix.SYS_PIDFD_OPEN, uintptr(pid), 0, 0)
	}
	if e != 0 {
		return -1, e
	}
	unix.CloseOnExec(int(r))
	return int(r), nil
}

// drainAfterUpgrade lets the sessions this daemon accepted finish (up to
// drain; then they are cancelled), and returns the exit status. Servers
// it started keep running. Nothing is withdrawn from rpcbind and the
// pidfile is left alone: both are the successor's.
func (d *Daemon) drainAfterUpgrade(successor int, drain time.Duration, sigs <-chan os.Signal) int {
	n := d.up.nsess.Load()
	d.log.Logf(logging.LevelNotice, "upgrade", "pid %d serves now; letting %d %s end (up to %s)", successor, n, plural(int(n), "session"), drain)
	done := make(chan struct{})
	go func() {
		d.up.sess.Wait()
		close(done)
	}()
	timer := time.NewTimer(drain)
	defer timer.Stop()
	cancelled := false
	cancel := func(why string) {
		if cancelled {
			return
		}
		cancelled = true
		d.log.Logf(logging.LevelWarning, "upgrade", "%s: closing %d remaining %s", why, d.up.nsess.Load(), plural(int(d.up.nsess.Load()), "session"))
		d.cancel()
		timer.Reset(5 * time.Second)
	}
wait:
	for {
		select {
		case <-done:
			break wait
		case <-timer.C:
			if cancelled {
				d.log.Logf(logging.LevelWarning, "upgrade", "%d %s did not end", d.up.nsess.Load(), plural(int(d.up.nsess.Load()), "session"))
				break wait
			}
			cancel("drain time is over")
		case sig := <-sigs:
			switch sig {
			case syscall.SIGTERM:
				cancel("SIGTERM")
			case syscall.SIGINT:
				if d.o.Debug {
					cancel("SIGINT")
				}
			case syscall.SIGQUIT:
				break wait
			case syscall.SIGUSR1:
				d.dump()
			default:
				d.log.Logf(logging.LevelNotice, "upgrade", "ignoring signal %d: pid %d serves now", sig, successor)
			}
		}
	}
	left := len(d.kids.list())
	d.log.Logf(logging.LevelNotice, "upgrade", "Exiting after the upgrade: pid %d serves; %d %s keep running", successor, left, plural(left, "server"))
	if d.rec != nil {
		d.rec.Flush(2 * time.Second)
	}
	return 0
}
