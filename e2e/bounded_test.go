package e2e

// Bounded work per attacker (GitHub issue 13): each test here failed on
// the code before the fix it names. The larger attack scenarios are in
// attack_test.go (make attack).

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

// loopSrc is the i-th loopback source address of block b:
// 127.b.(i>>8).(i&255), never 127.b.0.0.
func loopSrc(b, i int) [4]byte {
	i++
	return [4]byte{127, byte(b), byte(i >> 8), byte(i)}
}

// udpFlood sends one datagram to dst from each of sources first ..
// first+n-1 of block b, from port sport, as fast as the kernel takes
// them, and returns how long it took.
func udpFlood(t *testing.T, b, n, sport int, dst netip4, msg []byte, first int) time.Duration {
	t.Helper()
	begin := time.Now()
	to := &unix.SockaddrInet4{Addr: dst.addr, Port: dst.port}
	for i := first; i < first+n; i++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: loopSrc(b, i), Port: sport}); err != nil {
			unix.Close(fd)
			t.Fatalf("bind %v:%d: %v", loopSrc(b, i), sport, err)
		}
		unix.Sendto(fd, msg, 0, to)
		unix.Close(fd)
	}
	return time.Since(begin)
}

type netip4 struct {
	addr [4]byte
	port int
}

func lo(port int) netip4 { return netip4{[4]byte{127, 0, 0, 1}, port} }

var heldBackRE = regexp.MustCompile(`refusal logging: held back (\d+) messages`)

// heldBack sums the counts of every refusal-logging summary in the log.
func heldBack(log string) int {
	n := 0
	for _, m := range heldBackRE.FindAllStringSubmatch(log, -1) {
		k, _ := strconv.Atoi(m[1])
		n += k
	}
	return n
}

// TestRefusalLogsBounded: a flood of refused datagrams from thousands of
// sources writes about the global budget's worth of lines and one
// summary with the count of what was held back (before: one line per
// source, 89,709 lines for 100,000 datagrams).
func TestRefusalLogsBounded(t *testing.T) {
	needRoot(t) // privileged source ports for the reflection guard
	ports := freePorts(t, 2)
	dir := newDir(t)
	conf := baseDefaults + `
service daytime
{
	id          = guarded
	type        = INTERNAL UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P0}}
	wait        = yes
}
service daytime
{
	id          = listed
	type        = INTERNAL UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P1}}
	wait        = yes
	only_from   = 127.0.0.1
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	const n = 3000
	// The guard refuses privileged source ports; only_from refuses the
	// other block. Both kinds share the one budget.
	var el time.Duration
	sport := freePorts(t, 1)[0] // not one the kernel hands out
	begin := time.Now()
	for k := 0; k < n; k += 200 {
		// Paced a little, so that the socket buffers do not drop most
		// of it before the daemon sees it.
		el += udpFlood(t, 1, 200, 999, lo(ports[0]), []byte("x"), k)
		el += udpFlood(t, 2, 200, sport, lo(ports[1]), []byte("x"), k)
		time.Sleep(20 * time.Millisecond)
	}
	// Let the daemon finish reading what the flood left queued.
	time.Sleep(2 * time.Second)
	log := d.daemonLog()
	guardLines := strings.Count(log, "udp reflection guard: refused datagram")
	failLines := strings.Count(readFile(d.svcLog), "FAIL: listed")
	written := guardLines + failLines
	// The budget: 100 at once, then 10 a second while the flood lasts,
	// which for the daemon is until it has read the last datagram: on a
	// loaded host that can be long after the test sent it, so the
	// seconds are counted up to now (an upper bound on the daemon's).
	limit := 100 + int(time.Since(begin).Seconds()*10) + 10
	if written > limit {
		t.Errorf("the flood wrote %d refusal lines, budget about %d", written, limit)
	}
	d.waitLog(`refusal logging: held back \d+ messages`, 20*time.Second)
	log = d.daemonLog()
	t.Logf("%d refused datagrams in %v: %d guard lines, %d FAIL records, %d held back", 2*n, el, guardLines, failLines, heldBack(log))
	if heldBack(log) < n/2 {
		t.Errorf("summaries count %d held back; the flood was %d datagrams\n%s", heldBack(log), 2*n, log)
	}
	// Still serving.
	if b, ok := udpFrom(t, "udp4", "127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", ports[1]), []byte("x"), 3*time.Second); !ok || !dayTimeRE.Match(b) {
		t.Errorf("after the flood: %q, %v", b, ok)
	}
}

// TestDatagramBuiltinNotSwitchedOff: forged datagrams from many sources
// over the default cps leave a datagram builtin answering (before: 51
// of them switched it off for 10 s).
func TestDatagramBuiltinNotSwitchedOff(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := baseDefaults + `
service daytime
{
	id          = udp-daytime
	type        = INTERNAL UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P0}}
	wait        = yes
	cps         = 50 10
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	udpFlood(t, 3, 300, freePorts(t, 1)[0], lo(ports[0]), []byte("x"), 0)
	// The rate is per second: after one, a client is answered.
	time.Sleep(1500 * time.Millisecond)
	b, ok := udpFrom(t, "udp4", "127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", ports[0]), []byte("x"), 3*time.Second)
	if !ok || !dayTimeRE.Match(b) {
		t.Fatalf("after 300 forged datagrams the builtin does not answer: %q\n%s", b, d.daemonLog())
	}
	if strings.Contains(d.daemonLog(), "Deactivating service") {
		t.Errorf("the builtin was switched off:\n%s", d.daemonLog())
	}
	// One source over the rate is refused alone.
	d.waitSvcLog(`FAIL: udp-daytime connections per second`, 5*time.Second)
}

// TestBacklogDrainAfterStop: a daemon stopped for 5 s under 40 new
// connections a second finds 200 in its backlogs when it resumes; cps
// (50 a second) counts them as they arrived, so none is reset (before:
// the drain tripped cps and the suspension reset the queue).
func TestBacklogDrainAfterStop(t *testing.T) {
	ports := freePorts(t, 2)
	dir := newDir(t)
	conf := baseDefaults + daytimeSvc("dt", "{{P0}}", "\tcps = 50 10\n") + `
service echo
{
	id          = echo
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	cps         = 50 10
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	stopped := false
	defer func() {
		if stopped {
			d.signal(syscall.SIGCONT)
		}
	}()
	var ok, bad atomic.Int64
	var badMu sync.Mutex
	var badWhy []string
	fail := func(s string) {
		bad.Add(1)
		badMu.Lock()
		if len(badWhy) < 5 {
			badWhy = append(badWhy, s)
		}
		badMu.Unlock()
	}
	client := func(i int) {
		if i%2 == 0 {
			got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 20*time.Second)
			if err != nil || !dayTimeRE.MatchString(got) {
				fail(fmt.Sprintf("daytime %q %v", got, err))
				return
			}
		} else {
			got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "hello\n", 20*time.Second)
			if err != nil || got != "hello\n" {
				fail(fmt.Sprintf("echo %q %v", got, err))
				return
			}
		}
		ok.Add(1)
	}
	var wg sync.WaitGroup
	tick := time.NewTicker(25 * time.Millisecond) // 40 a second, 20 to each service
	defer tick.Stop()
	// 1 s running, 5 s stopped, 1 s running again.
	for i := 0; i < 280; i++ {
		<-tick.C
		switch i {
		case 40:
			d.signal(syscall.SIGSTOP)
			stopped = true
		case 240:
			d.signal(syscall.SIGCONT)
			stopped = false
		}
		wg.Add(1)
		go func(i int) { defer wg.Done(); client(i) }(i)
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%d of %d connections failed across the stop, e.g. %q\n%s", bad.Load(), ok.Load()+bad.Load(), badWhy, d.daemonLog())
	}
	if strings.Contains(d.daemonLog(), "Deactivating service") {
		t.Errorf("the backlog drained after the stop tripped cps:\n%s", d.daemonLog())
	}
}

// startLimited runs gxinetd under prlimit with the given descriptor limit.
func startLimited(t *testing.T, dir, confPath string, nofile int) *daemon {
	t.Helper()
	needCmd(t, "prlimit")
	d := &daemon{t: t, dir: dir, conf: confPath, logFile: filepath.Join(dir, "daemon.log"),
		svcLog: filepath.Join(dir, "services.log"), stderr: &syncBuf{}, exited: make(chan struct{})}
	d.cmd = exec.Command("prlimit", fmt.Sprintf("--nofile=%d:%d", nofile, nofile), gxinetd, "-f", confPath, "-dontfork",
		"-filelog", d.logFile, "-pidfile", filepath.Join(dir, "gxinetd.pid"), "-dumpfile", filepath.Join(dir, "xinetd.dump"))
	d.cmd.Stderr, d.cmd.Stdout = d.stderr, d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	d.waitLog(`Started working`, 15*time.Second)
	return d
}

// holdBackend accepts connections and keeps them open until the test ends.
func holdBackend(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	holdAccepted(t, ln, nil)
	return ln.Addr().(*net.TCPAddr).Port
}

// holdAccepted accepts ln's connections until the test ends, hands each
// to each (when not nil) and keeps it; at the end it closes ln and every
// connection it accepted.
func holdAccepted(t *testing.T, ln net.Listener, each func(c net.Conn)) {
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closeAll(held)
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			if each != nil {
				each(c)
			}
		}
	}()
}

// TestDescriptorReserve: idle redirect sessions cannot take the last
// descriptors: past the reserve they are refused, and another service
// still starts its servers (before: the sessions took every descriptor
// and no server could start).
func TestDescriptorReserve(t *testing.T) {
	ports := freePorts(t, 2)
	dir := newDir(t)
	be := holdBackend(t)
	conf := baseDefaults + `
service redir
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	redirect    = 127.0.0.1 ` + strconv.Itoa(be) + `
	user        = root
}
service hello
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	user        = root
	server      = /bin/echo
	server_args = served
}
`
	const limit = 256
	d := startLimited(t, dir, render(t, dir, conf, ports), limit)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// Each session costs the daemon two descriptors: 200 would need 400.
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", ports[0]), 3*time.Second)
		if err != nil {
			continue
		}
		held = append(held, c)
	}
	// Servers of the other service still start (once the burst of
	// refused sessions has been closed: the acceptor takes connections
	// faster than their sessions are refused), and then every time.
	deadline := waitBound(10 * time.Second)
	for {
		got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 5*time.Second)
		if err == nil && got == "served\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server starts with the redirect sessions in place: %q, %v\n%s", got, err, d.daemonLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 0; i < 20; i++ {
		got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 5*time.Second)
		if err != nil || got != "served\n" {
			t.Fatalf("server %d with the redirect sessions in place: %q, %v\n%s", i, got, err, d.daemonLog())
		}
	}
	d.waitLog(`descriptor reserve reached: refusing sessions of redir`, 10*time.Second)
	if n := countFDs(d.pid()); n > limit-16 {
		t.Errorf("the daemon holds %d descriptors of %d", n, limit)
	}
	d.waitSvcLog(`FAIL: redir no available descriptors`, 5*time.Second)
	if n := strings.Count(d.daemonLog(), "descriptor reserve reached"); n > 2 {
		t.Errorf("the reserve was reported %d times within seconds", n)
	}
}

// TestMetricsOnlyItsPath: the metrics listener answers GET and HEAD of
// /metrics only (before: any method on any path got the metrics).
func TestMetricsOnlyItsPath(t *testing.T) {
	ports := freePorts(t, 2)
	dir := newDir(t)
	conf := `
defaults
{
	log_type = FILE {{LOG}}
	metrics  = 127.0.0.1:{{P1}}
}
` + daytimeConf("dt", "{{P0}}")
	start(t, dir, render(t, dir, conf, ports))
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	cl := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/metrics", 200}, {"HEAD", "/metrics", 200}, {"GET", "/", 404}, {"GET", "/favicon.ico", 404},
		{"POST", "/metrics", 405}, {"PUT", "/metrics", 405}, {"DELETE", "/", 404},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
		if has := strings.Contains(string(b), "gxinetd_connections_total"); has != (tc.code == 200 && tc.method == "GET") {
			t.Errorf("%s %s: metrics in the body: %v", tc.method, tc.path, has)
		}
	}
}

// TestIdleTimeoutEveryPath: idle_timeout ends an idle session on every
// path a session can take: a redirect accepted on the raw path (ProxyFD)
// and on the net.Conn path (with a banner), and the stream builtins
// that read (discard) or write (chargen to a client that reads nothing).
func TestIdleTimeoutEveryPath(t *testing.T) {
	ports := freePorts(t, 4)
	dir := newDir(t)
	be := holdBackend(t)
	banner := filepath.Join(dir, "banner")
	if err := os.WriteFile(banner, []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	redir := func(id, port, extra string) string {
		return `
service ` + id + `
{
	type         = UNLISTED
	socket_type  = stream
	protocol     = tcp
	port         = ` + port + `
	wait         = no
	redirect     = 127.0.0.1 ` + strconv.Itoa(be) + `
	user         = root
	idle_timeout = 1
` + extra + `}
`
	}
	builtin := func(name, port string) string {
		return `
service ` + name + `
{
	type         = INTERNAL UNLISTED
	socket_type  = stream
	protocol     = tcp
	port         = ` + port + `
	wait         = no
	idle_timeout = 1
}
`
	}
	conf := baseDefaults + redir("raw-redirect", "{{P0}}", "") + redir("conn-redirect", "{{P1}}", "\tbanner = "+banner+"\n") +
		builtin("discard", "{{P2}}") + builtin("chargen", "{{P3}}")
	d := start(t, dir, render(t, dir, conf, ports))
	var wg sync.WaitGroup
	for i, name := range []string{"raw-redirect", "conn-redirect", "discard", "chargen"} {
		wg.Add(1)
		go func(i int, name string) {
			defer wg.Done()
			c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", ports[i]))
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			begin := time.Now()
			if name == "chargen" {
				// Read nothing: the daemon's writes stall once the buffers
				// are full, and the session is idle from then on.
				time.Sleep(3 * time.Second)
			}
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err = io.Copy(io.Discard, c)
			el := time.Since(begin)
			if err != nil && !strings.Contains(err.Error(), "reset") {
				t.Errorf("%s: session not ended by idle_timeout = 1 within 20 s: %v", name, err)
				return
			}
			if el < 900*time.Millisecond {
				t.Errorf("%s: ended after %v, before the idle timeout", name, el)
			}
		}(i, name)
	}
	wg.Wait()
	for _, id := range []string{"raw-redirect", "conn-redirect"} {
		d.waitSvcLog(`EXIT: `+id+` `, 5*time.Second)
	}
	// The timeout is configured behaviour, not an error: idle sessions
	// are what an attacker makes, and each must not cost a log line.
	if l := d.daemonLog(); strings.Contains(l, "idle timeout") {
		t.Errorf("an idle_timeout ending a session was logged as an error:\n%s", l)
	}
}

// TestIdentOnRefusalBounded: refused connections make at most one ident
// lookup per source a minute and at most 16 at once (before: one per
// refused connection, each held for the ident timeout).
func TestIdentOnRefusalBounded(t *testing.T) {
	needRoot(t)
	testnet.Lock(t, "port-113")
	const sources = 40
	var accepted, open atomic.Int64
	for i := 0; i < sources; i++ {
		a := loopSrc(9, i)
		ln, err := net.Listen("tcp4", fmt.Sprintf("%d.%d.%d.%d:113", a[0], a[1], a[2], a[3]))
		if err != nil {
			t.Skipf("port 113 on %v is not free: %v", a, err)
		}
		holdAccepted(t, ln, func(c net.Conn) { // silent: never answers
			accepted.Add(1)
			open.Add(1)
			go func() {
				io.Copy(io.Discard, c)
				open.Add(-1)
			}()
		})
	}
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := `
defaults
{
	log_type       = FILE {{LOG}}
	log_on_failure = HOST USERID
	cps            = 0 0
}
` + daytimeSvc("refuse", "{{P0}}", "\tonly_from = 127.0.0.1\n\tident_timeout = 30\n")
	d := start(t, dir, render(t, dir, conf, ports))
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	src := func(i int) string { a := loopSrc(9, i); return fmt.Sprintf("%d.%d.%d.%d", a[0], a[1], a[2], a[3]) }
	// One source, many refusals: one lookup.
	for i := 0; i < 30; i++ {
		readAllFrom(src(0), addr)
	}
	waitIn(t, func() string { return fmt.Sprint(accepted.Load()) }, `^1$`, 10*time.Second)
	// Many sources at once: the lookups in flight are capped.
	for i := 1; i < sources; i++ {
		readAllFrom(src(i), addr)
	}
	d.waitSvcLog(`FAIL: refuse address from=(::ffff:)?`+regexp.QuoteMeta(src(sources-1))+`\n`, 10*time.Second)
	time.Sleep(2 * time.Second)
	t.Logf("%d refused connections from %d sources: %d ident lookups, %d open", 30+sources-1, sources, accepted.Load(), open.Load())
	if n := accepted.Load(); n > 16 {
		t.Errorf("%d ident lookups for refused connections; at most 16 may run at once (all of them hang)", n)
	}
	if n := accepted.Load(); n < 16 {
		t.Errorf("only %d ident lookups for %d sources", n, sources)
	}
	d.waitLog(`ident lookups for refused connections: skipped \d+`, 15*time.Second)
}

// TestNoDescriptorsOncePerInterval: a daemon whose descriptor limit is
// taken down under load, first to one free descriptor (connections are
// accepted, servers cannot start) and then below what it holds (accept
// fails), says so once for the whole episode and then once per interval
// with a count, does not spin, and serves again when descriptors come
// back (before: a line or three for every connection).
func TestNoDescriptorsOncePerInterval(t *testing.T) {
	needCmd(t, "prlimit")
	ports := freePorts(t, 3)
	dir := newDir(t)
	conf := baseDefaults + daytimeConf("dt", "{{P0}}") + builtinConf("echo", "{{P1}}") + `
service hello
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P2}}
	wait        = no
	user        = root
	server      = /bin/echo
	server_args = served
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	pid := d.pid()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", ports[1]))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	waitIn(t, func() string { return fmt.Sprint(countFDs(pid) >= 100) }, "true", 10*time.Second)
	prlimit := func(n int) {
		t.Helper()
		// The soft limit only: raising a hard limit again needs a
		// capability a container may not have.
		if out, err := exec.Command("prlimit", "--pid", fmt.Sprint(pid), fmt.Sprintf("--nofile=%d:", n)).CombinedOutput(); err != nil {
			t.Fatalf("prlimit: %v\n%s", err, out)
		}
	}
	load := func(d time.Duration) {
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", ports[[]int{0, 2, 2, 2}[g]]), time.Second)
					if err == nil {
						c.SetDeadline(time.Now().Add(200 * time.Millisecond))
						c.Read(make([]byte, 64))
						c.Close()
					}
				}
			}(g)
		}
		time.Sleep(d)
		close(stop)
		wg.Wait()
	}
	// One descriptor free: every connection is accepted, and its server
	// cannot be started.
	prlimit(countFDs(pid) + 1)
	load(2 * time.Second)
	// Below what it holds: accept fails.
	prlimit(64)
	cpu0 := procCPU(pid)
	begin := time.Now()
	load(3 * time.Second)
	cpu, wall := procCPU(pid)-cpu0, time.Since(begin)
	log := d.daemonLog()
	t.Logf("daemon CPU %v over %v out of descriptors", cpu, wall)
	shortage := 0
	for _, l := range lines(log) {
		if strings.Contains(l, "no available descriptors") || strings.Contains(l, "open files") ||
			strings.Contains(l, "descriptors available again") {
			shortage++
		}
	}
	if shortage < 1 || shortage > 2 {
		t.Errorf("out of descriptors for 5 s under load: %d lines about it, want the first and at most one summary:\n%s", shortage, log)
	}
	if cpu > wall/4 {
		t.Errorf("the daemon used %v of CPU in %v out of descriptors: spinning", cpu, wall)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	prlimit(1024)
	deadline := waitBound(10 * time.Second)
	for {
		got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[2]), "", 2*time.Second)
		if err == nil && got == "served\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after descriptors came back:\n%s", d.daemonLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.waitLog(`descriptors available again`, 30*time.Second)
}

// procCPU is the user+system time a process has used.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// TestUnsafeServerRefusalsBounded: while a server is refused by the
// ownership rule, each client meets the refusal, and its error line and
// FAIL record are written within the refusal budget (before: two lines
// for every connection).
func TestUnsafeServerRefusalsBounded(t *testing.T) {
	needRoot(t)
	ports := freePorts(t, 1)
	dir := newDir(t)
	srv := ownFile(t, filepath.Join(dir, "bin/srv"), "#!/bin/sh\necho ok\n", 0o755, 0)
	d := start(t, dir, render(t, dir, baseDefaults+extSvc("srv", "{{P0}}", "root", srv), ports))
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	if err := os.Chmod(srv, 0o777); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		tcpExchange(t, addr, "", 5*time.Second)
	}
	d.waitLog(`refusal logging: held back \d+ messages`, 20*time.Second)
	errLines := strings.Count(d.daemonLog(), "not starting server")
	fails := strings.Count(readFile(d.svcLog), "FAIL: srv ownership")
	t.Logf("200 refused starts: %d error lines, %d FAIL records", errLines, fails)
	if errLines > 20 || fails > 20 {
		t.Errorf("200 refused starts from one client wrote %d error lines and %d FAIL records", errLines, fails)
	}
	if errLines == 0 || fails == 0 {
		t.Errorf("the refusal was not reported at all: %d error lines, %d FAIL records", errLines, fails)
	}
}
