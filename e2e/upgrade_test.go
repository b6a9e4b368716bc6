package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Seamless upgrade (gxinetd -upgrade): the running daemon starts a fresh
// copy of its binary, hands it every listener and exits once its own
// sessions are over. These tests run the real binaries, count every
// refused or reset connection, and follow the daemons by the pidfile.

// upBinary copies the gxinetd binary into dir, so a test can replace the
// file an upgrade starts (as a package upgrade does) without touching the
// one the other tests use.
func upBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin", "gxinetd")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	upReplace(t, bin, gxinetd)
	return bin
}

// upReplace puts a copy of src at path by rename, as dpkg does: a
// daemon running the old file keeps it (its /proc/PID/exe says
// "(deleted)"), and anything started from path now gets the new one.
func upReplace(t *testing.T, path, src string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// upDaemon is a gxinetd that upgrades replace: it is followed by its
// pidfile, and whatever the pidfile names at the end is stopped (only
// daemons this test started, directly or through -upgrade).
type upDaemon struct {
	t       *testing.T
	bin     string
	dir     string
	conf    string
	pidfile string
	logFile string
	first   *exec.Cmd
	exited  chan struct{}
	pids    []int // every daemon seen, oldest first
}

// upStart starts bin on conf in the foreground (-dontfork) and waits
// until it serves.
func upStart(t *testing.T, bin, dir, conf string, extra ...string) *upDaemon {
	t.Helper()
	return upStartEnv(t, bin, dir, conf, nil, extra...)
}

// upStartEnv is upStart with more environment variables.
func upStartEnv(t *testing.T, bin, dir, conf string, env []string, extra ...string) *upDaemon {
	t.Helper()
	u := &upDaemon{t: t, bin: bin, dir: dir, conf: conf, pidfile: filepath.Join(dir, "gxinetd.pid"),
		logFile: filepath.Join(dir, "daemon.log"), exited: make(chan struct{})}
	args := append([]string{"-f", conf, "-dontfork", "-filelog", u.logFile, "-pidfile", u.pidfile,
		"-dumpfile", filepath.Join(dir, "xinetd.dump")}, extra...)
	u.first = exec.Command(bin, args...)
	u.first.Env = append(os.Environ(), env...)
	// A file, not a pipe: the successors inherit the daemon's stdio, and
	// Wait would wait for the last of them to close a pipe.
	out, err := os.Create(filepath.Join(dir, "stdio.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	u.first.Stdout, u.first.Stderr = out, out
	if err := u.first.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.first.Wait(); close(u.exited) }()
	u.pids = append(u.pids, u.first.Process.Pid)
	t.Cleanup(u.stop)
	waitIn(t, u.log, `Started working`, 15*time.Second)
	return u
}

func (u *upDaemon) log() string { return readFile(u.logFile) }

// pid is the pid the pidfile names now.
func (u *upDaemon) pid() int {
	n, _ := strconv.Atoi(strings.TrimSpace(readFile(u.pidfile)))
	return n
}

// upgrade runs gxinetd -upgrade and returns its exit status and output.
func (u *upDaemon) upgrade(args ...string) (int, string) {
	// The client is the test's own binary: u.bin may be broken on purpose.
	cmd := exec.Command(gxinetd, append([]string{"-upgrade", "-pidfile", u.pidfile}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	u.t.Fatalf("running -upgrade: %v", err)
	return -1, ""
}

// mustUpgrade upgrades and checks what -upgrade promises: exit 0, and the
// pidfile naming a new, live gxinetd started from the binary's path.
func (u *upDaemon) mustUpgrade(args ...string) int {
	u.t.Helper()
	old := u.pid()
	code, out := u.upgrade(args...)
	if code != 0 {
		u.t.Fatalf("-upgrade exited %d: %s\n%s", code, out, u.log())
	}
	now := u.pid()
	if now == old || now <= 0 || !upAlive(now) {
		u.t.Fatalf("after -upgrade the pidfile names %d (was %d): %s", now, old, out)
	}
	if !strings.Contains(out, fmt.Sprintf("pid %d serves in place of pid %d", now, old)) {
		u.t.Errorf("-upgrade said %q", out)
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", now)); err != nil || exe != u.bin {
		u.t.Errorf("new daemon runs %q (%v), want the fresh %s", exe, err, u.bin)
	}
	u.pids = append(u.pids, now)
	return now
}

// stop ends whatever daemon the pidfile names, the first one, and any
// other running this test's own copy of the binary (a new daemon a failed
// test left behind): nothing else runs that path.
func (u *upDaemon) stop() {
	if p := u.pid(); p > 0 {
		u.pids = append(u.pids, p)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && isOurs(pid, u.bin) {
			u.pids = append(u.pids, pid)
		}
	}
	for _, pid := range u.pids {
		if pid > 0 && upAlive(pid) && isOurs(pid, u.bin) {
			syscall.Kill(pid, syscall.SIGTERM)
			upGone(pid, 10*time.Second)
			if upAlive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	select {
	case <-u.exited:
	case <-time.After(10 * time.Second):
		u.first.Process.Kill()
		<-u.exited
	}
}

// alive reports whether pid runs (a zombie does not).
func upAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z' && s[i+2] != 'X'
}

// isOurs reports whether pid runs bin (or its replaced older copy).
func isOurs(pid int, bin string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && strings.TrimSuffix(exe, " (deleted)") == bin
}

func upGone(pid int, timeout time.Duration) bool {
	deadline := waitBound(timeout)
	for upAlive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// loadStats counts a client loop's outcomes by kind.
type loadStats struct {
	ok, refused, reset, other atomic.Int64
	mu                        sync.Mutex
	first                     []string
}

func (s *loadStats) note(what string, err error, got string) {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		s.refused.Add(1)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		s.reset.Add(1)
	default:
		s.other.Add(1)
	}
	s.mu.Lock()
	if len(s.first) < 5 {
		s.first = append(s.first, fmt.Sprintf("%s: %v %q", what, err, got))
	}
	s.mu.Unlock()
}

// upConf is a builtin answered inline (daytime, on an interface bind), a
// builtin on Go's accept path (echo), a spawned server and a redirect.
func upConf(backend int) string {
	return baseDefaults + `
service daytime
{
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	bind        = lo
}
service echo
{
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	bind        = 127.0.0.1
}
service hello
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P2}}
	wait        = no
	bind        = 127.0.0.1
	user        = root
	server      = /bin/echo
	server_args = hello
}
service relay
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P3}}
	wait        = no
	bind        = 127.0.0.1
	user        = nobody
	redirect    = 127.0.0.1 ` + strconv.Itoa(backend) + `
}
`
}

// echoBackend is the redirect's target: it echoes until EOF.
func echoBackend(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0") // kept open for the test's life
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestUpgradeUnderLoadRefusesNothing is the proof: five upgrades
// during a ten-second connection loop against an inline builtin on an
// interface bind, a builtin on Go's accept path, a spawned server and a
// redirect, each upgrade starting a fresh copy of the binary at its path.
// Not one connection may be refused, reset or otherwise fail.
func TestUpgradeUnderLoadRefusesNothing(t *testing.T) {
	ports := freePorts(t, 4)
	dir := newDir(t)
	bin := upBinary(t, dir)
	conf := render(t, dir, upConf(echoBackend(t)), ports)
	u := upStart(t, bin, dir, conf)

	type client struct {
		name, in string
		port     int
		check    func(string) bool
	}
	clients := []client{
		{"daytime", "", ports[0], dayTimeRE.MatchString},
		{"echo", "ping echo\n", ports[1], func(s string) bool { return s == "ping echo\n" }},
		{"server", "", ports[2], func(s string) bool { return s == "hello\n" }},
		{"redirect", "ping relay\n", ports[3], func(s string) bool { return s == "ping relay\n" }},
	}
	stats := make([]loadStats, len(clients))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := fmt.Sprintf("127.0.0.1:%d", c.port)
			for n := 0; n < 20000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				got, err := tcpExchange(t, addr, c.in, 10*time.Second)
				if err != nil || !c.check(got) {
					stats[i].note(c.name, err, got)
				} else {
					stats[i].ok.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	begin := time.Now()
	var olds []int
	for i := 0; i < 5; i++ {
		time.Sleep(time.Until(begin.Add(time.Duration(i)*1800*time.Millisecond + time.Second)))
		olds = append(olds, u.pid())
		upReplace(t, bin, gxinetd) // a "new version" at the same path
		u.mustUpgrade()
	}
	time.Sleep(time.Until(begin.Add(10 * time.Second)))
	close(stop)
	wg.Wait()
	for i, c := range clients {
		s := &stats[i]
		if s.refused.Load()+s.reset.Load()+s.other.Load() != 0 {
			t.Errorf("%s: %d refused, %d reset, %d other failures in %d connections; first: %v",
				c.name, s.refused.Load(), s.reset.Load(), s.other.Load(), s.ok.Load(), s.first)
		}
		if s.ok.Load() < 20 {
			t.Errorf("%s: only %d connections made: the load did not run", c.name, s.ok.Load())
		}
	}
	// Every replaced daemon drained and exited; the last one serves.
	for _, pid := range olds {
		if !upGone(pid, 40*time.Second) {
			t.Errorf("old daemon %d still runs after its upgrade", pid)
		}
	}
	if !upAlive(u.pid()) {
		t.Fatalf("no daemon serves at the end:\n%s", u.log())
	}
	log := u.log()
	if n := strings.Count(log, "Exiting after the upgrade"); n != 5 {
		t.Errorf("%d old daemons said they exited after the upgrade, want 5:\n%s", n, log)
	}
	for _, bad := range []string{"bind failed", "upgrade failed"} {
		if strings.Contains(log, bad) {
			t.Errorf("daemon log has %q:\n%s", bad, log)
		}
	}
	t.Logf("connections: daytime %d, echo %d, server %d, redirect %d",
		stats[0].ok.Load(), stats[1].ok.Load(), stats[2].ok.Load(), stats[3].ok.Load())
}

// TestUpgradeFailureKeepsOldDaemon: a new daemon that cannot serve (an
// invalid configuration, a binary that cannot be executed, one that exits
// at once) leaves the old one serving, and -upgrade exits non-zero with
// the reason.
func TestUpgradeFailureKeepsOldDaemon(t *testing.T) {
	ports := freePorts(t, 4)
	dir := newDir(t)
	bin := upBinary(t, dir)
	good := upConf(echoBackend(t))
	conf := render(t, dir, good, ports)
	u := upStart(t, bin, dir, conf)
	old := u.pid()
	serves := func(when string) {
		t.Helper()
		if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[2]), "", 5*time.Second); err != nil || got != "hello\n" {
			t.Fatalf("%s: the old daemon does not serve: %q %v\n%s", when, got, err, u.log())
		}
		if u.pid() != old || !upAlive(old) {
			t.Fatalf("%s: pidfile names %d, want the old daemon %d", when, u.pid(), old)
		}
	}
	newPid := regexp.MustCompile(`new daemon \(pid (\d+)\)`)
	gone := func(out string) {
		t.Helper()
		if m := newPid.FindStringSubmatch(out); m != nil {
			pid, _ := strconv.Atoi(m[1])
			if !upGone(pid, 10*time.Second) {
				t.Errorf("the failed new daemon %d still runs", pid)
			}
		}
	}

	// An error in a service the daemon serves: the new daemon would drop
	// it, so it refuses, naming the file and line.
	render(t, dir, strings.Replace(good, "\tuser        = root\n\tserver      = /bin/echo", "\tserver      = /bin/echo", 1), ports)
	code, out := u.upgrade()
	if code == 0 || !strings.Contains(out, "rejects services") || !strings.Contains(out, "service hello") ||
		!strings.Contains(out, conf+":") || !strings.Contains(out, fmt.Sprintf("pid %d still serves", old)) {
		t.Errorf("a served service made invalid: -upgrade exited %d: %s", code, out)
	}
	gone(out)
	serves("after an invalid configuration")

	// A configuration that cannot be used at all.
	os.Rename(conf, conf+".away")
	code, out = u.upgrade()
	os.Rename(conf+".away", conf)
	if code == 0 || !strings.Contains(out, "cannot be used") || !strings.Contains(out, conf) {
		t.Errorf("a missing configuration: -upgrade exited %d: %s", code, out)
	}
	gone(out)
	serves("after a missing configuration")

	// A binary that cannot be executed.
	render(t, dir, good, ports)
	if err := os.Chmod(bin, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = u.upgrade()
	os.Chmod(bin, 0o755)
	if code == 0 || !strings.Contains(out, "permission denied") {
		t.Errorf("unexecutable binary: -upgrade exited %d: %s", code, out)
	}
	serves("after an exec failure")

	// A binary that exits at once.
	if err := os.WriteFile(bin+".new", []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Rename(bin+".new", bin)
	code, out = u.upgrade()
	if code == 0 || !strings.Contains(out, "exited before serving") || !strings.Contains(out, "status 3") {
		t.Errorf("binary exiting at once: -upgrade exited %d: %s", code, out)
	}
	gone(out)
	serves("after a new daemon that exited")

	// And then it works.
	upReplace(t, bin, gxinetd)
	u.mustUpgrade()
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[2]), "", 5*time.Second); err != nil || got != "hello\n" {
		t.Fatalf("after a good upgrade: %q %v", got, err)
	}
	if !upGone(old, 40*time.Second) {
		t.Errorf("old daemon %d still runs", old)
	}
}

// TestUpgradeWaitYesHolder: a wait=yes socket has at most one server,
// always. A server of the old daemon holds a datagram socket through two
// upgrades (and outlives the daemon that started it); no new daemon
// starts a second one while it runs, however many datagrams wait. When it
// exits, the current daemon serves the socket again.
func TestUpgradeWaitYesHolder(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	bin := upBinary(t, dir)
	servers := filepath.Join(dir, "servers.log")
	hold := filepath.Join(dir, "hold")
	script := filepath.Join(dir, "holder.sh")
	// It reads its datagram only once the hold file is gone, so the
	// socket stays readable (a datagram waits) the whole time.
	if err := os.WriteFile(script, []byte(`#!/bin/sh
echo "start $$" >> `+servers+`
while [ -e `+hold+` ]; do sleep 0.1; done
dd bs=65536 count=1 of=/dev/null 2>/dev/null
echo "end $$" >> `+servers+`
`), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := render(t, dir, baseDefaults+`
service holder
{
	type        = UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P0}}
	wait        = yes
	bind        = 127.0.0.1
	user        = root
	server      = `+script+`
}
`, ports)
	if err := os.WriteFile(hold, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	u := upStart(t, bin, dir, conf)
	send := func(what string) {
		t.Helper()
		c, err := net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", ports[0]))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(what))
		c.Close()
	}
	send("one")
	waitIn(t, func() string { return readFile(servers) }, `start \d+`, 10*time.Second)
	first := u.pid()
	u.mustUpgrade()
	send("two")
	u.mustUpgrade()
	send("three")
	if !upGone(first, 40*time.Second) {
		t.Fatalf("the first daemon %d did not exit while its server held the socket", first)
	}
	// Long enough for a new daemon that wrongly served the socket to have
	// started a server for the waiting datagrams.
	time.Sleep(2 * time.Second)
	if n := strings.Count(readFile(servers), "start"); n != 1 {
		t.Fatalf("%d servers started while the first held the socket:\n%s", n, readFile(servers))
	}
	os.Remove(hold)
	// The holder takes "one" and exits; the current daemon then starts one
	// server for "two" and one for "three", one after the other.
	log := waitIn(t, func() string { return readFile(servers) }, `(?s)start (\d+)\nend (\d+)\nstart (\d+)\nend (\d+)\nstart (\d+)\nend (\d+)\n`, 20*time.Second)
	if log[1] != log[2] || log[3] != log[4] || log[5] != log[6] {
		t.Errorf("servers overlapped:\n%s", readFile(servers))
	}
	if !strings.Contains(u.log(), "held by servers of pid") {
		t.Errorf("the new daemon did not say it waits for the holder:\n%s", u.log())
	}

	// A stop ends a wait=yes server the previous daemon left holding a
	// socket, as it ends its own (so the next daemon finds the socket
	// free).
	if err := os.WriteFile(hold, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	send("four")
	m := waitIn(t, func() string { return readFile(servers) }, `(?s)(?:start \d+\nend \d+\n){3}start (\d+)\n`, 10*time.Second)
	holder, _ := strconv.Atoi(m[1])
	last := u.mustUpgrade()
	if !upGone(u.pids[len(u.pids)-2], 40*time.Second) {
		t.Fatalf("the daemon before %d did not exit", last)
	}
	syscall.Kill(last, syscall.SIGTERM)
	if !upGone(holder, 15*time.Second) {
		t.Errorf("the previous daemon's wait=yes server %d outlived the stop:\n%s", holder, u.log())
	}
	if !upGone(last, 15*time.Second) {
		t.Errorf("daemon %d did not stop", last)
	}
	os.Remove(hold)
}

// TestUpgradeDetachedDaemon: the default start (the daemon detaches) is
// upgraded the same way; the new daemon is detached as the old one was
// (its own directory /, no terminal), and serves.
func TestUpgradeDetachedDaemon(t *testing.T) {
	ports := freePorts(t, 5)
	dir := newDir(t)
	bin := upBinary(t, dir)
	// With a metrics listener: it is handed over too (the new daemon
	// could not bind its address while the old one listens there).
	render(t, dir, strings.Replace(upConf(echoBackend(t)), "defaults\n{\n", "defaults\n{\n\tmetrics = 127.0.0.1:{{P4}}\n", 1), ports)
	u := &upDaemon{t: t, bin: bin, dir: dir, pidfile: filepath.Join(dir, "gxinetd.pid"),
		logFile: filepath.Join(dir, "daemon.log"), exited: make(chan struct{})}
	// Relative paths, from the test directory: the detached daemon makes
	// them absolute before it moves to /, and so must its successor.
	cmd := exec.Command(bin, "-f", "xinetd.conf", "-pidfile", "gxinetd.pid", "-filelog", "daemon.log")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("daemon start: %v %s", err, out)
	}
	u.first = cmd
	close(u.exited)
	u.pids = append(u.pids, u.pid())
	t.Cleanup(u.stop)
	for i := 0; i < 2; i++ {
		u.mustUpgrade()
	}
	pid := u.pid()
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != "/" {
		t.Errorf("upgraded detached daemon works in %q, want /", cwd)
	}
	for i, port := range ports[:4] {
		in := "x\n" // echo and the redirect; daytime and /bin/echo read nothing
		if i == 0 || i == 2 {
			in = ""
		}
		if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", port), in, 5*time.Second); err != nil || got == "" {
			t.Errorf("port %d after two upgrades: %q %v\n%s", port, got, err, u.log())
		}
	}
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[4]), "GET /metrics HTTP/1.0\r\n\r\n", 5*time.Second); err != nil || !strings.Contains(got, "200 OK") {
		t.Errorf("metrics after two upgrades: %q %v", got, err)
	}
	if strings.Contains(u.log(), "metrics listener") {
		t.Errorf("the metrics listener was not handed over:\n%s", u.log())
	}
	// It reloads from the same (absolute) files.
	syscall.Kill(pid, syscall.SIGHUP)
	waitIn(t, u.log, `Reconfigured: new=0 old=4 dropped=0`, 10*time.Second)
}

// TestUpgradeKeepsRPCRegistrations: the new daemon keeps the rpcbind
// mappings as they are (same ports: the sockets are the same), and the
// old one withdraws nothing on its way out; rpcbind never stops knowing
// the service.
func TestUpgradeKeepsRPCRegistrations(t *testing.T) {
	needCmd(t, "rpcinfo")
	startRpcbind(t)
	dir := newDir(t)
	bin := upBinary(t, dir)
	conf := render(t, dir, baseDefaults+`
service rpcup
{
	type        = RPC UNLISTED
	rpc_number  = 399875
	rpc_version = 1-2
	socket_type = stream
	protocol    = tcp
	wait        = no
	user        = root
	server      = /bin/echo
	server_args = rpc served
	bind        = 127.0.0.1
}
`, nil)
	t.Cleanup(func() { unsetProgs(399875) })
	u := upStart(t, bin, dir, conf)
	maps := waitMappings(t, func(m string) bool { return strings.Count(m, "399875 ") == 2 })
	port := portOf(t, maps, "399875", "1", "tcp")

	// rpcinfo, over and over, while the daemon is replaced twice.
	var missing atomic.Value
	var polls atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := exec.Command("rpcinfo").CombinedOutput()
			if err != nil {
				continue
			}
			polls.Add(1)
			if !strings.Contains(string(b), "399875") {
				missing.CompareAndSwap(nil, string(b))
			}
		}
	}()
	first := u.pid()
	u.mustUpgrade()
	u.mustUpgrade()
	if !upGone(first, 40*time.Second) {
		t.Errorf("first daemon %d still runs", first)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-done
	if m := missing.Load(); m != nil {
		t.Fatalf("rpcbind lost the service during the upgrades (%d polls):\n%s", polls.Load(), m)
	}
	maps = mappings(t)
	if strings.Count(maps, "399875 ") != 2 || portOf(t, maps, "399875", "2", "tcp") != port {
		t.Fatalf("after the upgrades the mappings are:\n%s\nwant both versions on port %d", maps, port)
	}
	if out, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", port), "", 5*time.Second); err != nil || out != "rpc served\n" {
		t.Fatalf("the registered port answered %q, %v", out, err)
	}
	if strings.Contains(u.log(), "pmap_") {
		t.Errorf("rpcbind calls failed:\n%s", u.log())
	}
	// The last daemon still withdraws them when it stops.
	last := u.pid()
	syscall.Kill(last, syscall.SIGTERM)
	upGone(last, 10*time.Second)
	waitMappings(t, func(m string) bool { return !strings.Contains(m, "399875 ") })
}

// fakeStore plays systemd's side of sd_notify for a unit with
// FileDescriptorStoreMax=: it keeps the descriptors sent with FDSTORE=1
// by name, drops them on FDSTOREREMOVE=1, and remembers every message.
type fakeStore struct {
	conn    *net.UnixConn
	mu      sync.Mutex
	fds     map[string]*os.File
	removed []string
	msgs    []string
	senders []int // the sending pid of each message (SO_PASSCRED)
}

func newFakeStore(t *testing.T, path string) *fakeStore {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeStore{conn: c, fds: map[string]*os.File{}}
	// systemd takes the sender from the message's credentials.
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1) })
	}
	t.Cleanup(func() {
		c.Close()
		s.mu.Lock()
		for _, f := range s.fds {
			f.Close()
		}
		s.mu.Unlock()
	})
	go s.run()
	return s
}

func (s *fakeStore) run() {
	buf := make([]byte, 4096)
	oob := make([]byte, syscall.CmsgSpace(4*64))
	for {
		n, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		var fds []int
		sender := 0
		if cms, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, cm := range cms {
				if got, err := syscall.ParseUnixRights(&cm); err == nil {
					fds = append(fds, got...)
				}
				if cred, err := syscall.ParseUnixCredentials(&cm); err == nil {
					sender = int(cred.Pid)
				}
			}
		}
		msg := string(buf[:n])
		fields := map[string]string{}
		for _, l := range strings.Split(msg, "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				fields[k] = v
			}
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, msg)
		s.senders = append(s.senders, sender)
		switch {
		case fields["FDSTORE"] == "1" && len(fds) == 1:
			if _, dup := s.fds[fields["FDNAME"]]; dup {
				syscall.Close(fds[0])
			} else {
				s.fds[fields["FDNAME"]] = os.NewFile(uintptr(fds[0]), fields["FDNAME"])
			}
			fds = nil
		case fields["FDSTOREREMOVE"] == "1":
			if f := s.fds[fields["FDNAME"]]; f != nil {
				f.Close()
				delete(s.fds, fields["FDNAME"])
			}
			s.removed = append(s.removed, fields["FDNAME"])
		}
		s.mu.Unlock()
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
}

func (s *fakeStore) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.fds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s *fakeStore) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.msgs, "\n--\n") + "\nremoved: " + strings.Join(s.removed, " ")
}

// TestRestartThroughFDStore plays systemd for `systemctl restart` of a
// unit with FileDescriptorStoreMax=: the daemon stores every listening
// socket, keeps them there when it stops, and the next daemon takes them
// back from LISTEN_FDS by name (LISTEN_FDNAMES) instead of binding. A
// client that connects while no daemon runs waits in the backlog and is
// served by the next one; none is refused. A socket a reload drops is
// removed from the store.
func TestRestartThroughFDStore(t *testing.T) {
	ports := freePorts(t, 4)
	dir := newDir(t)
	backend := echoBackend(t)
	conf := render(t, dir, upConf(backend), ports)
	store := newFakeStore(t, filepath.Join(dir, "notify.sock"))
	env := append(os.Environ(), "NOTIFY_SOCKET="+filepath.Join(dir, "notify.sock"), "FDSTORE=64")
	log1, log2 := filepath.Join(dir, "daemon1.log"), filepath.Join(dir, "daemon2.log")
	first := exec.Command(gxinetd, "-f", conf, "-dontfork", "-filelog", log1, "-pidfile", filepath.Join(dir, "gxinetd.pid"))
	first.Env = env
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan struct{})
	go func() { first.Wait(); close(firstDone) }()
	defer func() { first.Process.Kill(); <-firstDone }()
	waitIn(t, func() string { return strings.Join(store.names(), " ") }, fmt.Sprintf(`%%3A%d .*%%3A%d .*%%3A%d .*%%3A%d`, ports[0], ports[1], ports[2], ports[3]), 15*time.Second)
	waitIn(t, store.text, `READY=1`, 5*time.Second)

	// Stop: nothing leaves the store.
	first.Process.Signal(syscall.SIGTERM)
	select {
	case <-firstDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the first daemon did not stop")
	}
	if strings.Contains(store.text(), "FDSTOREREMOVE") {
		t.Fatalf("stopping removed sockets from the store:\n%s", store.text())
	}

	// No daemon runs; clients connect anyway (into the stored sockets'
	// backlogs) and wait.
	type result struct {
		got string
		err error
	}
	results := make(chan result, 8)
	for i := 0; i < 8; i++ {
		go func(i int) {
			port, in := ports[i%4], ""
			if i%4 == 1 || i%4 == 3 {
				in = "waited\n"
			}
			got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", port), in, 20*time.Second)
			results <- result{got, err}
		}(i)
	}
	time.Sleep(500 * time.Millisecond)

	// Start: systemd passes the store back.
	names := store.names()
	var files []*os.File
	store.mu.Lock()
	for _, n := range names {
		files = append(files, store.fds[n])
	}
	store.mu.Unlock()
	second := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, gxinetd, "-f", conf, "-dontfork",
		"-filelog", log2, "-pidfile", filepath.Join(dir, "gxinetd.pid"))
	second.ExtraFiles = files
	second.Env = append(env, fmt.Sprintf("LISTEN_FDS=%d", len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	secondDone := make(chan struct{})
	go func() { second.Wait(); close(secondDone) }()
	defer func() {
		second.Process.Signal(syscall.SIGTERM)
		select {
		case <-secondDone:
		case <-time.After(10 * time.Second):
			second.Process.Kill()
			<-secondDone
		}
	}()
	waitIn(t, func() string { return readFile(log2) }, `Started working: 4 available services`, 15*time.Second)
	for i := 0; i < 8; i++ {
		r := <-results
		if r.err != nil || r.got == "" {
			t.Errorf("a client that connected between the daemons got %q, %v", r.got, r.err)
		}
	}
	if strings.Contains(readFile(log2), "bind failed") {
		t.Fatalf("the second daemon bound instead of taking the stored sockets %v:\n%s", names, readFile(log2))
	}

	// A reload that drops the redirect removes its socket from the store.
	render(t, dir, strings.Split(upConf(backend), "service relay")[0], ports)
	second.Process.Signal(syscall.SIGHUP)
	waitIn(t, store.text, fmt.Sprintf(`removed: .*%%3A%d`, ports[3]), 10*time.Second)
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[3]), "x\n", 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the dropped service's port still accepts: %q %v", got, err)
	}
}

// TestUpgradeDrainsSessions: the sessions the old daemon serves itself
// (a builtin's, a redirect's) go on after the upgrade until they end, and
// only then does it exit; one that outlasts -drain is closed.
func TestUpgradeDrainsSessions(t *testing.T) {
	ports := freePorts(t, 4)
	dir := newDir(t)
	bin := upBinary(t, dir)
	u := upStart(t, bin, dir, render(t, dir, upConf(echoBackend(t)), ports))
	dial := func(port int) (*net.TCPConn, func(string)) {
		t.Helper()
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		tc := c.(*net.TCPConn)
		t.Cleanup(func() { tc.Close() })
		buf := make([]byte, 64)
		return tc, func(line string) {
			t.Helper()
			tc.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(tc, line); err != nil {
				t.Fatalf("port %d: writing %q: %v", port, line, err)
			}
			n, err := io.ReadAtLeast(tc, buf, len(line))
			if err != nil || string(buf[:n]) != line {
				t.Fatalf("port %d: sent %q, got %q, %v", port, line, buf[:n], err)
			}
		}
	}
	echo, echoSay := dial(ports[1])
	relay, relaySay := dial(ports[3])
	echoSay("before\n")
	relaySay("before\n")
	old := u.pid()
	u.mustUpgrade("-drain", "30s")
	if !upAlive(old) {
		t.Fatalf("the old daemon exited with two sessions open:\n%s", u.log())
	}
	echoSay("after\n")
	relaySay("after\n")
	for _, c := range []*net.TCPConn{echo, relay} {
		c.CloseWrite()
		if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
			t.Errorf("end of session: %q %v", rest, err)
		}
		c.Close()
	}
	if !upGone(old, 10*time.Second) {
		t.Fatalf("the old daemon did not exit when its sessions ended:\n%s", u.log())
	}

	// A session that outlasts the drain is closed, and the daemon goes.
	late, lateSay := dial(ports[1])
	lateSay("hello\n")
	old = u.pid()
	u.mustUpgrade("-drain", "1s")
	late.SetReadDeadline(time.Now().Add(15 * time.Second))
	if n, err := late.Read(make([]byte, 8)); err == nil {
		t.Fatalf("the session outlasting the drain was not closed (read %d bytes)", n)
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the session outlasting the drain was not closed: %v", err)
	}
	if !upGone(old, 10*time.Second) {
		t.Fatalf("the old daemon did not exit after its drain:\n%s", u.log())
	}
	waitIn(t, u.log, `drain time is over: closing 1 remaining session`, 5*time.Second)
}

// TestUpgradeUnderSystemd plays systemd's notify socket (Type=notify,
// NotifyAccess=main, a file descriptor store) through two upgrades: the
// old daemon, main until then, names the new one (MAINPID=), and the new
// one sends nothing before that (systemd would ignore it): then READY=1,
// the sockets it opened (a service added meanwhile) and the removal of the
// one it closed (a service dropped). The old daemon says nothing more.
func TestUpgradeUnderSystemd(t *testing.T) {
	ports := freePorts(t, 5)
	dir := newDir(t)
	bin := upBinary(t, dir)
	notify := filepath.Join(dir, "notify.sock")
	store := newFakeStore(t, notify)
	backend := echoBackend(t)
	u := upStartEnv(t, bin, dir, render(t, dir, upConf(backend), ports), []string{"NOTIFY_SOCKET=" + notify, "FDSTORE=64"})
	old := u.pid()
	waitIn(t, func() string { return strings.Join(store.names(), " ") },
		fmt.Sprintf(`%%3A%d.*%%3A%d.*%%3A%d.*%%3A%d`, ports[0], ports[1], ports[2], ports[3]), 15*time.Second)
	// The new daemon reads a configuration without the redirect and with
	// another daytime.
	render(t, dir, strings.Split(upConf(backend), "service relay")[0]+daytimeSvc("extra", "{{P4}}", "\tbind = 127.0.0.1"), ports)
	now := u.mustUpgrade()
	mainpid := fmt.Sprintf("MAINPID=%d", now)
	waitIn(t, store.text, fmt.Sprintf(`(?s)%s.*READY=1.*removed: .*%%3A%d`, mainpid, ports[3]), 10*time.Second)
	waitIn(t, func() string { return strings.Join(store.names(), " ") }, fmt.Sprintf(`%%3A%d`, ports[4]), 10*time.Second)
	upGone(old, 40*time.Second)
	u.mustUpgrade() // and once more, from the new one
	waitIn(t, store.text, fmt.Sprintf("MAINPID=%d", u.pid()), 10*time.Second)
	time.Sleep(500 * time.Millisecond)

	store.mu.Lock()
	defer store.mu.Unlock()
	main := old
	for i, m := range store.msgs {
		if from := store.senders[i]; from != main {
			t.Errorf("message %q came from pid %d while pid %d was the main process", m, from, main)
		}
		if strings.HasPrefix(m, "MAINPID=") {
			fmt.Sscanf(m, "MAINPID=%d", &main)
		}
		if strings.Contains(m, "STOPPING=1") {
			t.Errorf("message %q during upgrades", m)
		}
	}
	if main != u.pid() {
		t.Errorf("systemd was last told pid %d is the main process; the pidfile names %d", main, u.pid())
	}
	if len(store.removed) != 1 {
		t.Errorf("removed from the store: %v; want only the redirect's socket", store.removed)
	}
}
