package daemon

import (
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/logging"
)

// Orphans. As PID 1 (xinetd -dontfork is a common container entry
// point) the daemon is the parent of every process whose own parent
// exits: a server's background job, a double-forking daemon. Nobody
// else waits for them, so each would stay a zombie for good. The daemon
// reaps them, without ever reaping a server of its own: each server is
// waited for through its pidfd by its own goroutine (spawn.Wait), which
// writes its EXIT record with the real status, and a wait(-1) would
// steal that status.
//
// The orphan reaper therefore looks at a zombie first without reaping
// it (waitid with WNOWAIT) and reaps it, by its pid, only if it is no
// server of the daemon's: not in the registry of running servers, and
// no server start under way (between clone and the registration the new
// pid is in no registry yet). Both are checked under the registry's lock,
// which every start takes before it clones, and the reap is made while
// still holding it, so no start can begin in between and a pid seen as
// an orphan's zombie cannot become a server's. When the zombie in front
// is a server of the daemon's, or a start is under way, the reaper waits
// for the next event: its SIGCHLD, a server reaped by its goroutine, or
// a start that ended.

// reapsOrphans reports whether this daemon must reap orphans: it is
// PID 1 of its PID namespace, whose orphans the kernel gives to it.
func reapsOrphans() bool { return os.Getpid() == 1 }

// startOrphanReaper begins reaping orphans (see above). It must run
// before the first server starts.
func (d *Daemon) startOrphanReaper() {
	d.kids.kick = make(chan struct{}, 1)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	go func() {
		for {
			select {
			case <-sig:
			case <-d.kids.kick:
			}
			d.reapOrphans()
		}
	}()
}

// reapOrphans reaps every orphan zombie in front of the first zombie
// that is a server of the daemon's. It returns whether the daemon has
// no child process left at all.
func (d *Daemon) reapOrphans() (none bool) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return errors.Is(err, unix.ECHILD)
		}
		pid := siginfoPid(&info)
		if pid <= 0 || !d.kids.reapOrphan(pid) {
			return false
		}
		d.log.Logf(logging.LevelDebug, "child", "unknown child process %d died", pid)
	}
}

// reapOrphan reaps pid if it is no server of the daemon's and no start is
// under way, and reports whether it did.
func (s *childSet) reapOrphan(pid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.starting > 0 || s.m[pid] != nil {
		return false
	}
	var info unix.Siginfo
	for {
		// WNOHANG: the pid is a zombie already, this cannot wait.
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG, nil)
		if err != unix.EINTR {
			return err == nil
		}
	}
}

// siginfoPid reads si_pid: after three ints, at the union's alignment.
func siginfoPid(info *unix.Siginfo) int {
	const align = unsafe.Alignof(uintptr(0))
	const off = (12 + align - 1) &^ (align - 1)
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(info), off)))
}

// endNamespace is a container init's shutdown: every process left in the
// PID namespace (servers, their background jobs, orphans) gets SIGTERM,
// the daemon reaps them for up to the grace period, and what is left gets
// SIGKILL. When PID 1 exits the kernel kills the rest without a word; a
// container's init must give them the chance to end cleanly first.
func (d *Daemon) endNamespace() {
	if err := unix.Kill(-1, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		d.log.Logf(logging.LevelError, "main", "kill(-1, SIGTERM): %v", err)
	}
	deadline := time.Now().Add(d.o.Grace)
	// Done when no process is left and every server's EXIT record is
	// written (its goroutine records it before it leaves the registry).
	for !d.reapOrphans() || len(d.kids.list()) > 0 {
		if time.Now().After(deadline) {
			d.log.Logf(logging.LevelWarning, "main", "processes left after %v: SIGKILL", d.o.Grace)
			unix.Kill(-1, unix.SIGKILL)
			return
		}
		// The reaper goroutine and the servers' goroutines reap; this only
		// watches for the namespace to empty.
		time.Sleep(10 * time.Millisecond)
	}
}
