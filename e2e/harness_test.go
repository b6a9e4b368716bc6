// Package e2e starts the real gxinetd and xconv binaries and drives them
// with real clients over loopback. Nothing here reaches beyond 127.0.0.0/8
// and ::1; every process started is stopped by PID.
package e2e

import (
	"bufio"
	"bytes"
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

	"github.com/gxinetd/gxinetd/internal/testnet"
)

var (
	binDir  string
	gxinetd string
	xconv   string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gxinetd-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// World-readable so servers running as nobody can be exec'd from it.
	os.Chmod(dir, 0o755)
	binDir = dir
	gxinetd = filepath.Join(dir, "gxinetd")
	xconv = filepath.Join(dir, "xconv")
	for _, b := range [][2]string{{gxinetd, "../cmd/gxinetd"}, {xconv, "../cmd/xconv"}} {
		cmd := exec.Command("go", "build", "-o", b[0], b[1])
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", b[1], err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePorts returns n distinct ports, free for TCP and UDP on every local
// address, from outside the kernel's ephemeral range and held against
// every other test process on the host until the test ends (see
// internal/testnet: another process can never be handed them meanwhile).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	return testnet.Ports(t, n)
}

// daemon is one gxinetd under test.
type daemon struct {
	t       *testing.T
	dir     string
	conf    string
	logFile string // daemon messages (-filelog)
	svcLog  string // service records (log_type FILE in the generated defaults)
	cmd     *exec.Cmd
	stderr  *syncBuf
	mu      sync.Mutex
	exited  chan struct{}
	waitErr error
}

// render writes conf (with {{DIR}} {{LOG}} {{P0}}..{{Pn}} substituted) into
// a fresh directory and returns its path.
func render(t *testing.T, dir, conf string, ports []int) string {
	t.Helper()
	r := strings.NewReplacer("{{DIR}}", dir, "{{LOG}}", filepath.Join(dir, "services.log"))
	conf = r.Replace(conf)
	for i, p := range ports {
		conf = strings.ReplaceAll(conf, fmt.Sprintf("{{P%d}}", i), fmt.Sprint(p))
	}
	path := filepath.Join(dir, "xinetd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func newDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir's parent is private (0700): servers running as nobody
	// must be able to reach their files.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	return dir
}

// start runs gxinetd in the foreground on conf and waits until it serves.
func start(t *testing.T, dir, confPath string, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: dir, conf: confPath, logFile: filepath.Join(dir, "daemon.log"),
		svcLog: filepath.Join(dir, "services.log"), stderr: &syncBuf{}, exited: make(chan struct{})}
	full := append([]string{"-f", confPath, "-dontfork", "-filelog", d.logFile,
		"-pidfile", filepath.Join(dir, "gxinetd.pid"), "-dumpfile", filepath.Join(dir, "xinetd.dump")}, args...)
	d.cmd = exec.Command(gxinetd, full...)
	d.cmd.Stderr = d.stderr
	d.cmd.Stdout = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	d.waitLog(`Started working`, 15*time.Second)
	return d
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) signal(s syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(s); err != nil {
		d.t.Fatalf("signal %v: %v", s, err)
	}
}

// kill stops the daemon (and only it) if it still runs.
func (d *daemon) kill() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

// waitExit waits for the daemon to end and returns its exit code.
func (d *daemon) waitExit(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.exited:
	case <-time.After(timeout):
		d.t.Fatalf("gxinetd did not exit within %v", timeout)
	}
	if d.cmd.ProcessState == nil {
		return -1
	}
	return d.cmd.ProcessState.ExitCode()
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func (d *daemon) daemonLog() string { return readFile(d.logFile) + d.stderr.String() }

// minWait is the least time any wait for something the daemon is to do
// (a log line, a record, a file) is given. A test's own timeout says how
// long the thing normally takes; on a loaded CI host (another make test
// beside this one, the race detector) it can take many times that, and a
// wait that ends early only turns a slow machine into a failure. Waiting
// longer costs nothing when the thing happens, so the bound is generous.
const minWait = 30 * time.Second

// waitBound is the deadline for a wait the test gave timeout.
func waitBound(timeout time.Duration) time.Time { return time.Now().Add(max(timeout, minWait)) }

// waitIn polls a file until re matches (bounded), returning the match.
func waitIn(t *testing.T, read func() string, pattern string, timeout time.Duration) []string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := waitBound(timeout)
	for {
		if m := re.FindStringSubmatch(read()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %q; got:\n%s", max(timeout, minWait), pattern, read())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) waitLog(pattern string, timeout time.Duration) []string {
	d.t.Helper()
	select {
	case <-d.exited:
		d.t.Fatalf("gxinetd exited early (%v):\n%s", d.waitErr, d.daemonLog())
	default:
	}
	return waitIn(d.t, d.daemonLog, pattern, timeout)
}

func (d *daemon) waitSvcLog(pattern string, timeout time.Duration) []string {
	d.t.Helper()
	return waitIn(d.t, func() string { return readFile(d.svcLog) }, pattern, timeout)
}

// tcpExchange connects, writes in (then half-closes), and reads to EOF.
func tcpExchange(t *testing.T, addr, in string, timeout time.Duration) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if in != "" {
		if _, err := io.WriteString(c, in); err != nil {
			return "", err
		}
	}
	if tc, ok := c.(*net.TCPConn); ok && in != "" {
		tc.CloseWrite()
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

func udpExchange(t *testing.T, network, addr string, in []byte, timeout time.Duration) ([]byte, error) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(in); err != nil {
		return nil, err
	}
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	return buf[:n], err
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: this test drops privileges / binds privileged ports for real (CI runs it as root)")
	}
}

func needCmd(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it)", n)
		}
	}
}

func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func countFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// children lists the pids whose parent is pid, and how many are zombies.
func children(pid int) (all []int, zombies int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var p int
		if _, err := fmt.Sscan(e.Name(), &p); err != nil {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(st)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		var ppid int
		fmt.Sscan(f[1], &ppid)
		if ppid == pid {
			all = append(all, p)
			if f[0] == "Z" {
				zombies++
			}
		}
	}
	return
}

func mustRE(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// syncBuf collects a child's output while tests read it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// noCgoEnv is the environment of a `go build` that must give a static
// binary (a server for a chroot, the no-cgo daemon): cgo off, and the
// race detector, which needs cgo, taken out of the GOFLAGS that `make
// race` sets for everything else.
func noCgoEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			var keep []string
			for _, f := range strings.Fields(v) {
				if f != "-race" {
					keep = append(keep, f)
				}
			}
			kv = "GOFLAGS=" + strings.Join(keep, " ")
		}
		env = append(env, kv)
	}
	return append(env, "CGO_ENABLED=0")
}
