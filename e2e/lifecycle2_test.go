package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the checkout the e2e package lives in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "Makefile")); err != nil {
		t.Skipf("no Makefile at %s: %v", root, err)
	}
	return root
}

// goEnv is the environment with the running toolchain first in PATH, so
// that make finds the same go the tests were built with.
func goEnv() []string {
	gobin := filepath.Join(runtime.GOROOT(), "bin")
	env := os.Environ()
	for i, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			env[i] = "PATH=" + gobin + string(os.PathListSeparator) + e[len("PATH="):]
			return env
		}
	}
	return append(env, "PATH="+gobin)
}

// TestMakeInstall: `make install DESTDIR=... PREFIX=/usr` puts every
// shipped file where a distribution expects it, creates the
// configuration only when there is none, and `make uninstall` removes
// what install added but never the configuration.
func TestMakeInstall(t *testing.T) {
	needCmd(t, "make", "install")
	root := repoRoot(t)
	dest := t.TempDir()
	mk := func(target string) string {
		t.Helper()
		cmd := exec.Command("make", "-s", "-C", root, target, "DESTDIR="+dest, "PREFIX=/usr")
		cmd.Env = goEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	mk("install")
	want := []struct {
		path string
		mode os.FileMode
	}{
		{"usr/sbin/gxinetd", 0o755},
		{"usr/bin/xconv", 0o755},
		{"usr/share/man/man8/gxinetd.8", 0o644},
		{"usr/share/man/man5/gxinetd.conf.5", 0o644},
		{"usr/share/man/man5/gxinetd.log.5", 0o644},
		{"usr/share/man/man1/xconv.1", 0o644},
		{"lib/systemd/system/gxinetd.service", 0o644},
		{"usr/share/doc/gxinetd/examples/gxinetd.socket", 0o644},
		{"usr/share/doc/gxinetd/examples/gxinetd.default", 0o644},
		{"etc/xinetd.conf", 0o644},
	}
	for _, w := range want {
		fi, err := os.Stat(filepath.Join(dest, w.path))
		if err != nil {
			t.Errorf("not installed: %s: %v", w.path, err)
			continue
		}
		if fi.Mode().Perm() != w.mode || !fi.Mode().IsRegular() {
			t.Errorf("%s: mode %v, want regular file %v", w.path, fi.Mode(), w.mode)
		}
	}
	if fi, err := os.Stat(filepath.Join(dest, "etc/xinetd.d")); err != nil || !fi.IsDir() {
		t.Errorf("etc/xinetd.d not created: %v", err)
	} else if ents, _ := os.ReadDir(filepath.Join(dest, "etc/xinetd.d")); len(ents) != 0 {
		t.Errorf("etc/xinetd.d is not empty: %v", ents)
	}
	// Nothing may escape DESTDIR: the tree holds only etc, lib and usr.
	ents, _ := os.ReadDir(dest)
	for _, e := range ents {
		if e.Name() != "etc" && e.Name() != "lib" && e.Name() != "usr" {
			t.Errorf("unexpected top-level entry in DESTDIR: %s", e.Name())
		}
	}
	// The installed programs are the real ones.
	out, err := exec.Command(filepath.Join(dest, "usr/sbin/gxinetd"), "-version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "libwrap") {
		t.Errorf("installed gxinetd -version: %v %q", err, out)
	}
	unit := readFile(filepath.Join(dest, "lib/systemd/system/gxinetd.service"))
	for _, w := range []string{"ExecStart=/usr/sbin/gxinetd ", "ExecStartPre=/usr/sbin/gxinetd -t -fatal-only ", "-dontfork", "Type=notify", "ExecReload="} {
		if !strings.Contains(unit, w) {
			t.Errorf("unit lacks %q:\n%s", w, unit)
		}
	}
	// The shipped xinetd.conf is valid and includes the directory.
	conf := readFile(filepath.Join(dest, "etc/xinetd.conf"))
	if !strings.Contains(conf, "includedir /etc/xinetd.d") {
		t.Errorf("installed xinetd.conf has no includedir /etc/xinetd.d:\n%s", conf)
	}

	// A second install keeps an existing configuration byte for byte.
	mine := "# edited by the administrator\n" + conf
	if err := os.WriteFile(filepath.Join(dest, "etc/xinetd.conf"), []byte(mine), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dest, "etc/xinetd.conf"), 0o600)
	os.WriteFile(filepath.Join(dest, "etc/xinetd.d/local"), []byte("# mine\n"), 0o644)
	mk("install")
	if got := readFile(filepath.Join(dest, "etc/xinetd.conf")); got != mine {
		t.Errorf("second install changed the existing etc/xinetd.conf")
	}
	if fi, _ := os.Stat(filepath.Join(dest, "etc/xinetd.conf")); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("second install changed the mode of etc/xinetd.conf: %v", fi)
	}
	if readFile(filepath.Join(dest, "etc/xinetd.d/local")) != "# mine\n" {
		t.Errorf("second install touched etc/xinetd.d")
	}

	mk("uninstall")
	for _, w := range want {
		_, err := os.Stat(filepath.Join(dest, w.path))
		if w.path == "etc/xinetd.conf" {
			if err != nil {
				t.Errorf("uninstall removed the configuration")
			}
			continue
		}
		if !os.IsNotExist(err) {
			t.Errorf("uninstall left %s", w.path)
		}
	}
}

// TestShippedFilesAreNotIgnored: make install needs dist/; a clone must
// have it, so git must not ignore it.
func TestShippedFilesAreNotIgnored(t *testing.T) {
	needCmd(t, "git")
	root := repoRoot(t)
	if err := exec.Command("git", "-C", root, "rev-parse", "--is-inside-work-tree").Run(); err != nil {
		t.Skip("not a git work tree")
	}
	for _, f := range []string{"dist/gxinetd.service.in", "dist/gxinetd.socket", "dist/gxinetd.default", "dist/xinetd.conf", "Makefile", "docs/gxinetd.8"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("shipped file missing: %s", f)
			continue
		}
		// check-ignore exits 0 when the path is ignored.
		if out, err := exec.Command("git", "-C", root, "check-ignore", "-v", f).CombinedOutput(); err == nil {
			t.Errorf("%s is ignored by git (%s): a clone would not have it", f, strings.TrimSpace(string(out)))
		}
	}
}

// TestManPagesRenderWithoutWarnings runs man-db's renderer with warnings
// over every manual page.
func TestManPagesRenderWithoutWarnings(t *testing.T) {
	needCmd(t, "man")
	pages, _ := filepath.Glob(filepath.Join(repoRoot(t), "docs", "*.[1-8]"))
	if len(pages) < 4 {
		t.Fatalf("expected at least the four manual pages, found %v", pages)
	}
	for _, p := range pages {
		t.Run(filepath.Base(p), func(t *testing.T) {
			cmd := exec.Command("man", "--warnings", "-l", p)
			cmd.Env = append(os.Environ(), "MANWIDTH=80", "MAN_KEEP_FORMATTING=0", "MANPAGER=cat", "PAGER=cat")
			var stderr syncBuf
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("man: %v\n%s", err, stderr.String())
			}
			if w := strings.TrimSpace(stderr.String()); w != "" {
				t.Errorf("warnings:\n%s", w)
			}
			if len(out) < 500 {
				t.Errorf("rendered page is suspiciously short (%d bytes)", len(out))
			}
		})
	}
}

// startRaw runs gxinetd with exactly args (no harness flags).
func startRaw(t *testing.T, dir string, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: dir, logFile: filepath.Join(dir, "daemon.log"), svcLog: filepath.Join(dir, "services.log"),
		stderr: &syncBuf{}, exited: make(chan struct{})}
	d.cmd = exec.Command(gxinetd, args...)
	d.cmd.Stderr = d.stderr
	d.cmd.Stdout = d.stderr
	d.cmd.Dir = dir
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	return d
}

// TestDebugMode: -d stays in the foreground, prints the configuration
// dump and its messages on stderr, and exits 1 on SIGINT, as xinetd does;
// with -dontfork SIGINT stops it (exit 0); a detached daemon ignores it.
func TestDebugMode(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	path := render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports)
	pidfile := filepath.Join(dir, "d.pid")
	d := startRaw(t, dir, "-d", "-f", path, "-pidfile", pidfile)
	d.waitLog(`Started working: 1 available service`, 15*time.Second)
	errText := d.stderr.String()
	for _, w := range []string{"Service defaults", "Service configuration: daytime", "\tid = dt", fmt.Sprintf("\tport = %d", ports[0])} {
		if !strings.Contains(errText, w) {
			t.Errorf("-d: stderr lacks %q:\n%s", w, errText)
		}
	}
	// Foreground: the pidfile names the process we started.
	if got := strings.TrimSpace(readFile(pidfile)); got != strconv.Itoa(d.pid()) {
		t.Errorf("-d pidfile says %q, the process is %d", got, d.pid())
	}
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("-d daemon does not serve: %q %v", got, err)
	}
	// Every load is dumped, reloads included.
	d.signal(syscall.SIGHUP)
	d.waitLog(`Reconfigured: new=0 old=1 dropped=0`, 10*time.Second)
	if n := strings.Count(d.stderr.String(), "Service configuration: daytime"); n != 2 {
		t.Errorf("-d: %d configuration dumps after a reload, want 2", n)
	}
	d.signal(syscall.SIGINT)
	if code := d.waitExit(10 * time.Second); code != 1 {
		t.Errorf("-d: exit status %d after SIGINT, want 1", code)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("-d: pidfile left after SIGINT")
	}

	// In the foreground (-dontfork: make run, a container) SIGINT, which
	// is what Ctrl-C sends, stops the daemon as SIGTERM does.
	dir2 := newDir(t)
	d2 := start(t, dir2, render(t, dir2, baseDefaults+daytimeConf("dt", "{{P0}}"), ports))
	d2.signal(syscall.SIGINT)
	if code := d2.waitExit(10 * time.Second); code != 0 {
		t.Errorf("-dontfork: exit status %d after SIGINT, want 0\n%s", code, d2.daemonLog())
	}
	if !strings.Contains(d2.daemonLog(), "SIGINT in the foreground: stopping") {
		t.Errorf("-dontfork: SIGINT not logged:\n%s", d2.daemonLog())
	}
	if _, err := os.Stat(filepath.Join(dir2, "gxinetd.pid")); !os.IsNotExist(err) {
		t.Errorf("-dontfork: pidfile left after SIGINT")
	}

	// A detached daemon has no terminal: SIGINT changes nothing, as in xinetd.
	dir3 := newDir(t)
	code, pid := detached(t, dir3, "-f", render(t, dir3, baseDefaults+daytimeConf("dt", "{{P0}}"), ports))
	if code != 0 || pid == 0 {
		t.Fatalf("daemon mode: status %d pid %d\n%s", code, pid, readFile(filepath.Join(dir3, "daemon.log")))
	}
	syscall.Kill(pid, syscall.SIGINT)
	waitIn(t, func() string { return readFile(filepath.Join(dir3, "daemon.log")) }, `ignoring SIGINT`, 5*time.Second)
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("detached daemon stopped serving after SIGINT: %q %v", got, err)
	}
	if !pidAlive(pid) {
		t.Fatalf("SIGINT ended the detached daemon")
	}
}

const zeroServices = `
defaults
{
	instances = 10
}
`

// pidAlive reports whether pid exists and is not a zombie.
func pidAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(st)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

func waitGone(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := waitBound(timeout)
	for pidAlive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("pid %d still running after %v", pid, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// detached starts gxinetd in daemon mode and returns the detaching
// parent's exit status and the daemon's pid (0 when none is running).
func detached(t *testing.T, dir string, args ...string) (int, int) {
	t.Helper()
	pidfile := filepath.Join(dir, "gxinetd.pid")
	cmd := exec.Command(gxinetd, append([]string{"-pidfile", pidfile, "-filelog", filepath.Join(dir, "daemon.log")}, args...)...)
	cmd.Dir = dir
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the detaching parent did not return")
	}
	pid, err := ReadPid(pidfile)
	if err != nil || !pidAlive(pid) {
		return cmd.ProcessState.ExitCode(), 0
	}
	t.Cleanup(func() {
		if pidAlive(pid) && isOurGxinetd(pid) {
			syscall.Kill(pid, syscall.SIGTERM)
			waitGone(t, pid, 10*time.Second)
		}
	})
	return cmd.ProcessState.ExitCode(), pid
}

// ReadPid reads a pidfile.
func ReadPid(path string) (int, error) {
	return strconv.Atoi(strings.TrimSpace(readFile(path)))
}

// isOurGxinetd: the pid runs the binary this test built.
func isOurGxinetd(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && strings.TrimSuffix(exe, " (deleted)") == gxinetd
}

// TestStayAlive: zero services end a daemon unless -stayalive (or
// -dontfork, which implies it), at start and after a reload.
func TestStayAlive(t *testing.T) {
	ports := freePorts(t, 1)
	t.Run("daemon zero services exits 1", func(t *testing.T) {
		dir := newDir(t)
		path := render(t, dir, zeroServices, nil)
		code, pid := detached(t, dir, "-f", path)
		if code != 1 || pid != 0 {
			t.Fatalf("exit %d, daemon pid %d; want 1 and none", code, pid)
		}
		if log := readFile(filepath.Join(dir, "daemon.log")); !strings.Contains(log, "no services. Exiting...") {
			t.Errorf("no 'no services. Exiting...' message:\n%s", log)
		}
		if _, err := os.Stat(filepath.Join(dir, "gxinetd.pid")); !os.IsNotExist(err) {
			t.Errorf("pidfile left behind")
		}
	})
	t.Run("daemon -stayalive keeps running", func(t *testing.T) {
		dir := newDir(t)
		path := render(t, dir, zeroServices, nil)
		code, pid := detached(t, dir, "-f", path, "-stayalive")
		if code != 0 || pid == 0 {
			t.Fatalf("exit %d, daemon pid %d:\n%s", code, pid, readFile(filepath.Join(dir, "daemon.log")))
		}
		waitIn(t, func() string { return readFile(filepath.Join(dir, "daemon.log")) }, `Started working: 0 available services`, 5*time.Second)
		// A reload that brings a service makes it serve.
		render(t, dir, zeroServices+daytimeConf("dt", "{{P0}}"), ports)
		syscall.Kill(pid, syscall.SIGHUP)
		waitIn(t, func() string { return readFile(filepath.Join(dir, "daemon.log")) }, `Reconfigured: new=1 old=0 dropped=0`, 10*time.Second)
		if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
			t.Fatalf("service added by reload not served: %q %v", got, err)
		}
	})
	t.Run("dontfork implies stayalive", func(t *testing.T) {
		dir := newDir(t)
		d := start(t, dir, render(t, dir, zeroServices, nil))
		d.waitLog(`Started working: 0 available services`, 5*time.Second)
		time.Sleep(200 * time.Millisecond)
		select {
		case <-d.exited:
			t.Fatalf("-dontfork with zero services exited:\n%s", d.daemonLog())
		default:
		}
	})
	t.Run("reload to zero without stayalive exits", func(t *testing.T) {
		dir := newDir(t)
		path := render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports)
		code, pid := detached(t, dir, "-f", path)
		if code != 0 || pid == 0 {
			t.Fatalf("exit %d, pid %d:\n%s", code, pid, readFile(filepath.Join(dir, "daemon.log")))
		}
		render(t, dir, zeroServices, nil)
		syscall.Kill(pid, syscall.SIGHUP)
		waitGone(t, pid, 10*time.Second)
		log := readFile(filepath.Join(dir, "daemon.log"))
		if !strings.Contains(log, "No available services. Exiting") {
			t.Errorf("no 'No available services. Exiting' message:\n%s", log)
		}
		if _, err := os.Stat(filepath.Join(dir, "gxinetd.pid")); !os.IsNotExist(err) {
			t.Errorf("pidfile left behind")
		}
		if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]), time.Second); err == nil {
			t.Errorf("port still open after the daemon left")
		}
	})
	t.Run("reload to zero with dontfork stays", func(t *testing.T) {
		dir := newDir(t)
		d := start(t, dir, render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports))
		render(t, dir, zeroServices, nil)
		d.signal(syscall.SIGHUP)
		d.waitLog(`Reconfigured: new=0 old=0 dropped=1`, 10*time.Second)
		time.Sleep(200 * time.Millisecond)
		select {
		case <-d.exited:
			t.Fatalf("-dontfork daemon exited on a reload to zero services")
		default:
		}
	})
}

// TestReloadKeepsCountersAndDenyList: the reload summary counts what
// changed; the SIGUSR1 counters of a kept service and the SENSOR's
// global deny list survive the reload.
func TestReloadKeepsCountersAndDenyList(t *testing.T) {
	ports := freePorts(t, 4)
	dir := newDir(t)
	sensor := `
service sensor
{
	id          = trap
	type        = INTERNAL UNLISTED
	flags       = SENSOR
	socket_type = stream
	protocol    = tcp
	port        = {{P2}}
	wait        = no
	deny_time   = 5
}
`
	path := render(t, dir, baseDefaults+daytimeConf("dtA", "{{P0}}")+daytimeConf("dtB", "{{P1}}")+sensor, ports)
	d := start(t, dir, path)
	addrB := fmt.Sprintf("127.0.0.1:%d", ports[1])
	for i := 0; i < 3; i++ {
		if got, err := tcpExchange(t, addrB, "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
			t.Fatalf("dtB: %q %v", got, err)
		}
	}
	dumpPath := filepath.Join(dir, "xinetd.dump")
	dumpNow := func() string {
		t.Helper()
		before := len(readFile(dumpPath))
		d.signal(syscall.SIGUSR1)
		waitIn(t, func() string { return readFile(dumpPath)[before:] }, `END OF DUMP`, 5*time.Second)
		return readFile(dumpPath)[before:]
	}
	servedRE := mustRE(`(?m)^Service = dtB\n\tserved = (\d+)$`)
	if m := servedRE.FindStringSubmatch(dumpNow()); m == nil || m[1] != "3" {
		t.Fatalf("dump before reload: dtB served = %v, want 3", m)
	}
	// Trip the sensor: 127.0.0.1 is now refused everywhere.
	tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[2]), "", 5*time.Second)
	d.waitLog(`Adding \S*127\.0\.0\.1 to the global_no_access list`, 5*time.Second)
	refused := func(when string) {
		t.Helper()
		got, _ := tcpExchange(t, addrB, "", 5*time.Second)
		if dayTimeRE.MatchString(got) {
			t.Fatalf("%s: a denied address was served", when)
		}
	}
	refused("before reload")

	render(t, dir, baseDefaults+daytimeConf("dtB", "{{P1}}")+sensor+daytimeConf("dtC", "{{P3}}"), ports)
	d.signal(syscall.SIGHUP)
	m := d.waitLog(`Reconfigured: new=(\d+) old=(\d+) dropped=(\d+) \(services\)`, 10*time.Second)
	if m[1] != "1" || m[2] != "2" || m[3] != "1" {
		t.Errorf("summary new=%s old=%s dropped=%s, want new=1 old=2 dropped=1", m[1], m[2], m[3])
	}
	refused("after reload")
	dump := dumpNow()
	if m := servedRE.FindStringSubmatch(dump); m == nil || m[1] != "3" {
		t.Errorf("dump after reload: dtB served = %v, want 3 (counters must survive)\n%s", m, dump)
	}
	if !mustRE(`(?m)^\t(::ffff:)?127\.0\.0\.1 until `).MatchString(dump) {
		t.Errorf("deny list did not survive the reload:\n%s", dump)
	}
	if strings.Contains(dump, "Service = dtA") {
		t.Errorf("removed service still in the dump")
	}
}

// TestDaemonModeStatusAndPidfile: the detaching parent reports the
// daemon's failure; relative paths work in daemon mode; a stale pidfile
// is replaced.
func TestDaemonModeStatusAndPidfile(t *testing.T) {
	ports := freePorts(t, 1)
	t.Run("bad configuration", func(t *testing.T) {
		dir := newDir(t)
		code, pid := detached(t, dir, "-f", filepath.Join(dir, "missing.conf"))
		if code == 0 || pid != 0 {
			t.Fatalf("missing configuration: parent exit %d, daemon pid %d", code, pid)
		}
		bad := render(t, dir, "defaults\n{\n\tinstances = lots\n}\n"+daytimeConf("dt", "{{P0}}"), ports)
		code, pid = detached(t, dir, "-f", bad)
		if code == 0 || pid != 0 {
			t.Fatalf("fatal defaults: parent exit %d, daemon pid %d\n%s", code, pid, readFile(filepath.Join(dir, "daemon.log")))
		}
		if log := readFile(filepath.Join(dir, "daemon.log")); !strings.Contains(log, "A fatal error was encountered while parsing the default section") {
			t.Errorf("no fatal-defaults message in the log:\n%s", log)
		}
		// The parent says where the daemon's messages went.
		out, _ := exec.Command(gxinetd, "-f", bad, "-filelog", filepath.Join(dir, "d2.log")).CombinedOutput()
		if !strings.Contains(string(out), filepath.Join(dir, "d2.log")) {
			t.Errorf("the failing parent does not point at the log: %q", out)
		}
	})
	t.Run("relative paths", func(t *testing.T) {
		dir := newDir(t)
		render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports)
		cmd := exec.Command(gxinetd, "-f", "xinetd.conf", "-pidfile", "rel.pid", "-filelog", "rel.log")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("daemon with relative paths: %v %s\n%s", err, out, readFile(filepath.Join(dir, "rel.log")))
		}
		pid, err := ReadPid(filepath.Join(dir, "rel.pid"))
		if err != nil {
			t.Fatalf("relative pidfile not written in the start directory: %v", err)
		}
		defer func() { syscall.Kill(pid, syscall.SIGTERM); waitGone(t, pid, 10*time.Second) }()
		if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
			t.Fatalf("not served: %q %v", got, err)
		}
		// A reload reads the same file again (not /xinetd.conf).
		syscall.Kill(pid, syscall.SIGHUP)
		waitIn(t, func() string { return readFile(filepath.Join(dir, "rel.log")) }, `Reconfigured: new=0 old=1 dropped=0`, 10*time.Second)
		if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil && cwd != "/" {
			t.Errorf("detached daemon's directory is %s, want /", cwd)
		}
	})
	t.Run("stale pidfile", func(t *testing.T) {
		// A pid that surely does not exist: a process that has ended.
		dead := exec.Command("true")
		dead.Run()
		for _, stale := range []int{dead.Process.Pid, os.Getpid()} {
			dir := newDir(t)
			pidfile := filepath.Join(dir, "gxinetd.pid")
			os.WriteFile(pidfile, []byte(fmt.Sprintf("%d\n", stale)), 0o644)
			d := start(t, dir, render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports))
			if got, _ := ReadPid(pidfile); got != d.pid() {
				t.Errorf("stale pidfile (%d) not replaced: says %d, daemon is %d\n%s", stale, got, d.pid(), d.daemonLog())
			}
			d.signal(syscall.SIGTERM)
			d.waitExit(10 * time.Second)
		}
	})
}

// TestInetdCompatFile: -inetd_compat -inetd_compat_file adds the file's
// entries to the xinetd configuration; an xinetd entry on the same port
// wins over the inetd.conf one.
func TestInetdCompatFile(t *testing.T) {
	ports := freePorts(t, 2)
	dir := newDir(t)
	user := currentUser(t)
	path := render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports)
	compat := filepath.Join(dir, "inetd.conf")
	os.WriteFile(compat, []byte(fmt.Sprintf(
		"127.0.0.1:%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo from inetd.conf\n"+
			"127.0.0.1:%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo clash\n", ports[1], user, ports[0], user)), 0o644)
	d := start(t, dir, path, "-inetd_compat", "-inetd_compat_file", compat)
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 5*time.Second); err != nil || got != "from inetd.conf\n" {
		t.Fatalf("inetd.conf entry = %q, %v\n%s", got, err, d.daemonLog())
	}
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("the xinetd entry must win its port: %q %v", got, err)
	}
	d.waitLog(`identical to service: dt`, 5*time.Second)
	// The file is read again on reload.
	os.WriteFile(compat, []byte(fmt.Sprintf("127.0.0.1:%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo reloaded\n", ports[1], user)), 0o644)
	d.signal(syscall.SIGHUP)
	d.waitLog(`Reconfigured`, 10*time.Second)
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 5*time.Second); err != nil || got != "reloaded\n" {
		t.Fatalf("inetd.conf entry after reload = %q, %v", got, err)
	}
	// -t sees the same.
	out, _ := exec.Command(gxinetd, "-t", "-f", path, "-inetd_compat", "-inetd_compat_file", compat).CombinedOutput()
	if !strings.Contains(string(out), "2 services accepted") {
		t.Errorf("-t with -inetd_compat_file:\n%s", out)
	}
}

// TestReloadSummaryCountsChangedServices: as in xinetd, a service whose
// port changed is a different service under the same id: it counts as
// dropped and new; a service with only new settings counts as old.
func TestReloadSummaryCountsChangedServices(t *testing.T) {
	ports := freePorts(t, 6)
	dir := newDir(t)
	before := baseDefaults + daytimeConf("keep", "{{P0}}") + daytimeConf("drop", "{{P1}}") +
		daytimeConf("moveport", "{{P2}}") + daytimeConf("gone", "{{P3}}")
	d := start(t, dir, render(t, dir, before, ports))
	after := baseDefaults + strings.Replace(daytimeConf("keep", "{{P0}}"), "wait", "instances   = 5\n\twait", 1) +
		daytimeConf("moveport", "{{P4}}") + daytimeConf("newsvc", "{{P5}}")
	render(t, dir, after, ports)
	d.signal(syscall.SIGHUP)
	m := d.waitLog(`Reconfigured: new=(\d+) old=(\d+) dropped=(\d+) \(services\)`, 10*time.Second)
	if m[1] != "2" || m[2] != "1" || m[3] != "3" {
		t.Errorf("summary new=%s old=%s dropped=%s, want xinetd's new=2 old=1 dropped=3", m[1], m[2], m[3])
	}
	d.waitLog(`readjusting service keep`, time.Second)
	d.waitLog(`service moveport deactivated`, time.Second)
	for i, want := range []bool{true, false, false, false, true, true} {
		got, _ := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[i]), "", 3*time.Second)
		if dayTimeRE.MatchString(got) != want {
			t.Errorf("port %d (P%d): served=%v, want %v", ports[i], i, !want, want)
		}
	}
}
