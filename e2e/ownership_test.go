package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The ownership rule when gxinetd runs as root (internal/pathsafe): every
// file root reads or runs must be changeable by root alone, or, for a
// server, also by the user it runs as. These tests build real trees with
// real owners and check the daemon end to end, in -t and while serving.

const nobodyUID = 65534 // Debian's nobody:nogroup

func needNobody(t *testing.T) {
	t.Helper()
	needRoot(t)
	out, err := exec.Command("id", "-u", "nobody").Output()
	if err != nil || strings.TrimSpace(string(out)) != fmt.Sprint(nobodyUID) {
		t.Skipf("needs the user nobody with uid %d", nobodyUID)
	}
}

// ownFile writes a file (mode, owner) and returns its path.
func ownFile(t *testing.T, path, body string, mode os.FileMode, uid int) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func ownDir(t *testing.T, path string, mode os.FileMode, uid int) string {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func symlink(t *testing.T, target, path string, uid int) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// extSvc is an external stream service on 127.0.0.1.
func extSvc(name, port, user, server string) string {
	return fmt.Sprintf(`
service %s
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = %s
	bind        = 127.0.0.1
	wait        = no
	user        = %s
	server      = %s
}
`, name, port, user, server)
}

// checkMode runs gxinetd -t (args name the file) and returns its output
// and exit status.
func checkMode(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(gxinetd, append([]string{"-t"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("gxinetd -t: %v", err)
		}
	}
	return string(out), cmd.ProcessState.ExitCode()
}

type jsonDiag struct {
	Pos struct {
		File string `json:"file"`
		Line int    `json:"line"`
		Col  int    `json:"col"`
	} `json:"pos"`
	Code    string `json:"code"`
	Service string `json:"service"`
	Attr    string `json:"attr"`
	Msg     string `json:"msg"`
}

type jsonCheck struct {
	Services []struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Status string `json:"status"`
	} `json:"services"`
	Diags []jsonDiag `json:"diags"`
}

func checkJSON(t *testing.T, args ...string) jsonCheck {
	t.Helper()
	out, err := exec.Command(gxinetd, append([]string{"-t", "-json"}, args...)...).Output()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("gxinetd -t -json: %v", err)
		}
	}
	var c jsonCheck
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("-t -json output: %v\n%s", err, out)
	}
	return c
}

// lineCol finds where text first occurs in a file, 1-based.
func lineCol(t *testing.T, path, text string) (int, int) {
	t.Helper()
	for i, l := range strings.Split(readFile(path), "\n") {
		if j := strings.Index(l, text); j >= 0 {
			return i + 1, j + 1
		}
	}
	t.Fatalf("%q not in %s", text, path)
	return 0, 0
}

// TestOwnershipRunAsOwner: a server owned by the user it runs as is
// accepted and serves (a CTF binary in its user's home); the same file
// for a root service is refused, in -t with the server line's
// file:line:column, the exact directory, its owner and mode and the fix.
// Both languages.
func TestOwnershipRunAsOwner(t *testing.T) {
	needNobody(t)
	ports := freePorts(t, 4)
	dir := newDir(t)
	ctf := ownDir(t, filepath.Join(dir, "ctf"), 0o755, nobodyUID)
	game := ownFile(t, filepath.Join(ctf, "game"), "#!/bin/sh\nid -u\n", 0o755, nobodyUID)
	conf := render(t, dir, baseDefaults+extSvc("ctf", "{{P0}}", "nobody", game)+extSvc("rootctf", "{{P1}}", "root", game), ports)

	want := fmt.Sprintf("server %s: %s is owned by uid %d, not root (mode 0755); fix: chown root %s", game, ctf, nobodyUID, ctf)
	out, code := checkMode(t, "-f", conf)
	line, _ := lineCol(t, conf, "rootctf")
	srvLine := line + 9 // the server line of the entry extSvc writes
	_, col := lineCol(t, conf, "server      = ")
	pos := fmt.Sprintf("%s:%d:%d: error E-OWNERSHIP: service rootctf: server: ", conf, srvLine, col+len("server      = "))
	if code == 0 || !strings.Contains(out, pos+want) {
		t.Errorf("-t (exit %d) does not refuse rootctf with %q at %s:\n%s", code, want, pos, out)
	}
	if strings.Contains(out, "service ctf:") {
		t.Errorf("-t refuses the run-as owner's service:\n%s", out)
	}
	c := checkJSON(t, "-f", conf)
	var found bool
	for _, d := range c.Diags {
		if d.Code == "E-OWNERSHIP" && d.Service == "rootctf" && d.Attr == "server" && d.Pos.File == conf && d.Pos.Line == srvLine && strings.Contains(d.Msg, want) {
			found = true
		}
	}
	if !found {
		t.Errorf("-t -json has no E-OWNERSHIP diag for rootctf's server line: %+v", c.Diags)
	}

	d := start(t, dir, conf)
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || got != fmt.Sprintf("%d\n", nobodyUID) {
		t.Errorf("run-as owner's server: %q, %v\n%s", got, err, d.daemonLog())
	}
	if _, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 2*time.Second); err == nil {
		t.Errorf("the refused root service listens")
	}

	// inetd.conf: the same two entries.
	inetd := filepath.Join(dir, "inetd.conf")
	writeFile(t, inetd, fmt.Sprintf("127.0.0.1:%d\tstream\ttcp\tnowait\tnobody\t%s\tgame\n127.0.0.1:%d\tstream\ttcp\tnowait\troot\t%s\tgame\n",
		ports[2], game, ports[3], game))
	out, code = checkMode(t, "-inetd", inetd)
	_, col = lineCol(t, inetd, "root\t"+game)
	pos = fmt.Sprintf("%s:2:%d: error E-SERVER-PERM", inetd, col+len("root\t"))
	if code == 0 || !strings.Contains(out, pos) || !strings.Contains(out, want) || strings.Contains(out, inetd+":1:") {
		t.Errorf("-t -inetd (exit %d): want only line 2 refused with %q at %s:\n%s", code, want, pos, out)
	}
	di := startInetd(t, newDir(t), readFile(inetd))
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[2]), "", 5*time.Second); err != nil || got != fmt.Sprintf("%d\n", nobodyUID) {
		t.Errorf("inetd.conf run-as owner's server: %q, %v\n%s", got, err, di.daemonLog())
	}
}

// TestOwnershipSymlinkRootShell reproduces the root shell: a server path
// that runs through a link in a directory a user controls. The old check
// resolved the links and looked only at the result (root's /bin/...), so
// the user could repoint the link at a program of his choice and have it
// run as root. It is refused by -t in both languages and, when the
// directory changes hands while the daemon runs, at the next start.
func TestOwnershipSymlinkRootShell(t *testing.T) {
	needNobody(t)
	ports := freePorts(t, 1)
	dir := newDir(t)
	hello := ownFile(t, filepath.Join(dir, "bin/hello"), "#!/bin/sh\necho hello\n", 0o755, 0)
	pwned := filepath.Join(dir, "pwned")
	pwn := ownFile(t, filepath.Join(dir, "bin/pwn"), "#!/bin/sh\ntouch "+pwned+"\nid -u\n", 0o755, 0)
	home := ownDir(t, filepath.Join(dir, "home"), 0o755, 0)
	link := filepath.Join(home, "link")
	symlink(t, hello, link, 0)
	ownDir(t, filepath.Join(dir, "srv"), 0o755, 0)
	game := filepath.Join(dir, "srv/game")
	symlink(t, "../home/link", game, 0)
	conf := render(t, dir, baseDefaults+extSvc("game", "{{P0}}", "root", game), ports)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])

	d := start(t, dir, conf)
	if got, err := tcpExchange(t, addr, "", 5*time.Second); err != nil || got != "hello\n" {
		t.Fatalf("server while the chain is root's: %q, %v\n%s", got, err, d.daemonLog())
	}
	// The directory is handed to a user, who points the link at his own
	// program. No SIGHUP: the next start must refuse.
	if err := os.Chown(home, nobodyUID, nobodyUID); err != nil {
		t.Fatal(err)
	}
	os.Remove(link)
	symlink(t, pwn, link, nobodyUID)
	if got, _ := tcpExchange(t, addr, "", 5*time.Second); got != "" {
		t.Errorf("the repointed server ran: %q", got)
	}
	want := fmt.Sprintf("service game: not starting server %s: %s is owned by uid %d, not root (mode 0755) (reached through %s -> ../home/link); fix: chown root %s",
		game, home, nobodyUID, game, home)
	d.waitLog(regexp.QuoteMeta(want), 5*time.Second)
	d.waitSvcLog(`FAIL: game ownership from=127\.0\.0\.1`, 5*time.Second)
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("the user's program ran as root")
	}

	// -t says the same, in both languages.
	out, code := checkMode(t, "-f", conf)
	if code == 0 || !strings.Contains(out, "E-OWNERSHIP") || !strings.Contains(out, home+" is owned by uid") {
		t.Errorf("-t (exit %d) accepts the server through the user's directory:\n%s", code, out)
	}
	inetd := filepath.Join(dir, "inetd.conf")
	writeFile(t, inetd, fmt.Sprintf("127.0.0.1:%d\tstream\ttcp\tnowait\troot\t%s\tgame\n", ports[0], game))
	out, code = checkMode(t, "-inetd", inetd)
	if code == 0 || !strings.Contains(out, "E-SERVER-PERM") || !strings.Contains(out, home+" is owned by uid") {
		t.Errorf("-t -inetd (exit %d) accepts the server through the user's directory:\n%s", code, out)
	}
}

// TestOwnershipRootServerInTmp: a root-owned server directly in /tmp
// cannot be replaced by others (the sticky bit), so both languages accept
// it and it serves. inetd.conf used to refuse it while xinetd.conf
// accepted it.
func TestOwnershipRootServerInTmp(t *testing.T) {
	needRoot(t)
	var st syscall.Stat_t
	if err := syscall.Stat("/tmp", &st); err != nil || st.Uid != 0 || st.Mode&0o7777 != 0o1777 {
		t.Skip("/tmp is not root's sticky world-writable directory here")
	}
	f, err := os.CreateTemp("/tmp", "gxinetd-own-*")
	if err != nil {
		t.Fatal(err)
	}
	srv := f.Name()
	f.Close()
	t.Cleanup(func() { os.Remove(srv) })
	ownFile(t, srv, "#!/bin/sh\necho from tmp\n", 0o755, 0)
	ports := freePorts(t, 2)
	dir := newDir(t)
	conf := render(t, dir, baseDefaults+extSvc("tmpsrv", "{{P0}}", "root", srv), ports)
	inetd := filepath.Join(dir, "inetd.conf")
	writeFile(t, inetd, fmt.Sprintf("127.0.0.1:%d\tstream\ttcp\tnowait\troot\t%s\tsrv\n", ports[1], srv))
	if out, code := checkMode(t, "-f", conf); code != 0 {
		t.Errorf("-t refuses a root server in /tmp (exit %d):\n%s", code, out)
	}
	if out, code := checkMode(t, "-inetd", inetd); code != 0 {
		t.Errorf("-t -inetd refuses a root server in /tmp (exit %d):\n%s", code, out)
	}
	d := start(t, dir, conf)
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || got != "from tmp\n" {
		t.Errorf("xinetd.conf: %q, %v\n%s", got, err, d.daemonLog())
	}
	di := startInetd(t, newDir(t), readFile(inetd))
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 5*time.Second); err != nil || got != "from tmp\n" {
		t.Errorf("inetd.conf: %q, %v\n%s", got, err, di.daemonLog())
	}
}

// TestOwnershipConfigFiles: an include reached through a user's link in a
// sticky directory, an includedir in a world-writable directory and a main
// file in one are refused, each naming the component and the fix.
func TestOwnershipConfigFiles(t *testing.T) {
	needNobody(t)
	ports := freePorts(t, 3)
	dir := newDir(t)
	tmp := ownDir(t, filepath.Join(dir, "tmp"), 0o777|os.ModeSticky, 0)
	inc := ownFile(t, filepath.Join(dir, "inc.conf"), daytimeConf("viaLink", fmt.Sprint(ports[1])), 0o644, 0)
	link := filepath.Join(tmp, "inc")
	symlink(t, inc, link, nobodyUID)
	ww := ownDir(t, filepath.Join(dir, "ww"), 0o777, 0)
	ownFile(t, filepath.Join(ww, "dropped"), daytimeConf("viaDir", fmt.Sprint(ports[2])), 0o644, 0)
	conf := render(t, dir, baseDefaults+daytimeConf("main", "{{P0}}")+"include "+link+"\nincludedir "+ww+"\n", ports)

	out, code := checkMode(t, "-f", conf)
	for _, want := range []string{
		fmt.Sprintf("configuration file %s is owned by uid %d (mode 0777) in %s, a sticky directory others can write (mode 1777), so its owner can replace it; fix: chown -h root %s", link, nobodyUID, tmp, link),
		fmt.Sprintf("include directory %s is writable by everyone (mode 0777, owner uid 0); fix: chmod o-w %s", ww, ww),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-t lacks %q:\n%s", want, out)
		}
	}
	if code == 0 {
		t.Errorf("-t exit 0 with refused files:\n%s", out)
	}
	c := checkJSON(t, "-f", conf)
	for _, s := range c.Services {
		if s.ID != "main" {
			t.Errorf("service %s was read from a file others can change", s.ID)
		}
	}

	// The main file in a world-writable directory: refused outright.
	main := filepath.Join(ww, "xinetd.conf")
	writeFile(t, main, readFile(conf))
	out, code = checkMode(t, "-f", main)
	if code == 0 || !strings.Contains(out, fmt.Sprintf("configuration file %s: %s is writable by everyone", main, ww)) {
		t.Errorf("-t on a main file in a world-writable directory (exit %d):\n%s", code, out)
	}
}

// TestOwnershipCheckedAtEveryStart: a running server made world-writable,
// or replaced by a file a user owns, is not started again (no SIGHUP),
// with an error line naming the path, owner, mode and fix and a FAIL
// record; put right, it starts again.
func TestOwnershipCheckedAtEveryStart(t *testing.T) {
	needNobody(t)
	ports := freePorts(t, 1)
	dir := newDir(t)
	srv := ownFile(t, filepath.Join(dir, "bin/srv"), "#!/bin/sh\necho ok\n", 0o755, 0)
	conf := render(t, dir, baseDefaults+extSvc("srv", "{{P0}}", "root", srv), ports)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	d := start(t, dir, conf)
	served := func(want string) {
		t.Helper()
		if got, err := tcpExchange(t, addr, "", 5*time.Second); got != want {
			t.Errorf("server answered %q (%v), want %q", got, err, want)
		}
	}
	served("ok\n")

	if err := os.Chmod(srv, 0o777); err != nil {
		t.Fatal(err)
	}
	served("")
	d.waitLog(regexp.QuoteMeta(fmt.Sprintf("service srv: not starting server %s is writable by everyone (mode 0777, owner uid 0); fix: chmod o-w %s", srv, srv)), 5*time.Second)
	d.waitSvcLog(`FAIL: srv ownership from=127\.0\.0\.1`, 5*time.Second)
	// A reload now rejects the entry; whatever definition it keeps
	// running, that one must not start either.
	d.signal(syscall.SIGHUP)
	d.waitLog(`reconfiguration failed|Reconfigured`, 10*time.Second)
	served("")

	if err := os.Chmod(srv, 0o755); err != nil {
		t.Fatal(err)
	}
	served("ok\n")

	// Replaced by a file a user owns (rename over it, as an update would).
	repl := ownFile(t, filepath.Join(dir, "bin/.srv.new"), "#!/bin/sh\necho replaced\n", 0o755, nobodyUID)
	if err := os.Rename(repl, srv); err != nil {
		t.Fatal(err)
	}
	served("")
	d.waitLog(regexp.QuoteMeta(fmt.Sprintf("service srv: not starting server %s is owned by uid %d, not root (mode 0755); fix: chown root %s", srv, nobodyUID, srv)), 5*time.Second)
	// Records are written asynchronously: wait for the third, then make
	// sure there is no fourth.
	d.waitSvcLog(`(?s)(FAIL: srv ownership.*){3}`, 10*time.Second)
	if n := strings.Count(readFile(d.svcLog), "FAIL: srv ownership"); n != 3 {
		t.Errorf("%d FAIL records with reason ownership, want 3:\n%s", n, readFile(d.svcLog))
	}
}

// TestOwnershipBannerAtSend: a banner that becomes writable by others
// after loading is no longer sent (root would copy whatever it then names,
// /etc/shadow through a link, to the client); the log says why.
func TestOwnershipBannerAtSend(t *testing.T) {
	needRoot(t)
	ports := freePorts(t, 1)
	dir := newDir(t)
	banner := ownFile(t, filepath.Join(dir, "banner"), "welcome\n", 0o644, 0)
	conf := render(t, dir, baseDefaults+daytimeSvc("dt", "{{P0}}", "\tbanner = "+banner+"\n"), ports)
	d := start(t, dir, conf)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	if got, err := tcpExchange(t, addr, "", 5*time.Second); err != nil || !strings.HasPrefix(got, "welcome\n") {
		t.Fatalf("banner while safe: %q, %v", got, err)
	}
	if err := os.Chmod(banner, 0o666); err != nil {
		t.Fatal(err)
	}
	got, err := tcpExchange(t, addr, "", 5*time.Second)
	if err != nil || strings.Contains(got, "welcome") || !dayTimeRE.MatchString(got) {
		t.Errorf("after chmod o+w: %q, %v; want the daytime answer without the banner", got, err)
	}
	d.waitLog(regexp.QuoteMeta(fmt.Sprintf("service = dt, banner not sent: %s is writable by everyone (mode 0666, owner uid 0); fix: chmod o-w %s", banner, banner)), 5*time.Second)
}
