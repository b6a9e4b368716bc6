package spawn

import (
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
// server has exited; os.Process.Wait then only collects the status,
// without blocking, and closes the Process's own pidfd. (Release would
// do that too, but it writes p.Pid, which Terminate may be reading.)
func Wait(p *os.Process) (syscall.WaitStatus, error) {
	if pidfd, err := openPidfd(p.Pid); err == nil {
		f := os.NewFile(uintptr(pidfd), "pidfd")
		if rc, err := f.SyscallConn(); err == nil {
			// An error here (ECHILD: reaped elsewhere) is Wait's to report.
			_ = rc.Read(func(fd uintptr) bool {
				exited, err := hasExited(int(fd))
				return exited || err != nil
			})
		}
		f.Close()
	}
	st, err := p.Wait()
	if err != nil {
		return 0, err
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	return ws, nil
}

// openPidfd opens a non-blocking, close-on-exec pidfd: it becomes
// readable when the process exits. Kernels before 5.10 (no
// PIDFD_NONBLOCK) refuse, and Wait then blocks a thread as
// os.Process.Wait does.
func openPidfd(pid int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_PIDFD_OPEN, uintptr(pid), unix.PIDFD_NONBLOCK, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// hasExited reports whether the process behind a non-blocking pidfd has
// exited, leaving it to be reaped (WNOWAIT). The call cannot block, so
// it is made raw: no scheduler hand-off per server.
func hasExited(pidfd int) (bool, error) {
	var info unix.Siginfo
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_WAITID, unix.P_PIDFD, uintptr(pidfd), uintptr(unsafe.Pointer(&info)),
			unix.WEXITED|unix.WNOWAIT, 0, 0)
		switch e {
		case 0:
			return true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false, nil
		}
		return false, e
	}
}
