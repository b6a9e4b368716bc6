package spawn

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testServerEnv names the test server a copy of this test binary plays
// when the tests start it as a "server" (the os/exec helper-process
// pattern).
const testServerEnv = "GXINETD_TEST_HELPER"

// testServers are the programs this binary can act as.
var testServers = map[string]func() int{
	"echo-stdin":  serveEcho,
	"list-fds":    serveListFDs,
	"whoami":      serveWhoami,
	"ignore-term": serveIgnoreTerm,
	"accept-one":  serveAcceptOne,
	// Not a server: a small daemon of its own (TestStartDescriptorLimit).
	"limits-daemon": serveLimitsDaemon,
}

var (
	usedMu      sync.Mutex
	usedServers = map[string]bool{}
)

// serverBin is a world-executable copy of the test binary in a
// world-searchable directory, so servers still run after dropping to
// nobody (go test's own build directory is private to root).
var serverBin string

func TestMain(m *testing.M) {
	if HelperMain() {
		return
	}
	if name := os.Getenv(testServerEnv); name != "" {
		fn, ok := testServers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test server %q\n", name)
			os.Exit(2)
		}
		os.Exit(fn())
	}
	flag.Parse()
	dir, err := os.MkdirTemp("", "spawn-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := os.Chmod(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		serverBin = filepath.Join(dir, "server")
		if err := copyExecutable(serverBin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		code := m.Run()
		// Every test server must be exercised by a full run.
		if code == 0 && flag.Lookup("test.run").Value.String() == "" && !testing.Short() {
			for name := range testServers {
				if !usedServers[name] {
					fmt.Fprintf(os.Stderr, "test server %q is never used\n", name)
					code = 1
				}
			}
		}
		return code
	}()
	os.Exit(code)
}

func copyExecutable(dst string) error {
	src, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// serverSpec is a Spec running the named test server with no extras.
func serverSpec(t testing.TB, name string, env ...string) Spec {
	t.Helper()
	if _, ok := testServers[name]; !ok {
		t.Fatalf("no test server %q", name)
	}
	usedMu.Lock()
	usedServers[name] = true
	usedMu.Unlock()
	return Spec{
		Path:  serverBin,
		Argv:  []string{"server-" + name},
		Env:   append([]string{testServerEnv + "=" + name}, env...),
		Umask: -1,
	}
}

func serveEcho() int {
	_, err := io.Copy(os.Stdout, os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// serveListFDs lists its open descriptors with raw system calls, before
// anything in the runtime has a reason to open one of its own.
func serveListFDs() int {
	dfd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 3
	}
	buf := make([]byte, 8192)
	var fds []int
	for {
		n, err := unix.Getdents(dfd, buf)
		if err != nil {
			return 4
		}
		if n <= 0 {
			break
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil)
		for _, name := range names {
			fd, err := strconv.Atoi(name)
			if err == nil && fd != dfd {
				fds = append(fds, fd)
			}
		}
	}
	unix.Close(dfd)
	sort.Ints(fds)
	var b strings.Builder
	for _, fd := range fds {
		target, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		fmt.Fprintf(&b, "%d %s\n", fd, target)
	}
	os.Stdout.WriteString(b.String())
	return 0
}

// serveWhoami reports everything the spawn tests check about a server,
// as "key=value" lines.
func serveWhoami() int {
	var b strings.Builder
	p := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, v) }
	p("pid", strconv.Itoa(os.Getpid()))
	p("ppid", strconv.Itoa(os.Getppid()))
	p("uid", strconv.Itoa(os.Getuid()))
	p("euid", strconv.Itoa(os.Geteuid()))
	p("gid", strconv.Itoa(os.Getgid()))
	p("egid", strconv.Itoa(os.Getegid()))
	groups, _ := unix.Getgroups()
	sort.Ints(groups)
	p("groups", strings.Trim(fmt.Sprint(groups), "[]"))
	sid, _ := unix.Getsid(0)
	p("sid", strconv.Itoa(sid))
	p("pgid", strconv.Itoa(unix.Getpgrp()))
	if st, err := os.ReadFile("/proc/self/stat"); err == nil {
		s := string(st)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// Fields after the command: state is 3rd in stat(5), nice 19th.
		p("nice", f[19-3])
	}
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "Umask" || k == "SigBlk" || k == "SigIgn") {
				p(strings.ToLower(k), strings.TrimSpace(v))
			}
		}
	}
	if lim, err := os.ReadFile("/proc/self/limits"); err == nil {
		for _, line := range strings.Split(string(lim), "\n")[1:] {
			if len(line) > 26 {
				f := strings.Fields(line[26:])
				if len(f) >= 2 {
					p("limit "+strings.TrimSpace(line[:26]), f[0]+" "+f[1])
				}
			}
		}
	}
	for i, a := range os.Args {
		p("argv"+strconv.Itoa(i), a)
	}
	for _, e := range os.Environ() {
		p("env", e)
	}
	os.Stdout.WriteString(b.String())
	return 0
}

func serveIgnoreTerm() int {
	signal.Ignore(syscall.SIGTERM)
	os.Stdout.WriteString("ready\n")
	time.Sleep(30 * time.Second)
	return 0
}

// serveAcceptOne is a wait=yes stream server: its stdin is the
// listening socket.
func serveAcceptOne() int {
	ln, err := net.FileListener(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := ln.Accept()
	if err != nil {
		return 1
	}
	fmt.Fprintf(c, "accepted by %d\n", os.Getpid())
	c.Close()
	return 0
}

// parseKV reads serveWhoami's output; repeated keys (env) accumulate.
func parseKV(out string) map[string][]string {
	m := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			m[k] = append(m[k], v)
		}
	}
	return m
}
