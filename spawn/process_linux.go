package spawn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Process is a server that Start started: its pid and the pidfd that
// the kernel handed out when the child was created (CLONE_PIDFD), so one
// descriptor per running server names exactly that process, for signals
// and for the wait, however soon its pid is reused after the reap.
//
// On a kernel without pidfds (before 5.4) the Process works by pid: a
// mutex orders every signal against the reap, and the wait blocks a
// thread, as os.Process does there.
type Process struct {
	// Pid is the server's process id.
	Pid int

	// pidfd is non-blocking and registered with the runtime's poller;
	// nil when the Process works by pid.
	pidfd *os.File

	mu     sync.Mutex // pid mode: held while signalling and while reaping
	reaped bool       // pid mode: the pid may belong to someone else now

	// report is the read end of the pipe on which the reaper of a pid
	// namespace (Pid is the reaper) writes the server's wait status
	// before it exits; nil for other servers.
	report int

	// onReaped runs once Wait has reaped the process (not after
	// Release, nor after a failed wait: then it never runs). A reaper
	// that shares the daemon's memory frees its stack here.
	onReaped func()
}

// noPidfd makes newProcess work by pid, as on a kernel without pidfds:
// tests run both ways with it.
var noPidfd bool

// pidfdWorks reports whether waitid accepts P_PIDFD (Linux 5.4): a
// descriptor number that is not open draws EBADF there, and EINVAL
// before (so does a negative one).
var pidfdWorks = sync.OnceValue(func() bool {
	var info sigchldInfo
	_, _, e := unix.RawSyscall6(unix.SYS_WAITID, unix.P_PIDFD, 1<<31-1, uintptr(unsafe.Pointer(&info)),
		unix.WEXITED|unix.WNOHANG, 0, 0)
	return e == unix.EBADF
})

// newProcess takes ownership of pidfd (-1 for none). The descriptor
// must be close-on-exec; it is made non-blocking here if it is not, so
// that the runtime's poller can wait on it.
func newProcess(pid, pidfd int, nonblock bool) *Process {
	p := &Process{Pid: pid, report: -1}
	if pidfd < 0 {
		return p
	}
	if noPidfd || !pidfdWorks() {
		unix.Close(pidfd)
		return p
	}
	if !nonblock {
		if err := unix.SetNonblock(pidfd, true); err != nil {
			unix.Close(pidfd)
			return p
		}
	}
	p.pidfd = os.NewFile(uintptr(pidfd), "pidfd")
	return p
}

// Wait reaps the server and returns its wait status. It waits in the
// runtime's poller, so no thread is parked per running server (except on
// a kernel without pidfds), and it closes the pidfd. Call it once.
func (p *Process) Wait() (syscall.WaitStatus, error) {
	ws, err := p.wait()
	if err == nil && p.onReaped != nil {
		p.onReaped()
		p.onReaped = nil
	}
	if p.report > 0 {
		// The reaper's exit status cannot say "killed by signal N"
		// (nothing kills the init of a namespace from inside it): it
		// wrote the server's own status here before it exited. Nothing
		// there means the reaper itself was killed (SIGKILL from the
		// daemon): its own status is the answer.
		var b [4]byte
		if n, rerr := unix.Read(p.report, b[:]); rerr == nil && n == 4 {
			ws = syscall.WaitStatus(binary.LittleEndian.Uint32(b[:]))
		}
		unix.Close(p.report)
		p.report = -1
	}
	return ws, err
}

func (p *Process) wait() (syscall.WaitStatus, error) {
	if p.pidfd == nil {
		return p.waitPid()
	}
	rc, err := p.pidfd.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("spawn: wait %d: %w", p.Pid, err)
	}
	var ws syscall.WaitStatus
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		var done bool
		ws, done, werr = reapPidfd(int(fd))
		return done || werr != nil
	})
	p.pidfd.Close()
	if err == nil {
		err = werr
	}
	if err != nil {
		return 0, fmt.Errorf("spawn: wait %d: %w", p.Pid, err)
	}
	return ws, nil
}

// reapPidfd reaps the process behind a pidfd if it has exited. The call
// cannot block (WNOHANG), so it is made raw: no scheduler hand-off per
// server.
func reapPidfd(pidfd int) (syscall.WaitStatus, bool, error) {
	for {
		var info sigchldInfo
		_, _, e := unix.RawSyscall6(unix.SYS_WAITID, unix.P_PIDFD, uintptr(pidfd), uintptr(unsafe.Pointer(&info)),
			unix.WEXITED|unix.WNOHANG, 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e != 0:
			return 0, false, e
		case info.Pid == 0:
			return 0, false, nil
		}
		return info.status(), true, nil
	}
}

// waitPid is Wait by pid: block until the process can be reaped, leaving
// it a zombie (so its pid cannot be reused while Signal may still use
// it), then reap it under the mutex.
func (p *Process) waitPid() (syscall.WaitStatus, error) {
	for {
		var info sigchldInfo
		_, _, e := syscall.Syscall6(unix.SYS_WAITID, unix.P_PID, uintptr(p.Pid), uintptr(unsafe.Pointer(&info)),
			unix.WEXITED|unix.WNOWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, fmt.Errorf("spawn: wait %d: %w", p.Pid, e)
		}
		break
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(p.Pid, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		p.reaped = true
		if err != nil {
			return 0, fmt.Errorf("spawn: wait %d: %w", p.Pid, err)
		}
		return ws, nil
	}
}

// Signal sends sig to the server. After the server has been reaped (or
// released) it returns os.ErrProcessDone and signals nothing: the pid
// may belong to another process by then.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.pidfd == nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.reaped {
			return os.ErrProcessDone
		}
		if err := syscall.Kill(p.Pid, sig); err != nil {
			if err == syscall.ESRCH {
				return os.ErrProcessDone
			}
			return err
		}
		return nil
	}
	rc, err := p.pidfd.SyscallConn()
	if err != nil {
		return os.ErrProcessDone
	}
	var serr error
	// Control holds the descriptor open against a concurrent Wait's close.
	if err := rc.Control(func(fd uintptr) {
		_, _, e := unix.RawSyscall6(unix.SYS_PIDFD_SEND_SIGNAL, fd, uintptr(sig), 0, 0, 0, 0)
		if e != 0 {
			serr = e
		}
	}); err != nil {
		return os.ErrProcessDone
	}
	if serr == unix.ESRCH {
		return os.ErrProcessDone
	}
	return serr
}

// Kill sends SIGKILL to the server.
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL) }

// Release gives up the Process without reaping it (for a caller that
// reaps the server some other way): it closes the pidfd, and Signal
// does nothing from then on.
func (p *Process) Release() error {
	if p.report > 0 {
		unix.Close(p.report)
		p.report = -1
	}
	if p.pidfd == nil {
		p.mu.Lock()
		p.reaped = true
		p.mu.Unlock()
		return nil
	}
	return p.pidfd.Close()
}

// exited reports whether the server has exited, reaped or not.
func (p *Process) exited() bool {
	if p.pidfd == nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.reaped {
			return true
		}
		for {
			var info sigchldInfo
			_, _, e := unix.RawSyscall6(unix.SYS_WAITID, unix.P_PID, uintptr(p.Pid), uintptr(unsafe.Pointer(&info)),
				unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, 0, 0)
			if e != unix.EINTR {
				// ECHILD: reaped by someone else, so gone too.
				return e != 0 || info.Pid != 0
			}
		}
	}
	rc, err := p.pidfd.SyscallConn()
	if err != nil {
		return true // closed: reaped
	}
	ready := false
	if err := rc.Control(func(fd uintptr) {
		// A pidfd polls readable once the process has exited. EINTR is
		// common here (the runtime preempts with signals); any other
		// error says nothing, and Terminate then goes on to SIGKILL,
		// which is harmless for a process that has ended.
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(pfd, 0)
			if err != unix.EINTR {
				ready = err == nil && n > 0
				return
			}
		}
	}); err != nil {
		return true // closed: reaped
	}
	return ready
}

// sigchldInfo is the kernel's siginfo_t as waitid fills it for a child
// (the _sigchld member, which starts at offset 16 on 64-bit targets).
type sigchldInfo struct {
	Signo, Errno, Code int32
	_                  int32
	Pid                int32
	UID                uint32
	Status             int32
	_                  [128 - 28]byte
}

// The si_code values of a child's siginfo.
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// status encodes the siginfo as wait4 would have.
func (i *sigchldInfo) status() syscall.WaitStatus {
	switch i.Code {
	case cldExited:
		return syscall.WaitStatus((i.Status & 0xff) << 8)
	case cldKilled:
		return syscall.WaitStatus(i.Status & 0x7f)
	case cldDumped:
		return syscall.WaitStatus(i.Status&0x7f | 0x80)
	}
	return syscall.WaitStatus(0xff) // not an exit: never asked for (WEXITED only)
}

// Wait reaps p; see Process.Wait.
func Wait(p *Process) (syscall.WaitStatus, error) {
	if p == nil {
		return 0, errors.New("spawn: wait: no process")
	}
	return p.Wait()
}
