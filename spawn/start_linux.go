package spawn

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// StartError is a failure to get the server running: a step of the
// child's preparation (setuid, setgroups, rlimit_as, nice, chdir, exec,
// ...) and the value it was tried with.
type StartError struct {
	Step string // what failed: "exec", "setuid", "rlimit_files", ...
	Arg  string // the path, id or value involved
	Err  error  // usually a syscall.Errno
}

func (e *StartError) Error() string {
	if e.Arg == "" {
		return "spawn: " + e.Step + ": " + e.Err.Error()
	}
	return "spawn: " + e.Step + " " + e.Arg + ": " + e.Err.Error()
}

func (e *StartError) Unwrap() error { return e.Err }

// execTimeout bounds how long a child may take from its creation to its
// execve. The steps before execve take well under a millisecond; only a
// child that is stopped (a process running as the service's user may
// send SIGSTOP once the child has that user's ids) or an execve stuck on
// a dead file system comes near it. Such a child is killed (by the
// watchdog, within a second after the bound) and the start fails. The
// same bound applies to waiting for a pre-exec slot.
var execTimeout = 10 * time.Second

// killTimeout bounds the wait for a killed child's status pipe to close
// before Start reports the failure and leaves the rest (freeing the
// memory the child shared, reaping it) to a goroutine.
var killTimeout = 5 * time.Second

// maxPreExec caps the children that exist but have not exec'd yet. Each
// holds a stack, a request and a slot in the process table, and in the
// clone path the daemon's memory, until execve; normally a start spends
// well under a millisecond there, so the cap only bites when children
// are being stopped before exec, and then it bounds what they hold. A
// start that finds the cap full waits for a slot for up to execTimeout
// (the stopped children are killed by then) and otherwise fails like a
// failed fork (EAGAIN), which the daemon retries.
const maxPreExec = 128

// preExec holds one token per child that has not exec'd yet; tests
// replace it to try a smaller cap.
var preExec = make(chan struct{}, maxPreExec)

// acquireSlot takes a pre-exec slot; the slot's release gives it back
// to the channel it came from (tests swap preExec).
func acquireSlot(spec *Spec) (slot, error) {
	sem := preExec
	select {
	case sem <- struct{}{}:
		return sem, nil
	default:
	}
	t := time.NewTimer(execTimeout)
	defer t.Stop()
	select {
	case sem <- struct{}{}:
		return sem, nil
	case <-t.C:
		return nil, &StartError{Step: "fork", Arg: spec.Path, Err: syscall.EAGAIN}
	}
}

// slot is a pre-exec slot taken from its channel.
type slot chan struct{}

func (s slot) release() { <-s }

// onStart, when set (tests only), is called with the pid of every child
// as soon as it exists, before Start waits for its execve; beforeFork
// just before the clone or helper path creates a child, with the status
// pipe open.
var (
	onStart    func(spec *Spec, pid int)
	beforeFork func(spec *Spec)
)

// ErrExecTimeout is the cause of a StartError for a child that did not
// reach execve within the bound and was killed:
// errors.Is(err, ErrExecTimeout).
var ErrExecTimeout = errors.New("no execve in time")

type execTimeoutError struct{ after time.Duration }

func (e *execTimeoutError) Error() string {
	return "no execve within " + e.after.String() + ", killed"
}

func (e *execTimeoutError) Is(target error) bool { return target == ErrExecTimeout }

// preExecDeathError is a child that ended before its execve without a
// step failing: something killed it.
type preExecDeathError struct{ ws syscall.WaitStatus }

func (e *preExecDeathError) Error() string {
	if e.ws.Signaled() {
		return "ended before execve: killed by signal " + strconv.Itoa(int(e.ws.Signal()))
	}
	return "ended before execve"
}

// helperExe is the binary re-executed as the exec helper. /proc/self/exe
// still names the running binary after a package upgrade replaced the
// file on disk, so helper and daemon are always the same build.
const helperExe = "/proc/self/exe"

// forceHelper makes every Start use the exec helper, and noClone keeps
// Start off the clone path (os.StartProcess, or the helper when the Spec
// needs it): tests and benchmarks run every path with them.
var forceHelper, noClone bool

// StartHoldsProc reports whether Start keeps the calling goroutine's
// thread and scheduler slot (P) while the child runs until its execve:
// Go's own fork does (a build without the clone path); the clone path
// returns at once and waits in the poller.
const StartHoldsProc = !haveClone

// Start runs spec with stdio as its descriptors 0, 1 and 2 and returns
// the running process. The server is a session leader with nothing else
// open, default signal dispositions and an empty signal mask, and with
// spec's credentials, umask, niceness and limits already in force when
// its first instruction runs. Start never reaps a server that started:
// the caller must Wait for it (or Release it after reaping it some other
// way), which also closes its pidfd.
//
// Built with cgo (the normal build), Start clones a child that carries
// out every step of the Spec and execs the server (startClone). Without
// cgo, a Spec asking for nothing os.StartProcess cannot do and no other
// identity is started that way, and anything else through the exec
// helper (see HelperMain). A failure of any step comes back as a
// *StartError after the child has been reaped; so does a child that has
// not exec'd after execTimeout, which is killed (ErrExecTimeout).
func Start(spec Spec, stdio *os.File) (*Process, error) {
	if stdio == nil {
		return nil, errors.New("spawn: start: no descriptor for the server's stdin/stdout/stderr")
	}
	if spec.Path == "" {
		return nil, errors.New("spawn: start: empty server path")
	}
	if err := checkCred(spec.Cred); err != nil {
		return nil, err
	}
	if spec.Dir == "" {
		spec.Dir = "/"
	}
	if spec.Env == nil {
		// os.StartProcess would hand a nil environment the daemon's own.
		spec.Env = []string{}
	}
	if len(spec.Argv) == 0 {
		spec.Argv = []string{spec.Path}
	}
	inheritedOnce.Do(cloexecInherited)
	if spec.Cred != nil && ownCred().is(spec.Cred) {
		// Already who the server must be: three credential changes in
		// the child, each allocating kernel credentials, change nothing.
		spec.Cred = nil
	}
	if spec.Sandbox != nil && (!haveClone || forceHelper || noClone) {
		// Only the clone child applies a sandbox: never start the
		// server less isolated than its Spec says.
		if err := sandboxBuild(); err != nil {
			return nil, &StartError{Step: "sandbox", Arg: spec.Path, Err: err}
		}
		return nil, &StartError{Step: "sandbox", Arg: spec.Path, Err: errors.New("only the clone path applies a sandbox")}
	}
	switch {
	case forceHelper:
		return startHelper(&spec, stdio)
	case haveClone && !noClone:
		return startClone(&spec, stdio, spec.test)
	case needsHelper(&spec):
		return startHelper(&spec, stdio)
	}
	return startPlain(&spec, stdio)
}

var inheritedOnce sync.Once

// daemonCred is the daemon's own identity: real, effective and saved ids
// and supplementary groups. The daemon never changes them, so they are
// read once (until Refresh).
type daemonCred struct {
	ok               bool
	ruid, euid, suid int
	rgid, egid, sgid int
	groups           []int
}

var credCache atomic.Pointer[daemonCred]

func ownCred() daemonCred {
	if c := credCache.Load(); c != nil {
		return *c
	}
	var c daemonCred
	c.ruid, c.euid, c.suid = unix.Getresuid()
	c.rgid, c.egid, c.sgid = unix.Getresgid()
	g, err := unix.Getgroups()
	c.groups, c.ok = g, err == nil
	credCache.Store(&c)
	return c
}

// is reports whether the daemon already has exactly cred: every uid and
// gid equal to cred's, and the same supplementary groups.
func (c daemonCred) is(cred *Cred) bool {
	if !c.ok || c.ruid != int(cred.UID) || c.euid != int(cred.UID) || c.suid != int(cred.UID) ||
		c.rgid != int(cred.GID) || c.egid != int(cred.GID) || c.sgid != int(cred.GID) {
		return false
	}
	if len(c.groups) != len(cred.Groups) {
		return false
	}
	for i, g := range cred.Groups {
		if c.groups[i] != int(g) {
			return false
		}
	}
	return true
}

// cloexecInherited marks every descriptor above 2 close-on-exec. Go does
// that for every descriptor it opens, but descriptors the daemon itself
// inherited (from a shell, a supervisor, a test harness) stay open
// across exec and would reach every server.
func cloexecInherited() {
	if unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	// Kernels before 5.11 have no close_range.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// checkCred refuses ids the kernel reads as "leave unchanged": a uid of
// 4294967295 would otherwise quietly leave the server running as root.
func checkCred(c *Cred) error {
	if c == nil {
		return nil
	}
	if c.UID == math.MaxUint32 {
		return &StartError{Step: "setuid", Arg: strconv.FormatUint(uint64(c.UID), 10), Err: syscall.EINVAL}
	}
	if c.GID == math.MaxUint32 {
		return &StartError{Step: "setgid", Arg: strconv.FormatUint(uint64(c.GID), 10), Err: syscall.EINVAL}
	}
	for _, g := range c.Groups {
		if g == math.MaxUint32 {
			return &StartError{Step: "setgroups", Arg: strconv.FormatUint(uint64(g), 10), Err: syscall.EINVAL}
		}
	}
	return nil
}

// startSigBlk is the signal mask the process started with, which is the
// mask Go's fork gives every child. Package initialisation runs on the
// main thread before the runtime starts others, so the main thread's
// mask then is the inherited one.
var startSigBlk = func() uint64 {
	st, err := readProcStatus()
	if err != nil {
		return ^uint64(0) // unknown: let the helper clear it
	}
	return st.sigBlk
}()

// procCache holds the process-wide state (ignored signals, umask) that
// decides how servers start. Generating /proc/self/status is expensive:
// reading it twice per start cost a quarter of the daemon's CPU under a
// spawn load. The state only changes when the daemon changes it, which it
// does once, at start-up.
var procCache atomic.Pointer[procStatus]

func cachedProcStatus() (procStatus, error) {
	if p := procCache.Load(); p != nil {
		return *p, nil
	}
	st, err := readProcStatus()
	if err != nil {
		return st, err
	}
	procCache.Store(&st)
	return st, nil
}

// Refresh forgets the cached signal dispositions, umask, credentials and
// fs.nr_open, so the next Start reads them again. Call it after changing
// any of them (the daemon does once it has set up its signal handling
// and umask).
func Refresh() {
	procCache.Store(nil)
	credCache.Store(nil)
	nrOpenCache.Store(0)
}

// needsHelper reports whether the plain fork+exec of os.StartProcess
// would leave the server with something other than spec asks for, or
// would run Go's fork child as another user. Go's fork child holds the
// forking thread (and Go's fork lock) until its execve, and that wait
// cannot be bounded: the pid is known only after it. A child that keeps
// the daemon's own ids can be stopped only by root (or the daemon's own
// user); one that took the service's ids could be stopped by that user,
// which would stop every fork of the daemon with it. Such Specs go
// through the helper, whose own fork child keeps the daemon's ids and
// execs at once, and whose wait for the server's execve is bounded.
func needsHelper(spec *Spec) bool {
	if forceHelper || spec.Cred != nil {
		return true
	}
	if spec.Nice != nil && *spec.Nice != 0 {
		return true
	}
	st, err := cachedProcStatus()
	if err != nil {
		return true
	}
	// Go's fork resets the handlers it installed but keeps ignored
	// signals ignored and gives the child the mask the daemon started
	// with; only the helper can clear those. The mask is the one seen at
	// start-up: the main thread's mask now says nothing (the runtime
	// blocks signals on threads around forks and while parking them), and
	// reading it made almost every start take the slow helper path.
	if st.sigIgn != 0 || startSigBlk != 0 {
		return true
	}
	if spec.Umask >= 0 && spec.Umask != st.umask {
		return true
	}
	for _, r := range spec.Rlimits {
		var cur unix.Rlimit
		if err := unix.Getrlimit(r.Resource, &cur); err != nil {
			return true
		}
		v := r.Value
		if v == InheritHard {
			v = cur.Max
		}
		// For RLIMIT_NOFILE Go raises its own soft limit to hard-1 at
		// start-up and gives children the original back, so "current
		// soft equals hard" is the only state a child inherits as is.
		if cur.Cur != v || cur.Max != v {
			return true
		}
	}
	return false
}

// startPlain starts a Spec that needs nothing but the session and the
// descriptors with Go's own fork (syscall.StartProcess: os.StartProcess
// would hold a second pidfd for its os.Process).
func startPlain(spec *Spec, stdio *os.File) (*Process, error) {
	sl, err := acquireSlot(spec)
	if err != nil {
		return nil, err
	}
	// Go's fork returns after the child's execve (or its end).
	defer sl.release()
	pidfd := -1
	// The same descriptor three times: the fork dup2s it onto 0, 1 and
	// 2 with no copying goroutine. Fd switches it to blocking mode, which
	// servers expect of their standard input.
	fd := stdio.Fd()
	pid, _, err := syscall.StartProcess(spec.Path, spec.Argv, &syscall.ProcAttr{
		Dir:   spec.Dir,
		Env:   spec.Env,
		Files: []uintptr{fd, fd, fd},
		Sys:   &syscall.SysProcAttr{Setsid: true, PidFD: &pidfd},
	})
	runtime.KeepAlive(stdio)
	if err != nil {
		return nil, forkError(spec, err)
	}
	if onStart != nil {
		onStart(spec, pid)
	}
	return newProcess(pid, pidfd, false), nil
}

// forkError names the step of a failed fork. Go's child only reports an
// errno, so a missing working directory would otherwise read like a
// missing program.
func forkError(spec *Spec, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if fi, serr := os.Stat(spec.Dir); serr != nil {
		var pe *os.PathError
		if errors.As(serr, &pe) {
			serr = pe.Err
		}
		return &StartError{Step: "chdir", Arg: spec.Dir, Err: serr}
	} else if !fi.IsDir() {
		return &StartError{Step: "chdir", Arg: spec.Dir, Err: syscall.ENOTDIR}
	}
	return &StartError{Step: "exec", Arg: spec.Path, Err: err}
}

// helperMsg is what Start sends the exec helper.
type helperMsg struct {
	Spec Spec
	Stop bool // tests: stop before execve
}

func startHelper(spec *Spec, stdio *os.File) (*Process, error) {
	// gob, not JSON: environment strings are bytes, and JSON would
	// replace anything that is not UTF-8.
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(helperMsg{Spec: *spec, Stop: spec.test&cloneTestStop != 0}); err != nil {
		return nil, fmt.Errorf("spawn: encode spec for %s: %w", spec.Path, err)
	}
	sl, err := acquireSlot(spec)
	if err != nil {
		return nil, err
	}
	defer sl.release()
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("spawn: spec pipe: %w", err)
	}
	defer specW.Close()
	statR, statW, err := os.Pipe()
	if err != nil {
		specR.Close()
		return nil, fmt.Errorf("spawn: status pipe: %w", err)
	}
	defer statR.Close()

	if beforeFork != nil {
		beforeFork(spec)
	}
	pidfd := -1
	fd := stdio.Fd()
	pid, _, err := syscall.StartProcess(helperExe, []string{"gxinetd-exec", spec.Path}, &syscall.ProcAttr{
		Dir:   spec.Dir,
		Env:   []string{helperEnv + "=" + helperMagic},
		Files: []uintptr{fd, fd, fd, specR.Fd(), statW.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true, PidFD: &pidfd},
	})
	runtime.KeepAlive(stdio)
	specR.Close()
	statW.Close()
	if err != nil {
		return nil, forkError(spec, err)
	}
	p := newProcess(pid, pidfd, false)
	if onStart != nil {
		onStart(spec, pid)
	}

	// The watchdog kills a helper that has not exec'd the server after
	// execTimeout, which ends the write and the read below.
	w := watch(p, statR, spec.testBound)
	// A helper that died before reading everything makes this write fail
	// with EPIPE; its status (or the lack of one) says why.
	_, werr := specW.Write(buf.Bytes())
	specW.Close()

	msg, rerr := io.ReadAll(io.LimitReader(statR, 4096))
	killed := unwatch(w)
	switch {
	case killed || rerr != nil:
		_ = p.Kill()
		reapKilled(p)
		return nil, &StartError{Step: "exec", Arg: spec.Path, Err: &execTimeoutError{w.bound}}
	case len(msg) > 0:
		_, _ = p.Wait()
		return nil, decodeStatus(msg)
	case werr != nil:
		// No status but the spec never arrived: the helper died early.
		_, _ = p.Wait()
		return nil, &StartError{Step: "exec", Arg: spec.Path, Err: fmt.Errorf("exec helper: %w", werr)}
	}
	// EOF with no message: the status pipe was closed by a successful
	// execve (it is close-on-exec in the helper).
	return p, nil
}

// reapKilled reaps a child that was just sent SIGKILL, waiting for at
// most killTimeout: one that sleeps uninterruptibly is reaped by a
// goroutine whenever it ends.
func reapKilled(p *Process) {
	done := make(chan struct{})
	go func() {
		_, _ = p.Wait()
		close(done)
	}()
	t := time.NewTimer(killTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// encodeStatus is the helper's failure report: step, argument, errno and
// text, NUL-separated.
func encodeStatus(step, arg string, err error) []byte {
	var errno syscall.Errno
	errors.As(err, &errno)
	text := ""
	if err != nil {
		text = err.Error()
	}
	var b bytes.Buffer
	b.WriteString(step)
	b.WriteByte(0)
	b.WriteString(arg)
	b.WriteByte(0)
	b.WriteString(strconv.FormatUint(uint64(errno), 10))
	b.WriteByte(0)
	b.WriteString(text)
	return b.Bytes()
}

// decodeStatus turns a helper's report back into a *StartError whose Err
// is the original errno when there was one, so errors.Is(err,
// fs.ErrNotExist) and friends work on the parent's side.
func decodeStatus(b []byte) *StartError {
	parts := bytes.SplitN(b, []byte{0}, 4)
	if len(parts) != 4 {
		return &StartError{Step: "exec helper", Err: fmt.Errorf("malformed status %q", b)}
	}
	e := &StartError{Step: string(parts[0]), Arg: string(parts[1])}
	if e.Step == "" {
		e.Step = "exec helper"
	}
	n, perr := strconv.ParseUint(string(parts[2]), 10, 32)
	switch {
	case perr == nil && n != 0:
		e.Err = syscall.Errno(n)
	case len(parts[3]) > 0:
		e.Err = errors.New(string(parts[3]))
	default:
		e.Err = errors.New("failed")
	}
	return e
}

// procStatus is what Start and the helper read from /proc/self/status.
type procStatus struct {
	umask          int // -1 when the kernel does not report it
	sigBlk, sigIgn uint64
}

// readProcStatus reads /proc/self/status with plain system calls: going
// through os.File would start the runtime's poller (an epoll and an
// eventfd descriptor) in every program that merely imports this package.
func readProcStatus() (procStatus, error) {
	fd, err := unix.Open("/proc/self/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return procStatus{umask: -1}, fmt.Errorf("spawn: /proc/self/status: %w", err)
	}
	defer unix.Close(fd)
	var b []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return procStatus{umask: -1}, fmt.Errorf("spawn: /proc/self/status: %w", err)
		}
		if n <= 0 {
			break
		}
		b = append(b, buf[:n]...)
	}
	return parseProcStatus(b)
}

func parseProcStatus(b []byte) (procStatus, error) {
	st := procStatus{umask: -1}
	seen := 0
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch string(k) {
		case "Umask":
			n, err := strconv.ParseUint(string(v), 8, 32)
			if err != nil {
				return st, fmt.Errorf("spawn: /proc/self/status: Umask %q: %w", v, err)
			}
			st.umask = int(n)
		case "SigBlk", "SigIgn":
			n, err := strconv.ParseUint(string(v), 16, 64)
			if err != nil {
				return st, fmt.Errorf("spawn: /proc/self/status: %s %q: %w", k, v, err)
			}
			if k[3] == 'B' {
				st.sigBlk = n
			} else {
				st.sigIgn = n
			}
			seen++
		}
	}
	if seen < 2 {
		return st, errors.New("spawn: /proc/self/status: no SigBlk/SigIgn lines")
	}
	return st, nil
}

// Terminate ends a server: SIGTERM to the process and its process group
// (it is a session leader, so the group is the server and whatever it
// started), then, if the process is still running after grace, SIGKILL to
// both. It does not reap; a process that has exited but was not reaped
// yet counts as ended.
func Terminate(p *Process, grace time.Duration) {
	if p == nil {
		return
	}
	// The process is signalled through its pidfd, so a reaped process
	// whose pid was reused is never hit; the group is only signalled
	// while the leader provably exists.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for {
		if p.exited() {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		time.Sleep(min(left, 10*time.Millisecond))
	}
	if err := p.Signal(syscall.SIGKILL); err == nil {
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
}

// RestoreNonblock puts O_NONBLOCK back on a socket whose *os.File copy
// was handed to a wait=yes server. os.StartProcess calls Fd on the files
// it passes, which switches the open file description, shared with the
// daemon's own listener, to blocking mode; the daemon must undo that
// before it polls the socket again, or Accept blocks a thread and Close
// stops interrupting it.
func RestoreNonblock(f *os.File) error {
	if f == nil {
		return errors.New("spawn: restore nonblock: nil file")
	}
	return RestoreNonblockConn(f)
}

// RestoreNonblockConn is RestoreNonblock for anything with a raw
// descriptor, such as the daemon's *net.TCPListener or *net.UDPConn.
func RestoreNonblockConn(c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("spawn: restore nonblock: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetNonblock(int(fd), true) }); err != nil {
		return fmt.Errorf("spawn: restore nonblock: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("spawn: restore nonblock: %w", serr)
	}
	return nil
}
