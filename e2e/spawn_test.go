package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startUnder is start with gxinetd run through a wrapper command that
// execs it (setpriv), so the daemon's pid is the wrapper's.
func startUnder(t *testing.T, wrapper []string, dir, confPath string) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: dir, conf: confPath, logFile: filepath.Join(dir, "daemon.log"),
		svcLog: filepath.Join(dir, "services.log"), stderr: &syncBuf{}, exited: make(chan struct{})}
	args := append(append([]string(nil), wrapper[1:]...), gxinetd, "-f", confPath, "-dontfork", "-filelog", d.logFile,
		"-pidfile", filepath.Join(dir, "gxinetd.pid"))
	d.cmd = exec.Command(wrapper[0], args...)
	d.cmd.Stderr = d.stderr
	d.cmd.Stdout = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	d.waitLog(`Started working`, 15*time.Second)
	return d
}

// noSysResource runs gxinetd as root without CAP_SYS_RESOURCE: it may
// not raise a hard limit, as a non-root daemon may not.
var noSysResource = []string{"setpriv", "--inh-caps=-sys_resource", "--bounding-set=-sys_resource"}

// procLimitHard reads a process's hard limit from /proc/PID/limits.
func procLimitHard(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name) {
			f := strings.Fields(l[len(name):])
			if len(f) >= 2 {
				return f[1]
			}
		}
	}
	t.Fatalf("no %q in /proc/%d/limits:\n%s", name, pid, b)
	return ""
}

// mayRaise reports whether a process has CAP_SYS_RESOURCE in effect.
func mayRaise(t *testing.T, pid int) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<24) != 0 // CAP_SYS_RESOURCE
		}
	}
	t.Fatal("no CapEff")
	return false
}

// limitProbe is a server that prints its hard and soft descriptor limit.
func limitProbe(t *testing.T, dir string) string {
	t.Helper()
	probe := filepath.Join(dir, "limits")
	if err := os.WriteFile(probe, []byte("#!/bin/sh\nulimit -Hn\nulimit -Sn\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return probe
}

// TestFilesUnlimited: rlimit_files = UNLIMITED made every start fail with
// EPERM (the kernel refuses more descriptors than fs.nr_open, even to
// root) while -t called the configuration OK. The check mode now says
// what servers get, and they get it: nr_open, or the daemon's hard limit
// where it may not raise its own.
func TestFilesUnlimited(t *testing.T) {
	needRoot(t)
	needCmd(t, "setpriv")
	b, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		t.Fatal(err)
	}
	nrOpen := strings.TrimSpace(string(b))
	for _, w := range []struct {
		name    string
		wrapper []string
	}{{"as-started", []string{"env"}}, {"no-cap-sys-resource", noSysResource}} {
		t.Run(w.name, func(t *testing.T) {
			ports := freePorts(t, 1)
			dir := newDir(t)
			conf := render(t, dir, baseDefaults+`
service files
{
	type         = UNLISTED
	socket_type  = stream
	protocol     = tcp
	port         = {{P0}}
	wait         = no
	user         = root
	server       = `+limitProbe(t, dir)+`
	rlimit_files = UNLIMITED
}
`, ports)
			chk, err := exec.Command(w.wrapper[0], append(w.wrapper[1:], gxinetd, "-t", "-f", conf)...).CombinedOutput()
			if err != nil {
				t.Fatalf("-t: %v\n%s", err, chk)
			}
			line := mustRE(`(?m)^` + conf + `:\d+:\d+: warning W-RLIMIT: service files: rlimit_files: UNLIMITED is more than .*: servers get (\d+)$`).FindStringSubmatch(string(chk))
			if line == nil || !strings.Contains(string(chk), "configuration OK") {
				t.Fatalf("-t output lacks the W-RLIMIT warning or the verdict:\n%s", chk)
			}
			d := startUnder(t, w.wrapper, dir, conf)
			want := nrOpen
			if !mayRaise(t, d.pid()) {
				want = procLimitHard(t, d.pid(), "Max open files")
			}
			if line[1] != want {
				t.Errorf("-t says servers get %s, the daemon gives %s", line[1], want)
			}
			out, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if out != want+"\n"+want+"\n" {
				t.Errorf("server's descriptor limits (hard, soft) %q, want %s twice\n%s", out, want, d.daemonLog())
			}
		})
	}
}

// TestServerLimitFollowsDaemon: a server's descriptor limit without
// rlimit_files is the daemon's hard limit as it is when the server
// starts. It was fixed when the service was loaded: once the daemon's
// limit was lowered with prlimit, every start of a daemon that may not
// raise it failed with EPERM until SIGHUP.
func TestServerLimitFollowsDaemon(t *testing.T) {
	needRoot(t)
	needCmd(t, "setpriv", "prlimit")
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := render(t, dir, baseDefaults+`
service files
{
	type         = UNLISTED
	socket_type  = stream
	protocol     = tcp
	port         = {{P0}}
	wait         = no
	user         = nobody
	server       = `+limitProbe(t, dir)+`
}
`, ports)
	d := startUnder(t, noSysResource, dir, conf)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	hard := procLimitHard(t, d.pid(), "Max open files")
	if out, err := tcpExchange(t, addr, "", 10*time.Second); err != nil || out != hard+"\n"+hard+"\n" {
		t.Fatalf("before: %q %v, want %s twice", out, err, hard)
	}
	n, _ := strconv.Atoi(hard)
	low := strconv.Itoa(min(n/2, 512))
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(d.pid()), "--nofile="+low+":"+low).CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v\n%s", err, out)
	}
	for range 2 {
		out, err := tcpExchange(t, addr, "", 10*time.Second)
		if err != nil || out != low+"\n"+low+"\n" {
			t.Fatalf("after prlimit: %q %v, want %s twice\n%s", out, err, low, d.daemonLog())
		}
	}
	if log := d.daemonLog(); strings.Contains(log, "rlimit_files") {
		t.Errorf("a start failed:\n%s", log)
	}
}

// TestOnePidfdPerServer: the daemon holds one descriptor per running
// server, the pidfd the clone returned (it held two: os.Process's and
// the reaper's own).
func TestOnePidfdPerServer(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := render(t, dir, baseDefaults+`
service cat
{
	type         = UNLISTED
	socket_type  = stream
	protocol     = tcp
	port         = {{P0}}
	wait         = no
	user         = root
	server       = /bin/cat
}
`, ports)
	d := start(t, dir, conf)
	const n = 4
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// cat answers once it runs: the server has started.
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(c, "ping %d\n", i); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	d.waitSvcLog(`(?s)(START: cat.*){4}`, 10*time.Second)
	// The reapers may still be on their way to their wait: the count is
	// looked at until it is right, for a bounded time (never after a
	// fixed pause, which a loaded host can outlast).
	var kids []int
	var pidfds map[int]int
	count := func() bool {
		kids, _ = children(d.pid())
		pidfds = map[int]int{}
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fdinfo", d.pid()))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", d.pid(), e.Name()))
			if m := mustRE(`(?m)^Pid:\s*(\d+)$`).FindStringSubmatch(string(b)); m != nil {
				p, _ := strconv.Atoi(m[1])
				pidfds[p]++
			}
		}
		if len(kids) != n {
			return false
		}
		for _, k := range kids {
			if pidfds[k] != 1 {
				return false
			}
		}
		return true
	}
	for deadline := waitBound(5 * time.Second); !count(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			break
		}
	}
	if len(kids) != n {
		t.Fatalf("%d children, want %d", len(kids), n)
	}
	for _, k := range kids {
		if pidfds[k] != 1 {
			t.Errorf("server %d: %d pidfds in the daemon, want 1 (all: %v)", k, pidfds[k], pidfds)
		}
	}
}
