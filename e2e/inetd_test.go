package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startInetd runs gxinetd on an inetd.conf alone.
func startInetd(t *testing.T, dir, conf string, args ...string) *daemon {
	t.Helper()
	path := filepath.Join(dir, "inetd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, dir: dir, conf: path, logFile: filepath.Join(dir, "daemon.log"),
		svcLog: filepath.Join(dir, "services.log"), stderr: &syncBuf{}, exited: make(chan struct{})}
	full := append([]string{"-inetd", path, "-dontfork", "-filelog", d.logFile}, args...)
	d.cmd = exec.Command(gxinetd, full...)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	d.waitLog(`Started working`, 15*time.Second)
	return d
}

func TestInetdConfServes(t *testing.T) {
	ports := freePorts(t, 3)
	dir := newDir(t)
	user := currentUser(t)
	conf := fmt.Sprintf(`# OpenBSD-style address prefixes, numeric ports.
127.0.0.1:%d	stream	tcp	nowait	%s	/bin/echo	echo hello from inetd
127.0.0.1:%d	stream	tcp	nowait.2	%s	/bin/sleep	sleep 30
127.0.0.1:%d	dgram	udp	wait	%s	/bin/cat	cat
`, ports[0], user, ports[1], user, ports[2], user)
	d := startInetd(t, dir, conf, "-dialect", "openbsd", "-grace", "1s")
	got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second)
	if err != nil || got != "hello from inetd\n" {
		t.Fatalf("inetd.conf nowait server = %q, %v\n%s", got, err, d.daemonLog())
	}
	// nowait.2: at most 2 invocations per minute; the third is refused.
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]))
		if err == nil {
			held = append(held, c)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range held {
		c.Close()
	}
	d.waitLog(`server failing \(looping\)`, 5*time.Second)
	// The udp wait service gets the socket; /bin/cat echoes the datagram to itself (stdout is the socket).
	d.signal(syscall.SIGHUP)
	d.waitLog(`Reconfigured`, 10*time.Second)
}

func TestCheckModeReadsInetdAndSaysSo(t *testing.T) {
	dir := newDir(t)
	path := filepath.Join(dir, "inetd.conf")
	os.WriteFile(path, []byte("127.0.0.1:10999\tstream\ttcp\tnowait\troot\t/bin/cat\tcat\n"), 0o644)
	out, err := exec.Command(gxinetd, "-t", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("-t -f inetd.conf: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "read as inetd.conf") {
		t.Errorf("check mode must say it read the file as inetd.conf:\n%s", out)
	}
}

// TestXconvRoundTrip: inetd.conf -> xconv -> xinetd.conf -> the same
// listeners and argv, served for real.
func TestXconvRoundTrip(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	user := currentUser(t)
	inetdConf := fmt.Sprintf("# hello service\n127.0.0.1:%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo converted\n", ports[0], user)
	in := filepath.Join(dir, "inetd.conf")
	os.WriteFile(in, []byte(inetdConf), 0o644)
	out, err := exec.Command(xconv, in).Output()
	if err != nil {
		t.Fatalf("xconv: %v\n%s", err, out)
	}
	conf := filepath.Join(dir, "xinetd.conf")
	os.WriteFile(conf, out, 0o644)
	chk, err := exec.Command(gxinetd, "-t", "-f", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("gxinetd -t rejects xconv output: %v\n%s\n%s", err, chk, out)
	}
	start(t, dir, conf)
	got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second)
	if err != nil || got != "converted\n" {
		t.Fatalf("converted service = %q, %v\n%s", got, err, out)
	}
}
