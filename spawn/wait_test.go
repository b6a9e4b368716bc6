package spawn

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestWaitStatus runs real processes and compares Wait's status with
// what the kernel says through wait4's encoding.
func TestWaitStatus(t *testing.T) {
	cases := []struct {
		name   string
		script string
		check  func(ws syscall.WaitStatus) bool
	}{
		{"exit 0", "exit 0", func(ws syscall.WaitStatus) bool { return ws.Exited() && ws.ExitStatus() == 0 }},
		{"exit 3", "exit 3", func(ws syscall.WaitStatus) bool { return ws.Exited() && ws.ExitStatus() == 3 }},
		{"exit 255", "exit 255", func(ws syscall.WaitStatus) bool { return ws.Exited() && ws.ExitStatus() == 255 }},
		{"SIGTERM", "kill -TERM $$", func(ws syscall.WaitStatus) bool { return ws.Signaled() && ws.Signal() == syscall.SIGTERM }},
		{"SIGKILL after a while", "sleep 0.2; kill -KILL $$", func(ws syscall.WaitStatus) bool { return ws.Signaled() && ws.Signal() == syscall.SIGKILL }},
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for _, c := range cases {
		p, err := Start(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", c.script}}, null)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		start := time.Now()
		ws, err := Wait(p)
		if err != nil {
			t.Fatalf("%s: Wait: %v", c.name, err)
		}
		if !c.check(ws) {
			t.Errorf("%s: status %#x (exited %v %d, signaled %v %v)", c.name, uint32(ws), ws.Exited(), ws.ExitStatus(), ws.Signaled(), ws.Signal())
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("%s: Wait took %v", c.name, time.Since(start))
		}
		// Reaped and released: the pid is gone and p can no longer signal.
		if err := p.Signal(syscall.SIGTERM); err == nil {
			t.Errorf("%s: a reaped process could still be signalled", c.name)
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(p.Pid)); err == nil {
			t.Errorf("%s: pid %d still exists (not reaped)", c.name, p.Pid)
		}
	}
}
