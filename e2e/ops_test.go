package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

// unitEnv reads EnvironmentFile= files the way systemd does for the
// simple lines distribution files hold: NAME=value, NAME="value",
// comments and blank lines ignored; later files override earlier ones.
func unitEnv(t *testing.T, files ...string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' || line[0] == ';' {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
				v = v[1 : len(v)-1]
			}
			env[strings.TrimSpace(k)] = v
		}
	}
	return env
}

// unitCommand returns the argv of a unit's Exec line (key "ExecStart"
// ...) with systemd's variable expansion: a word that is exactly $NAME
// becomes the value's words (none when unset or empty), ${NAME} inside a
// word is replaced by the value. The unit's Exec lines hold no quotes.
func unitCommand(t *testing.T, unit, key string, env map[string]string) []string {
	t.Helper()
	var line string
	for _, l := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			line = v
		}
	}
	if line == "" {
		t.Fatalf("unit has no %s=:\n%s", key, unit)
	}
	if strings.ContainsAny(line, `"'\`) {
		t.Fatalf("%s has quoting this test does not expand: %s", key, line)
	}
	braced := regexp.MustCompile(`\$\{(\w+)\}`)
	var argv []string
	for _, w := range strings.Fields(line) {
		if m := regexp.MustCompile(`^\$(\w+)$`).FindStringSubmatch(w); m != nil {
			argv = append(argv, strings.Fields(env[m[1]])...)
			continue
		}
		argv = append(argv, braced.ReplaceAllStringFunc(w, func(s string) string { return env[s[2:len(s)-1]] }))
	}
	return argv
}

var installs = map[string]string{}

// installed runs `make install` into a DESTDIR with the given PREFIX
// (once per PREFIX and test binary) and returns the DESTDIR and the
// installed unit's text.
func installed(t *testing.T, prefix string) (string, string) {
	t.Helper()
	needCmd(t, "make", "install")
	if dest, ok := installs[prefix]; ok {
		return dest, readFile(filepath.Join(dest, "lib/systemd/system/gxinetd.service"))
	}
	dest, err := os.MkdirTemp(binDir, "destdir-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dest, 0o755)
	args := []string{"-s", "-C", repoRoot(t), "install", "DESTDIR=" + dest}
	if prefix != "" {
		args = append(args, "PREFIX="+prefix)
	}
	cmd := exec.Command("make", args...)
	cmd.Env = goEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	installs[prefix] = dest
	return dest, readFile(filepath.Join(dest, "lib/systemd/system/gxinetd.service"))
}

// TestInstalledUnitVerifies: with the default PREFIX and with
// PREFIX=/usr, the installed unit runs the binary where install put it,
// and systemd-analyze verify accepts it and the socket unit example
// (the binary made visible at its path in a private mount namespace,
// the manual pages found where install put them).
func TestInstalledUnitVerifies(t *testing.T) {
	needRoot(t)
	needCmd(t, "systemd-analyze", "unshare", "mount")
	for _, c := range []struct{ prefix, sbin string }{{"", "/usr/local/sbin"}, {"/usr", "/usr/sbin"}} {
		t.Run("prefix="+c.sbin, func(t *testing.T) {
			dest, unit := installed(t, c.prefix)
			for _, key := range []string{"ExecStartPre", "ExecStart"} {
				argv := unitCommand(t, unit, key, nil)
				if argv[0] != c.sbin+"/gxinetd" {
					t.Errorf("%s runs %s, but install put gxinetd in %s", key, argv[0], c.sbin)
				}
			}
			if _, err := os.Stat(c.sbin); err != nil {
				t.Skipf("%s does not exist on this machine: %v", c.sbin, err)
			}
			unitDir := filepath.Join(dest, "lib/systemd/system")
			sock, err := os.ReadFile(filepath.Join(dest, strings.TrimPrefix(c.prefix+"/share/doc/gxinetd/examples/gxinetd.socket", "/")))
			if c.prefix == "" {
				sock, err = os.ReadFile(filepath.Join(dest, "usr/local/share/doc/gxinetd/examples/gxinetd.socket"))
			}
			if err != nil {
				t.Fatalf("socket unit example not installed: %v", err)
			}
			writeFile(t, filepath.Join(unitDir, "gxinetd.socket"), string(sock))
			script := fmt.Sprintf(`mount --bind "$1%[1]s" %[1]s && exec systemd-analyze verify "$2/gxinetd.service" "$2/gxinetd.socket"`, c.sbin)
			cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", dest, unitDir)
			cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(dest, strings.TrimPrefix(c.sbin, "/"), "../share/man"))
			out, err := cmd.CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s\nunit:\n%s", err, out, unit)
			}
		})
	}
}

// TestUnitStartsWithDistributionOptions: the installed unit's own
// commands, with the variables of Debian's /etc/default/xinetd and Red
// Hat's /etc/sysconfig/xinetd: the start gate lets a configuration with
// one broken entry through (the daemon serves the rest) and stops only
// one the daemon cannot start with; INETD_COMPAT=Yes serves inetd.conf,
// and Debian's -inetd_ipv6 is accepted.
func TestUnitStartsWithDistributionOptions(t *testing.T) {
	dest, unit := installed(t, "/usr")
	bin := filepath.Join(dest, "usr/sbin/gxinetd")
	ports := freePorts(t, 3)
	dir := newDir(t)
	conf := render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}")+`
service broken
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	server      = /no/such/server
}
`, ports)
	inetdConf := filepath.Join(dir, "inetd.conf")
	writeFile(t, inetdConf, fmt.Sprintf("127.0.0.1:%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo from inetd.conf\n", ports[2], currentUser(t)))
	local := filepath.Join(dir, "default-gxinetd")
	writeFile(t, local, fmt.Sprintf("GXINETD_OPTS=\"-inetd_compat_file %s -inetd_ipv6 -filelog %s\"\n", inetdConf, filepath.Join(dir, "daemon.log")))
	env := unitEnv(t, "testdata/ops/default-xinetd", "testdata/ops/sysconfig-xinetd", local)
	fix := func(argv []string) []string {
		out := []string{bin}
		for _, a := range argv[1:] {
			switch a {
			case "/etc/xinetd.conf":
				a = conf
			case "/run/gxinetd.pid":
				a = filepath.Join(dir, "gxinetd.pid")
			}
			out = append(out, a)
		}
		return out
	}

	pre := fix(unitCommand(t, unit, "ExecStartPre", env))
	out, err := exec.Command(pre[0], pre[1:]...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "broken") {
		t.Fatalf("start gate %v refused a configuration with one broken entry (or did not show it): %v\n%s", pre, err, out)
	}
	// Plain -t still fails on it: the gate is not the check.
	if exec.Command(bin, "-t", "-f", conf).Run() == nil {
		t.Errorf("gxinetd -t accepted a configuration with a broken entry")
	}
	missing := append(append([]string{}, pre...), "-f", filepath.Join(dir, "missing.conf"))
	if err := exec.Command(missing[0], missing[1:]...).Run(); err == nil {
		t.Errorf("start gate accepted a configuration file that does not exist")
	}

	argv := fix(unitCommand(t, unit, "ExecStart", env))
	d := startBin(t, dir, argv[0], argv[1:]...)
	d.waitLog(`Started working: 2 available services`, 15*time.Second)
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
		t.Errorf("xinetd.conf service: %q %v\n%s", got, err, d.daemonLog())
	}
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[2]), "", 5*time.Second); err != nil || got != "from inetd.conf\n" {
		t.Errorf("INETD_COMPAT=Yes: inetd.conf service: %q %v\n%s", got, err, d.daemonLog())
	}
	if !strings.Contains(d.stderr.String(), "-inetd_ipv6 changes nothing") {
		t.Errorf("no notice for -inetd_ipv6:\n%s", d.stderr.String())
	}
}

// startBin is startRaw for another binary (an installed one).
func startBin(t *testing.T, dir, bin string, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: dir, logFile: filepath.Join(dir, "daemon.log"), svcLog: filepath.Join(dir, "services.log"),
		stderr: &syncBuf{}, exited: make(chan struct{})}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stderr, d.cmd.Stdout, d.cmd.Dir = d.stderr, d.stderr, dir
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	return d
}

// syslogLines collects the datagrams a test syslog socket receives.
type syslogLines struct {
	conn *net.UnixConn
	got  []string
}

func newSyslogLines(t *testing.T, path string) *syslogLines {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &syslogLines{conn: c}
}

// until reads datagrams until re has matched n of them (bounded).
func (s *syslogLines) until(t *testing.T, re *regexp.Regexp, n int, timeout time.Duration) {
	t.Helper()
	count := 0
	for _, g := range s.got {
		if re.MatchString(g) {
			count++
		}
	}
	buf := make([]byte, 8192)
	deadline := waitBound(timeout)
	for count < n {
		s.conn.SetReadDeadline(deadline)
		k, err := s.conn.Read(buf)
		if err != nil {
			t.Fatalf("syslog: %d of %d %q datagrams (%v); got:\n%s", count, n, re, err, strings.Join(s.got, "\n"))
		}
		msg := strings.TrimRight(string(buf[:k]), "\n")
		s.got = append(s.got, msg)
		if re.MatchString(msg) {
			count++
		}
	}
}

var rfc3164 = regexp.MustCompile(`^<\d+>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ([^\[: ]+)\[(\d+)\]: (.*)$`)

// storedAsRsyslog turns the datagrams into the lines rsyslog's default
// file format (RSYSLOG_TraditionalFileFormat, Debian's /var/log/syslog)
// and `journalctl -o short` store them as: TIMESTAMP HOST TAG[PID]: MSG.
func storedAsRsyslog(t *testing.T, dgrams []string) string {
	t.Helper()
	var b strings.Builder
	for _, g := range dgrams {
		m := rfc3164.FindStringSubmatch(g)
		if m == nil {
			t.Fatalf("not an RFC 3164 datagram as glibc's syslog(3) sends it: %q", g)
		}
		fmt.Fprintf(&b, "%s testhost %s[%s]: %s\n", m[1], m[2], m[3], m[4])
	}
	return b.String()
}

// fail2banIPs runs fail2ban-regex over a log and returns the addresses
// the filter matched, sorted.
func fail2banIPs(t *testing.T, log, filter string) []string {
	t.Helper()
	out, err := exec.Command("fail2ban-regex", "-o", "ip", log, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex %s %s: %v\n%s", log, filter, err, out)
	}
	var ips []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); net.ParseIP(l) != nil {
			ips = append(ips, l)
		}
	}
	sort.Strings(ips)
	return ips
}

// TestFail2banStockFilter: Debian's fail2ban filter xinetd-fail, as
// installed and unchanged, matches the FAIL lines gxinetd sends to
// syslog with the shipped unit's options and xinetd.conf's defaults:
// refusals by address and by tcp_wrappers, stored as rsyslog writes
// them and as the journal backend reads them. With another identity
// (-syslog-ident gxinetd) it matches none, which is why xinetd's is
// the default.
func TestFail2banStockFilter(t *testing.T) {
	needCmd(t, "fail2ban-regex")
	const filter = "/etc/fail2ban/filter.d/xinetd-fail.conf"
	if _, err := os.Stat(filter); err != nil {
		t.Skipf("%s: %v (Debian's fail2ban package installs it; .ci/run does)", filter, err)
	}
	_, unit := installed(t, "/usr")
	dist := readFile(filepath.Join(repoRoot(t), "dist/xinetd.conf"))
	defaults := dist[strings.Index(dist, "defaults"):strings.Index(dist, "includedir")]
	for _, c := range []struct {
		extra []string
		want  []string
	}{
		{nil, []string{"127.0.0.2", "127.0.0.3"}},
		{[]string{"-syslog-ident", "gxinetd"}, nil},
	} {
		t.Run(fmt.Sprintf("args=%v", c.extra), func(t *testing.T) {
			ports := freePorts(t, 1)
			dir := newDir(t)
			conf := render(t, dir, defaults+daytimeSvc("dt", "{{P0}}", "\tonly_from = 127.0.0.1 127.0.0.3\n"), ports)
			deny := filepath.Join(dir, "hosts.deny")
			writeFile(t, deny, "daytime: 127.0.0.3\n")
			writeFile(t, filepath.Join(dir, "hosts.allow"), "")
			sock := filepath.Join(dir, "log.sock")
			rx := newSyslogLines(t, sock)
			// The unit's ExecStart, pointed at the test's files.
			var args []string
			for _, a := range unitCommand(t, unit, "ExecStart", nil)[1:] {
				switch a {
				case "/etc/xinetd.conf":
					a = conf
				case "/run/gxinetd.pid":
					a = filepath.Join(dir, "gxinetd.pid")
				}
				args = append(args, a)
			}
			args = append(args, "-syslog-socket", sock, "-hosts-allow", filepath.Join(dir, "hosts.allow"), "-hosts-deny", deny)
			d := startRaw(t, dir, append(args, c.extra...)...)
			rx.until(t, regexp.MustCompile(`Started working`), 1, 15*time.Second)
			addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
			readAllFrom("127.0.0.2", addr)
			readAllFrom("127.0.0.3", addr)
			if got, err := tcpExchange(t, addr, "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
				t.Fatalf("allowed client not served: %q %v", got, err)
			}
			rx.until(t, regexp.MustCompile(`\]: FAIL: `), 2, 10*time.Second)
			rx.until(t, regexp.MustCompile(`\]: START: `), 1, 10*time.Second)
			stored := storedAsRsyslog(t, rx.got)
			log := filepath.Join(dir, "syslog")
			writeFile(t, log, stored)
			if got := fail2banIPs(t, log, filter); strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("xinetd-fail matched %v, want %v, in:\n%s", got, c.want, stored)
			}
			if got := fail2banIPs(t, log, "xinetd-fail[logtype=journal]"); strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("xinetd-fail (journal) matched %v, want %v, in:\n%s", got, c.want, stored)
			}
			d.signal(syscall.SIGTERM)
			d.waitExit(10 * time.Second)
		})
	}
}

// TestSyslogUnreachableFallsBackToStderr: a container has no syslog
// socket. The daemon's messages then go to standard error (where docker
// logs looks), the first saying so once, instead of nowhere.
func TestSyslogUnreachableFallsBackToStderr(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports)
	nowhere := filepath.Join(dir, "no-syslog-here")
	d := startRaw(t, dir, "-f", conf, "-dontfork", "-syslog-socket", nowhere, "-pidfile", filepath.Join(dir, "p.pid"))
	d.waitLog(`NOTICE: Started working: 1 available service`, 15*time.Second)
	d.signal(syscall.SIGHUP)
	d.waitLog(`Reconfigured`, 10*time.Second)
	text := d.stderr.String()
	if n := strings.Count(text, "syslog is unreachable"); n != 1 {
		t.Errorf("%d fallback notices, want 1:\n%s", n, text)
	}
	if !strings.Contains(text, nowhere) || !regexp.MustCompile(`(?m)^\d\d/\d{1,2}/\d{1,2}@\d\d:\d\d:\d\d xinetd\[\d+\]: NOTICE: syslog is unreachable`).MatchString(text) {
		t.Errorf("the notice does not name the socket or lacks the -filelog layout:\n%s", text)
	}
	// -log-stderr asks for it outright: no notice, the same layout.
	dir2 := newDir(t)
	d2 := startRaw(t, dir2, "-f", render(t, dir2, baseDefaults+daytimeConf("dt", "{{P0}}"), ports), "-dontfork", "-log-stderr",
		"-pidfile", filepath.Join(dir2, "p.pid"))
	d.signal(syscall.SIGTERM)
	d.waitExit(10 * time.Second)
	d2.waitLog(`xinetd\[\d+\]: NOTICE: Started working: 1 available service`, 15*time.Second)
	if strings.Contains(d2.stderr.String(), "unreachable") {
		t.Errorf("-log-stderr still tried syslog:\n%s", d2.stderr.String())
	}
	d2.signal(syscall.SIGTERM)
	d2.waitExit(10 * time.Second)

	// Detaching, the daemon's stderr is /dev/null: the first process
	// says, while it still has a terminal, that the messages would be lost.
	dir3 := newDir(t)
	pidfile := filepath.Join(dir3, "p.pid")
	cmd := exec.Command(gxinetd, "-f", render(t, dir3, baseDefaults+daytimeConf("dt", "{{P0}}"), ports), "-syslog-socket", nowhere, "-pidfile", pidfile)
	out, err := cmd.CombinedOutput()
	if pid, perr := ReadPid(pidfile); perr == nil && pidAlive(pid) && isOurGxinetd(pid) {
		syscall.Kill(pid, syscall.SIGTERM)
		waitGone(t, pid, 10*time.Second)
	}
	if err != nil || !strings.Contains(string(out), "the daemon's messages will be lost") {
		t.Errorf("daemon mode without syslog: %v %q", err, out)
	}
}

// TestFileLogOnStdoutLinkKeepsLogging: log_type FILE on a link to the
// daemon's standard output (what /dev/stdout is, here a pipe) with a
// hard limit passed many times: every record still arrives, and the
// link is neither renamed nor replaced (a rotation used to rename it and
// stop the records).
func TestFileLogOnStdoutLinkKeepsLogging(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	link := filepath.Join(dir, "stdout")
	if err := os.Symlink("/proc/self/fd/1", link); err != nil {
		t.Fatal(err)
	}
	conf := `
defaults
{
	log_type       = FILE ` + link + ` 100 200
	log_on_success = PID HOST
	cps            = 0 0
}
` + daytimeConf("dt", "{{P0}}")
	d := start(t, dir, render(t, dir, conf, ports))
	const n = 12
	for i := 0; i < n; i++ {
		if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
			t.Fatalf("connection %d: %q %v", i, got, err)
		}
	}
	waitIn(t, d.stderr.String, fmt.Sprintf(`(?s)(START: dt pid=0 from=\S+\n.*){%d}`, n), 10*time.Second)
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "stdout") && e.Name() != "stdout" {
			t.Errorf("rotated copy %s", e.Name())
		}
	}
	if strings.Contains(d.daemonLog(), "exceeded hard limit") {
		t.Errorf("a rotation was attempted:\n%s", d.daemonLog())
	}
}

// TestUsersFromNSS: a user and a group that only an NSS module knows
// (libnss-extrausers here; LDAP and SSSD work the same way) are resolved
// by the check mode and when a server is started: its uid, primary group
// and supplementary groups (initgroups through getgrouplist). The
// module is switched on for gxinetd alone: a private mount namespace
// where a test nsswitch.conf and extrausers directory are bound over the
// host's, which nothing else sees.
func TestUsersFromNSS(t *testing.T) {
	needRoot(t)
	needCmd(t, "unshare", "mount")
	if _, err := os.Stat("/var/lib/extrausers"); err != nil {
		t.Skip("libnss-extrausers is not installed (.ci/run installs it)")
	}
	if out, _ := exec.Command(gxinetd, "-version").CombinedOutput(); strings.Contains(string(out), "without cgo") {
		t.Skip("this gxinetd was built without cgo: it reads /etc/passwd and /etc/group only")
	}
	ports := freePorts(t, 1)
	dir := newDir(t)
	extra := filepath.Join(dir, "extrausers")
	os.Mkdir(extra, 0o755)
	writeFile(t, filepath.Join(extra, "passwd"), "gxnssuser:x:47110:47110:NSS-only user:/nonexistent:/usr/sbin/nologin\n")
	writeFile(t, filepath.Join(extra, "group"), "gxnssuser:x:47110:\ngxnssgrp:x:47112:gxnssuser\n")
	var nss strings.Builder
	for _, l := range strings.Split(readFile("/etc/nsswitch.conf"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && (f[0] == "passwd:" || f[0] == "group:") {
			continue
		}
		nss.WriteString(l + "\n")
	}
	nss.WriteString("passwd: files extrausers\ngroup: files extrausers\n")
	nssConf := filepath.Join(dir, "nsswitch.conf")
	writeFile(t, nssConf, nss.String())
	conf := render(t, dir, baseDefaults+`
service whoami
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	user        = gxnssuser
	groups      = yes
	server      = /usr/bin/id
}
`, ports)
	ns := func(args ...string) []string {
		script := `mount --bind "$1" /etc/nsswitch.conf && mount --bind "$2" /var/lib/extrausers && shift 2 && exec "$@"`
		return append([]string{"-m", "--propagation", "private", "sh", "-c", script, "sh", nssConf, extra}, args...)
	}
	// Outside the namespace the user does not exist: the test can tell.
	if out, err := exec.Command(gxinetd, "-t", "-f", conf).CombinedOutput(); err == nil || !strings.Contains(string(out), "gxnssuser") {
		t.Fatalf("without the NSS module the user should be unknown: %v\n%s", err, out)
	}
	if out, err := exec.Command("unshare", ns(gxinetd, "-t", "-f", conf)...).CombinedOutput(); err != nil {
		t.Fatalf("gxinetd -t does not know the NSS user: %v\n%s", err, out)
	}
	d := startBin(t, dir, "unshare", ns(gxinetd, "-f", conf, "-dontfork", "-filelog", filepath.Join(dir, "daemon.log"),
		"-pidfile", filepath.Join(dir, "gxinetd.pid"))...)
	d.waitLog(`Started working: 1 available service`, 15*time.Second)
	got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second)
	if err != nil || !regexp.MustCompile(`^uid=47110\S* gid=47110\S* groups=47110\S*,47112\(gxnssgrp\)\n$`).MatchString(got) {
		t.Fatalf("server runs as %q (%v), want uid and gid 47110 with the NSS group 47112\n%s", got, err, d.daemonLog())
	}
}

// TestContainerExample runs examples/container as its Dockerfile would
// (docker itself cannot run here): the files are laid out as the COPY
// lines put them (under a directory standing in for /, the absolute
// paths in them pointed there, the ports moved to free ones), the check
// mode passes, the image's CMD serves the challenge in the foreground
// with the daemon's messages on stderr and the records on stdout, the
// HEALTHCHECK command succeeds, and SIGTERM (docker stop) ends it with 0.
func TestContainerExample(t *testing.T) {
	needRoot(t) // the challenge runs as nobody
	needCmd(t, "bash")
	src := filepath.Join(repoRoot(t), "examples/container")
	dockerfile := readFile(filepath.Join(src, "Dockerfile"))
	ports := freePorts(t, 2)
	root := newDir(t)
	rewrite := strings.NewReplacer("/etc/xinetd.d", root+"/etc/xinetd.d", "/srv/challenge", root+"/srv/challenge",
		"/etc/xinetd.conf", root+"/etc/xinetd.conf", "1337", fmt.Sprint(ports[0]), "9013", fmt.Sprint(ports[1]))
	copies := 0
	for _, m := range regexp.MustCompile(`(?m)^COPY (examples/container/\S*) (\S+)$`).FindAllStringSubmatch(dockerfile, -1) {
		from := filepath.Join(repoRoot(t), m[1])
		to := filepath.Join(root, m[2])
		err := filepath.WalkDir(from, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(from, p)
			dst := to
			if strings.HasSuffix(m[2], "/") || rel != "." {
				dst = filepath.Join(to, rel)
			}
			if e.IsDir() {
				return os.MkdirAll(dst, 0o755)
			}
			os.MkdirAll(filepath.Dir(dst), 0o755)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi, _ := e.Info()
			return os.WriteFile(dst, []byte(rewrite.Replace(string(b))), fi.Mode().Perm())
		})
		if err != nil {
			t.Fatal(err)
		}
		copies++
	}
	if copies != 3 {
		t.Fatalf("found %d COPY lines of examples/container in the Dockerfile, want 3", copies)
	}
	conf := filepath.Join(root, "etc/xinetd.conf")
	if out, err := exec.Command(gxinetd, "-t", "-f", conf).CombinedOutput(); err != nil || !strings.Contains(string(out), " 0 errors, 0 warnings (configuration OK)") {
		t.Fatalf("gxinetd -t on the container configuration: %v\n%s", err, out)
	}

	jsonArgs := func(instr string) []string {
		m := regexp.MustCompile(`(?m)^` + instr + `.*?\[(.*)\]$`).FindStringSubmatch(dockerfile)
		if m == nil {
			t.Fatalf("Dockerfile has no %s [...]", instr)
		}
		var out []string
		for _, q := range regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(m[1], -1) {
			out = append(out, rewrite.Replace(q[1]))
		}
		return out
	}
	cmdArgs := jsonArgs("CMD")
	if cmdArgs[0] != "/usr/sbin/gxinetd" {
		t.Fatalf("CMD runs %s", cmdArgs[0])
	}
	var stdout, stderr syncBuf
	d := &daemon{t: t, dir: root, stderr: &stderr, exited: make(chan struct{})}
	d.cmd = exec.Command(gxinetd, cmdArgs[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = &stdout, &stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	waitIn(t, stderr.String, `xinetd\[\d+\]: NOTICE: Started working: 2 available services`, 15*time.Second)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	if got, err := tcpExchange(t, addr, "42\n", 10*time.Second); err != nil || !strings.HasSuffix(got, "What is 6 * 7? flag{gxinetd-serves-containers}\n") {
		t.Errorf("right answer: %q %v\n%s", got, err, stderr.String())
	}
	if got, err := tcpExchange(t, addr, "41\n", 10*time.Second); err != nil || !strings.HasSuffix(got, "No flag for you.\n") {
		t.Errorf("wrong answer: %q %v", got, err)
	}
	waitIn(t, stdout.String, `(?s)START: challenge pid=\d+ from=\S+\n.*EXIT: challenge status=0 pid=\d+`, 10*time.Second)
	if strings.Contains(stdout.String(), "NOTICE") || strings.Contains(stderr.String(), "START:") {
		t.Errorf("records and daemon messages mixed up:\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	hc := jsonArgs("HEALTHCHECK")
	if out, err := exec.Command(hc[0], hc[1:]...).CombinedOutput(); err != nil {
		t.Errorf("HEALTHCHECK %v: %v %s", hc, err, out)
	}
	if strings.Contains(stdout.String(), "health") {
		t.Errorf("health checks are logged:\n%s", stdout.String())
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.waitExit(15 * time.Second); code != 0 {
		t.Errorf("docker stop (SIGTERM): exit %d\n%s", code, stderr.String())
	}
}

// TestMakeRunStopsOnCtrlC: Ctrl-C in a terminal sends SIGINT to the
// foreground process group, here make and the gxinetd it runs. gxinetd
// must stop, or make waits for it for ever.
func TestMakeRunStopsOnCtrlC(t *testing.T) {
	needCmd(t, "make")
	if os.Getenv("GXINETD_SKIP_EXAMPLES") != "" {
		t.Skip("GXINETD_SKIP_EXAMPLES set")
	}
	// The examples listen on fixed ports 10000-10199.
	testnet.Lock(t, "examples-ports")
	var out syncBuf
	cmd := exec.Command("make", "-s", "-C", repoRoot(t), "run")
	cmd.Env = goEnv()
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			syscall.Kill(-pgid, syscall.SIGKILL)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("make run's process group survived SIGKILL")
			}
		}
	})
	waitIn(t, out.String, `Started working: \d+ available services`, 60*time.Second)
	syscall.Kill(-pgid, syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatalf("make run still running 15s after Ctrl-C:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "SIGINT in the foreground: stopping") {
		t.Errorf("gxinetd did not stop on SIGINT:\n%s", out.String())
	}
}
