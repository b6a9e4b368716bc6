package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

// TestExamplesCheckClean: every configuration under examples/ passes the
// check mode with no warnings about the files themselves.
func TestExamplesCheckClean(t *testing.T) {
	ex, _ := copyExamples(t, false) // with the CTF jail that make run builds
	for _, args := range [][]string{{"-f", filepath.Join(ex, "xinetd.conf")}, {"-inetd", filepath.Join(ex, "inetd.conf")}} {
		cmd := exec.Command(gxinetd, append([]string{"-t", "-json"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		var cfg struct {
			Services []struct {
				ID, Status string
			}
			Diags []struct {
				Severity, Code, Msg string
			}
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatal(err)
		}
		for _, s := range cfg.Services {
			if s.Status == "rejected" {
				t.Errorf("%v: service %s rejected", args, s.ID)
			}
		}
		for _, d := range cfg.Diags {
			if d.Severity != "notice" {
				t.Errorf("%v: %s %s %s", args, d.Severity, d.Code, d.Msg)
			}
		}
	}
}

// examplePort matches the example services' ports, 10000-10199.
var examplePort = regexp.MustCompile(`\b10[01]\d\d\b`)

// copyExamples copies examples/ into a fresh world-readable directory, so
// the daemon's relative log file lands there and not in the source tree.
// With unprivileged, the directory is handed to the user the daemon runs
// as (uid 65534), who must write its log there; a root daemon refuses a
// configuration in a directory others could write. The examples' fixed
// ports 10000-10199 are any program's to take (a developer's `make run`
// beside the tests, for one): in the copy, port 100NN becomes base+NN,
// from a block the test holds; the caller gets base.
func copyExamples(t *testing.T, unprivileged bool) (string, int) {
	t.Helper()
	base := testnet.Block(t, 200)
	move := func(b []byte) []byte {
		return examplePort.ReplaceAllFunc(b, func(m []byte) []byte {
			n, _ := strconv.Atoi(string(m))
			return []byte(strconv.Itoa(base + n - 10000))
		})
	}
	dst := filepath.Join(newDir(t), "examples")
	err := filepath.WalkDir("../examples", func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../examples", p)
		to := filepath.Join(dst, rel)
		if rel == filepath.Join("ctf", "jail") {
			return filepath.SkipDir // make's output, built afresh below
		}
		if e.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if strings.HasPrefix(e.Name(), "services.log") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, move(b), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	buildCTFJail(t, dst)
	// The daemon writes its service log next to the configuration.
	if unprivileged {
		os.Chown(dst, 65534, 65534)
	}
	return dst, base
}

var (
	ctfOnce sync.Once
	ctfBin  string
	ctfErr  error
)

// buildCTFJail does what `make ctf-jail` does, in a copy of examples/:
// the challenge built static into ctf/jail, with its flag and the
// directories the sandbox mounts over.
func buildCTFJail(t *testing.T, ex string) {
	t.Helper()
	ctfOnce.Do(func() {
		ctfBin = filepath.Join(binDir, "ctf-challenge")
		cmd := exec.Command("go", "build", "-o", ctfBin, "../examples/ctf/challenge")
		cmd.Env = noCgoEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			ctfErr = fmt.Errorf("building examples/ctf/challenge: %v\n%s", err, out)
		}
	})
	if ctfErr != nil {
		t.Fatal(ctfErr)
	}
	jail := filepath.Join(ex, "ctf", "jail")
	for _, d := range []string{"proc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(jail, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []struct {
		from, to string
		mode     os.FileMode
	}{{ctfBin, "chal", 0o755}, {filepath.Join(ex, "ctf", "flag.txt"), "flag.txt", 0o644}} {
		b, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(jail, f.to), b, f.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(jail, f.to), f.mode)
	}
}

// TestMakeRunExamplesServe starts the daemon the way `make run` does and
// talks to a few of the example services: as root and, where the test
// can switch users, as an unprivileged user (make run needs no root).
func TestMakeRunExamplesServe(t *testing.T) {
	if os.Getenv("GXINETD_SKIP_EXAMPLES") != "" {
		t.Skip("GXINETD_SKIP_EXAMPLES set")
	}
	t.Run("root", func(t *testing.T) { runExamples(t, nil) })
	t.Run("unprivileged", func(t *testing.T) {
		needRoot(t)
		needCmd(t, "setpriv")
		runExamples(t, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"})
	})
}

func runExamples(t *testing.T, prefix []string) {
	ex, base := copyExamples(t, prefix != nil)
	at := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", base+port-10000) }
	dir := filepath.Dir(ex)
	conf := filepath.Join(ex, "xinetd.conf")
	d := &daemon{t: t, dir: dir, conf: conf, logFile: filepath.Join(ex, "daemon.log"), svcLog: filepath.Join(ex, "services.log"),
		stderr: &syncBuf{}, exited: make(chan struct{})}
	argv := append(append([]string{}, prefix...), gxinetd, "-f", conf, "-dontfork", "-stayalive", "-filelog", "/dev/stderr")
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	// The CTF example needs namespaces: an unprivileged gxinetd makes them
	// in a user namespace, which some hosts refuse. There make run reports
	// the entry (E-SANDBOX-HOST) and serves every other example.
	n := d.waitLog(`Started working: (\d+) available services`, 15*time.Second)[1]
	ctf := true
	if prefix != nil && n == "17" && strings.Contains(d.daemonLog(), "error E-SANDBOX-HOST: service ctf: ") {
		t.Logf("this host gives an unprivileged gxinetd no user namespace: the ctf example is reported, the rest serve:\n%s", d.daemonLog())
		ctf = false
	} else if n != "18" {
		t.Fatalf("%s services started, want 18:\n%s", n, d.daemonLog())
	}
	if got, err := tcpExchange(t, at(10013), "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
		t.Errorf("example daytime: %q %v\n%s", got, err, d.daemonLog())
	}
	if got, err := tcpExchange(t, at(10007), "example\n", 5*time.Second); err != nil || got != "example\n" {
		t.Errorf("example echo: %q %v", got, err)
	}
	if got, err := tcpExchange(t, at(10102), "via proxy\n", 5*time.Second); err != nil || got != "via proxy\n" {
		t.Errorf("example redirect: %q %v", got, err)
	}
	if got, err := tcpExchange(t, at(10001), "help\r\n", 5*time.Second); err != nil || !strings.Contains(strings.ToLower(got), "uptime") {
		t.Errorf("example tcpmux help: %q %v", got, err)
	}
	if got, err := tcpExchange(t, at(10100), "", 5*time.Second); err != nil || !strings.HasPrefix(got, "Welcome to the gxinetd example.\r\n") || !strings.Contains(got, "hello from gxinetd") {
		t.Errorf("example external server: %q %v\n%s", got, err, d.daemonLog())
	}
	d.waitSvcLog(`START: hello pid=\d+ from=127\.0\.0\.1`, 5*time.Second)
	want := 1 // the ctf example's E-SANDBOX-HOST
	if ctf {
		playCTF(t, at(10137))
		want = 0
	}
	if strings.Count(d.daemonLog(), "ERROR") != want {
		t.Errorf("errors while serving the examples:\n%s", d.daemonLog())
	}
}

// playCTF talks to the CTF example: the flag for the right word, and what
// the challenge sees of its sandbox (docs/sandbox.md).
func playCTF(t *testing.T, addr string) {
	t.Helper()
	if got, err := tcpExchange(t, addr, "please\n", 10*time.Second); err != nil || !strings.Contains(got, "gxctf{every_connection_gets_its_own_jail}") {
		t.Errorf("example ctf: %q %v", got, err)
	}
	got, err := tcpExchange(t, addr, "sandbox\n", 10*time.Second)
	for _, want := range []string{"pid: 2\n", "root: chal flag.txt proc tmp\n", "NoNewPrivs: 1\n", "Seccomp: 2\n",
		"overwrite the flag: open /flag.txt: read-only file system\n", "/tmp: writable"} {
		if err != nil || !strings.Contains(got, want) {
			t.Errorf("example ctf, its view: want %q in %q (%v)", want, got, err)
		}
	}
}
