package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// daytimeConf is an in-process daytime service with the given id and port.
func daytimeConf(id, port string) string { return daytimeSvc(id, port, "") }

// TestReloadUnderLoadDropsNothing: SIGHUP while clients hammer services
// whose sockets do not change: not one connection refused or reset.
func TestReloadUnderLoadDropsNothing(t *testing.T) {
	ports := freePorts(t, 3)
	dir := newDir(t)
	confA := baseDefaults + daytimeConf("dt1", "{{P0}}") + daytimeConf("dt2", "{{P1}}")
	confB := baseDefaults + daytimeConf("dt1", "{{P0}}") + daytimeConf("dt2", "{{P1}}") + daytimeConf("dt3", "{{P2}}")
	path := render(t, dir, confA, ports)
	d := start(t, dir, path)
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			addr := fmt.Sprintf("127.0.0.1:%d", ports[w%2])
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				got, err := tcpExchange(t, addr, "", 5*time.Second)
				if err != nil || !dayTimeRE.MatchString(got) {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%v %q", err, got))
					continue
				}
				ok.Add(1)
			}
		}(w)
	}
	// Each reload happens while the load runs: a few connections are
	// made before it, however slow the machine (never a fixed sleep).
	loadGoesOn := func() {
		t.Helper()
		from := ok.Load() + failed.Load()
		for deadline := waitBound(20 * time.Second); ok.Load()+failed.Load() < from+20; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the client load stalled at %d connections", ok.Load()+failed.Load())
			}
		}
	}
	for i := 0; i < 6; i++ {
		loadGoesOn()
		conf := confA
		if i%2 == 0 {
			conf = confB
		}
		render(t, dir, conf, ports)
		d.signal(syscall.SIGHUP)
		d.waitLog(fmt.Sprintf(`(?s)(Reconfigured: new=\d+ old=\d+ dropped=\d+.*){%d}`, i+1), 10*time.Second)
	}
	loadGoesOn()
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d connections failed during reloads; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d connections made: the load did not run", ok.Load())
	}
}

// TestReloadWithErrorsKeepsServing: a fatal error (here in defaults)
// keeps the whole old configuration; entry errors are applied per entry
// (TestReloadKeepsPreviousDefinitionOfRejectedEntry).
func TestReloadWithErrorsKeepsServing(t *testing.T) {
	ports := freePorts(t, 2)
	dir := newDir(t)
	path := render(t, dir, baseDefaults+daytimeConf("dt1", "{{P0}}"), ports)
	d := start(t, dir, path)
	render(t, dir, strings.Replace(baseDefaults, "instances       = UNLIMITED", "instances       = lots", 1)+daytimeConf("dt1", "{{P1}}"), ports)
	d.signal(syscall.SIGHUP)
	d.waitLog(`reconfiguration failed`, 10*time.Second)
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("old configuration must still serve: %q %v", got, err)
	}
	if _, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", time.Second); err == nil {
		t.Fatalf("the rejected configuration's port must not be served")
	}
}

func TestReloadMovesPortAndTerminatesRemovedServers(t *testing.T) {
	ports := freePorts(t, 3)
	dir := newDir(t)
	sleeper := `
service sleeper
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P2}}
	wait        = no
	user        = ` + currentUser(t) + `
	server      = /bin/sleep
	server_args = 60
}
`
	path := render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}")+sleeper, ports)
	d := start(t, dir, path, "-grace", "1s")
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[2]))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := d.waitSvcLog(`START: sleeper pid=(\d+)`, 5*time.Second)
	render(t, dir, baseDefaults+daytimeConf("dt", "{{P1}}"), ports)
	d.signal(syscall.SIGHUP)
	d.waitLog(`Reconfigured: new=1 old=0 dropped=2`, 10*time.Second)
	// The removed service's server ends with its real status (SIGTERM).
	d.waitSvcLog(`EXIT: sleeper signal=15 pid=`+m[1], 10*time.Second)
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("moved service must serve on its new port: %q %v", got, err)
	}
	if _, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", time.Second); err == nil {
		t.Fatalf("old port must be closed")
	}
}

func TestSignalsAndPidfile(t *testing.T) {
	ports := freePorts(t, 1)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := newDir(t)
			d := start(t, dir, render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports))
			pidfile := filepath.Join(dir, "gxinetd.pid")
			if got := strings.TrimSpace(readFile(pidfile)); got != strconv.Itoa(d.pid()) {
				t.Fatalf("pidfile says %q, daemon is %d", got, d.pid())
			}
			d.signal(sig)
			if code := d.waitExit(10 * time.Second); code != 0 {
				t.Fatalf("exit status %d after %v", code, sig)
			}
			if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
				t.Fatalf("pidfile left behind after %v", sig)
			}
			if !strings.Contains(d.daemonLog(), "Exiting...") {
				t.Errorf("no Exiting... message:\n%s", d.daemonLog())
			}
		})
	}
}

func TestSIGTERMKillServersOption(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := baseDefaults + `
service sleeper
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	user        = ` + currentUser(t) + `
	server      = /bin/sleep
	server_args = 60
}
`
	d := start(t, dir, render(t, dir, conf, ports), "-killservers", "-grace", "1s")
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := d.waitSvcLog(`START: sleeper pid=(\d+)`, 5*time.Second)
	pid, _ := strconv.Atoi(m[1])
	d.signal(syscall.SIGTERM)
	d.waitExit(15 * time.Second)
	if err := syscall.Kill(pid, 0); err == nil {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("server %d survived SIGTERM with -killservers", pid)
	}
}

func TestDaemonModeDetachesAndRefusesSecondStart(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	path := render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports)
	pidfile := filepath.Join(dir, "gxinetd.pid")
	cmd := exec.Command(gxinetd, "-f", path, "-pidfile", pidfile, "-filelog", filepath.Join(dir, "daemon.log"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("daemon start: %v %s", err, out)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(pidfile)))
	if err != nil {
		t.Fatalf("pidfile: %v", err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	if pid == cmd.Process.Pid {
		t.Fatalf("daemon did not detach")
	}
	sid, _ := unix.Getsid(pid)
	if sid != pid {
		t.Errorf("detached daemon is not a session leader (sid %d)", sid)
	}
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("detached daemon does not serve: %q %v", got, err)
	}
	second := exec.Command(gxinetd, "-f", path, "-pidfile", pidfile, "-dontfork", "-filelog", filepath.Join(dir, "daemon2.log"))
	if err := second.Run(); err == nil {
		t.Fatalf("a second gxinetd with the same pidfile started")
	}
	if !strings.Contains(readFile(filepath.Join(dir, "daemon2.log"))+fmt.Sprint(second.ProcessState), "running gxinetd") &&
		!strings.Contains(readFile(filepath.Join(dir, "daemon2.log")), "pidfile") {
		t.Errorf("second start gave no reason: %s", readFile(filepath.Join(dir, "daemon2.log")))
	}
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := waitBound(10 * time.Second)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSocketActivationAndNotify(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	path := render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports)
	// The harness plays systemd: it binds the socket and passes it as fd 3.
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	lf, _ := ln.(*net.TCPListener).File()
	ln.Close()
	notify := filepath.Join(dir, "notify.sock")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// The daemon must see LISTEN_PID equal to its own pid: exec through sh.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`, gxinetd, "-f", path, "-dontfork",
		"-filelog", filepath.Join(dir, "daemon.log"), "-pidfile", filepath.Join(dir, "p.pid"))
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	buf := make([]byte, 512)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := nc.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
		t.Fatalf("no READY=1 from sd_notify: %q %v", buf[:n], err)
	}
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("activated socket not served: %q %v", got, err)
	}
	if strings.Contains(readFile(filepath.Join(dir, "daemon.log")), "bind failed") {
		t.Fatalf("daemon bound instead of using the passed socket:\n%s", readFile(filepath.Join(dir, "daemon.log")))
	}
	cmd.Process.Signal(syscall.SIGHUP)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ = nc.Read(buf)
	if !strings.Contains(string(buf[:n]), "RELOADING=1") {
		t.Errorf("no RELOADING=1 on SIGHUP: %q", buf[:n])
	}
	cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err = nc.Read(buf)
		if err != nil || strings.Contains(string(buf[:n]), "STOPPING=1") {
			break
		}
	}
	if !strings.Contains(string(buf[:n]), "STOPPING=1") {
		t.Errorf("no STOPPING=1 on SIGTERM")
	}
}

func TestDescriptorExhaustionRecovers(t *testing.T) {
	needCmd(t, "prlimit")
	ports := freePorts(t, 2)
	dir := newDir(t)
	// discard holds the daemon's descriptors (Go's accept path); daytime
	// is served by the raw accept path and its shared epoll set, which must
	// come back by itself too.
	conf := baseDefaults + `
service discard
{
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
}
` + daytimeConf("dt", "{{P1}}")
	path := render(t, dir, conf, ports)
	logf := filepath.Join(dir, "daemon.log")
	cmd := exec.Command("prlimit", "--nofile=40:40", gxinetd, "-f", path, "-dontfork", "-filelog", logf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitIn(t, func() string { return readFile(logf) }, "Started working", 10*time.Second)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	// Sessions alone no longer run the daemon out of descriptors (the
	// reserve refuses them first): fill up to the reserve, then take the
	// limit down below what the daemon has open, as an administrator's
	// prlimit would, so that the next accept fails. Below every
	// descriptor it has, not to the number it has: a refused session's
	// descriptor, counted and then closed, or any other gap below that
	// number leaves accept a free descriptor under the limit, and the
	// reserve then refuses session after session without accept ever
	// failing.
	var held []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break
		}
		held = append(held, c)
	}
	waitIn(t, func() string { return readFile(logf) }, "descriptor reserve reached", 10*time.Second)
	pid := cmd.Process.Pid
	if out, err := exec.Command("prlimit", "--pid", fmt.Sprint(pid), "--nofile=3:40").CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v\n%s", err, out)
	}
	for i := 0; i < 5; i++ {
		if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			held = append(held, c)
		}
	}
	waitIn(t, func() string { return readFile(logf) }, "no available descriptors", 10*time.Second)
	// A daytime client while descriptors are out: the raw path fails to
	// accept and must take its listener out of the epoll set, not spin.
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]), time.Second); err == nil {
		held = append(held, c)
	}
	time.Sleep(200 * time.Millisecond)
	for _, c := range held {
		c.Close()
	}
	if out, err := exec.Command("prlimit", "--pid", fmt.Sprint(pid), "--nofile=40:40").CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v\n%s", err, out)
	}
	dtDeadline := waitBound(10 * time.Second)
	for {
		got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", time.Second)
		if err == nil && dayTimeRE.MatchString(got) {
			break
		}
		if time.Now().After(dtDeadline) {
			t.Fatalf("the raw accept path did not recover after descriptors were freed:\n%s", readFile(logf))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Once descriptors are free again new clients are served.
	deadline := waitBound(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write([]byte("x"))
			c.(*net.TCPConn).CloseWrite()
			buf := make([]byte, 1)
			_, rerr := c.Read(buf)
			c.Close()
			if rerr != nil && !os.IsTimeout(rerr) {
				break // EOF from discard: served
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not recover after descriptors were freed:\n%s", readFile(logf))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// It backed off rather than spinning: the message is said once per episode.
	if n := strings.Count(readFile(logf), "no available descriptors"); n > 3 {
		t.Errorf("descriptor exhaustion logged %d times", n)
	}
}

func TestStateDumpAndDumpFlag(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	d := start(t, dir, render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports))
	tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second)
	out, err := exec.Command(gxinetd, "-dump", "-pidfile", filepath.Join(dir, "gxinetd.pid"),
		"-dumpfile", filepath.Join(dir, "xinetd.dump")).CombinedOutput()
	if err != nil {
		t.Fatalf("-dump: %v\n%s", err, out)
	}
	dump := string(out)
	for _, want := range []string{"INTERNAL STATE DUMP", "Service = dt", "State = Active", "END OF DUMP"} {
		if !strings.Contains(dump, want) {
			t.Errorf("dump lacks %q:\n%s", want, dump)
		}
	}
	d.waitLog(`generated state dump in file `+regexpQuote(filepath.Join(dir, "xinetd.dump")), 5*time.Second)
	d.signal(syscall.SIGABRT)
	d.waitLog(`Consistency check passed`, 5*time.Second)
}

func regexpQuote(s string) string { return strings.NewReplacer(".", `\.`, "/", `/`).Replace(s) }

func TestCheckMode(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	good := render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}"), ports)
	out, err := exec.Command(gxinetd, "-t", "-f", good).CombinedOutput()
	if err != nil {
		t.Fatalf("-t on a good configuration: %v\n%s", err, out)
	}
	out, err = exec.Command(gxinetd, "-t", "-json", "-f", good).Output()
	if err != nil {
		t.Fatalf("-t -json: %v", err)
	}
	var cfg struct {
		Services []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Port   int    `json:"port"`
		} `json:"services"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil || len(cfg.Services) != 1 || cfg.Services[0].Status != "accepted" || cfg.Services[0].Port != ports[0] {
		t.Fatalf("-t -json = %+v, %v\n%s", cfg, err, out)
	}
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("service x\n{\n\twait = maybe\n\tsocket_type = stream\n}\n"), 0o644)
	cmd := exec.Command(gxinetd, "-t", "-f", bad)
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), bad+":3:") {
		t.Fatalf("-t on a bad configuration: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
}

func TestUnknownFlagIsAnError(t *testing.T) {
	cmd := exec.Command(gxinetd, "-bogus")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "bogus") {
		t.Fatalf("unknown flag accepted: %s", out)
	}
}
