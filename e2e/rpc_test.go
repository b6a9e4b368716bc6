package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

// TestRPCServicesRegisterWithRpcbind: RPC services listen on ports the
// kernel picks and are found through rpcbind, as with xinetd's pmap_set.
// Every version of the range is registered on every socket (a dual-stack
// socket under both netids), a reload moves the registrations with the
// configuration while the socket and its port stay, and exit withdraws
// them.
func TestRPCServicesRegisterWithRpcbind(t *testing.T) {
	needCmd(t, "rpcinfo")
	startRpcbind(t)
	dir := newDir(t)
	rpcSvc := func(name string, prog int, vers, sockType, proto, wait, bind, server, args string) string {
		return fmt.Sprintf(`
service %s
{
	type        = RPC UNLISTED
	rpc_number  = %d
	rpc_version = %s
	socket_type = %s
	protocol    = %s
	wait        = %s
	user        = root
	server      = %s
	server_args = %s
	%s
}
`, name, prog, vers, sockType, proto, wait, server, args, bind)
	}
	tcpSvc := func(vers string) string {
		return rpcSvc("rpctcp", 399872, vers, "stream", "tcp", "no", "bind = 127.0.0.1", "/bin/echo", "rpc served")
	}
	udpSvc := rpcSvc("rpcudp", 399873, "1", "dgram", "udp", "yes", "flags = IPv6", "/bin/cat", "-u")
	d := start(t, dir, render(t, dir, baseDefaults+tcpSvc("1-2")+udpSvc, nil))
	t.Cleanup(func() { unsetProgs(399872, 399873) })

	maps := waitMappings(t, func(m string) bool {
		return strings.Count(m, "399872 ") == 2 && strings.Count(m, "399873 ") == 2
	})
	tcpPort := portOf(t, maps, "399872", "1", "tcp")
	if p := portOf(t, maps, "399872", "2", "tcp"); p != tcpPort {
		t.Fatalf("versions 1 and 2 on ports %d and %d:\n%s", tcpPort, p, maps)
	}
	// The address rpcbind gives out reaches the server.
	out, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", tcpPort), "", 5*time.Second)
	if err != nil || out != "rpc served\n" {
		t.Fatalf("server at the registered port answered %q, %v\n%s", out, err, d.daemonLog())
	}
	// The dual-stack UDP socket is registered for IPv6 and IPv4 clients.
	udpPort := portOf(t, maps, "399873", "1", "udp6")
	if p := portOf(t, maps, "399873", "1", "udp"); p != udpPort {
		t.Fatalf("udp6 port %d, udp port %d:\n%s", udpPort, p, maps)
	}
	if !strings.Contains(maps, fmt.Sprintf("udp6 ::.%d.%d", udpPort>>8, udpPort&255)) ||
		!strings.Contains(maps, fmt.Sprintf("udp 0.0.0.0.%d.%d", udpPort>>8, udpPort&255)) {
		t.Errorf("UDP universal addresses are not the wildcards:\n%s", maps)
	}

	// Reload: versions 2-3 for the TCP service, the UDP service gone.
	render(t, dir, baseDefaults+tcpSvc("2-3"), nil)
	d.signal(syscall.SIGHUP)
	maps = waitMappings(t, func(m string) bool {
		return !strings.Contains(m, "399873 ") && strings.Contains(m, "399872 3 tcp")
	})
	if strings.Contains(maps, "399872 1 ") {
		t.Errorf("version 1 still registered after the reload:\n%s", maps)
	}
	if p := portOf(t, maps, "399872", "3", "tcp"); p != tcpPort {
		t.Errorf("after the reload version 3 is on port %d; the kept socket is on %d", p, tcpPort)
	}

	d.signal(syscall.SIGTERM)
	if code := d.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if m := mappings(t); strings.Contains(m, "399872 ") {
		t.Errorf("registrations left after exit:\n%s", m)
	}
}

// TestRPCWithoutRpcbind: with no rpcbind answering, the RPC service still
// listens and the log says, once, what could not be registered.
func TestRPCWithoutRpcbind(t *testing.T) {
	// No other test process may start the host's rpcbind meanwhile.
	testnet.Lock(t, "rpcbind")
	if c, err := net.Dial("unix", "/run/rpcbind.sock"); err == nil {
		c.Close()
		t.Skip("an rpcbind is running on this machine")
	}
	if c, err := net.Dial("udp", "127.0.0.1:111"); err == nil {
		// UDP "connects" always; only a reply would tell. Skip when
		// something is bound there at all.
		c.Close()
		if out, _ := exec.Command("ss", "-Hlun", "sport = :111").Output(); len(strings.TrimSpace(string(out))) > 0 {
			t.Skip("something listens on udp port 111")
		}
	}
	dir := newDir(t)
	conf := baseDefaults + `
service lonely
{
	type        = RPC UNLISTED
	rpc_number  = 399874
	rpc_version = 1-3
	socket_type = stream
	protocol    = tcp
	wait        = no
	user        = root
	server      = /bin/echo
	server_args = still served
	bind        = 127.0.0.1
}
`
	d := start(t, dir, render(t, dir, conf, nil))
	d.waitLog(`ERROR: pmap_set failed: .*no rpcbind or portmapper answering.*; 3 mappings not registered with rpcbind, retrying every 10s`, 5*time.Second)
	re := regexp.MustCompile(`127\.0\.0\.1:(\d+)\s`)
	out, _ := exec.Command("ss", "-Hltnp").Output()
	var port string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, fmt.Sprintf("pid=%d,", d.pid())) {
			if m := re.FindStringSubmatch(l); m != nil {
				port = m[1]
			}
		}
	}
	if port == "" {
		t.Fatalf("no listening socket of pid %d in ss:\n%s", d.pid(), out)
	}
	if got, err := tcpExchange(t, "127.0.0.1:"+port, "", 5*time.Second); err != nil || got != "still served\n" {
		t.Fatalf("unregistered RPC service answered %q, %v", got, err)
	}
	if n := strings.Count(d.daemonLog(), "pmap_set failed"); n != 1 {
		t.Errorf("%d pmap_set lines, want 1:\n%s", n, d.daemonLog())
	}
}

var mappingLine = regexp.MustCompile(`^\s*(\d+)\s+(\d+)\s+(\S+)\s+(\S+)`)

// mappings is `rpcinfo` (rpcbind version 4 dump: program, version, netid,
// universal address), one mapping per line with single spaces.
func mappings(t *testing.T) string {
	t.Helper()
	b, err := exec.Command("rpcinfo").CombinedOutput()
	if err != nil {
		t.Fatalf("rpcinfo: %v\n%s", err, b)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if m := mappingLine.FindStringSubmatch(l); m != nil {
			out = append(out, strings.Join(m[1:], " "))
		}
	}
	return strings.Join(out, "\n") + "\n"
}

func waitMappings(t *testing.T, ok func(string) bool) string {
	t.Helper()
	var m string
	for deadline := waitBound(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m = mappings(t); ok(m) {
			return m
		}
	}
	t.Fatalf("rpcbind's mappings never became what was expected:\n%s", m)
	return ""
}

// portOf finds the port of one mapping from its universal address.
func portOf(t *testing.T, maps, prog, vers, netid string) int {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + prog + ` ` + vers + ` ` + netid + ` \S*\.(\d+)\.(\d+)$`)
	m := re.FindStringSubmatch(maps)
	if m == nil {
		t.Fatalf("no mapping %s %s %s in:\n%s", prog, vers, netid, maps)
	}
	var hi, lo int
	fmt.Sscan(m[1], &hi)
	fmt.Sscan(m[2], &lo)
	return hi<<8 | lo
}

func unsetProgs(progs ...int) {
	for _, p := range progs {
		for v := 1; v <= 3; v++ {
			exec.Command("rpcinfo", "-d", fmt.Sprint(p), fmt.Sprint(v)).Run()
		}
	}
}

// startRpcbind makes sure an rpcbind answers: the machine's, or one
// started for the test (root only) and ended by PID.
func startRpcbind(t *testing.T) {
	t.Helper()
	// There is one rpcbind per host, and these tests register fixed
	// program numbers in it and may start and stop it: one test process
	// on the host at a time (another make test may run beside this one).
	testnet.Lock(t, "rpcbind")
	if c, err := net.Dial("unix", "/run/rpcbind.sock"); err == nil {
		c.Close()
		return
	}
	needRoot(t)
	needCmd(t, "rpcbind")
	bin, _ := exec.LookPath("rpcbind")
	cmd := exec.Command(bin, "-f")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rpcbind: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		os.Remove("/run/rpcbind.sock")
	})
	for deadline := waitBound(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", "/run/rpcbind.sock"); err == nil {
			c.Close()
			return
		}
	}
	t.Fatal("rpcbind did not open /run/rpcbind.sock within 5 s")
}
