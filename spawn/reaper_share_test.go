//go:build linux && cgo && !asan && !msan && (amd64 || arm64)

package spawn

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
)

func init() {
	testServers["sandbox-orphans"] = serveSandboxOrphans
	testServers["sandbox-pid1"] = serveSandboxPID1
	testServers["sandbox-exit"] = func() int {
		n, _ := strconv.Atoi(os.Getenv("SANDBOX_EXIT"))
		return n
	}
}

// serveSandboxOrphans leaves three orphans to its pid namespace's init
// (children of a shell that exits at once), then reports how many
// processes of the namespace are still zombies after they have ended:
// none, if the init reaps them (at most 10 s).
func serveSandboxOrphans() int {
	if err := exec.Command("/bin/sh", "-c", "sleep 0.2 & sleep 0.2 & sleep 0.2 &").Run(); err != nil {
		fmt.Println("sh:", err)
		return 1
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		alive, zombies := 0, 0
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid <= 2 {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			s := string(b)
			if strings.Contains(s, "(sleep)") {
				alive++
				if strings.Fields(s[strings.LastIndexByte(s, ')')+2:])[0] == "Z" {
					zombies++
				}
			}
		}
		if (alive == 0 || alive == zombies) && (zombies == 0 || time.Now().After(deadline)) {
			fmt.Printf("zombies=%d\n", zombies)
			return 0
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serveSandboxPID1 says what the server can do to its namespace's init:
// open its memory for writing, read its maps, read where its program is.
// A server that could would write into the daemon if the init shared the
// daemon's memory.
func serveSandboxPID1() int {
	try := func(f func() error) string { return errnoText(f()) }
	fmt.Printf("mem=%s\n", try(func() error {
		f, err := os.OpenFile("/proc/1/mem", os.O_RDWR, 0)
		if err == nil {
			f.Close()
		}
		return err
	}))
	fmt.Printf("maps=%s\n", try(func() error { _, err := os.ReadFile("/proc/1/maps"); return err }))
	fmt.Printf("exe=%s\n", try(func() error { _, err := os.Readlink("/proc/1/exe"); return err }))
	fmt.Printf("uid=%d\n", os.Getuid())
	fmt.Println("ready")
	time.Sleep(100 * time.Second)
	return 0
}

// asNobody runs spec's server as nobody (65534), with no_new_privs when
// nnp: the servers whose pid namespace's init may reap in the daemon's
// memory (shareReaper).
func asNobody(spec Spec, nnp bool) Spec {
	spec.Cred = &Cred{UID: 65534, GID: 65534}
	if nnp && spec.Sandbox != nil {
		sb := *spec.Sandbox
		sb.NoNewPrivs = true
		spec.Sandbox = &sb
	}
	return spec
}

// reaperKind tells how the init of p's pid namespace (p.Pid) runs:
// "shared" when it is in this process's address space (kcmp KCMP_VM, or
// its program is this one's where kcmp is missing), "exec" when it runs
// the reaper image, with the name it gave itself.
func reaperKind(t *testing.T, p *Process) (kind, comm string) {
	t.Helper()
	c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	comm = strings.TrimSpace(string(c))
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	const kcmpVM = 1
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(os.Getpid()), uintptr(p.Pid), kcmpVM, 0, 0, 0)
	switch {
	case e == 0 && r == 0:
		kind = "shared"
	case e == 0:
		kind = "exec"
	default: // no kcmp (CONFIG_KCMP): the program says it
		self, _ := os.Readlink("/proc/self/exe")
		kind = "exec"
		if exe == self {
			kind = "shared"
		}
	}
	if kind == "exec" && !strings.HasPrefix(exe, "/memfd:gxinetd-reaper") {
		t.Errorf("exec'd reaper runs %q, want the memfd gxinetd-reaper", exe)
	}
	return kind, comm
}

// TestSandboxReaperKind: the init of a pid namespace reaps in the
// daemon's memory only for a server that can never reach that memory
// (nobody with no_new_privs); a root server, one without no_new_privs,
// and every server when forceExecReaper is set get the exec'd reaper.
// Both forward SIGTERM and report the server's own status; the server
// that shares cannot open the init's memory or maps.
func TestSandboxReaperKind(t *testing.T) {
	needRoot(t)
	base := sandboxed(t, "sandbox-pid1", service.Sandbox{Namespaces: service.NsPID | service.NsMount})
	cases := []struct {
		name      string
		spec      Spec
		forceExec bool
		want      string
	}{
		{"root", base, false, "exec"},
		{"root with no_new_privs", sandboxed(t, "sandbox-pid1", service.Sandbox{Namespaces: service.NsPID | service.NsMount, NoNewPrivs: true}), false, "exec"},
		{"nobody", asNobody(base, false), false, "exec"},
		{"nobody with no_new_privs", asNobody(base, true), false, "shared"},
		{"nobody with seccomp", asNobody(sandboxed(t, "sandbox-pid1", service.Sandbox{Namespaces: service.NsPID | service.NsMount, Seccomp: &service.Seccomp{Profile: "default"}}), false), false, "shared"},
		{"nobody with no_new_privs, forced", asNobody(base, true), true, "exec"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			forceExecReaper = c.forceExec
			defer func() { forceExecReaper = false }()
			srv, conn := socketPair(t)
			defer conn.Close()
			p, err := Start(c.spec, srv)
			srv.Close()
			if err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			var out strings.Builder
			buf := make([]byte, 512)
			for !strings.Contains(out.String(), "ready\n") {
				n, err := conn.Read(buf)
				out.Write(buf[:n])
				if err != nil {
					p.Kill()
					p.Wait()
					t.Fatalf("server: %v\n%s", err, out.String())
				}
			}
			// The init names itself once the server has exec'd; the
			// shared one does so after its first system calls.
			var kind, comm string
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if kind, comm = reaperKind(t, p); comm == "gxinetd-reaper" || time.Now().After(deadline) {
					break
				}
			}
			if kind != c.want || comm != "gxinetd-reaper" {
				t.Errorf("reaper: %s, named %q; want %s, named gxinetd-reaper", kind, comm, c.want)
			}
			kv := parseKV(out.String())
			if c.name == "root" {
				// Why a root server must not share the daemon's memory.
				if got := one(t, kv, "mem"); got != "ok" {
					t.Errorf("a root server opening its init's memory: %s, want ok (the check below would prove nothing)", got)
				}
			}
			if kind == "shared" {
				for _, k := range []string{"mem", "maps", "exe"} {
					if got := one(t, kv, k); got != "EACCES" && got != "EPERM" {
						t.Errorf("the server (uid %s) got %s=%s on the init that shares the daemon's memory, want EACCES\n%s", one(t, kv, "uid"), k, got, out.String())
					}
				}
			}
			Terminate(p, 5*time.Second)
			st, err := p.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if !st.Signaled() || st.Signal() != syscall.SIGTERM {
				t.Errorf("after SIGTERM: %v, want killed by SIGTERM", st)
			}
		})
	}
	if z := zombies(t); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
}

// TestSandboxReaperBothKinds runs the reaper's duties on both kinds:
// a seccomp kill reported as the server's SIGSYS, an exit code passed
// through, orphans reaped, and the view (PID 2 under the reaper).
func TestSandboxReaperBothKinds(t *testing.T) {
	needRoot(t)
	for _, kind := range []string{"exec", "shared"} {
		t.Run(kind, func(t *testing.T) {
			forceExecReaper = kind == "exec"
			defer func() { forceExecReaper = false }()
			ns := service.NsPID | service.NsMount | service.NsIPC | service.NsUTS
			spec := asNobody(sandboxed(t, "sandbox-ptrace", service.Sandbox{Namespaces: ns, Seccomp: &service.Seccomp{Profile: "default"}}), true)
			out, st := runServer(t, spec, "")
			if !st.Signaled() || st.Signal() != syscall.SIGSYS || strings.Contains(out, "survived") {
				t.Errorf("seccomp kill: %v, output %q; want death by SIGSYS", st, out)
			}
			spec = asNobody(sandboxed(t, "sandbox-exit", service.Sandbox{Namespaces: ns}, "SANDBOX_EXIT=7"), true)
			if _, st = runServer(t, spec, ""); !st.Exited() || st.ExitStatus() != 7 {
				t.Errorf("exit code: %v, want exit status 7", st)
			}
			spec = asNobody(sandboxed(t, "sandbox-orphans", service.Sandbox{Namespaces: ns}), true)
			out, st = runServer(t, spec, "")
			if !succeeded(st) || strings.TrimSpace(out) != "zombies=0" {
				t.Errorf("orphans: %v, %q; want zombies=0", st, out)
			}
			spec = asNobody(sandboxed(t, "sandbox-view", service.Sandbox{Namespaces: ns}), true)
			out, st = runServer(t, spec, "")
			kv := parseKV(out)
			for k, v := range map[string]string{"pid": "2", "ppid": "1", "pid1": "gxinetd-reaper", "NoNewPrivs": "1"} {
				if got := one(t, kv, k); got != v {
					t.Errorf("%s = %q, want %q\n%s", k, got, v, out)
				}
			}
		})
	}
	if z := zombies(t); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
}

// TestSharedReaperStackKept: a reaper that stays in the daemon's memory
// runs on its clone stack for as long as its server, so that stack must
// not be reused by later starts before the reaper is reaped. Long-lived
// servers with such reapers, then many starts that take stacks, then the
// long-lived ones are ended: each reaper must still forward SIGTERM and
// report its server's status (a stack reused under it would crash it).
func TestSharedReaperStackKept(t *testing.T) {
	needRoot(t)
	ns := service.NsPID | service.NsMount
	type running struct {
		p    *Process
		conn interface{ Close() error }
	}
	var long []running
	defer func() {
		for _, r := range long {
			r.p.Kill()
			r.p.Wait()
			r.conn.Close()
		}
	}()
	for i := 0; i < 4; i++ {
		spec := asNobody(sandboxed(t, "sandbox-sleep", service.Sandbox{Namespaces: ns}), true)
		if !shareReaper(&spec) {
			t.Fatal("the spec would not share the reaper: the test tests nothing")
		}
		srv, c := socketPair(t)
		p, err := Start(spec, srv)
		srv.Close()
		if err != nil {
			c.Close()
			t.Fatal(err)
		}
		long = append(long, running{p, c})
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 9)
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("long-lived server %d did not start: %v", i, err)
		}
	}
	for i := 0; i < 24; i++ {
		var spec Spec
		switch i % 3 {
		case 0:
			spec = serverSpec(t, "sandbox-exit")
		case 1:
			spec = sandboxed(t, "sandbox-exit", service.Sandbox{Namespaces: ns})
		case 2:
			spec = asNobody(sandboxed(t, "sandbox-exit", service.Sandbox{Namespaces: ns}), true)
		}
		if _, st := runServer(t, spec, ""); !succeeded(st) {
			t.Errorf("short server %d: %v", i, st)
		}
	}
	for i, r := range long {
		Terminate(r.p, 5*time.Second)
		st, err := r.p.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if !st.Signaled() || st.Signal() != syscall.SIGTERM {
			t.Errorf("long-lived server %d after SIGTERM: %v, want killed by SIGTERM (its reaper's stack reused?)", i, st)
		}
		r.conn.Close()
	}
	long = nil
}
