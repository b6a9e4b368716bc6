package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// firstLine connects to network/addr and returns the first line the
// server sends (with the connection still open, for the caller to close).
func firstLine(t *testing.T, network, addr string) (string, net.Conn, error) {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 3*time.Second)
	if err != nil {
		return "", nil, err
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.SetReadDeadline(time.Time{})
	return strings.TrimSpace(line), c, err
}

// ctfConf is the shape of the challenge template many CTF repositories
// copy: comments after fixed values, and a patched xinetd's kafel_rule.
const ctfConf = `
defaults
{
	log_type        = FILE {{LOG}}
	log_on_success  = PID HOST EXIT
	log_on_failure  = HOST
	cps             = 0 0
	instances       = 50 # the maximum number of challenge processes
}

service challenge
{
	disable     = no
	socket_type = stream
	protocol    = tcp
	wait        = no
	user        = {{USER}}
	type        = UNLISTED
	port        = {{P0}}
	bind        = 127.0.0.1
	server      = {{DIR}}/challenge
	per_source  = 2 # the maximum instances of this service per source IP address
	rlimit_cpu  = 20 # the maximum number of CPU seconds that the service may use
	kafel_rule  = /etc/challenge.kafel
}
`

// TestCTFTemplateServedWithItsLimits: xinetd 2.3.15 ignores the commented
// lines and serves without the limits; gxinetd applies them: of three
// concurrent clients from one address, two are served, and the server
// runs with the CPU limit. The check mode names every such line.
func TestCTFTemplateServedWithItsLimits(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	writeScript(t, dir, "challenge", "echo \"served cpu=$(ulimit -t)\"\nexec sleep 30\n")
	conf := render(t, dir, strings.ReplaceAll(ctfConf, "{{USER}}", currentUser(t)), ports)

	out, err := exec.Command(gxinetd, "-t", "-f", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("-t: %v (warnings only must exit 0)\n%s", err, out)
	}
	for _, want := range []string{"W-INLINE-COMMENT: defaults: instances", "W-INLINE-COMMENT: service challenge: per_source",
		"W-INLINE-COMMENT: service challenge: rlimit_cpu", "W-ATTR-UNKNOWN: service challenge: kafel_rule", "(configuration OK)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("-t output lacks %q:\n%s", want, out)
		}
	}
	js, _ := exec.Command(gxinetd, "-t", "-json", "-f", conf).Output()
	var cfg struct {
		Diags []struct {
			Code string `json:"code"`
		} `json:"diags"`
		Summary struct {
			Exit, Served int
		} `json:"summary"`
	}
	if err := json.Unmarshal(js, &cfg); err != nil {
		t.Fatalf("-t -json: %v\n%s", err, js)
	}
	codes := map[string]int{}
	for _, d := range cfg.Diags {
		codes[d.Code]++
	}
	if codes["W-INLINE-COMMENT"] != 3 || codes["W-ATTR-UNKNOWN"] != 1 || cfg.Summary.Exit != 0 || cfg.Summary.Served != 1 {
		t.Errorf("-t -json: codes %v, summary %+v", codes, cfg.Summary)
	}

	d := start(t, dir, conf)
	d.waitLog(`W-INLINE-COMMENT`, 5*time.Second) // the daemon log says it too
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	var mu sync.Mutex
	var served, refused int
	var held []net.Conn
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, c, err := firstLine(t, "tcp", addr)
			mu.Lock()
			defer mu.Unlock()
			if c != nil {
				held = append(held, c)
			}
			switch {
			case err == nil && line == "served cpu=20":
				served++
			case err == nil:
				t.Errorf("unexpected greeting %q (the CPU limit must be 20)", line)
			default:
				refused++
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	if served != 2 || refused != 1 {
		t.Fatalf("served %d, refused %d; want 2 and 1 (per_source = 2)\n%s", served, refused, d.daemonLog())
	}
	d.waitSvcLog(`FAIL: challenge per_source_limit from=127\.0\.0\.1`, 5*time.Second)
}

// TestDefaultsProblemsXinetdSurvives: a defaults block with a comment
// after a value, an unknown attribute and a line with too many values
// still starts the daemon, with the rest of the defaults in force.
func TestDefaultsProblemsXinetdSurvives(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := render(t, dir, `
defaults
{
	log_type        = FILE {{LOG}}
	log_on_success  = PID HOST
	cps             = 0 0 # off
	frobnicate      = 1
	max_load        = 8 9
	banner_success  = {{DIR}}/banner
}
`+builtinConf("daytime", "{{P0}}"), ports)
	os.WriteFile(filepath.Join(dir, "banner"), []byte("hello from defaults\n"), 0o644)
	d := start(t, dir, conf)
	got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second)
	if err != nil || !strings.HasPrefix(got, "hello from defaults\n") {
		t.Fatalf("daytime = %q, %v: the defaults' banner_success must apply\n%s", got, err, d.daemonLog())
	}
	d.waitLog(`E-ATTR-COUNT: defaults: max_load`, 5*time.Second)
	out, _ := exec.Command(gxinetd, "-t", "-f", conf).CombinedOutput()
	if !strings.Contains(string(out), "2 services accepted, 0 rejected, 0 disabled; 1 error, 2 warnings (configuration has errors)") {
		t.Errorf("-t summary:\n%s", out)
	}
}

// TestUnixDomainXinetdService: a unix-domain service written in
// xinetd.conf listens on its path with the socket file's owner and mode,
// tells the server who the peer is, and admits only the listed users.
func TestUnixDomainXinetdService(t *testing.T) {
	dir := newDir(t)
	writeScript(t, dir, "who", "echo \"$PROTO $UNIXLOCALPATH uid=$UNIXREMOTEEUID gid=$UNIXREMOTEEGID pid=$UNIXREMOTEPID\"\n")
	uid, gid := os.Getuid(), os.Getgid()
	conf := render(t, dir, fmt.Sprintf(`
defaults
{
	log_type        = FILE {{LOG}}
	log_on_failure  = HOST
}
service who
{
	socket_type = stream
	wait        = no
	user        = %[1]s
	server      = {{DIR}}/who
	unix_path   = {{DIR}}/who.sock
	unix_mode   = 0660
	unix_group  = %[3]d
	only_users  = %[2]d
}
service nobodyonly
{
	socket_type = stream
	wait        = no
	user        = %[1]s
	server      = {{DIR}}/who
	unix_path   = {{DIR}}/closed.sock
	unix_mode   = 0666
	only_users  = 4242
	only_groups = 4242
}
`, currentUser(t), uid, gid), nil)
	d := start(t, dir, conf)
	sock := filepath.Join(dir, "who.sock")
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket file: %v %v", fi, err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Gid) != gid {
		t.Errorf("socket group %d, want %d", st.Gid, gid)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	c.Close()
	want := fmt.Sprintf("UNIX %s uid=%d gid=%d pid=%d\n", sock, uid, gid, os.Getpid())
	if string(b) != want {
		t.Errorf("server saw %q, want %q\n%s", b, want, d.daemonLog())
	}
	// Not in only_users or only_groups: refused, with a FAIL record.
	c, err = net.Dial("unix", filepath.Join(dir, "closed.sock"))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Errorf("a peer outside only_users was served: %q", b)
	}
	c.Close()
	d.waitSvcLog(`FAIL: nobodyonly address`, 5*time.Second)
	// The socket file goes away with the daemon.
	d.signal(syscall.SIGTERM)
	d.waitExit(10 * time.Second)
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
}

// TestInetdDialectRecognised: an OpenBSD inetd.conf (its header, plain
// tcp next to tcp6 for one service) is read as OpenBSD without -dialect,
// so both lines serve; -t says which dialect and why.
func TestInetdDialectRecognised(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	user := currentUser(t)
	conf := fmt.Sprintf("#\t$OpenBSD: inetd.conf,v 1.1 2020/01/01 00:00:00 x Exp $\n"+
		"%[1]d\tstream\ttcp\tnowait\t%[2]s\t/bin/echo\techo v4\n"+
		"%[1]d\tstream\ttcp6\tnowait\t%[2]s\t/bin/echo\techo v6\n", ports[0], user)
	path := filepath.Join(dir, "inetd.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	out, err := exec.Command(gxinetd, "-t", "-inetd", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "read as the openbsd inetd.conf dialect: $OpenBSD$ header (line 1)") ||
		strings.Contains(string(out), "W-DUPLICATE") {
		t.Fatalf("-t -inetd: %v\n%s", err, out)
	}
	d := startInetd(t, dir, conf)
	for addr, want := range map[string]string{fmt.Sprintf("127.0.0.1:%d", ports[0]): "v4\n", fmt.Sprintf("[::1]:%d", ports[0]): "v6\n"} {
		if got, err := tcpExchange(t, addr, "", 5*time.Second); got != want {
			t.Errorf("%s served %q, %v; want %q\n%s", addr, got, err, want, d.daemonLog())
		}
	}
}

// TestXconvRoundTripServes: inetd.conf -> xconv -> gxinetd -t -> served,
// with the rate and the unix-domain entry carried over exactly.
func TestXconvRoundTripServes(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	user := currentUser(t)
	sock := filepath.Join(dir, "echo.sock")
	in := filepath.Join(dir, "inetd.conf")
	os.WriteFile(in, []byte(fmt.Sprintf("# $FreeBSD$\n"+
		"%[1]d\tstream\ttcp4\tnowait/0/2\t%[2]s\t/bin/echo\techo rated\n"+
		"%[3]s\tstream\tunix\tnowait\t%[2]s\t/bin/echo\techo over unix\n", ports[0], user, sock)), 0o644)
	cmd := exec.Command(xconv, in)
	var stderr syncBuf
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xconv: %v (an exact conversion exits 0)\n%s\n%s", err, stderr.String(), out)
	}
	for _, w := range []string{`per_source_cpm\s+= 2\n`, `unix_path\s+= ` + regexp.QuoteMeta(sock) + `\n`, `cps\s+= 0 0\n`} {
		if !mustRE(w).Match(out) {
			t.Errorf("conversion lacks %s:\n%s", w, out)
		}
	}
	conf := filepath.Join(dir, "xinetd.conf")
	os.WriteFile(conf, append([]byte(strings.ReplaceAll(baseDefaults, "{{LOG}}", filepath.Join(dir, "services.log"))), out...), 0o644)
	if chk, err := exec.Command(gxinetd, "-t", "-f", conf).CombinedOutput(); err != nil {
		t.Fatalf("gxinetd -t rejects the conversion: %v\n%s\n%s", err, chk, out)
	}
	d := start(t, dir, conf)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	for i := 0; i < 2; i++ {
		if got, err := tcpExchange(t, addr, "", 5*time.Second); got != "rated\n" {
			t.Fatalf("connection %d: %q %v\n%s", i, got, err, d.daemonLog())
		}
	}
	// The third connection from the address within a minute is refused.
	if got, _ := tcpExchange(t, addr, "", 5*time.Second); got == "rated\n" {
		t.Errorf("per_source_cpm = 2 let a third connection in")
	}
	d.waitSvcLog(`FAIL: \S+ per_source_rate from=127\.0\.0\.1`, 5*time.Second)
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("unix-domain entry: %v\n%s", err, d.daemonLog())
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(c); string(b) != "over unix\n" {
		t.Errorf("unix-domain entry served %q", b)
	}
	c.Close()
}

// TestDumpFindsTheDaemonsDumpFile: a detached daemon started with a
// relative -dumpfile moves to /; `gxinetd -dump` without -dumpfile (or
// with another one) still reads the file the daemon writes.
func TestDumpFindsTheDaemonsDumpFile(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports)
	pidfile := filepath.Join(dir, "gxinetd.pid")
	cmd := exec.Command(gxinetd, "-f", conf, "-pidfile", pidfile, "-dumpfile", "rel.dump", "-filelog", filepath.Join(dir, "daemon.log"))
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("detached start: %v\n%s", err, out)
	}
	var pid int
	if _, err := fmt.Sscan(readFile(pidfile), &pid); err != nil || pid <= 0 {
		t.Fatalf("pidfile: %q", readFile(pidfile))
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGTERM) })
	for _, args := range [][]string{{"-dump", "-pidfile", pidfile}, {"-dump", "-pidfile", pidfile, "-dumpfile", filepath.Join(dir, "other.dump")}} {
		run := exec.Command(gxinetd, args...)
		var stderr syncBuf
		run.Stderr = &stderr
		out, err := run.Output()
		if err != nil || !strings.Contains(string(out), "Service = dt") || !strings.Contains(string(out), "END OF DUMP") {
			t.Errorf("%v: %v\n%s\n%s", args, err, out, stderr.String())
		}
		if len(args) > 3 && !strings.Contains(stderr.String(), filepath.Join(dir, "rel.dump")) {
			t.Errorf("-dump with another -dumpfile must say which file it read: %s", stderr.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "rel.dump")); err != nil {
		t.Errorf("the dump is not where the daemon was told to write it: %v", err)
	}
}

// TestTCPWrappersProcessOptionsAndFiles: the hosts_options(5) process
// options (nice, umask, user, setenv) of the rule that allows a request
// are in force in its server, and /path pattern files are read.
func TestTCPWrappersProcessOptionsAndFiles(t *testing.T) {
	needRoot(t)
	ports := freePorts(t, 2)
	dir := newDir(t)
	writeScript(t, dir, "report", "echo \"uid=$(id -u) gid=$(id -g) umask=$(umask) nice=$(nice) who=$WHO\"\n")
	writeFile(t, filepath.Join(dir, "trusted"), "192.0.2.1\n127.0.0.1\n")
	writeFile(t, filepath.Join(dir, "hosts.allow"), fmt.Sprintf(
		"report : %s : nice 7 : umask 027 : user nobody : setenv WHO %%a\n", filepath.Join(dir, "trusted")))
	writeFile(t, filepath.Join(dir, "hosts.deny"), "ALL : ALL\n")
	conf := baseDefaults + `
service report
{
	type        = UNLISTED
	socket_type = stream
	port        = {{P0}}
	wait        = no
	user        = root
	server      = {{DIR}}/report
}
service other
{
	type        = UNLISTED
	socket_type = stream
	port        = {{P1}}
	wait        = no
	user        = root
	server      = {{DIR}}/report
	libwrap     = other
}
`
	d := start(t, dir, render(t, dir, conf, ports),
		"-hosts-allow", filepath.Join(dir, "hosts.allow"), "-hosts-deny", filepath.Join(dir, "hosts.deny"))
	got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second)
	nobody := strings.TrimSpace(string(must(exec.Command("id", "-u", "nobody").Output())))
	nogroup := strings.TrimSpace(string(must(exec.Command("id", "-g", "nobody").Output())))
	want := fmt.Sprintf("uid=%s gid=%s umask=0027 nice=7 who=127.0.0.1\n", nobody, nogroup)
	if err != nil || got != want {
		t.Errorf("server ran with %q, %v; want %q\n%s", got, err, want, d.daemonLog())
	}
	// Not in the pattern file's list for its daemon: hosts.deny refuses.
	if got, _ := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 5*time.Second); got != "" {
		t.Errorf("hosts.deny ALL: ALL let %q through", got)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
