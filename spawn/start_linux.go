package spawn

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
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

// helperTimeout bounds how long Start waits for the exec helper to report.
// The helper's own work takes well under a millisecond; only an execve
// stuck on a dead file system comes near this.
var helperTimeout = 10 * time.Second

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
// Go's own fork does (a build without cgo); the clone path returns at
// once and waits in the poller.
const StartHoldsProc = !haveClone

// Start runs spec with stdio as its descriptors 0, 1 and 2 and returns
// the running process. The server is a session leader with nothing else
// open, default signal dispositions and an empty signal mask, and with
// spec's credentials, umask, niceness and limits already in force when
// its first instruction runs. Start never reaps a server that started:
// the caller must Wait for it (or Release it after reaping it some other
// way), which also closes the pidfd os.Process holds.
//
// Built with cgo (the normal build), Start clones a child that carries
// out every step of the Spec and execs the server (startClone). Without
// cgo, a Spec asking for nothing os.StartProcess cannot do is started
// that way, and anything else through the exec helper (see HelperMain).
// A failure of any step comes back as a *StartError after the child has
// been reaped.
func Start(spec Spec, stdio *os.File) (*os.Process, error) {
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
	switch {
	case forceHelper:
		return startHelper(&spec, stdio)
	case haveClone && !noClone:
		return startClone(&spec, stdio)
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

// Refresh forgets the cached signal dispositions, umask and credentials,
// so the next Start reads them again. Call it after changing any of them
// (the daemon does once it has set up its signal handling and umask).
func Refresh() {
	procCache.Store(nil)
	credCache.Store(nil)
}

// needsHelper reports whether the plain fork+exec of os.StartProcess
// would leave the server with something other than spec asks for.
func needsHelper(spec *Spec) bool {
	if forceHelper {
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
		// For RLIMIT_NOFILE Go raises its own soft limit to hard-1 at
		// start-up and gives children the original back, so "current
		// soft equals hard" is the only state a child inherits as is.
		if cur.Cur != r.Value || cur.Max != r.Value {
			return true
		}
	}
	return false
}

func startPlain(spec *Spec, stdio *os.File) (*os.Process, error) {
	sys := &syscall.SysProcAttr{Setsid: true}
	if c := spec.Cred; c != nil {
		groups := make([]uint32, len(c.Groups))
		copy(groups, c.Groups)
		// Groups empty and NoSetGroups false: the child calls
		// setgroups(0), so no supplementary group of the daemon leaks.
		sys.Credential = &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: groups}
	}
	// The same *os.File three times: os.StartProcess dup2s the one
	// descriptor onto 0, 1 and 2 with no copying goroutine.
	p, err := os.StartProcess(spec.Path, spec.Argv, &os.ProcAttr{
		Dir:   spec.Dir,
		Env:   spec.Env,
		Files: []*os.File{stdio, stdio, stdio},
		Sys:   sys,
	})
	if err != nil {
		return nil, forkError(spec, err)
	}
	return p, nil
}

// forkError names the step of a failed os.StartProcess. Go's child only
// reports an errno, so a missing working directory would otherwise read
// like a missing program.
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

func startHelper(spec *Spec, stdio *os.File) (*os.Process, error) {
	// gob, not JSON: environment strings are bytes, and JSON would
	// replace anything that is not UTF-8.
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(spec); err != nil {
		return nil, fmt.Errorf("spawn: encode spec for %s: %w", spec.Path, err)
	}
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

	p, err := os.StartProcess(helperExe, []string{"gxinetd-exec", spec.Path}, &os.ProcAttr{
		Dir:   spec.Dir,
		Env:   []string{helperEnv + "=" + helperMagic},
		Files: []*os.File{stdio, stdio, stdio, specR, statW},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	specR.Close()
	statW.Close()
	if err != nil {
		return nil, forkError(spec, err)
	}

	// A helper that died before reading everything makes this write fail
	// with EPIPE; its status (or the lack of one) says why.
	_, werr := specW.Write(buf.Bytes())
	specW.Close()

	_ = statR.SetReadDeadline(time.Now().Add(helperTimeout))
	msg, rerr := io.ReadAll(io.LimitReader(statR, 4096))
	switch {
	case rerr != nil:
		_ = p.Kill()
		_, _ = p.Wait()
		return nil, &StartError{Step: "exec", Arg: spec.Path,
			Err: fmt.Errorf("exec helper gave no status within %v: %w", helperTimeout, rerr)}
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
func Terminate(p *os.Process, grace time.Duration) {
	if p == nil {
		return
	}
	// os.Process signals through a pidfd, so a reaped process whose pid
	// was reused is never hit; the group is only signalled while the
	// leader provably exists.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for {
		if ended(p) {
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

// ended reports whether p has exited, reaped or not.
func ended(p *os.Process) bool {
	if err := p.Signal(syscall.Signal(0)); err != nil {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name, which may itself
	// contain ") ".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
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
