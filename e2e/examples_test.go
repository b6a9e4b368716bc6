package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExamplesCheckClean: every configuration under examples/ passes the
// check mode with no warnings about the files themselves.
func TestExamplesCheckClean(t *testing.T) {
	for _, args := range [][]string{{"-f", "../examples/xinetd.conf"}, {"-inetd", "../examples/inetd.conf"}} {
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

// TestMakeRunExamplesServe starts the daemon the way `make run` does and
// talks to a few of the example services.
func TestMakeRunExamplesServe(t *testing.T) {
	if os.Getenv("GXINETD_SKIP_EXAMPLES") != "" {
		t.Skip("GXINETD_SKIP_EXAMPLES set")
	}
	dir := newDir(t)
	conf, _ := filepath.Abs("../examples/xinetd.conf")
	d := &daemon{t: t, dir: dir, conf: conf, logFile: filepath.Join(dir, "daemon.log"), stderr: &syncBuf{}, exited: make(chan struct{})}
	d.cmd = exec.Command(gxinetd, "-f", conf, "-dontfork", "-stayalive", "-filelog", d.logFile)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	d.waitLog(`Started working`, 15*time.Second)
	if got, err := tcpExchange(t, "127.0.0.1:10013", "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
		t.Errorf("example daytime: %q %v\n%s", got, err, d.daemonLog())
	}
	if got, err := tcpExchange(t, "127.0.0.1:10007", "example\n", 5*time.Second); err != nil || got != "example\n" {
		t.Errorf("example echo: %q %v", got, err)
	}
	if got, err := tcpExchange(t, "127.0.0.1:10102", "via proxy\n", 5*time.Second); err != nil || got != "via proxy\n" {
		t.Errorf("example redirect: %q %v", got, err)
	}
	if got, err := tcpExchange(t, "127.0.0.1:10001", "help\r\n", 5*time.Second); err != nil || !strings.Contains(strings.ToLower(got), "uptime") {
		t.Errorf("example tcpmux help: %q %v", got, err)
	}
	if got, err := tcpExchange(t, "127.0.0.1:10100", "", 5*time.Second); err != nil || !strings.Contains(got, "hello from gxinetd") {
		t.Errorf("example external server: %q %v\n%s", got, err, d.daemonLog())
	}
}
