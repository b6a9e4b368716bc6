//go:build linux && cgo && !asan && !msan && (amd64 || arm64)

package spawn

import (
	"errors"
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

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
)

func init() {
	testServers["sandbox-view"] = serveSandboxView
	testServers["sandbox-ptrace"] = serveSandboxPtrace
	testServers["sandbox-sleep"] = serveSandboxSleep
}

// serveSandboxView reports the server's own view of the system, one
// key=value line each: what a sandbox must have changed.
func serveSandboxView() int {
	var b strings.Builder
	p := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, v) }
	p("pid", strconv.Itoa(os.Getpid()))
	p("ppid", strconv.Itoa(os.Getppid()))
	for _, ns := range []string{"pid", "mnt", "ipc", "uts", "net"} {
		if l, err := os.Readlink("/proc/self/ns/" + ns); err == nil {
			p("ns_"+ns, l)
		}
	}
	// In a pid namespace of its own (this server is PID 2 there) the init
	// execs the reaper only after this server's execve: read its name
	// until it is the reaper's (at most 10 s).
	wait := time.Duration(0)
	if os.Getpid() == 2 {
		wait = 10 * time.Second
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		c, err := os.ReadFile("/proc/1/comm")
		if err != nil {
			break
		}
		if name := strings.TrimSpace(string(c)); name == "gxinetd-reaper" || time.Now().After(deadline) {
			p("pid1", name)
			break
		}
	}
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && (k == "NoNewPrivs" || k == "Seccomp") {
				p(k, strings.TrimSpace(v))
			}
		}
	}
	for _, path := range strings.Fields(os.Getenv("SANDBOX_WRITE")) {
		err := os.WriteFile(filepath.Join(path, "sandbox-probe"), []byte("x"), 0o644)
		if err == nil {
			os.Remove(filepath.Join(path, "sandbox-probe"))
		}
		p("write "+path, errnoText(err))
	}
	if ifs, err := net.Interfaces(); err == nil {
		var names []string
		for _, i := range ifs {
			if i.Flags&net.FlagUp != 0 {
				names = append(names, i.Name)
			}
		}
		p("up", strings.Join(names, ","))
	}
	fmt.Print(b.String())
	return 0
}

func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// serveSandboxPtrace makes a system call the default profile kills.
func serveSandboxPtrace() int {
	fmt.Println("calling ptrace")
	syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_TRACEME, 0, 0)
	fmt.Println("survived")
	return 0
}

func serveSandboxSleep() int {
	fmt.Println("sleeping")
	time.Sleep(100 * time.Second)
	return 0
}

// sandboxed is serverSpec with the sandbox the service attributes make.
func sandboxed(t *testing.T, name string, sb service.Sandbox, env ...string) Spec {
	t.Helper()
	spec := serverSpec(t, name, env...)
	s, err := buildSandbox(&sb, currentHost())
	if err != nil {
		t.Fatal(err)
	}
	spec.Sandbox = s
	return spec
}

// TestSandboxView starts a server in every namespace, with a read-only
// root, a writable path, no_new_privs and the default seccomp profile,
// and reads back what the server itself sees.
func TestSandboxView(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	rw, ro := filepath.Join(dir, "rw"), filepath.Join(dir, "ro")
	for _, d := range []string{rw, ro} {
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o777)
	}
	spec := sandboxed(t, "sandbox-view", service.Sandbox{
		Namespaces:    service.NsPID | service.NsMount | service.NsIPC | service.NsUTS | service.NsNet,
		ReadOnlyRoot:  true,
		WritablePaths: []string{rw},
		ReadOnlyPaths: []string{"-/nonexistent"},
		Seccomp:       &service.Seccomp{Profile: "default"},
	}, "SANDBOX_WRITE="+rw+" "+ro)
	out, st := runServer(t, spec, "")
	if !succeeded(st) {
		t.Fatalf("server: %v\n%s", st, out)
	}
	kv := parseKV(out)
	for _, ns := range []string{"pid", "mnt", "ipc", "uts", "net"} {
		own, _ := os.Readlink("/proc/self/ns/" + ns)
		if got := one(t, kv, "ns_"+ns); got == own || got == "" {
			t.Errorf("%s namespace: the server's is %q, the test's %q", ns, got, own)
		}
	}
	want := map[string]string{
		"pid": "2", "ppid": "1", "pid1": "gxinetd-reaper", "NoNewPrivs": "1", "Seccomp": "2",
		"write " + rw: "ok", "write " + ro: "EROFS", "up": "lo",
	}
	for k, v := range want {
		if got := one(t, kv, k); got != v {
			t.Errorf("%s = %q, want %q\n%s", k, got, v, out)
		}
	}
}

// TestSandboxSeccompKillReported: the server's own wait status comes
// through its pid namespace's reaper, so a seccomp kill reads as
// SIGSYS, not as the reaper's exit code.
func TestSandboxSeccompKillReported(t *testing.T) {
	needRoot(t)
	for _, ns := range []service.Namespaces{0, service.NsPID | service.NsMount} {
		spec := sandboxed(t, "sandbox-ptrace", service.Sandbox{Namespaces: ns, Seccomp: &service.Seccomp{Profile: "default"}})
		out, st := runServer(t, spec, "")
		if !st.Signaled() || st.Signal() != syscall.SIGSYS || strings.Contains(out, "survived") {
			t.Errorf("namespaces %q: %v, output %q; want death by SIGSYS", ns, st, out)
		}
	}
}

// TestSandboxReaperForwardsSignals: SIGTERM for a server in a pid
// namespace reaches it through the reaper (the init of a namespace gets
// no signal it has no handler for), and the status is the server's; a
// server that outlives the grace is killed with its namespace.
func TestSandboxReaperForwardsSignals(t *testing.T) {
	needRoot(t)
	spec := sandboxed(t, "sandbox-sleep", service.Sandbox{Namespaces: service.NsPID | service.NsMount})
	srv, c := socketPair(t)
	defer c.Close()
	p, err := Start(spec, srv)
	srv.Close()
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 9)
	if _, err := c.Read(buf); err != nil {
		t.Fatalf("server did not start: %v", err)
	}
	Terminate(p, 5*time.Second)
	st, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Signaled() || st.Signal() != syscall.SIGTERM {
		t.Errorf("server in a pid namespace after SIGTERM: %v, want killed by SIGTERM", st)
	}
}

// TestSandboxStepErrors: a failed step names itself and its errno, and
// nothing runs.
func TestSandboxStepErrors(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "link")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		sb    service.Sandbox
		step  string
		errno syscall.Errno
	}{
		{"symbolic link in writable_paths", service.Sandbox{ReadOnlyRoot: true, WritablePaths: []string{link}}, "writable_paths", unix.ELOOP},
		{"missing read_only_paths", service.Sandbox{ReadOnlyPaths: []string{filepath.Join(dir, "missing")}}, "read_only_paths", unix.ENOENT},
		{"missing chroot", service.Sandbox{Chroot: filepath.Join(dir, "nojail")}, "chroot", unix.ENOENT},
		{"missing pivot root", service.Sandbox{Chroot: filepath.Join(dir, "nojail"), Namespaces: service.NsMount}, "chroot", unix.ENOENT},
	}
	for _, c := range cases {
		for _, pid := range []bool{false, true} {
			sb := c.sb
			if pid {
				sb.Namespaces |= service.NsPID | service.NsMount
			}
			spec := sandboxed(t, "sandbox-view", sb)
			srv, conn := socketPair(t)
			p, err := Start(spec, srv)
			srv.Close()
			conn.Close()
			var se *StartError
			if err == nil {
				p.Kill()
				p.Wait()
				t.Errorf("%s (pid namespace %v): started", c.name, pid)
				continue
			}
			if !errors.As(err, &se) || se.Step != c.step || !errors.Is(err, c.errno) {
				t.Errorf("%s (pid namespace %v): %v; want step %s, %v", c.name, pid, err, c.step, c.errno)
			}
		}
	}
}

// TestCloneInitCallsOnlyClone holds gx_init, the init of a server's pid
// namespace, to the rules of the clone child (TestCloneChildMakesNoCalls):
// inline raw system calls only, with two exceptions, its gx_clone of the
// server's own child and gx_reaper_main, the reaper's loop when it stays
// in the daemon's memory. That loop is held to the same rules by running
// it alone: the exec'd reaper image maps its section and nothing else
// (no libc, no data, no thread pointer), so a call out of it, a global
// or a TLS access would fault there (TestReaperImageRuns,
// TestSandboxReaperBothKinds/exec).
func TestCloneInitCallsOnlyClone(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	if _, err := os.Stat(goTool); err != nil {
		t.Skipf("no go command to disassemble with: %v", err)
	}
	bin := os.Args[0]
	out, err := exec.Command(goTool, "tool", "objdump", "-s", "^gx_init$", bin).CombinedOutput()
	if err != nil && strings.Contains(string(out), "no symbol section") {
		bin = filepath.Join(t.TempDir(), "spawn.test")
		if out, err := exec.Command(goTool, "test", "-c", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("go test -c: %v\n%s", err, out)
		}
		out, err = exec.Command(goTool, "tool", "objdump", "-s", "^gx_init$", bin).CombinedOutput()
	}
	if err != nil {
		t.Fatalf("go tool objdump: %v\n%s", err, out)
	}
	problems, syscalls := childProblems(string(out))
	if syscalls < 10 {
		t.Fatalf("only %d system calls in gx_init:\n%s", syscalls, out)
	}
	clones, reapers := 0, 0
	for _, p := range problems {
		if strings.Contains(p, "CALL gx_clone(SB)") || strings.HasSuffix(p, "BL gx_clone(SB)") {
			clones++
			continue
		}
		if strings.Contains(p, "CALL gx_reaper_main(SB)") || strings.HasSuffix(p, "BL gx_reaper_main(SB)") {
			reapers++
			continue
		}
		t.Error(strings.Replace(p, "gx_child", "gx_init", 1))
	}
	if clones != 1 {
		t.Errorf("gx_init calls gx_clone %d times, want once", clones)
	}
	if reapers != 1 {
		t.Errorf("gx_init calls gx_reaper_main %d times, want once", reapers)
	}
}
