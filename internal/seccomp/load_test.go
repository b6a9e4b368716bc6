package seccomp

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The helper is this test binary run again with helperEnv naming a case:
// it loads a filter into itself and then makes the calls of that case,
// so that the kernel, not the test's interpreter, judges them.
const helperEnv = "GX_SECCOMP_TEST_HELPER"

func TestMain(m *testing.M) {
	if c := os.Getenv(helperEnv); c != "" {
		os.Exit(helperMain(c))
	}
	os.Exit(m.Run())
}

func load(text string, execPath *byte) error {
	p, errs := Parse("helper", []byte(text))
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	a, err := HostArch()
	if err != nil {
		return err
	}
	prog, err := Compile(p, a)
	if err != nil {
		return err
	}
	ins := make([]unix.SockFilter, prog.Len())
	prog.ForExec(ins, uintptr(unsafe.Pointer(execPath)))
	return Install(ins)
}

func helperMain(c string) int {
	runtime.LockOSThread()
	fail := func(err error) int { fmt.Println("helper:", err); return 3 }
	switch c {
	case "status":
		if err := load("include default\n", nil); err != nil {
			return fail(err)
		}
		b, _ := os.ReadFile("/proc/self/status")
		os.Stdout.Write(b)
	case "unshare":
		if err := load("include default\n", nil); err != nil {
			return fail(err)
		}
		fmt.Println("loaded")
		unix.RawSyscall(unix.SYS_UNSHARE, 0, 0, 0) // a no-op the filter must kill
		fmt.Println("survived")
	case "raw-socket-high-bits":
		if err := load("include default\n", nil); err != nil {
			return fail(err)
		}
		// The kernel sees AF_PACKET: the filter must too.
		fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, 1<<32|unix.AF_PACKET, unix.SOCK_DGRAM, 0)
		fmt.Println("survived", int(fd), e)
	case "allowed":
		if err := load("include default\n", nil); err != nil {
			return fail(err)
		}
		// What servers do: TCP, netlink (getaddrinfo), a thread, clone3
		// answered with ENOSYS.
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		unix.Close(s)
		s, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return fail(err)
		}
		unix.Close(s)
		_, _, e := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
		fmt.Println("clone3:", e == unix.ENOSYS)
		done := make(chan bool)
		go func() { done <- true }()
		<-done
		fmt.Println("ok")
	case "exec-once":
		// deny execve: our own execve (its pointer patched in) runs
		// /bin/sh, whose own execve of /bin/true must then be killed.
		path, _ := unix.BytePtrFromString("/bin/sh")
		argv, _ := syscall.SlicePtrFromStrings([]string{"sh", "-c", "/bin/true; echo status=$?"})
		envp, _ := syscall.SlicePtrFromStrings([]string{"PATH=/bin:/usr/bin"})
		if err := load("include default\ndeny execve execveat\n", path); err != nil {
			return fail(err)
		}
		_, _, e := unix.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(path)),
			uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envp[0])))
		return fail(e)
	}
	return 0
}

func runHelper(t *testing.T, c string) (string, *os.ProcessState) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("seccomp unavailable: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+c)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return out.String(), cmd.ProcessState
}

func signalOf(st *os.ProcessState) syscall.Signal {
	ws := st.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		return 0
	}
	return ws.Signal()
}

func TestLoadedFilterStatus(t *testing.T) {
	out, st := runHelper(t, "status")
	if !st.Success() {
		t.Fatalf("helper failed: %s %v", out, st)
	}
	for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(out, want) {
			t.Errorf("/proc/self/status lacks %q:\n%s", want, out)
		}
	}
}

func TestForbiddenCallKills(t *testing.T) {
	for _, c := range []string{"unshare", "raw-socket-high-bits"} {
		out, st := runHelper(t, c)
		if sig := signalOf(st); sig != unix.SIGSYS {
			t.Errorf("%s: helper ended with %v (signal %v), want SIGSYS; output %q", c, st, sig, out)
		}
		if strings.Contains(out, "survived") {
			t.Errorf("%s: the call returned: %q", c, out)
		}
	}
}

func TestOrdinaryCallsAllowed(t *testing.T) {
	out, st := runHelper(t, "allowed")
	if !st.Success() || !strings.Contains(out, "clone3: true") || !strings.Contains(out, "ok") {
		t.Fatalf("helper: %v %q", st, out)
	}
}

func TestExecAllowedOnce(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	out, st := runHelper(t, "exec-once")
	// sh ran (our execve passed) and its child's execve of /bin/true
	// was killed: 128 + SIGSYS.
	if !st.Success() || !strings.Contains(out, "status=159") {
		t.Fatalf("want sh to run and its child to die of SIGSYS (status=159): %q %v", out, st)
	}
}
