package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

// BenchmarkIdleRedirectSessions measures what an idle redirect session
// costs the daemon: N clients connect through gxinetd to a backend (in
// this process), exchange one line, and stay connected doing nothing.
// The figures are the daemon's resident memory (VmRSS) and descriptors
// after the N sessions are up, less the same before them (after a
// warm-up of 100 sessions that are closed again), divided by N. The
// kernel's socket buffers are not in VmRSS.
//
//	GXINETD_SESSIONS=8500 go test -run '^$' -bench IdleRedirectSessions -benchtime 1x ./e2e
//
// Variants: plain redirect; PROXY protocol in and out (the fleet set-up:
// balancer -> gxinetd -> backend).
func BenchmarkIdleRedirectSessions(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("GXINETD_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	// Two descriptors per session in the daemon, one here and one in
	// the backend: the daemon's limit (inherited from this process)
	// decides how many sessions fit, less the eighth of it the daemon
	// keeps in reserve (it refuses sessions that would eat into that).
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	fits := func(lim uint64) uint64 { return (lim - lim/8 - 200) / 2 }
	if uint64(n) > fits(rl.Cur) {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		if uint64(n) > fits(rl.Cur) {
			b.Skipf("%d sessions need more descriptors than the limit here (%d) allows the daemon; GXINETD_SESSIONS=%d fits", n, rl.Cur, fits(rl.Cur))
		}
	}
	for _, pp := range []bool{false, true} {
		name := "plain"
		if pp {
			name = "proxy-in-out"
		}
		b.Run(name, func(b *testing.B) { idleSessions(b, n, pp) })
	}
}

func idleSessions(b *testing.B, n int, pp bool) {
	bin := filepath.Join(b.TempDir(), "echobackend")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/echobackend").CombinedOutput(); err != nil {
		b.Fatalf("building the backend: %v\n%s", err, out)
	}
	args := []string{"-addr", "127.0.0.1:0"}
	if pp {
		args = append(args, "-pp")
	}
	be := exec.Command(bin, args...)
	stdin, _ := be.StdinPipe()
	stdout, _ := be.StdoutPipe()
	if err := be.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); be.Wait() }()
	var bePort int
	if _, err := fmt.Fscanf(stdout, "ready %d\n", &bePort); err != nil {
		b.Fatalf("backend: %v", err)
	}
	ports := testnet.Ports(b, 1)
	dir := b.TempDir()
	extra := ""
	if pp {
		extra = "\tproxy_protocol = v2\n\tproxy_from = 127.0.0.0/8\n\tredirect_proxy_protocol = v1\n"
	}
	conf := fmt.Sprintf(`
defaults
{
	cps       = 0 0
	instances = UNLIMITED
}
service relay
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = %d
	wait        = no
	user        = root
	redirect    = 127.0.0.1 %d
%s}
`, ports[0], bePort, extra)
	path := dir + "/xinetd.conf"
	os.WriteFile(path, []byte(conf), 0o644)
	pid := startB(b, dir, path)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	open := func(i int) net.Conn {
		// Many source addresses: 10,000 connections from one would
		// crowd the ephemeral ports.
		src := fmt.Sprintf("127.0.%d.%d", 1+i/250, 2+i%250)
		c, err := dialFrom(src, addr)
		if err != nil {
			b.Fatalf("session %d: %v", i, err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		msg := []byte("hi\n")
		if pp {
			msg = append(ppV2(fmt.Sprintf("192.0.2.1:%d", 1000+i%60000), "198.51.100.1:25"), msg...)
		}
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 3)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi\n" {
			b.Fatalf("session %d: %q %v", i, buf, err)
		}
		c.SetDeadline(time.Time{})
		return c
	}
	var warm []net.Conn
	for i := 0; i < 100; i++ {
		warm = append(warm, open(i))
	}
	for _, c := range warm {
		c.Close()
	}
	time.Sleep(2 * time.Second)
	rss0, fd0 := procRSS(pid), procFDs(pid)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	b.ResetTimer()
	for i := 0; i < n; i++ {
		conns = append(conns, open(i))
	}
	time.Sleep(3 * time.Second)
	rss1, fd1 := procRSS(pid), procFDs(pid)
	b.StopTimer()
	b.ReportMetric(float64(rss1-rss0)*1024/float64(n), "B/session")
	b.ReportMetric(float64(fd1-fd0)/float64(n), "fds/session")
	b.ReportMetric(float64(rss1), "KB-rss")
}

func procRSS(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

func procFDs(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

// startB runs gxinetd for a benchmark and waits until it serves; it is
// stopped by PID when the benchmark ends.
func startB(b *testing.B, dir, conf string) int {
	b.Helper()
	logf := dir + "/daemon.log"
	cmd := exec.Command(gxinetd, "-f", conf, "-dontfork", "-filelog", logf, "-pidfile", dir+"/gxinetd.pid")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(readFile(logf), "Started working") {
		if time.Now().After(deadline) {
			b.Fatalf("gxinetd did not start:\n%s", readFile(logf))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd.Process.Pid
}
