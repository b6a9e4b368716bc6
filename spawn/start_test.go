package spawn

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startModes are the ways Start can start a server: the clone path
// (when built with cgo), os.StartProcess (or the helper when the Spec
// needs it), and the exec helper for everything.
var startModes = []struct {
	name            string
	helper, noClone bool
}{{"clone", false, false}, {"plain", false, true}, {"helper", true, true}}

// inModes runs f once per start mode, as a subtest of run (t.Run or b.Run).
func inModes(run func(name string, f func()) bool, f func()) {
	for _, m := range startModes {
		if m.name == "clone" && !haveClone {
			continue
		}
		run(m.name, func() {
			oldH, oldC := forceHelper, noClone
			forceHelper, noClone = m.helper, m.noClone
			defer func() { forceHelper, noClone = oldH, oldC }()
			f()
		})
	}
}

// modes runs a test in every start mode.
func modes(t *testing.T, f func(t *testing.T)) {
	var cur *testing.T
	inModes(func(name string, g func()) bool {
		return t.Run(name, func(t *testing.T) { cur = t; g() })
	}, func() { f(cur) })
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: changes credentials, nice or hard limits of a child")
	}
}

// socketPair returns the server's end as an *os.File and the test's end
// as a net.Conn with working deadlines.
func socketPair(t testing.TB) (*os.File, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine := os.NewFile(uintptr(fds[1]), "test end")
	defer mine.Close()
	c, err := net.FileConn(mine)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fds[0]), "server end"), c
}

// runServer starts spec on a socket pair, sends input (then half-closes),
// and returns what the server wrote and how it ended.
func runServer(t testing.TB, spec Spec, input string) (string, syscall.WaitStatus) {
	t.Helper()
	srv, c := socketPair(t)
	defer c.Close()
	p, err := Start(spec, srv)
	srv.Close()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if input != "" {
		if _, err := io.WriteString(c, input); err != nil {
			t.Errorf("write: %v", err)
		}
	}
	c.(*net.UnixConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	out, err := io.ReadAll(c)
	if err != nil {
		p.Kill()
		t.Errorf("read: %v", err)
	}
	st, err := p.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return string(out), st
}

// succeeded reports an exit with status 0.
func succeeded(ws syscall.WaitStatus) bool { return ws.Exited() && ws.ExitStatus() == 0 }

func whoami(t testing.TB, spec Spec) map[string][]string {
	t.Helper()
	out, st := runServer(t, spec, "")
	if !succeeded(st) {
		t.Fatalf("whoami: %v; output:\n%s", st, out)
	}
	return parseKV(out)
}

func one(t testing.TB, kv map[string][]string, k string) string {
	t.Helper()
	v := kv[k]
	if len(v) != 1 {
		t.Fatalf("%s: got %q, want exactly one value", k, v)
	}
	return v[0]
}

func TestStartOnlyStdio(t *testing.T) {
	modes(t, func(t *testing.T) {
		t.Run("socketpair", func(t *testing.T) {
			srv, c := socketPair(t)
			defer c.Close()
			var st unix.Stat_t
			if err := unix.Fstat(int(srv.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			checkFDs(t, srv, c, st.Ino)
		})
		t.Run("tcp", func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			f, err := sc.(*net.TCPConn).File()
			sc.Close()
			if err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			checkFDs(t, f, c, st.Ino)
		})
	})
}

// checkFDs runs list-fds on srv and expects exactly 0, 1 and 2, all
// three the socket with inode ino.
func checkFDs(t *testing.T, srv *os.File, c net.Conn, ino uint64) {
	t.Helper()
	// Leave a few descriptors of our own open: none may leak through.
	var extra []*os.File
	for range 3 {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, f)
	}
	defer func() {
		for _, f := range extra {
			f.Close()
		}
	}()
	// The Go runtime of the test server would keep cgroup files open
	// for its GOMAXPROCS updates; those are the server's own.
	p, err := Start(serverSpec(t, "list-fds", "GODEBUG=containermaxprocs=0,updatemaxprocs=0"), srv)
	srv.Close()
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	out, err := io.ReadAll(c)
	if err != nil {
		t.Error(err)
	}
	if st, err := p.Wait(); err != nil || !succeeded(st) {
		t.Fatalf("list-fds: %v %v\n%s", st, err, out)
	}
	want := ""
	for fd := range 3 {
		want += fmt.Sprintf("%d socket:[%d]\n", fd, ino)
	}
	if string(out) != want {
		t.Errorf("descriptors in the server:\n%s\nwant:\n%s", out, want)
	}
}

func TestStartSessionAndParent(t *testing.T) {
	modes(t, func(t *testing.T) {
		kv := whoami(t, serverSpec(t, "whoami"))
		pid := one(t, kv, "pid")
		if sid, pgid := one(t, kv, "sid"), one(t, kv, "pgid"); sid != pid || pgid != pid {
			t.Errorf("pid %s sid %s pgid %s: want a session leader", pid, sid, pgid)
		}
		// The helper execs in place: the daemon is the server's parent.
		if ppid := one(t, kv, "ppid"); ppid != strconv.Itoa(os.Getpid()) {
			t.Errorf("ppid %s, want %d", ppid, os.Getpid())
		}
		if got := one(t, kv, "argv0"); got != "server-whoami" {
			t.Errorf("argv0 %q", got)
		}
	})
}

// TestStartSignals uses grep rather than a Go server: the Go runtime
// installs its own handlers at start-up and would hide what it inherited.
func TestStartSignals(t *testing.T) {
	grep, err := findProgram("grep")
	if err != nil {
		t.Skip(err)
	}
	spec := Spec{Path: grep, Argv: []string{"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}, Umask: -1}
	check := func(t *testing.T) {
		out, st := runServer(t, spec, "")
		if !succeeded(st) {
			t.Fatalf("grep: %v", st)
		}
		want := "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
		if out != want {
			t.Errorf("server signal state:\n%s\nwant:\n%s", out, want)
		}
	}
	modes(t, check)
	t.Run("daemon-ignores-signals", func(t *testing.T) {
		// SIGHUP and SIGTSTP are signals the Go runtime of the helper
		// leaves ignored; SIGUSR2 one it takes over.
		signal.Ignore(syscall.SIGHUP, syscall.SIGTSTP, syscall.SIGUSR2)
		Refresh()
		defer Refresh()
		defer signal.Reset(syscall.SIGHUP, syscall.SIGTSTP, syscall.SIGUSR2)
		if st, err := readProcStatus(); err != nil || st.sigIgn == 0 {
			t.Fatalf("signals not ignored in the test process: %+v %v", st, err)
		}
		modes(t, check)
	})
}

func findProgram(name string) (string, error) {
	for _, dir := range []string{"/bin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s in /bin or /usr/bin", name)
}

func TestStartCredentials(t *testing.T) {
	needRoot(t)
	cases := []struct {
		name   string
		cred   *Cred
		uid    string
		gid    string
		groups string
	}{
		{"nobody", &Cred{UID: 65534, GID: 65534}, "65534", "65534", ""},
		{"nobody-initgroups", &Cred{UID: 65534, GID: 65534, Groups: []uint32{65534, 4242, 4343}}, "65534", "65534", "4242 4343 65534"},
		{"root-group-daemon", &Cred{UID: 0, GID: 1}, "0", "1", ""},
		{"numeric-unknown", &Cred{UID: 12345, GID: 12345}, "12345", "12345", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			modes(t, func(t *testing.T) {
				spec := serverSpec(t, "whoami")
				spec.Cred = tc.cred
				kv := whoami(t, spec)
				for k, want := range map[string]string{"uid": tc.uid, "euid": tc.uid, "gid": tc.gid, "egid": tc.gid, "groups": tc.groups} {
					if got := one(t, kv, k); got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				}
			})
		})
	}
}

// TestStartRootNoGroups: Cred{0, 0, nil} means root with no supplementary
// groups, which differs from a nil Cred (keep the daemon's groups).
func TestStartRootNoGroups(t *testing.T) {
	needRoot(t)
	old, err := unix.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setgroups([]int{0, 4242}); err != nil {
		t.Fatal(err)
	}
	Refresh()
	defer func() {
		syscall.Setgroups(old)
		Refresh()
	}()
	modes(t, func(t *testing.T) {
		spec := serverSpec(t, "whoami")
		if got := one(t, whoami(t, spec), "groups"); got != "0 4242" {
			t.Errorf("nil Cred: groups %q, want the daemon's", got)
		}
		spec.Cred = &Cred{}
		if got := one(t, whoami(t, spec), "groups"); got != "" {
			t.Errorf("Cred{}: groups %q, want none", got)
		}
	})
}

// TestStartEnvBytes: environment strings are bytes, not text.
func TestStartEnvBytes(t *testing.T) {
	modes(t, func(t *testing.T) {
		odd := "ODD=\xff\xfe latin1 caf\xe9 \u00e9"
		kv := whoami(t, serverSpec(t, "whoami", odd))
		if !slices.Contains(kv["env"], odd) {
			t.Errorf("environment %q lacks %q", kv["env"], odd)
		}
	})
}

func TestStartUmaskNiceRlimits(t *testing.T) {
	needRoot(t)
	mib := uint64(1 << 20)
	limits := []Rlimit{
		{Resource: unix.RLIMIT_AS, Value: 8192 * mib},
		{Resource: unix.RLIMIT_CPU, Value: 321},
		{Resource: unix.RLIMIT_DATA, Value: 4096 * mib},
		{Resource: unix.RLIMIT_RSS, Value: 777 * mib},
		{Resource: unix.RLIMIT_STACK, Value: 16 * mib},
		{Resource: unix.RLIMIT_NOFILE, Value: 1234},
	}
	wantLimits := map[string]string{
		"limit Max address space":    strconv.FormatUint(8192*mib, 10),
		"limit Max cpu time":         "321",
		"limit Max data size":        strconv.FormatUint(4096*mib, 10),
		"limit Max resident set":     strconv.FormatUint(777*mib, 10),
		"limit Max stack size":       strconv.FormatUint(16*mib, 10),
		"limit Max open files":       "1234",
		"limit Max processes":        "", // untouched: only checked to exist
		"limit Max core file size":   "",
		"limit Max file locks":       "",
		"limit Max pending signals":  "",
		"limit Max msgqueue size":    "",
		"limit Max nice priority":    "",
		"limit Max realtime timeout": "",
	}
	cases := []struct {
		name  string
		umask int
		nice  int
		cred  *Cred
	}{
		{"root-nice-minus5", 0o027, -5, nil},
		{"nobody-nice-minus5", 0, -5, &Cred{UID: 65534, GID: 65534}},
		{"nobody-nice-plus5", 0o077, 5, &Cred{UID: 65534, GID: 65534}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			modes(t, func(t *testing.T) {
				spec := serverSpec(t, "whoami")
				spec.Umask = tc.umask
				n := tc.nice
				spec.Nice = &n
				spec.Cred = tc.cred
				spec.Rlimits = limits
				kv := whoami(t, spec)
				if got, want := one(t, kv, "umask"), fmt.Sprintf("%04o", tc.umask); got != want {
					t.Errorf("umask %s, want %s", got, want)
				}
				if got, want := one(t, kv, "nice"), strconv.Itoa(ourNice(t)+tc.nice); got != want {
					t.Errorf("nice %s, want %s", got, want)
				}
				for k, want := range wantLimits {
					got := one(t, kv, k)
					if want != "" && got != want+" "+want {
						t.Errorf("%s: %q, want soft = hard = %s", k, got, want)
					}
				}
			})
		})
	}
	t.Run("infinity", func(t *testing.T) {
		modes(t, func(t *testing.T) {
			spec := serverSpec(t, "whoami")
			spec.Rlimits = []Rlimit{{Resource: unix.RLIMIT_CPU, Value: unix.RLIM_INFINITY}, {Resource: unix.RLIMIT_NOFILE, Value: 4321}}
			kv := whoami(t, spec)
			if got := one(t, kv, "limit Max cpu time"); got != "unlimited unlimited" {
				t.Errorf("cpu %q", got)
			}
			if got := one(t, kv, "limit Max open files"); got != "4321 4321" {
				t.Errorf("files %q", got)
			}
		})
	})
}

func ourNice(t testing.TB) int {
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	return 20 - prio
}

// TestStartSmallMemoryLimits runs a C program under address-space and
// data limits far below what the Go helper itself has mapped: the helper
// must not need memory once they are set.
func TestStartSmallMemoryLimits(t *testing.T) {
	truePath, err := findProgram("true")
	if err != nil {
		t.Skip(err)
	}
	spec := Spec{Path: truePath, Umask: -1, Rlimits: []Rlimit{{Resource: unix.RLIMIT_AS, Value: 64 << 20}, {Resource: unix.RLIMIT_DATA, Value: 16 << 20}}}
	modes(t, func(t *testing.T) {
		for range 5 {
			if out, st := runServer(t, spec, ""); !succeeded(st) {
				t.Fatalf("true under small limits: %v %s", st, out)
			}
		}
	})
}

func TestStartUmaskOnly(t *testing.T) {
	// Without root: umask needs no privilege.
	for _, u := range []int{0, 0o022, 0o077} {
		t.Run(fmt.Sprintf("%04o", u), func(t *testing.T) {
			modes(t, func(t *testing.T) {
				spec := serverSpec(t, "whoami")
				spec.Umask = u
				kv := whoami(t, spec)
				if got := one(t, kv, "umask"); got != fmt.Sprintf("%04o", u) {
					t.Errorf("umask %s", got)
				}
			})
		})
	}
}

func TestStartFailures(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		spec func() Spec
		is   error
		msg  string
	}{
		{"missing", func() Spec { return Spec{Path: "/bin/nope", Umask: -1} }, fs.ErrNotExist,
			"spawn: exec /bin/nope: no such file or directory"},
		{"not-executable", func() Spec { return Spec{Path: notExec, Umask: -1} }, fs.ErrPermission,
			"spawn: exec " + notExec + ": permission denied"},
		{"nul-in-argument", func() Spec {
			s := serverSpec(t, "whoami")
			s.Argv = append(s.Argv, "a\x00b")
			return s
		}, syscall.EINVAL, ""},
		{"nul-in-environment", func() Spec {
			s := serverSpec(t, "whoami")
			s.Env = append(s.Env, "X=a\x00b")
			return s
		}, syscall.EINVAL, ""},
		{"bad-uid", func() Spec {
			s := serverSpec(t, "whoami")
			s.Cred = &Cred{UID: 1<<32 - 1, GID: 0}
			return s
		}, syscall.EINVAL, "spawn: setuid 4294967295: invalid argument"},
		{"bad-gid", func() Spec {
			s := serverSpec(t, "whoami")
			s.Cred = &Cred{UID: 0, GID: 1<<32 - 1}
			return s
		}, syscall.EINVAL, "spawn: setgid 4294967295: invalid argument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			modes(t, func(t *testing.T) {
				srv, c := socketPair(t)
				defer c.Close()
				defer srv.Close()
				p, err := Start(tc.spec(), srv)
				if err == nil {
					p.Kill()
					p.Wait()
					t.Fatal("Start succeeded")
				}
				if tc.msg == "" {
					tc.msg = "spawn: exec " + tc.spec().Path + ": invalid argument"
				}
				if !errors.Is(err, tc.is) || err.Error() != tc.msg {
					t.Errorf("error %q (%v), want %q", err, errors.Is(err, tc.is), tc.msg)
				}
				var se *StartError
				if !errors.As(err, &se) {
					t.Errorf("%T is not a *StartError", err)
				}
			})
		})
	}
	t.Run("helper-step", func(t *testing.T) {
		needRoot(t)
		// More descriptors than the kernel's nr_open: refused even to root,
		// reported by the helper, not by execve.
		spec := serverSpec(t, "whoami")
		spec.Rlimits = []Rlimit{{Resource: unix.RLIMIT_NOFILE, Value: 1 << 40}}
		srv, c := socketPair(t)
		defer c.Close()
		defer srv.Close()
		_, err := Start(spec, srv)
		want := "spawn: rlimit_files 1099511627776: operation not permitted"
		if err == nil || err.Error() != want || !errors.Is(err, syscall.EPERM) {
			t.Errorf("error %v, want %q", err, want)
		}
	})
	t.Run("missing-under-memory-limit", func(t *testing.T) {
		// The helper reports an execve failure after RLIMIT_AS is in
		// force, when it may no longer allocate.
		srv, c := socketPair(t)
		defer c.Close()
		defer srv.Close()
		spec := Spec{Path: "/bin/nope", Umask: -1, Rlimits: []Rlimit{{Resource: unix.RLIMIT_AS, Value: 64 << 20}, {Resource: unix.RLIMIT_DATA, Value: 16 << 20}}}
		_, err := Start(spec, srv)
		if want := "spawn: exec /bin/nope: no such file or directory"; err == nil || err.Error() != want {
			t.Errorf("error %v, want %q", err, want)
		}
	})
	t.Run("bad-dir", func(t *testing.T) {
		modes(t, func(t *testing.T) {
			srv, c := socketPair(t)
			defer c.Close()
			defer srv.Close()
			spec := serverSpec(t, "whoami")
			spec.Dir = filepath.Join(dir, "missing")
			_, err := Start(spec, srv)
			if want := "spawn: chdir " + spec.Dir + ": no such file or directory"; err == nil || err.Error() != want {
				t.Errorf("error %v, want %q", err, want)
			}
		})
	})
	if z := zombies(t); len(z) > 0 {
		t.Errorf("zombie children left behind: %v", z)
	}
}

// zombies lists children of this process that exited and were not
// reaped.
func zombies(t testing.TB) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getpid())
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[1] == me && f[0] == "Z" {
			out = append(out, pid)
		}
	}
	return out
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestStartNoFDGrowth(t *testing.T) {
	truePath, err := findProgram("true")
	if err != nil {
		t.Skip(err)
	}
	null, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	umask := 0o077
	if st, err := readProcStatus(); err == nil && st.umask == umask {
		umask = 0o027
	}
	// Every tenth start goes through the helper (a umask the daemon does
	// not have); four run at once, as in a busy daemon.
	startOne := func(i int) error {
		spec := Spec{Path: truePath, Umask: -1}
		if i%10 == 9 {
			spec.Umask = umask
		}
		p, err := Start(spec, null)
		if err != nil {
			return err
		}
		st, err := p.Wait()
		if err == nil && !succeeded(st) {
			err = fmt.Errorf("true: %v", st)
		}
		return err
	}
	run := func(from, n int) error {
		errs := make(chan error, 4)
		for w := range 4 {
			go func() {
				var err error
				for i := from + w; i < from+n && err == nil; i += 4 {
					err = startOne(i)
				}
				errs <- err
			}()
		}
		var first error
		for range 4 {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	if err := run(0, 20); err != nil { // warm up the runtime's own descriptors
		t.Fatal(err)
	}
	// Descriptors of earlier tests may still be waiting for a finalizer.
	runtime.GC()
	runtime.GC()
	before := countFDs(t)
	deadline := time.Now().Add(30 * time.Second)
	n := 0
	for ; n < 2000 && time.Now().Before(deadline); n += 100 {
		if err := run(n, 100); err != nil {
			t.Fatal(err)
		}
	}
	if n < 200 {
		t.Fatalf("only %d starts in the time allowed", n)
	}
	if after := countFDs(t); after > before {
		t.Errorf("descriptors: %d before %d starts, %d after", before, n, after)
	}
	if z := zombies(t); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
	t.Logf("%d starts", n)
}

func TestTerminate(t *testing.T) {
	modes(t, func(t *testing.T) {
		t.Run("ignores-sigterm", func(t *testing.T) {
			srv, c := socketPair(t)
			defer c.Close()
			p, err := Start(serverSpec(t, "ignore-term"), srv)
			srv.Close()
			if err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			buf := make([]byte, 6)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ready\n" {
				p.Kill()
				t.Fatalf("ready: %q %v", buf, err)
			}
			Terminate(p, 200*time.Millisecond)
			st, err := p.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if ws := st; !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Errorf("ended with %v, want SIGKILL", st)
			}
		})
		t.Run("obeys-sigterm", func(t *testing.T) {
			srv, c := socketPair(t)
			defer c.Close()
			p, err := Start(serverSpec(t, "echo-stdin"), srv)
			srv.Close()
			if err != nil {
				t.Fatal(err)
			}
			// Wait until it runs: one echoed byte.
			c.SetDeadline(time.Now().Add(20 * time.Second))
			c.Write([]byte("x"))
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				p.Kill()
				t.Fatal(err)
			}
			Terminate(p, 10*time.Second)
			st, err := p.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if ws := st; !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
				t.Errorf("ended with %v, want SIGTERM", st)
			}
			// Terminating a reaped process is a no-op.
			Terminate(p, time.Second)
		})
	})
}

func fdNonblock(t *testing.T, c syscall.Conn) bool {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var nb bool
	var ferr error
	rc.Control(func(fd uintptr) {
		var fl int
		fl, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0)
		nb = fl&unix.O_NONBLOCK != 0
	})
	if ferr != nil {
		t.Fatal(ferr)
	}
	return nb
}

// TestWaitListenerHandOver is the wait=yes stream case: the server gets
// the listening socket itself, accepts, and the daemon takes the socket
// back with O_NONBLOCK restored.
func TestWaitListenerHandOver(t *testing.T) {
	modes(t, func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		tl := ln.(*net.TCPListener)
		f, err := tl.File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p, err := Start(serverSpec(t, "accept-one"), f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, _ := io.ReadAll(c)
		c.Close()
		if want := fmt.Sprintf("accepted by %d\n", p.Pid); string(got) != want {
			t.Errorf("client got %q, want %q", got, want)
		}
		if st, err := p.Wait(); err != nil || !succeeded(st) {
			t.Fatalf("accept-one: %v %v", st, err)
		}
		// The hand-over leaves the shared description blocking (Start
		// calls Fd); the server may have changed it again since, so the
		// trap is set here for certain before RestoreNonblock undoes it.
		rc, err := tl.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		rc.Control(func(fd uintptr) { unix.SetNonblock(int(fd), false) })
		if fdNonblock(t, tl) {
			t.Fatal("could not make the listener blocking")
		}
		if err := RestoreNonblock(f); err != nil {
			t.Fatal(err)
		}
		if !fdNonblock(t, tl) {
			t.Error("RestoreNonblock left the listener blocking")
		}
		// The daemon's listener works again, and a deadline interrupts it.
		tl.SetDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := tl.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Accept after restore: %v, want deadline exceeded", err)
		}
	})
}

func TestDecodeStatus(t *testing.T) {
	cases := []struct {
		in   []byte
		want string
		is   error
	}{
		{encodeStatus("exec", "/bin/nope", syscall.ENOENT), "spawn: exec /bin/nope: no such file or directory", fs.ErrNotExist},
		{encodeStatus("setuid", "65534", fmt.Errorf("wrapped: %w", syscall.EPERM)), "spawn: setuid 65534: operation not permitted", syscall.EPERM},
		{encodeStatus("decode spec", "", errors.New("bad json")), "spawn: decode spec: bad json", nil},
		{[]byte("garbage"), `spawn: exec helper: malformed status "garbage"`, nil},
		{[]byte("\x00\x00x\x00"), "spawn: exec helper: failed", nil},
	}
	for _, tc := range cases {
		err := decodeStatus(tc.in)
		if err.Error() != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%q: not %v", tc.in, tc.is)
		}
	}
}

func FuzzDecodeStatus(f *testing.F) {
	f.Add(encodeStatus("exec", "/bin/true", syscall.ENOENT))
	f.Add(encodeStatus("rlimit_files", "unlimited", syscall.EPERM))
	f.Add([]byte("a\x00b\x00999999999999\x00c"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		err := decodeStatus(b)
		if err == nil || err.Err == nil || err.Step == "" {
			t.Fatalf("decodeStatus(%q) = %#v", b, err)
		}
		if !strings.HasPrefix(err.Error(), "spawn: ") {
			t.Fatalf("message %q", err)
		}
		// Whatever the helper reports must survive the round trip.
		if err.Arg != "" && !strings.Contains(err.Arg, "\x00") && !strings.Contains(err.Step, "\x00") {
			back := decodeStatus(encodeStatus(err.Step, err.Arg, err.Err))
			if back.Error() != err.Error() {
				t.Fatalf("round trip %q -> %q", err, back)
			}
		}
	})
}

func TestParseProcStatus(t *testing.T) {
	good := "Name:\tx\nUmask:\t0027\nState:\tR\nSigBlk:\t0000000000010000\nSigIgn:\t0000000000001001\n"
	st, err := parseProcStatus([]byte(good))
	if err != nil || st.umask != 0o027 || st.sigBlk != 0x10000 || st.sigIgn != 0x1001 {
		t.Errorf("%+v %v", st, err)
	}
	for _, bad := range []string{"", "SigBlk:\tzz\nSigIgn:\t0\n", "Umask:\t9\nSigBlk:\t0\nSigIgn:\t0\n", "SigIgn:\t0\n"} {
		if _, err := parseProcStatus([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	real, err := readProcStatus()
	if err != nil || real.umask < 0 {
		t.Errorf("own status: %+v %v", real, err)
	}
}

func FuzzParseProcStatus(f *testing.F) {
	f.Add([]byte("Umask:\t0022\nSigBlk:\t0\nSigIgn:\t0\n"))
	f.Add([]byte("SigBlk:ffffffffffffffff\nSigIgn:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseProcStatus(b)
		if err == nil && (st.umask < -1 || st.umask > math.MaxUint32) {
			t.Fatalf("umask %o from %q", st.umask, b)
		}
	})
}
