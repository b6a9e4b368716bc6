package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sandboxSvc is an external service of the sandbox tests, on port {{Pn}}.
func sandboxSvc(name string, port int, user string, lines string) string {
	return fmt.Sprintf(`
service %s
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P%d}}
	wait        = no
	user        = %s
%s
}
`, name, port, user, lines)
}

// TestMaxDuration: a server that outlives max_duration gets SIGTERM, one
// that ignores SIGTERM gets SIGKILL after the grace period, and each EXIT
// record says why; a server that ends in time has no reason.
func TestMaxDuration(t *testing.T) {
	ports := freePorts(t, 3)
	dir := newDir(t)
	u := currentUser(t)
	// A server that ignores SIGTERM, and so do the sleeps it starts.
	if err := os.WriteFile(filepath.Join(dir, "stubborn"), []byte("#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 1; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := baseDefaults +
		sandboxSvc("sleeper", 0, u, "\tserver = /bin/sleep\n\tserver_args = 100\n\tmax_duration = 1\n") +
		sandboxSvc("stubborn", 1, u, "\tserver = {{DIR}}/stubborn\n\tmax_duration = 1\n") +
		sandboxSvc("quick", 2, u, "\tserver = /bin/sleep\n\tserver_args = 0\n\tmax_duration = 5\n")
	d := start(t, dir, render(t, dir, conf, ports), "-grace", "2s")
	dialPorts(t, ports)
	m := d.waitSvcLog(`EXIT: sleeper signal=15 pid=\d+ duration=(\d+)\(sec\) reason=max_duration`, 15*time.Second)
	if n, _ := strconv.Atoi(m[1]); n < 1 || n > 5 {
		t.Errorf("sleeper ended after %s s; max_duration is 1", m[1])
	}
	m = d.waitSvcLog(`EXIT: stubborn signal=9 pid=\d+ duration=(\d+)\(sec\) reason=max_duration`, 15*time.Second)
	if n, _ := strconv.Atoi(m[1]); n < 3 || n > 8 {
		t.Errorf("stubborn ended after %s s; max_duration 1 + grace 2", m[1])
	}
	// Ended in time: no reason (its duration is no concern here: a
	// loaded machine may take a second to run it).
	d.waitSvcLog(`EXIT: quick status=0 pid=\d+ duration=\d+\(sec\)\n`, 10*time.Second)
	d.waitLog(`service sleeper: server \d+ ran for its max_duration of 1s; sending signal 15`, 5*time.Second)
}

// TestMaxDurationInPidNamespace: max_duration ends servers in a pid
// namespace through either kind of reaper (docs/sandbox.md): the exec'd
// one (a root server) and the one that stays in the daemon's memory
// (nobody with no_new_privs). SIGTERM is forwarded to the server, a
// server that ignores it is killed after the grace with its namespace,
// and the EXIT records carry the server's own signal.
func TestMaxDurationInPidNamespace(t *testing.T) {
	needRoot(t)
	ports := freePorts(t, 3)
	dir := newDir(t)
	if err := os.WriteFile(filepath.Join(dir, "stubborn"), []byte("#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 1; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ns := "\tnamespaces = pid mount\n"
	conf := baseDefaults +
		sandboxSvc("execd", 0, "root", ns+"\tserver = /bin/sleep\n\tserver_args = 100\n\tmax_duration = 1\n") +
		sandboxSvc("shared", 1, "nobody", ns+"\tno_new_privs = yes\n\tserver = /bin/sleep\n\tserver_args = 100\n\tmax_duration = 1\n") +
		sandboxSvc("stubborn", 2, "nobody", ns+"\tno_new_privs = yes\n\tserver = {{DIR}}/stubborn\n\tmax_duration = 1\n")
	d := start(t, dir, render(t, dir, conf, ports), "-grace", "2s")
	dialPorts(t, ports)
	for _, name := range []string{"execd", "shared"} {
		m := d.waitSvcLog(`EXIT: `+name+` signal=15 pid=\d+ duration=(\d+)\(sec\) reason=max_duration`, 15*time.Second)
		if n, _ := strconv.Atoi(m[1]); n < 1 || n > 5 {
			t.Errorf("%s ended after %s s; max_duration is 1", name, m[1])
		}
	}
	m := d.waitSvcLog(`EXIT: stubborn signal=9 pid=\d+ duration=(\d+)\(sec\) reason=max_duration`, 15*time.Second)
	if n, _ := strconv.Atoi(m[1]); n < 3 || n > 8 {
		t.Errorf("stubborn ended after %s s; max_duration 1 + grace 2", m[1])
	}
}

var (
	sandboxSrvOnce sync.Once
	sandboxSrvPath string
	sandboxSrvErr  error
)

// sandboxServer builds e2e/testdata/sandboxsrv, statically (no cgo), so
// that it runs alone inside a chroot.
func sandboxServer(t *testing.T) string {
	t.Helper()
	sandboxSrvOnce.Do(func() {
		sandboxSrvPath = filepath.Join(binDir, "sandboxsrv")
		cmd := exec.Command("go", "build", "-o", sandboxSrvPath, "./testdata/sandboxsrv")
		cmd.Env = noCgoEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			sandboxSrvErr = fmt.Errorf("building testdata/sandboxsrv: %v\n%s", err, out)
		}
	})
	if sandboxSrvErr != nil {
		t.Fatal(sandboxSrvErr)
	}
	return sandboxSrvPath
}

// makeJail builds a root-owned chroot directory holding the static test
// server as /bin/srv, an empty /proc, /tmp, and /ro and /rw directories
// everyone may write (so that only the mounts decide).
func makeJail(t *testing.T, dir string) string {
	t.Helper()
	jail := filepath.Join(dir, "jail")
	for _, d := range []string{"bin", "proc", "tmp", "ro", "rw"} {
		if err := os.MkdirAll(filepath.Join(jail, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"tmp", "ro", "rw"} {
		os.Chmod(filepath.Join(jail, d), 0o777)
	}
	b, err := os.ReadFile(sandboxServer(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(jail, "bin", "srv"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return jail
}

// exchange connects, reads the server's whole report and returns it as
// key=value pairs.
func report(t *testing.T, port int) map[string]string {
	t.Helper()
	out, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", port), "", 15*time.Second)
	if err != nil {
		t.Fatalf("port %d: %v (%q)", port, err, out)
	}
	kv := map[string]string{}
	for _, l := range lines(out) {
		if k, v, ok := strings.Cut(l, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// TestSandboxedServerSeesItsSandbox: the server reports its own view and
// the test checks it: a pid namespace of its own with PID 1 there (the
// reaper), / is the chroot, NoNewPrivs 1 and Seccomp 2, a read-only root
// with a writable path, a private writable /tmp, nothing but loopback,
// and the daemon's own port out of reach. A forbidden system call kills
// the server and its EXIT record says so.
func TestSandboxedServerSeesItsSandbox(t *testing.T) {
	needRoot(t)
	ports := freePorts(t, 2)
	dir := newDir(t)
	jail := makeJail(t, dir)
	sandbox := "\tchroot = " + jail + "\n\tnamespaces = pid mount ipc uts net\n\tread_only_root = yes\n\twritable_paths = /rw\n" +
		"\tprivate_tmp = yes\n\tno_new_privs = yes\n\tseccomp = default\n\tserver = /bin/srv\n"
	conf := baseDefaults +
		sandboxSvc("view", 0, "nobody", sandbox+fmt.Sprintf("\tenv = SANDBOX_DIAL=127.0.0.1:%d\n", ports[0])) +
		sandboxSvc("forbidden", 1, "nobody", sandbox+"\tserver_args = forbidden\n")
	d := start(t, dir, render(t, dir, conf, ports))
	// A file of the host's /tmp that a private /tmp must not show.
	os.WriteFile(filepath.Join(jail, "tmp", "host-file"), []byte("x"), 0o644)

	kv := report(t, ports[0])
	hostPidNS, _ := os.Readlink("/proc/self/ns/pid")
	want := map[string]string{
		"pid": "2", "uid": "65534", "pid1": "gxinetd-reaper", "NoNewPrivs": "1", "Seccomp": "2",
		"root": "bin,proc,ro,rw,tmp", "write_tmp": "ok", "tmp": "sandboxsrv", "write_rw": "ok", "write_ro": "read-only_file_system",
		"interfaces": "lo", "dial": "dial_tcp_127.0.0.1:" + strconv.Itoa(ports[0]) + ":_connect:_connection_refused",
	}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q (report %v)", k, kv[k], v, kv)
		}
	}
	if kv["pidns"] == "" || kv["pidns"] == hostPidNS {
		t.Errorf("pid namespace %q, the host's is %q", kv["pidns"], hostPidNS)
	}
	if _, err := os.Stat(filepath.Join(jail, "tmp", "sandboxsrv")); err == nil {
		t.Error("the server's /tmp file is in the jail's own /tmp: /tmp is not private")
	}
	d.waitSvcLog(`EXIT: view status=0 pid=\d+`, 10*time.Second)

	kv = report(t, ports[1])
	if kv["calling"] != "ptrace" || kv["survived"] != "" {
		t.Errorf("forbidden: %v", kv)
	}
	d.waitSvcLog(`EXIT: forbidden signal=31 pid=\d+ duration=\d+\(sec\) reason=seccomp`, 10*time.Second)
}

// TestSandboxCheckModeSaysWhatTheBuildCannot: a gxinetd built without
// its C server child refuses every sandbox attribute in -t, naming the
// attribute and why (never silently weaker); the cgo build accepts the
// same file on this host.
func TestSandboxCheckModeSaysWhatTheBuildCannot(t *testing.T) {
	dir := newDir(t)
	nocgo := filepath.Join(dir, "gxinetd-nocgo")
	cmd := exec.Command("go", "build", "-o", nocgo, "../cmd/gxinetd")
	cmd.Env = noCgoEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	conf := render(t, dir, sandboxSvc("ctf", 0, currentUser(t), "\tserver = /bin/cat\n\tseccomp = default\n\tmax_duration = 10\n"), []int{9})
	out, err := exec.Command(nocgo, "-t", "-f", conf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "error E-SANDBOX-HOST: service ctf: seccomp: this gxinetd was built without its C server child") {
		t.Errorf("no-cgo -t: %v\n%s", err, out)
	}
	if os.Geteuid() != 0 {
		return // the cgo build's check needs what this host gives root (or user namespaces)
	}
	out, err = exec.Command(gxinetd, "-t", "-f", conf).CombinedOutput()
	if err != nil || strings.Contains(string(out), "E-SANDBOX-HOST") {
		t.Errorf("cgo -t: %v\n%s", err, out)
	}
}

// TestSandboxStepFailureLogged: a sandbox step that fails when the server
// starts (here a writable path replaced by a symbolic link after the
// configuration was checked, which the child refuses to mount through)
// fails the start with the step and its errno in the daemon's log, with
// or without a pid namespace, and the server never runs: the client
// gets nothing, and the records are those of a failed start.
func TestSandboxStepFailureLogged(t *testing.T) {
	needRoot(t)
	ports := freePorts(t, 2)
	dir := newDir(t)
	jail := makeJail(t, dir)
	sandbox := "\tchroot = " + jail + "\n\tread_only_root = yes\n\twritable_paths = /rw\n\tserver = /bin/srv\n"
	conf := baseDefaults +
		sandboxSvc("stepmnt", 0, "nobody", sandbox+"\tnamespaces = mount\n") +
		sandboxSvc("steppid", 1, "nobody", sandbox+"\tnamespaces = pid mount\n")
	d := start(t, dir, render(t, dir, conf, ports))
	rw := filepath.Join(jail, "rw")
	if err := os.Remove(rw); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", rw); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"stepmnt", "steppid"} {
		got, _ := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[i]), "", 15*time.Second)
		if got != "" {
			t.Errorf("%s: the server ran despite a failed step: %q", name, got)
		}
		d.waitLog(`service `+name+`: writable_paths\( /rw \) failed: Too many levels of symbolic links \(errno = 40\)`, 15*time.Second)
		d.waitSvcLog(`START: `+name+` pid=0 `, 10*time.Second)
		d.waitSvcLog(`EXIT: `+name+` status=1 pid=0 `, 10*time.Second)
	}
}

// dialPorts connects once to each port on 127.0.0.1 and keeps the
// connections open until the test ends.
func dialPorts(t *testing.T, ports []int) {
	t.Helper()
	for _, p := range ports {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}
