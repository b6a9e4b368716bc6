package spawn

import (
	"errors"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Wait reaps a server started by Start and returns its wait status.
//
// os.Process.Wait blocks an OS thread in waitid for the server's whole
// life, so a daemon with many short servers keeps handing its scheduler
// slots back and forth between threads parked in waitid. Here the wait
// is a pidfd in the runtime's poller, which wakes the goroutine when the
// server exits, and waitid then only collects the status. p is released
// afterwards: signalling it then reports that it has finished, and never
// reaches a process that reused the pid.
func Wait(p *os.Process) (syscall.WaitStatus, error) {
	pidfd, err := OpenPidfd(p)
	if err != nil {
		// Kernels before 5.10 (no PIDFD_NONBLOCK) or a process that is
		// not ours: the thread-blocking wait.
		return waitBlocking(p)
	}
	f := os.NewFile(uintptr(pidfd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return waitBlocking(p)
	}
	var (
		ws     syscall.WaitStatus
		exited bool
		werr   error
	)
	err = rc.Read(func(fd uintptr) bool {
		ws, exited, werr = Reap(int(fd))
		// Not exited yet: the poller reports when it has.
		return exited || werr != nil
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		if errors.Is(err, unix.ECHILD) {
			p.Release()
			return 0, os.NewSyscallError("waitid", err)
		}
		return waitBlocking(p)
	}
	p.Release()
	return ws, nil
}

// OpenPidfd opens a non-blocking, close-on-exec pidfd for a server Start
// returned and nobody has reaped: it becomes readable when the server
// exits, and Reap then collects the status.
func OpenPidfd(p *os.Process) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_PIDFD_OPEN, uintptr(p.Pid), unix.PIDFD_NONBLOCK, 0)
	if e != 0 {
		return -1, os.NewSyscallError("pidfd_open", e)
	}
	return int(r), nil
}

// Reap collects the status of the process behind a non-blocking pidfd
// (OpenPidfd). exited is false while the process runs. The system call
// cannot block, so it is made raw: no scheduler hand-off per server.
func Reap(pidfd int) (ws syscall.WaitStatus, exited bool, err error) {
	var info unix.Siginfo
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_WAITID, unix.P_PIDFD, uintptr(pidfd), uintptr(unsafe.Pointer(&info)),
			unix.WEXITED, 0, 0)
		switch e {
		case 0:
			return waitStatus(&info), true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, false, nil
		}
		return 0, false, e
	}
}

func waitBlocking(p *os.Process) (syscall.WaitStatus, error) {
	st, err := p.Wait()
	if err != nil {
		return 0, err
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	return ws, nil
}

// si_code values of SIGCHLD (asm-generic/siginfo.h), which x/sys lacks.
const (
	cldExited    = 1
	cldKilled    = 2
	cldDumped    = 3
	cldTrapped   = 4
	cldStopped   = 5
	cldContinued = 6
)

// waitStatus encodes waitid's answer the way wait4 reports it.
func waitStatus(info *unix.Siginfo) syscall.WaitStatus {
	code, status := siginfoCode(info)
	switch code {
	case cldExited:
		return syscall.WaitStatus(status&0xff) << 8
	case cldKilled:
		return syscall.WaitStatus(status & 0x7f)
	case cldDumped:
		return syscall.WaitStatus(status&0x7f) | 0x80
	case cldStopped, cldTrapped:
		return syscall.WaitStatus(status&0xff)<<8 | 0x7f
	case cldContinued:
		return 0xffff
	}
	return 0
}

// siginfoCode reads si_code and si_status of a SIGCHLD siginfo, which
// x/sys leaves in the padding: the union follows signo, errno and code,
// aligned to a pointer, and holds pid, uid, then status.
func siginfoCode(info *unix.Siginfo) (code, status int32) {
	b := (*[unsafe.Sizeof(unix.Siginfo{})]byte)(unsafe.Pointer(info))
	union := uintptr(12)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		union = 16
	}
	status = *(*int32)(unsafe.Pointer(&b[union+8]))
	return info.Code, status
}
