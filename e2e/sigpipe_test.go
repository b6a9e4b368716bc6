package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStderrReaderGoneDaemonLives: the daemon logs to stderr (as in a
// container) and whoever read that pipe goes away. Go kills a program
// that writes to a broken pipe on descriptor 2 unless it handles
// SIGPIPE; the daemon must keep serving and reloading instead.
func TestStderrReaderGoneDaemonLives(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := render(t, dir, baseDefaults+`
service daytime
{
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	bind        = 127.0.0.1
}
`, ports)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gxinetd, "-f", conf, "-dontfork", "-log-stderr", "-pidfile", filepath.Join(dir, "pid"))
	cmd.Stderr, cmd.Stdout = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	})
	// Read until it serves, then stop reading for good.
	buf := make([]byte, 65536)
	var seen string
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(seen, "Started working") {
		if time.Now().After(deadline) {
			t.Fatalf("gxinetd did not start; stderr:\n%s", seen)
		}
		pr.SetReadDeadline(time.Now().Add(time.Second))
		n, _ := pr.Read(buf)
		seen += string(buf[:n])
	}
	pr.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	// Each reload writes several daemon lines into the broken pipe.
	for i := 0; i < 3; i++ {
		cmd.Process.Signal(syscall.SIGHUP)
		time.Sleep(300 * time.Millisecond)
	}
	select {
	case err := <-exited:
		t.Fatalf("gxinetd died when its stderr reader went away: %v", err)
	default:
	}
	if out, err := tcpExchange(t, addr, "", 5*time.Second); err != nil || !dayTimeRE.MatchString(out) {
		t.Fatalf("daytime after the reloads: %q, %v", out, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gxinetd did not exit after SIGTERM")
	}
}
