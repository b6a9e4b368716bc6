package daemon

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// zombie starts /bin/true as a child of the test and returns its pid
// once it has exited, unreaped.
func zombie(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, p.Pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err == nil && siginfoPid(&info) == p.Pid {
			return p.Pid
		}
		if time.Now().After(deadline) {
			t.Fatal("the child did not exit")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isZombie(pid int) bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err == nil && siginfoPid(&info) == pid
}

// TestOrphanReaperSparesStartsAndServers: the orphan reaper never reaps
// a process the daemon started, neither while its start is under way
// (the pid is in no registry yet) nor once it is recorded as a server;
// it reaps a zombie that is neither.
func TestOrphanReaperSparesStartsAndServers(t *testing.T) {
	var s childSet
	s.kick = make(chan struct{}, 1)

	// A start under way: whatever zombie there is may be its process.
	s.begin()
	pid := zombie(t)
	if s.reapOrphan(pid) || !isZombie(pid) {
		t.Fatal("reaped a zombie while a start was under way")
	}
	// Recorded as a server: its own goroutine reaps it.
	c := &child{pid: pid}
	s.started(c)
	if s.reapOrphan(pid) || !isZombie(pid) {
		t.Fatal("reaped a recorded server")
	}
	// Forgotten (its goroutine reaped it; here, the orphan reaper may).
	s.remove(c)
	if !s.reapOrphan(pid) || isZombie(pid) {
		t.Fatal("did not reap a zombie that is no server's")
	}
	// A start that failed ends too.
	s.begin()
	s.failed()
	pid = zombie(t)
	if !s.reapOrphan(pid) {
		t.Fatal("a failed start still holds the reaper back")
	}
	select {
	case <-s.kick:
	default:
		t.Error("the end of a start must wake the reaper")
	}
}
