package spawn

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
)

// canStop reports whether the current start mode's child can be made to
// stop before its execve. Go's fork child (the plain mode) never takes
// another user's ids, so only root could stop it, and no test hook
// reaches it.
func canStop() bool { return forceHelper || (haveClone && !noClone) }

// setExecTimeout sets the pre-exec bound for one test.
func setExecTimeout(t *testing.T, d time.Duration) {
	old := execTimeout
	execTimeout = d
	t.Cleanup(func() { execTimeout = old })
}

// tagged marks a test server's Spec (its last argument) so the start
// hooks can tell starts apart.
func tagged(spec Spec, tag string) Spec {
	spec.Argv = append(append([]string(nil), spec.Argv...), tag)
	return spec
}

func tagOf(spec *Spec) string { return spec.Argv[len(spec.Argv)-1] }

// stopSpec is a tagged server whose child stops itself between its
// setuid (to nobody, when the test runs as root) and its execve, as a
// process running as the service's user could stop it.
func stopSpec(t testing.TB, tag string) Spec {
	spec := tagged(serverSpec(t, "whoami"), tag)
	spec.test = cloneTestStop
	if os.Geteuid() == 0 {
		spec.Cred = &Cred{UID: 65534, GID: 65534}
	}
	return spec
}

// startLog records the pid of every tagged start (onStart).
type startLog struct {
	mu   sync.Mutex
	pids map[string]int
}

func hookStarts(t *testing.T) *startLog {
	l := &startLog{pids: map[string]int{}}
	onStart = func(spec *Spec, pid int) {
		l.mu.Lock()
		l.pids[tagOf(spec)] = pid
		l.mu.Unlock()
	}
	t.Cleanup(func() { onStart = nil })
	return l
}

func (l *startLog) get(tag string) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	pid, ok := l.pids[tag]
	return pid, ok
}

// wait returns the pid of the start tagged tag once its child exists.
func (l *startLog) wait(t testing.TB, tag string) int {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if pid, ok := l.get(tag); ok {
			return pid
		}
	}
	t.Fatalf("start %q created no child in 30s", tag)
	return 0
}

// procState is the state letter of /proc/PID/stat ('R', 'S', 'T', 'Z'...),
// or 0 when the process is gone.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

func waitStopped(t testing.TB, pid int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if s := procState(pid); s == 'T' || s == 't' {
			return
		}
	}
	// A zombie's wait status is the last field of its stat line.
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	f := strings.Fields(string(b))
	status := ""
	if len(f) > 0 {
		if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
			status = " " + syscall.WaitStatus(n).Signal().String() + " / exit " + strconv.Itoa(syscall.WaitStatus(n).ExitStatus())
		}
	}
	t.Fatalf("child %d did not stop within 30s (state %c%s)", pid, procState(pid), status)
}

func devNull(t testing.TB) *os.File {
	t.Helper()
	f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

type startResult struct {
	p   *Process
	err error
}

// TestStartStoppedBeforeExec is a child stopped between its setuid and
// its execve, under concurrent starts. The stopper is created while
// another start (the victim) has its status pipe open: the victim must
// still complete at once, as must every start after it, while the
// stopper stays stopped; the stopper's start fails after the bound, its
// child killed and reaped.
func TestStartStoppedBeforeExec(t *testing.T) {
	modes(t, func(t *testing.T) {
		if !canStop() {
			t.Skip("Go's fork child never takes the service's ids: only root can stop it, and no hook reaches it")
		}
		const bound = 10 * time.Second
		setExecTimeout(t, bound)
		starts := hookStarts(t)
		null := devNull(t)
		stopper := make(chan startResult, 1)
		began := time.Now()
		beforeFork = func(spec *Spec) {
			if tagOf(spec) != "victim" {
				return
			}
			go func() {
				p, err := Start(stopSpec(t, "stopper"), null)
				stopper <- startResult{p, err}
			}()
			waitStopped(t, starts.wait(t, "stopper"))
		}
		t.Cleanup(func() { beforeFork = nil })

		p, err := Start(tagged(serverSpec(t, "whoami"), "victim"), null)
		if err != nil {
			t.Fatalf("victim: %v", err)
		}
		stopperPid, _ := starts.get("stopper")
		select {
		case r := <-stopper:
			t.Fatalf("the victim's start waited for the stopped child: the stopper's start (%v) ended first", r.err)
		default:
		}
		if s := procState(stopperPid); s != 'T' && s != 't' {
			t.Fatalf("the victim's start ended only after the stopper %d was no longer stopped (state %c)", stopperPid, s)
		}
		if ws, err := p.Wait(); err != nil || !succeeded(ws) {
			t.Fatalf("victim: %v %v", ws, err)
		}

		// Starts made while the child is stopped complete too.
		const n = 8
		errs := make(chan error, n)
		for i := range n {
			go func() {
				p, err := Start(tagged(serverSpec(t, "whoami"), "other-"+strconv.Itoa(i)), null)
				if err == nil {
					var ws syscall.WaitStatus
					if ws, err = p.Wait(); err == nil && !succeeded(ws) {
						err = fmt.Errorf("status %v", ws)
					}
				}
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Errorf("concurrent start: %v", err)
			}
		}
		if s := procState(stopperPid); s != 'T' && s != 't' {
			t.Fatalf("the concurrent starts ended only after the stopper %d was no longer stopped (state %c)", stopperPid, s)
		}

		// The stopped one fails after the bound, killed and reaped.
		var r startResult
		select {
		case r = <-stopper:
		case <-time.After(bound + 60*time.Second):
			t.Fatal("the stopper's start never ended")
		}
		if r.err == nil {
			r.p.Kill()
			r.p.Wait()
			t.Fatal("the stopped child's start succeeded")
		}
		var se *StartError
		if !errors.As(r.err, &se) || se.Step != "exec" || !errors.Is(r.err, ErrExecTimeout) {
			t.Errorf("stopper: %v, want an exec StartError with ErrExecTimeout", r.err)
		}
		if want := "no execve within " + bound.String() + ", killed"; !strings.HasSuffix(r.err.Error(), want) {
			t.Errorf("stopper: %q, want it to end in %q", r.err, want)
		}
		if d := time.Since(began); d < bound {
			t.Errorf("the stopper was given up after %v, before the bound %v", d, bound)
		}
		if s := procState(stopperPid); s == 'T' || s == 'Z' {
			t.Errorf("stopper %d still there (state %c)", stopperPid, s)
		}
		if z := zombies(t); len(z) > 0 {
			t.Errorf("zombies: %v", z)
		}
	})
}

// TestStartStoppedChildDescriptors looks at a child stopped just before
// its execve: of the daemon's descriptors it holds only the connection
// and its own status pipe, even those that are not close-on-exec, with
// close_range and with both fallbacks. Killed there, its start fails.
func TestStartStoppedChildDescriptors(t *testing.T) {
	if !haveClone {
		t.Skip("no clone path in this build")
	}
	// Descriptors the child must not keep, close-on-exec or not.
	for _, flags := range []int{0, unix.O_CLOEXEC} {
		fd, err := unix.Open(os.DevNull, unix.O_RDONLY|flags, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
	}
	for _, v := range []struct {
		name string
		test int
	}{{"close_range", 0}, {"proc-walk", cloneTestNoCloseRange}, {"close-loop", cloneTestNoCloseRange | cloneTestNoProc}} {
		t.Run(v.name, func(t *testing.T) {
			setExecTimeout(t, time.Minute)
			starts := hookStarts(t)
			srv, c := socketPair(t)
			defer c.Close()
			defer srv.Close()
			var st unix.Stat_t
			if err := unix.Fstat(int(srv.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			spec := stopSpec(t, "stopped")
			spec.test |= v.test
			done := make(chan startResult, 1)
			go func() {
				p, err := Start(spec, srv)
				done <- startResult{p, err}
			}()
			pid := starts.wait(t, "stopped")
			waitStopped(t, pid)
			dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			sock := fmt.Sprintf("socket:[%d]", st.Ino)
			pipes := 0
			var list []string
			for _, e := range ents {
				target, _ := os.Readlink(dir + e.Name())
				list = append(list, e.Name()+" "+target)
				switch {
				case target == sock:
				case strings.HasPrefix(target, "pipe:"):
					pipes++
				default:
					pipes = -100
				}
			}
			if pipes != 1 {
				t.Errorf("descriptors of the stopped child: %q; want the connection and one pipe", list)
			}
			syscall.Kill(pid, syscall.SIGKILL)
			r := <-done
			if r.err == nil {
				r.p.Wait()
				t.Fatal("a child killed before its execve counted as started")
			}
			if want := "spawn: exec " + spec.Path + ": ended before execve: killed by signal 9"; r.err.Error() != want {
				t.Errorf("error %q, want %q", r.err, want)
			}
		})
	}
}

// TestPreExecCap: with the cap full of stopped children, a start waits
// (no child is created) until a slot is free, and gives up after the
// bound with EAGAIN, which the daemon retries as a failed fork.
func TestPreExecCap(t *testing.T) {
	old := preExec
	t.Cleanup(func() { preExec = old })
	modes(t, func(t *testing.T) {
		preExec = make(chan struct{}, 2)
		null := devNull(t)
		if canStop() {
			setExecTimeout(t, time.Minute)
			starts := hookStarts(t)
			results := map[string]chan startResult{}
			start := func(tag string, spec Spec) {
				ch := make(chan startResult, 1)
				results[tag] = ch
				go func() {
					p, err := Start(spec, null)
					ch <- startResult{p, err}
				}()
			}
			for _, tag := range []string{"s1", "s2"} {
				start(tag, stopSpec(t, tag))
				waitStopped(t, starts.wait(t, tag))
			}
			start("third", tagged(serverSpec(t, "whoami"), "third"))
			time.Sleep(time.Second)
			if pid, ok := starts.get("third"); ok {
				t.Fatalf("a third child (%d) was created with the cap of 2 full", pid)
			}
			// Whatever ends a stopped child frees its slot.
			for _, tag := range []string{"s1", "third", "s2"} {
				if tag != "third" {
					pid, _ := starts.get(tag)
					syscall.Kill(pid, syscall.SIGKILL)
				}
				var r startResult
				select {
				case r = <-results[tag]:
				case <-time.After(30 * time.Second):
					t.Fatalf("start %s did not end", tag)
				}
				switch {
				case tag == "third" && r.err != nil:
					t.Errorf("third start: %v", r.err)
				case tag == "third":
					if ws, err := r.p.Wait(); err != nil || !succeeded(ws) {
						t.Errorf("third server: %v %v", ws, err)
					}
				case r.err == nil:
					// The helper: its death before execve looks like a
					// server that died at once.
					if ws, _ := r.p.Wait(); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
						t.Errorf("%s: status %v, want SIGKILL", tag, ws)
					}
				}
			}
		}
		// A full cap that nothing frees: EAGAIN after the bound.
		setExecTimeout(t, time.Second)
		preExec <- struct{}{}
		preExec <- struct{}{}
		began := time.Now()
		_, err := Start(serverSpec(t, "whoami"), null)
		<-preExec
		<-preExec
		var se *StartError
		if !errors.As(err, &se) || se.Step != "fork" || !errors.Is(err, syscall.EAGAIN) {
			t.Errorf("start with the cap full: %v, want a fork StartError with EAGAIN", err)
		}
		if d := time.Since(began); d < time.Second {
			t.Errorf("gave up after %v, before the bound", d)
		}
	})
}

// pidfdsOf counts this process's pidfds that name pid.
func pidfdsOf(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "Pid" && strings.TrimSpace(v) == strconv.Itoa(pid) {
				n++
			}
		}
	}
	return n
}

// TestProcessOnePidfd: a running server costs the daemon one descriptor,
// the pidfd taken at clone, also while a goroutine waits for it.
func TestProcessOnePidfd(t *testing.T) {
	sleep, err := findProgram("sleep")
	if err != nil {
		t.Skip(err)
	}
	modes(t, func(t *testing.T) {
		null := devNull(t)
		var procs []*Process
		results := make(chan syscall.WaitStatus, 4)
		for range 4 {
			p, err := Start(Spec{Path: sleep, Argv: []string{"sleep", "60"}, Umask: -1}, null)
			if err != nil {
				t.Fatal(err)
			}
			procs = append(procs, p)
			go func() {
				ws, _ := p.Wait()
				results <- ws
			}()
		}
		// Give the waiters time to park (each once opened a pidfd of its own).
		time.Sleep(time.Second)
		for _, p := range procs {
			if n := pidfdsOf(t, p.Pid); n != 1 {
				t.Errorf("server %d: %d pidfds, want 1", p.Pid, n)
			}
		}
		for _, p := range procs {
			if err := p.Kill(); err != nil {
				t.Error(err)
			}
		}
		for range procs {
			select {
			case ws := <-results:
				if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
					t.Errorf("status %v, want SIGKILL", ws)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Wait did not return after SIGKILL")
			}
		}
		for _, p := range procs {
			if n := pidfdsOf(t, p.Pid); n != 0 {
				t.Errorf("reaped server %d: %d pidfds left", p.Pid, n)
			}
			if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("signal after the reap: %v, want ErrProcessDone", err)
			}
		}
	})
}

// TestStartDescriptorLimit runs a small daemon in a process of its own
// (serveLimitsDaemon), whose limit and capabilities the test may change
// for good, and reads the descriptor limit its server got:
//
//   - without rlimit_files, the daemon's hard limit as it is when the
//     server starts, not as it was when the service was loaded (lowered
//     in between, on a daemon that may not raise it again);
//   - rlimit_files = UNLIMITED, or more than fs.nr_open: nr_open, or the
//     daemon's hard limit where it may not raise its own (the kernel
//     refuses RLIM_INFINITY, and anything above nr_open, even to root);
//   - a value below the hard limit: exactly that.
func TestStartDescriptorLimit(t *testing.T) {
	needRoot(t)
	serverSpec(t, "whoami") // the daemon's server
	serverSpec(t, "limits-daemon")
	nrOpen := NrOpen()
	cases := []struct {
		name, files  string
		low, dropCap bool
		want         func(hard uint64) uint64
	}{
		{"follows-the-daemon", "", true, true, func(hard uint64) uint64 { return hard }},
		{"unlimited-no-cap", "UNLIMITED", false, true, func(hard uint64) uint64 { return hard }},
		{"above-nr-open-no-cap", strconv.FormatUint(2*nrOpen, 10), false, true, func(hard uint64) uint64 { return hard }},
		{"unlimited", "UNLIMITED", false, false, func(hard uint64) uint64 {
			if mayRaiseLimits() {
				return nrOpen
			}
			return hard
		}},
		{"below-hard", "100", true, true, func(uint64) uint64 { return 100 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			modes(t, func(t *testing.T) {
				mode := "clone"
				switch {
				case forceHelper:
					mode = "helper"
				case noClone || !haveClone:
					mode = "plain"
				}
				env := append(os.Environ(), testServerEnv+"=limits-daemon", "GX_MODE="+mode,
					"GX_SERVER_BIN="+serverBin, "GX_FILES="+tc.files)
				if tc.low {
					env = append(env, "GX_LOW=1")
				}
				if tc.dropCap {
					env = append(env, "GX_DROPCAP=1")
				}
				cmd := exec.Command(os.Args[0])
				cmd.Env = env
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("limits daemon: %v\n%s", err, out)
				}
				kv := parseKV(string(out))
				hard, err := strconv.ParseUint(one(t, kv, "hard"), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				w := tc.want(hard)
				if got, want := one(t, kv, "files"), fmt.Sprintf("%d %d", w, w); got != want {
					t.Errorf("open files %q, want %q (daemon's hard limit %d, nr_open %d)\n%s", got, want, hard, nrOpen, out)
				}
			})
		})
	}
}

// serveLimitsDaemon is TestStartDescriptorLimit's daemon. It makes the
// template of a whoami service (rlimit_files from GX_FILES) first, then
// lowers its own hard descriptor limit (GX_LOW) and drops
// CAP_SYS_RESOURCE (GX_DROPCAP) on the thread that starts the server
// (GX_MODE), and prints its hard limit and the server's limit.
func serveLimitsDaemon() int {
	runtime.LockOSThread()
	fail := func(err error) int {
		fmt.Println("error=" + err.Error())
		return 1
	}
	switch os.Getenv("GX_MODE") {
	case "plain":
		noClone = true
	case "helper":
		forceHelper = true
	}
	svc := &service.Service{ID: "files", Server: os.Getenv("GX_SERVER_BIN"), Argv: []string{"server-whoami"}}
	switch f := os.Getenv("GX_FILES"); f {
	case "":
	case "UNLIMITED":
		svc.Rlim.Edit().Files = service.Rlimit{Set: true, Infinity: true}
	default:
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return fail(err)
		}
		svc.Rlim.Edit().Files = service.Rlimit{Set: true, Value: v}
	}
	tmpl, err := NewTemplate(svc, []string{testServerEnv + "=whoami"}, nil)
	if err != nil {
		return fail(err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fail(err)
	}
	if os.Getenv("GX_LOW") != "" {
		low := min(lim.Max/2, 4096)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: low, Max: low}); err != nil {
			return fail(err)
		}
		lim.Max = low
	}
	if os.Getenv("GX_DROPCAP") != "" {
		if err := dropCap(unix.CAP_SYS_RESOURCE); err != nil {
			return fail(err)
		}
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	srv := os.NewFile(uintptr(fds[0]), "server end")
	p, err := Start(tmpl.Spec(Conn{}), srv)
	srv.Close()
	if err != nil {
		return fail(err)
	}
	out, err := readFD(fds[1])
	if err != nil {
		return fail(err)
	}
	if _, err := p.Wait(); err != nil {
		return fail(err)
	}
	kv := parseKV(string(out))
	fmt.Printf("hard=%d\n", lim.Max)
	for _, v := range kv["limit Max open files"] {
		fmt.Println("files=" + v)
	}
	return 0
}

// dropCap removes a capability from the calling thread, for good: from
// its bounding set (so that a root execve does not bring it back) and
// from its effective, permitted and inheritable sets.
func dropCap(c int) error {
	if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
		return fmt.Errorf("PR_CAPBSET_DROP: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[c/32].Effective &^= 1 << (c % 32)
	data[c/32].Permitted &^= 1 << (c % 32)
	data[c/32].Inheritable &^= 1 << (c % 32)
	return unix.Capset(&hdr, &data[0])
}

// TestProcessByPid runs the wait, signal and terminate paths of a
// Process without a pidfd, as on kernels before 5.4.
func TestProcessByPid(t *testing.T) {
	noPidfd = true
	defer func() { noPidfd = false }()
	t.Run("wait-status", TestWaitStatus)
	t.Run("terminate", TestTerminate)
	t.Run("one-pidfd-is-none", func(t *testing.T) {
		sleep, err := findProgram("sleep")
		if err != nil {
			t.Skip(err)
		}
		p, err := Start(Spec{Path: sleep, Argv: []string{"sleep", "60"}, Umask: -1}, devNull(t))
		if err != nil {
			t.Fatal(err)
		}
		if p.pidfd != nil || pidfdsOf(t, p.Pid) != 0 {
			t.Errorf("a pidfd in pid mode")
		}
		if p.exited() {
			t.Error("running server counted as exited")
		}
		p.Kill()
		if ws, err := p.Wait(); err != nil || !ws.Signaled() {
			t.Errorf("%v %v", ws, err)
		}
		if !p.exited() || !errors.Is(p.Signal(syscall.SIGTERM), os.ErrProcessDone) {
			t.Error("reaped server still signalled")
		}
	})
}

// TestStartUnendingChild: a child that not even SIGKILL makes close its
// status pipe does not hold its start beyond the bound and killTimeout.
// Here another stopped child holds the pipe, one that kept every
// descriptor (as children did before they closed them first). The start
// fails while that holder is still stopped; once the holder is gone, the
// pipe closes, and the killed child is reaped in the background.
func TestStartUnendingChild(t *testing.T) {
	if !haveClone {
		t.Skip("no clone path in this build")
	}
	starts := hookStarts(t)
	null := devNull(t)
	holder := make(chan startResult, 1)
	beforeFork = func(spec *Spec) {
		if tagOf(spec) != "victim" {
			return
		}
		go func() {
			spec := stopSpec(t, "holder")
			spec.test |= cloneTestKeepFDs
			spec.testBound = 10 * time.Minute
			p, err := Start(spec, null)
			holder <- startResult{p, err}
		}()
		waitStopped(t, starts.wait(t, "holder"))
	}
	t.Cleanup(func() { beforeFork = nil })
	spec := stopSpec(t, "victim")
	spec.testBound = 2 * time.Second
	_, err := Start(spec, null)
	if !errors.Is(err, ErrExecTimeout) || !strings.HasSuffix(err.Error(), "no execve within 2s, killed") {
		t.Errorf("victim: %v, want ErrExecTimeout after 2s", err)
	}
	holderPid, _ := starts.get("holder")
	victimPid, _ := starts.get("victim")
	if s := procState(holderPid); s != 'T' && s != 't' {
		t.Fatalf("the victim's start ended only after the holder %d was no longer stopped (state %c)", holderPid, s)
	}
	if s := procState(victimPid); s != 'Z' {
		t.Errorf("victim child %d: state %c, want a zombie (killed, its pipe still held)", victimPid, s)
	}
	syscall.Kill(holderPid, syscall.SIGKILL)
	select {
	case r := <-holder:
		if r.err == nil {
			r.p.Wait()
			t.Error("the holder's start succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the holder's start did not end after SIGKILL")
	}
	for deadline := time.Now().Add(30 * time.Second); procState(victimPid) == 'Z'; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("victim child %d never reaped", victimPid)
		}
	}
}

// TestExitedUnderSignals: a running server never counts as ended
// because a signal interrupted the poll on its pidfd (the runtime
// preempts goroutines with SIGURG). Terminate took EINTR for "ended"
// and left a server that ignores SIGTERM running.
func TestExitedUnderSignals(t *testing.T) {
	sleep, err := findProgram("sleep")
	if err != nil {
		t.Skip(err)
	}
	p, err := Start(Spec{Path: sleep, Argv: []string{"sleep", "60"}, Umask: -1}, devNull(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Kill()
		p.Wait()
	}()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				syscall.Kill(os.Getpid(), syscall.SIGURG)
			}
		}
	}()
	deadline := time.Now().Add(3 * time.Second)
	n := 0
	for ; n < 2_000_000 && time.Now().Before(deadline); n++ {
		if p.exited() {
			t.Errorf("a running server counted as ended (after %d checks)", n)
			break
		}
	}
	close(stop)
	<-done
	t.Logf("%d checks", n)
}
