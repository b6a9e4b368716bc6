package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func osWriteFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

// TestTFTPAsUDPWaitService runs tftpd-hpa as xinetd runs it (dgram, wait)
// and fetches files with the real tftp client, twice: the socket must
// come back to gxinetd after each server exits.
func TestTFTPAsUDPWaitService(t *testing.T) {
	needRoot(t)
	needCmd(t, "in.tftpd", "tftp")
	ports := freePorts(t, 1)
	dir := newDir(t)
	root := filepath.Join(dir, "tftproot")
	os.Mkdir(root, 0o755)
	writeFile(t, filepath.Join(root, "greeting"), "hello over tftp\n")
	tftpd, _ := exec.LookPath("in.tftpd")
	conf := baseDefaults + `
service tftp
{
	type        = UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P0}}
	wait        = yes
	user        = root
	server      = ` + tftpd + `
	server_args = -t 1 -s ` + root + `
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	for i := 0; i < 2; i++ {
		out := filepath.Join(dir, fmt.Sprintf("got%d", i))
		cmd := exec.Command("tftp", "-m", "binary", "127.0.0.1", fmt.Sprint(ports[0]), "-c", "get", "greeting", out)
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		if err != nil || readFile(out) != "hello over tftp\n" {
			t.Fatalf("tftp get #%d: %v %s; file %q\n%s", i, err, b, readFile(out), d.daemonLog())
		}
		// tftpd lingers a second (-t 1) for more requests, then exits and
		// the socket must come back to gxinetd for the next request.
		d.waitSvcLog(fmt.Sprintf(`(?s)(EXIT: tftp status=0.*){%d}`, i+1), 20*time.Second)
	}
	if n := strings.Count(readFile(d.svcLog), "START: tftp"); n != 2 {
		t.Errorf("%d tftp servers started, want 2", n)
	}
}

func TestRsyncDaemonNowait(t *testing.T) {
	needCmd(t, "rsync")
	ports := freePorts(t, 1)
	dir := newDir(t)
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	writeFile(t, filepath.Join(data, "file.txt"), strings.Repeat("rsync through gxinetd\n", 1000))
	writeFile(t, filepath.Join(dir, "rsyncd.conf"), "use chroot = no\n[data]\n\tpath = "+data+"\n\tread only = yes\n")
	rsync, _ := exec.LookPath("rsync")
	conf := baseDefaults + `
service rsync
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	user        = ` + currentUser(t) + `
	server      = ` + rsync + `
	server_args = --daemon --config=` + filepath.Join(dir, "rsyncd.conf") + `
}
`
	start(t, dir, render(t, dir, conf, ports))
	dst := filepath.Join(dir, "copy.txt")
	out, err := exec.Command("rsync", fmt.Sprintf("rsync://127.0.0.1:%d/data/file.txt", ports[0]), dst).CombinedOutput()
	if err != nil || readFile(dst) != readFile(filepath.Join(data, "file.txt")) {
		t.Fatalf("rsync: %v %s", err, out)
	}
}

func TestGitDaemonInetd(t *testing.T) {
	needCmd(t, "git")
	ports := freePorts(t, 1)
	dir := newDir(t)
	repo := filepath.Join(dir, "repo.git")
	work := filepath.Join(dir, "work")
	run := func(cwd string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = cwd
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	os.Mkdir(work, 0o755)
	run(work, "init", "-q", "-b", "main")
	writeFile(t, filepath.Join(work, "README"), "served by git daemon --inetd\n")
	run(work, "add", "README")
	run(work, "commit", "-q", "-m", "first")
	run(dir, "clone", "-q", "--bare", work, repo)
	git, _ := exec.LookPath("git")
	conf := baseDefaults + `
service git
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	user        = ` + currentUser(t) + `
	server      = ` + git + `
	server_args = daemon --inetd --export-all --base-path=` + dir + ` ` + dir + `
}
`
	start(t, dir, render(t, dir, conf, ports))
	clone := filepath.Join(dir, "clone")
	run(dir, "-c", "safe.directory=*", "clone", "-q", fmt.Sprintf("git://127.0.0.1:%d/repo.git", ports[0]), clone)
	if readFile(filepath.Join(clone, "README")) != "served by git daemon --inetd\n" {
		t.Fatalf("clone content wrong")
	}
}
