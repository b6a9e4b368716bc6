package e2e

// Interface binds that follow the interface's addresses (GitHub issue 4).
// The interface lives in a network namespace of its own, created and
// deleted by the test, so nothing outside this machine (or outside the
// namespace) is touched.

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsSetup creates a namespace with lo up and an interface gxt0 holding
// addr (a /32 that exists only inside the namespace); it skips the test
// when the sandbox does not allow it.
func netnsSetup(t *testing.T, addr string) string {
	t.Helper()
	needRoot(t)
	needCmd(t, "ip")
	ns := fmt.Sprintf("gxt%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here (%v: %s); interface following is not tested", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	in := func(args ...string) error {
		out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := in("link", "set", "lo", "up"); err != nil {
		t.Skip(err)
	}
	// A dummy interface when the kernel has the module, else a veth pair
	// whose both ends stay in the namespace.
	if in("link", "add", "gxt0", "type", "dummy") != nil {
		if err := in("link", "add", "gxt0", "type", "veth", "peer", "name", "gxt1"); err != nil {
			t.Skipf("cannot create an interface in the namespace: %v", err)
		}
		in("link", "set", "gxt1", "addrgenmode", "none")
		in("link", "set", "gxt1", "up")
	}
	// No link-local IPv6 address: the test follows the IPv4 addresses.
	in("link", "set", "gxt0", "addrgenmode", "none")
	for _, args := range [][]string{{"link", "set", "gxt0", "up"}, {"addr", "add", addr + "/32", "dev", "gxt0"}} {
		if err := in(args...); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

// ipNS runs ip inside the namespace.
func ipNS(t *testing.T, ns string, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// dialInNS connects from inside the namespace: the socket is created on
// a thread that joined it. That thread stays locked and ends with its
// goroutine, so no other goroutine ever runs in the namespace.
func dialInNS(ns, addr string, timeout time.Duration) (net.Conn, error) {
	return dialInNSFrom(ns, "tcp", "", addr, timeout)
}

// dialInNSFrom is dialInNS for any network, from a chosen local address
// ("" lets the kernel choose).
// enterNS moves the calling goroutine's thread into the named network
// namespace; restore moves it back and unlocks it. Without the way back, a
// thread left in the namespace can be the main thread, which the runtime
// cannot end: /proc/self/net would then show the test namespace to every
// later test.
func enterNS(ns string) (restore func(), err error) {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	f, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		return nil, err
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns: %w", err)
	}
	return func() {
		// If the way back fails the thread stays locked and is ended
		// with its goroutine.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		orig.Close()
	}, nil
}

func dialInNSFrom(ns, network, local, addr string, timeout time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		restore, err := enterNS(ns)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer restore()
		dl := net.Dialer{Timeout: timeout}
		if local != "" {
			var err error
			if strings.HasPrefix(network, "udp") {
				dl.LocalAddr, err = net.ResolveUDPAddr(network, local)
			} else {
				dl.LocalAddr, err = net.ResolveTCPAddr(network, local)
			}
			if err != nil {
				ch <- result{nil, err}
				return
			}
		}
		c, err := dl.Dial(network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func daytimeInNS(ns, addr string) (string, error) {
	c, err := dialInNS(ns, addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// startInNS runs gxinetd inside the namespace (ip netns exec execs it,
// so the process is gxinetd itself) and waits until it serves.
func startInNS(t *testing.T, ns, dir, confPath string) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: dir, conf: confPath, logFile: filepath.Join(dir, "daemon.log"),
		svcLog: filepath.Join(dir, "services.log"), stderr: &syncBuf{}, exited: make(chan struct{})}
	d.cmd = exec.Command("ip", "netns", "exec", ns, gxinetd, "-f", confPath, "-dontfork", "-filelog", d.logFile,
		"-pidfile", filepath.Join(dir, "gxinetd.pid"), "-dumpfile", filepath.Join(dir, "xinetd.dump"))
	d.cmd.Stderr, d.cmd.Stdout = d.stderr, d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	d.waitLog(`Started working`, 15*time.Second)
	return d
}

func TestInterfaceBindFollowsAddresses(t *testing.T) {
	ns := netnsSetup(t, "10.213.0.1")
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := baseDefaults + daytimeSvc("ifdt", "{{P0}}", "\tbind = gxt0")
	d := startInNS(t, ns, dir, render(t, dir, conf, ports))
	first := fmt.Sprintf("10.213.0.1:%d", ports[0])
	second := fmt.Sprintf("10.213.0.2:%d", ports[0])
	if got, err := daytimeInNS(ns, first); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("bind = gxt0 must serve on its address: %q, %v\n%s", got, err, d.daemonLog())
	}
	// Only the interface's addresses: not loopback.
	if _, err := daytimeInNS(ns, fmt.Sprintf("127.0.0.1:%d", ports[0])); err == nil {
		t.Fatalf("bind = gxt0 must not listen on 127.0.0.1 of the namespace")
	}

	ipNS(t, ns, "addr", "add", "10.213.0.2/32", "dev", "gxt0")
	d.waitLog(`service ifdt: interface gxt0 now has 10\.213\.0\.1 10\.213\.0\.2; listening on`, 10*time.Second)
	if got, err := daytimeInNS(ns, second); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("new address must be served: %q, %v", got, err)
	}

	ipNS(t, ns, "addr", "del", "10.213.0.2/32", "dev", "gxt0")
	d.waitLog(`service ifdt: address tcp/10\.213\.0\.2:\d+ left interface gxt0`, 10*time.Second)
	if got, err := daytimeInNS(ns, first); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("the remaining address must still be served: %q, %v", got, err)
	}

	// Every address gone: the service waits, and comes back with one.
	ipNS(t, ns, "addr", "del", "10.213.0.1/32", "dev", "gxt0")
	d.waitLog(`address tcp/10\.213\.0\.1:\d+ left interface gxt0`, 10*time.Second)
	ipNS(t, ns, "addr", "add", "10.213.0.3/32", "dev", "gxt0")
	d.waitLog(`interface gxt0 now has 10\.213\.0\.3;`, 10*time.Second)
	if got, err := daytimeInNS(ns, fmt.Sprintf("10.213.0.3:%d", ports[0])); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("an address added after all were gone must be served: %q, %v", got, err)
	}
	// An IPv6 address (tentative until duplicate address detection ends)
	// is listened on once usable, without a storm of bind errors.
	ipNS(t, ns, "addr", "add", "fd00:213::1/128", "dev", "gxt0")
	d.waitLog(`interface gxt0 now has 10\.213\.0\.3 fd00:213::1;`, 10*time.Second)
	if got, err := daytimeInNS(ns, fmt.Sprintf("[fd00:213::1]:%d", ports[0])); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("an IPv6 address of the interface must be served: %q, %v", got, err)
	}
	if strings.Contains(d.daemonLog(), "Cannot assign requested address") {
		t.Errorf("a tentative IPv6 address must be waited for, not bound and reported:\n%s", d.daemonLog())
	}

	// An address whose port another program holds: reported, not retried
	// into a flood of messages, and the other addresses keep serving.
	squat := make(chan net.Listener, 1)
	go func() {
		ipNS(t, ns, "addr", "add", "10.213.0.4/32", "dev", "gxt0")
		restore, err := enterNS(ns)
		if err != nil {
			squat <- nil
			return
		}
		defer restore()
		l, _ := net.Listen("tcp", fmt.Sprintf("10.213.0.4:%d", ports[0]))
		squat <- l
	}()
	l := <-squat
	if l == nil {
		t.Fatal("could not hold a port inside the namespace")
	}
	defer l.Close()
	bindErr := `ERROR: bind failed \(Address already in use \(errno = 98\)\)\. service = ifdt`
	d.waitLog(bindErr, 10*time.Second)
	// The poller looks every 2 s, the bind retry every 5 s: within 3 s
	// (the poller has looked again; the retry is more than a second
	// away even if this test saw the message late) nothing may say it
	// again.
	time.Sleep(3 * time.Second)
	if n := countIn(d.daemonLog(), bindErr); n != 1 {
		t.Errorf("the same bind error was logged %d times in 3 s:\n%s", n, d.daemonLog())
	}
	if got, err := daytimeInNS(ns, fmt.Sprintf("10.213.0.3:%d", ports[0])); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("the other addresses must keep serving: %q, %v", got, err)
	}
	l.Close()
	d.waitLog(`service ifdt: now listening on .*tcp/10\.213\.0\.4:`, 10*time.Second)
	if got, err := daytimeInNS(ns, fmt.Sprintf("10.213.0.4:%d", ports[0])); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("the address must be served once its port is free: %q, %v", got, err)
	}
	dump := stateDump(t, d)
	if !strings.Contains(dump, "Service = ifdt") {
		t.Fatalf("dump lacks the service:\n%s", dump)
	}
}

// TestUDPBuiltinAnswersFromTheAddressAsked: on a host with several
// addresses, a datagram builtin listening on all of them must answer
// from the address the client sent to; a reply from another address is
// dropped by every connected client socket (and by firewalls).
func TestUDPBuiltinAnswersFromTheAddressAsked(t *testing.T) {
	ns := netnsSetup(t, "10.213.0.1")
	ipNS(t, ns, "addr", "add", "10.213.0.2/32", "dev", "gxt0")
	ipNS(t, ns, "addr", "add", "fd00:213::1/128", "dev", "gxt0", "nodad")
	ipNS(t, ns, "addr", "add", "fd00:213::2/128", "dev", "gxt0", "nodad")
	ports := freePorts(t, 2)
	dir := newDir(t)
	conf := baseDefaults + `
service echo
{
	id          = echo-dual
	type        = INTERNAL UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P0}}
	wait        = yes
}
service echo
{
	id          = echo-v4
	type        = INTERNAL UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P1}}
	wait        = yes
	flags       = IPv4
}
`
	d := startInNS(t, ns, dir, render(t, dir, conf, ports))
	for _, c := range []struct{ network, from, to string }{
		{"udp4", "10.213.0.1:0", fmt.Sprintf("10.213.0.2:%d", ports[0])},
		{"udp4", "10.213.0.1:0", fmt.Sprintf("10.213.0.2:%d", ports[1])},
		{"udp6", "[fd00:213::1]:0", fmt.Sprintf("[fd00:213::2]:%d", ports[0])},
		{"udp4", "10.213.0.2:0", fmt.Sprintf("10.213.0.1:%d", ports[0])},
	} {
		conn, err := dialInNSFrom(ns, c.network, c.from, c.to, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		msg := "from " + c.from + " to " + c.to
		conn.Write([]byte(msg))
		buf := make([]byte, 512)
		n, err := conn.Read(buf)
		conn.Close()
		if err != nil || string(buf[:n]) != msg {
			t.Errorf("%s: answer %q, %v (a reply from another source address never reaches a connected client)", msg, buf[:n], err)
		}
	}
	_ = d
}
