//go:build linux && cgo && !asan && !msan && (amd64 || arm64)

package spawn

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestReaperImageRuns: the reaper image made from this binary's own code
// runs as a static executable of its own. As the init of a new pid
// namespace with nothing to wait for it exits 0; anywhere else it
// refuses with 127, because "pid 2" would be somebody else's process.
func TestReaperImageRuns(t *testing.T) {
	needRoot(t)
	fd, err := reaperFD()
	if err != nil {
		t.Fatal(err)
	}
	if fd <= 3 {
		t.Fatalf("reaper descriptor %d: must stay clear of 0-3", fd)
	}
	path := "/proc/self/fd/" + strconv.Itoa(fd)
	for _, c := range []struct {
		name  string
		flags uintptr
		want  int
	}{{"own pid namespace", syscall.CLONE_NEWPID, 0}, {"host pid namespace", 0, 127}} {
		p, err := os.StartProcess(path, []string{"gxinetd-reaper"}, &os.ProcAttr{Sys: &syscall.SysProcAttr{Cloneflags: c.flags}})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		done := make(chan *os.ProcessState, 1)
		go func() { st, _ := p.Wait(); done <- st }()
		select {
		case st := <-done:
			if st.ExitCode() != c.want {
				t.Errorf("%s: %v, want exit %d", c.name, st, c.want)
			}
		case <-time.After(10 * time.Second):
			p.Kill()
			t.Fatalf("%s: the reaper did not exit", c.name)
		}
	}
}
