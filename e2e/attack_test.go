package e2e

// The attack suite (GitHub issue 13, "Never stuck, never escalated"):
// what anyone on the network can do to a super-server that runs as root
// for years. These tests are large (thousands of connections and
// datagrams, 10,000 services) and run with `make attack`, which sets
// GXINETD_ATTACK=1; each is bounded in count and time. The figures they
// log are in docs/operations.md ("Under attack"). The smaller regression
// tests of the same issue (bounded_test.go) run in `make test` and are
// part of `make attack` too.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func needAttack(t *testing.T) {
	t.Helper()
	if os.Getenv("GXINETD_ATTACK") == "" {
		t.Skip("attack suite: run with make attack (GXINETD_ATTACK=1)")
	}
}

// rssKB is a process's resident set in KiB.
func rssKB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return -1
}

// metric scrapes one unlabelled or labelled sample from the metrics listener.
func metric(t *testing.T, addr, series string) int {
	t.Helper()
	_, body := lgScrape(t, "127.0.0.1", addr)
	return lgMetric(body, series)
}

// dialMany opens n connections to addr from src with a few dialers at
// once and returns those that connected.
func dialMany(t *testing.T, src, addr string, n int) []net.Conn {
	t.Helper()
	var mu sync.Mutex
	var out []net.Conn
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			for next.Add(1) <= int64(n) {
				c, err := d.Dial("tcp4", addr)
				if err != nil {
					continue
				}
				mu.Lock()
				out = append(out, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

// catSvc is an external service whose server echoes until its client
// closes: it runs exactly as long as the client holds the connection.
func catSvc(id, port, extra string) string {
	return `
service ` + id + `
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = ` + port + `
	wait        = no
	user        = root
	server      = /bin/cat
` + extra + `}
`
}

// TestAttackConnectionFlood: a flood of connections against instances
// and per_source limits forks nothing beyond them, and the service
// serves again as soon as its servers end.
func TestAttackConnectionFlood(t *testing.T) {
	needAttack(t)
	ports := freePorts(t, 2)
	dir := newDir(t)
	conf := baseDefaults + catSvc("inst", "{{P0}}", "\tinstances = 5\n") + catSvc("persrc", "{{P1}}", "\tper_source = 2\n")
	d := start(t, dir, render(t, dir, conf, ports))
	pid := d.pid()
	for i, tc := range []struct {
		id    string
		limit int
	}{{"inst", 5}, {"persrc", 2}} {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[i])
		var maxKids atomic.Int64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				if all, _ := children(pid); int64(len(all)) > maxKids.Load() {
					maxKids.Store(int64(len(all)))
					if len(all) > tc.limit {
						// Say what they are, for the failure report.
						var desc []string
						for _, p := range all {
							st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
							desc = append(desc, string(st[:min(len(st), 40)]))
						}
						t.Logf("%s: children %q", tc.id, desc)
					}
				}
			}
		}()
		// 2,000 connections from 32 dialers, all held open.
		held := dialMany(t, "127.0.0.1", addr, 2000)
		time.Sleep(time.Second) // let the daemon finish refusing
		close(stop)
		<-done
		starts := strings.Count(readFile(d.svcLog), "START: "+tc.id+" ")
		t.Logf("%s: %d connections, %d servers started, at most %d running", tc.id, len(held), starts, maxKids.Load())
		if starts != tc.limit || maxKids.Load() > int64(tc.limit) {
			t.Errorf("%s: %d servers started, %d at once; limit %d", tc.id, starts, maxKids.Load(), tc.limit)
		}
		// The holders go; how soon is a new client served?
		closeAll(held)
		begin := time.Now()
		for {
			got, err := tcpExchange(t, addr, "ping\n", 2*time.Second)
			if err == nil && got == "ping\n" {
				break
			}
			if time.Since(begin) > 10*time.Second {
				t.Fatalf("%s: not serving 10 s after the flood ended: %q %v", tc.id, got, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		el := time.Since(begin)
		t.Logf("%s: served again %v after the flood's connections closed", tc.id, el)
		if el > 3*time.Second {
			t.Errorf("%s: recovery took %v (the servers end as their clients close)", tc.id, el)
		}
	}
}

// TestAttackIdleConnections: 5,000 idle connections against a redirect,
// tcpmux and auth, each in turn; a legitimate client of the same service
// is served meanwhile, and the daemon gives everything back afterwards.
func TestAttackIdleConnections(t *testing.T) {
	needAttack(t)
	ports := freePorts(t, 4)
	dir := newDir(t)
	// An echoing backend for the redirect; idle clients leave it idle.
	be, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	holdAccepted(t, be, func(c net.Conn) {
		// Plain reads and writes: io.Copy between TCP connections
		// splices through a pipe, two more descriptors per idle
		// connection.
		go func() { io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c}); c.Close() }()
	})
	conf := `
defaults
{
	log_type       = FILE {{LOG}}
	log_on_success = PID HOST
	log_on_failure = HOST
	cps            = 0 0
	metrics        = 127.0.0.1:{{P3}}
}
service redir
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	user        = root
	redirect    = 127.0.0.1 ` + strconv.Itoa(be.Addr().(*net.TCPAddr).Port) + `
}
service tcpmux
{
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
}
service muxcat
{
	type        = UNLISTED TCPMUXPLUS
	socket_type = stream
	protocol    = tcp
	wait        = no
	user        = root
	server      = /bin/cat
}
service auth
{
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P2}}
	wait        = no
	server_args = -r
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	pid := d.pid()
	maddr := fmt.Sprintf("127.0.0.1:%d", ports[3])
	baseFDs, baseG, baseRSS := countFDs(pid), metric(t, maddr, "gxinetd_goroutines"), rssKB(pid)
	legit := map[string]func() error{
		"redirect": func() error {
			got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "legit\n", 5*time.Second)
			if got != "legit\n" {
				return fmt.Errorf("%q %v", got, err)
			}
			return nil
		},
		"tcpmux": func() error {
			got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "muxcat\r\nlegit\n", 5*time.Second)
			if got != "+Go\r\nlegit\n" {
				return fmt.Errorf("%q %v", got, err)
			}
			return nil
		},
		"auth": func() error {
			got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[2]), "1 , 1\r\n", 5*time.Second)
			if got != "1 , 1 : ERROR : NO-USER\r\n" {
				return fmt.Errorf("%q %v", got, err)
			}
			return nil
		},
	}
	for i, name := range []string{"redirect", "tcpmux", "auth"} {
		begin := time.Now()
		// A source address of its own for each round: binding a source
		// port gets slow among thousands in TIME_WAIT from the last one.
		held := dialMany(t, fmt.Sprintf("127.0.0.%d", 2+i), fmt.Sprintf("127.0.0.1:%d", ports[i]), 5000)
		opened := time.Since(begin)
		fds, g, rss := countFDs(pid), metric(t, maddr, "gxinetd_goroutines"), rssKB(pid)
		lbegin := time.Now()
		err := legit[name]()
		t.Logf("%s: %d idle connections in %v; daemon %d descriptors, %d goroutines, RSS %d KiB; a legitimate client served in %v (%v)",
			name, len(held), opened, fds, g, rss, time.Since(lbegin), err)
		if err != nil {
			t.Errorf("%s: a legitimate client with %d idle connections in place: %v", name, len(held), err)
		}
		if len(held) < 4000 {
			t.Errorf("%s: only %d of 5,000 idle connections could be made", name, len(held))
		}
		closeAll(held)
	}
	// Everything comes back: descriptors and goroutines to where they
	// were (the tcpmux and auth connections end by their read timeout,
	// 10 s, if their close was not seen earlier).
	deadline := time.Now().Add(30 * time.Second)
	for {
		fds, g := countFDs(pid), metric(t, maddr, "gxinetd_goroutines")
		if fds <= baseFDs+4 && g <= baseG+10 {
			t.Logf("after: %d descriptors (%d before), %d goroutines (%d before), RSS %d KiB (%d before)", fds, baseFDs, g, baseG, rssKB(pid), baseRSS)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the idle connections closed: %d descriptors (%d before), %d goroutines (%d before)", fds, baseFDs, g, baseG)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for name, f := range legit {
		if err := f(); err != nil {
			t.Errorf("%s afterwards: %v", name, err)
		}
	}
}

// TestAttackUDPManySources: 90,000 datagrams, each from a source of its
// own, against two UDP builtins: one refusing them by only_from with cps
// off (its duplicate-suppression table fills), one under cps and
// per_source (its per-source cps table). Every table stops at its cap,
// a full table is logged once, the refusals are logged within the
// budget, and clients are still answered.
func TestAttackUDPManySources(t *testing.T) {
	needAttack(t)
	ports := freePorts(t, 3)
	dir := newDir(t)
	conf := `
defaults
{
	log_type       = FILE {{LOG}}
	log_on_success = HOST
	log_on_failure = HOST
	metrics        = 127.0.0.1:{{P2}}
}
service daytime
{
	id          = listed
	type        = INTERNAL UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P0}}
	wait        = yes
	cps         = 0 0
	only_from   = 127.0.0.1
}
service daytime
{
	id          = limited
	type        = INTERNAL UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P1}}
	wait        = yes
	cps         = 50 10
	per_source  = 5
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	pid := d.pid()
	maddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	rss0 := rssKB(pid)
	// More sources than the tables hold, with room for datagrams the
	// socket buffers drop on a busy machine.
	const n = 90000
	var el time.Duration
	sport := freePorts(t, 1)[0] // not one the kernel hands out
	for k := 0; k < n; k += 500 {
		b, i := 6+k/60000, k%60000 // 60,000 sources per block
		el += udpFlood(t, b, 500, sport, lo(ports[0]), []byte("x"), i)
		el += udpFlood(t, b, 500, sport, lo(ports[1]), []byte("x"), i)
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	_, body := lgScrape(t, "127.0.0.1", maddr)
	table := func(name string) int { return lgMetric(body, `gxinetd_access_table_entries{table="`+name+`"}`) }
	full := func(name string) int { return lgMetric(body, `gxinetd_access_table_full_total{table="`+name+`"}`) }
	refused := 0
	for _, l := range lines(body) {
		if strings.HasPrefix(l, `gxinetd_refused_total{`) {
			v, _ := strconv.Atoi(l[strings.LastIndexByte(l, ' ')+1:])
			refused += v
		}
	}
	log := d.daemonLog()
	t.Logf("2 x %d datagrams from %d sources in %v: %d refused; tables: quiet %d (full %d times), cps %d (full %d times), sources %d; daemon log %d lines, FAIL records %d; RSS %d -> %d KiB",
		n, n, el, refused, table("quiet"), full("quiet"), table("cps"), full("cps"), table("sources"),
		len(lines(log)), strings.Count(readFile(d.svcLog), "FAIL: "), rss0, rssKB(pid))
	for _, name := range []string{"quiet", "cps", "sources"} {
		if v := table(name); v > 65536 {
			t.Errorf("table %s holds %d entries, beyond its cap of 65,536", name, v)
		}
	}
	if full("quiet") < 1 {
		t.Errorf("the duplicate-suppression table never filled: the flood did not reach the cap")
	}
	for _, msg := range []string{"UDP duplicate-suppression table", "per-source cps table"} {
		if c := strings.Count(log, msg); c > 1 {
			t.Errorf("%q full: logged %d times, want at most once a minute", msg, c)
		}
	}
	if c := strings.Count(log, "UDP duplicate-suppression table"); c != 1 {
		t.Errorf("the full duplicate-suppression table was logged %d times, want once", c)
	}
	if failLines := strings.Count(readFile(d.svcLog), "FAIL: "); failLines > 100+int(el.Seconds()*10)+50 {
		t.Errorf("%d FAIL records for the flood, beyond the refusal budget", failLines)
	}
	for _, p := range ports[:2] {
		if b, ok := udpFrom(t, "udp4", "127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", p), []byte("x"), 3*time.Second); !ok || !dayTimeRE.Match(b) {
			t.Errorf("a client after the flood: %q, %v", b, ok)
		}
	}
}

// TestAttackMalformedInput: every in-process protocol gets 10 MB without
// a newline, NUL bytes, a line that never ends and datagrams of every
// size; each connection ends within its bounds, the daemon's memory does
// not follow the input, and every service answers properly afterwards.
func TestAttackMalformedInput(t *testing.T) {
	needAttack(t)
	names := []string{"echo", "discard", "chargen", "daytime", "time", "tcpmux", "auth"}
	ports := freePorts(t, len(names)+5)
	dir := newDir(t)
	conf := baseDefaults
	for i, n := range names {
		conf += builtinConf(n, fmt.Sprintf("{{P%d}}", i))
	}
	udp := []string{"echo", "discard", "chargen", "daytime", "time"}
	for i, n := range udp {
		conf += `
service ` + n + `
{
	id          = udp-` + n + `
	type        = INTERNAL UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P` + strconv.Itoa(len(names)+i) + `}}
	wait        = yes
}
`
	}
	d := start(t, dir, render(t, dir, conf, ports))
	pid := d.pid()
	rss0 := rssKB(pid)
	inputs := map[string][]byte{
		"10 MB, no newline":    bytes.Repeat([]byte("A"), 10<<20),
		"1 MB of NUL bytes":    make([]byte, 1<<20),
		"NUL line":             []byte("\x00\x00\x00\r\n"),
		"no newline":           []byte("12 , 34"),
		"10 MB line":           append(bytes.Repeat([]byte("9"), 10<<20), '\n'),
		"control bytes":        []byte("\x1b[2J\x07\xff\xfe\r\n"),
		"only newlines (1 MB)": bytes.Repeat([]byte("\n"), 1<<20),
	}
	for i, name := range names {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[i])
		for what, in := range inputs {
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			c.SetDeadline(time.Now().Add(60 * time.Second))
			t0 := time.Now()
			// Write while reading: echo answers as it reads, and the
			// others may close before taking it all (the write then
			// fails, as it should).
			go func() {
				c.Write(in)
				c.(*net.TCPConn).CloseWrite()
			}()
			limit := int64(64 << 20)
			if name == "chargen" {
				limit = 1 << 20 // chargen never ends by itself
			}
			n, err := io.Copy(io.Discard, io.LimitReader(c, limit))
			c.Close()
			if name == "echo" && n != int64(len(in)) {
				t.Errorf("echo of %s: %d bytes back, want %d", what, n, len(in))
			}
			if err != nil && !strings.Contains(err.Error(), "reset") {
				t.Errorf("%s with %s: %v after %v", name, what, err, time.Since(t0))
			}
			if el := time.Since(t0); el > 5*time.Second {
				t.Logf("%s / %s: %v", name, what, el)
			}
		}
	}
	for i, name := range udp {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[len(names)+i])
		for _, in := range [][]byte{{}, {0}, make([]byte, 65507), bytes.Repeat([]byte{0xff}, 1500)} {
			udpFrom(t, "udp4", "127.0.0.1:0", addr, in, 200*time.Millisecond)
		}
		_ = name
	}
	t.Logf("RSS %d KiB before, %d KiB after %d protocols x %d malformed inputs", rss0, rssKB(pid), len(names), len(inputs))
	// Everything still answers.
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "fine\n", 5*time.Second); got != "fine\n" {
		t.Errorf("echo afterwards: %q %v", got, err)
	}
	if !reachable(t, fmt.Sprintf("127.0.0.1:%d", ports[3])) {
		t.Error("daytime afterwards: no answer")
	}
	if got, _ := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[6]), "1 , 1\r\n", 5*time.Second); !strings.Contains(got, "1 , 1 : ERROR :") {
		t.Errorf("auth afterwards: %q", got)
	}
	if b, ok := udpFrom(t, "udp4", "127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", ports[len(names)]), []byte("x"), 3*time.Second); !ok || string(b) != "x" {
		t.Errorf("udp echo afterwards: %q %v", b, ok)
	}
}

// TestAttackSIGHUPStorm: 200 SIGHUPs in 2 s while clients keep coming:
// no client is refused, and afterwards the daemon holds no more
// descriptors, goroutines or memory than before.
func TestAttackSIGHUPStorm(t *testing.T) {
	needAttack(t)
	ports := freePorts(t, 5)
	dir := newDir(t)
	be := holdBackend(t)
	conf := `
defaults
{
	log_type       = FILE {{LOG}}
	log_on_success = PID HOST EXIT DURATION
	log_on_failure = HOST
	cps            = 0 0
	metrics        = 127.0.0.1:{{P4}}
}
` + daytimeConf("dt", "{{P0}}") + builtinConf("echo", "{{P1}}") + catSvc("cat", "{{P2}}", "") + `
service redir
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P3}}
	wait        = no
	user        = root
	redirect    = 127.0.0.1 ` + strconv.Itoa(be) + `
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	pid := d.pid()
	maddr := fmt.Sprintf("127.0.0.1:%d", ports[4])
	var ok, bad atomic.Int64
	var firstBad atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch g {
				case 0:
					var got string
					got, err = tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 10*time.Second)
					if err == nil && !dayTimeRE.MatchString(got) {
						err = fmt.Errorf("daytime %q", got)
					}
				case 1:
					var got string
					got, err = tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "x\n", 10*time.Second)
					if err == nil && got != "x\n" {
						err = fmt.Errorf("echo %q", got)
					}
				case 2:
					var got string
					got, err = tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[2]), "y\n", 10*time.Second)
					if err == nil && got != "y\n" {
						err = fmt.Errorf("cat %q", got)
					}
				}
				if err != nil {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}(g)
	}
	time.Sleep(time.Second)
	// The baseline, under the same load.
	fds0, g0, rss0 := countFDs(pid), metric(t, maddr, "gxinetd_goroutines"), rssKB(pid)
	begin := time.Now()
	for i := 0; i < 200; i++ {
		d.signal(syscall.SIGHUP)
		time.Sleep(10 * time.Millisecond)
	}
	sent := time.Since(begin)
	// Wait until the reloads have been made (signals that arrive while
	// one is pending are merged): the count stops moving for 2 s.
	var reloads int
	for last, still := -1, 0; still < 10; {
		if time.Since(begin) > 2*time.Minute {
			t.Fatalf("reloads still going on 2 minutes after the storm (%d so far); is the daemon stuck?\n%s", reloads, tail(d.daemonLog(), 20))
		}
		reloads = strings.Count(d.daemonLog(), "Reconfigured:")
		if reloads == last {
			still++
		} else {
			still, last = 0, reloads
		}
		time.Sleep(200 * time.Millisecond)
	}
	settled := time.Since(begin)
	// Clients still served after the storm, then the load stops.
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	// Idle workers exit after 10 s: give what is left a while to go.
	var fds1, g1, rss1 int
	for deadline := time.Now().Add(30 * time.Second); ; {
		fds1, g1, rss1 = countFDs(pid), metric(t, maddr, "gxinetd_goroutines"), rssKB(pid)
		if (fds1 <= fds0 && g1 <= g0+2) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("200 SIGHUPs in %v: %d reloads, settled after %v; %d clients served, %d failed; descriptors %d -> %d, goroutines %d -> %d, RSS %d -> %d KiB",
		sent, reloads, settled, ok.Load(), bad.Load(), fds0, fds1, g0, g1, rss0, rss1)
	if reloads == 0 {
		t.Fatalf("no reload completed:\n%s", tail(d.daemonLog(), 20))
	}
	if bad.Load() > 0 {
		t.Errorf("%d of %d clients failed during the storm, e.g. %v", bad.Load(), ok.Load()+bad.Load(), firstBad.Load())
	}
	// The baseline was taken with clients in flight; afterwards there
	// are none, so nothing may be above it.
	if fds1 > fds0 {
		t.Errorf("descriptors grew across the storm: %d -> %d", fds0, fds1)
	}
	if g1 > g0+2 {
		t.Errorf("goroutines grew across the storm: %d -> %d", g0, g1)
	}
	if rss1 > rss0+16<<10 {
		t.Errorf("RSS grew across the storm: %d -> %d KiB", rss0, rss1)
	}
}

// TestAttack10000Services: 10,000 services (one port on 10,000 loopback
// addresses): how long the start and each of 20 reloads take, and that
// the live heap does not grow from reload to reload.
func TestAttack10000Services(t *testing.T) {
	needAttack(t)
	ports := freePorts(t, 2)
	dir := newDir(t)
	var b strings.Builder
	b.WriteString(strings.Replace(baseDefaults, "defaults\n{\n", "defaults\n{\n\tmetrics = 127.0.0.1:{{P1}}\n", 1))
	const n = 10000
	addr := func(i int) string {
		a := loopSrc(20+i/60000, i%60000)
		return fmt.Sprintf("%d.%d.%d.%d", a[0], a[1], a[2], a[3])
	}
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "service daytime\n{\n\tid = dt%d\n\ttype = INTERNAL UNLISTED\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = {{P0}}\n\tbind = %s\n\twait = no\n}\n", i, addr(i))
	}
	conf := render(t, dir, b.String(), ports)
	if !strings.Contains(readFile(conf), "metrics = 127.0.0.1:") {
		t.Fatal("no metrics listener in the configuration")
	}
	maddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	begin := time.Now()
	d := start(t, dir, conf)
	startup := time.Since(begin)
	pid := d.pid()
	rssStart := rssKB(pid)
	for _, i := range []int{0, n / 2, n - 1} {
		if !reachable(t, net.JoinHostPort(addr(i), strconv.Itoa(ports[0]))) {
			t.Fatalf("service dt%d does not answer", i)
		}
	}
	var times []time.Duration
	var rss, heap []int
	for r := 1; r <= 20; r++ {
		before := strings.Count(d.daemonLog(), "Reconfigured:")
		t0 := time.Now()
		d.signal(syscall.SIGHUP)
		for strings.Count(d.daemonLog(), "Reconfigured:") <= before {
			if time.Since(t0) > time.Minute {
				t.Fatalf("reload %d did not finish within a minute", r)
			}
			time.Sleep(5 * time.Millisecond)
		}
		times = append(times, time.Since(t0))
		rss = append(rss, rssKB(pid))
		heap = append(heap, metric(t, maddr, "gxinetd_heap_live_bytes")>>10)
	}
	var sum, worst time.Duration
	for _, x := range times {
		sum += x
		worst = max(worst, x)
	}
	t.Logf("%d services: listening %v after exec, RSS %d KiB; 20 reloads: mean %v, worst %v; after reload 1, 2, 10, 20: RSS %d, %d, %d, %d KiB, live heap %d, %d, %d, %d KiB; %d descriptors",
		n, startup, rssStart, sum/20, worst, rss[0], rss[1], rss[9], rss[19], heap[0], heap[1], heap[9], heap[19], countFDs(pid))
	// The live heap is measured at the last collection, which may have
	// run during a reload (two configurations alive): compare the
	// largest of the last five with the largest of reloads 2 to 6.
	peak := func(h []int) int {
		m := 0
		for _, v := range h {
			m = max(m, v)
		}
		return m
	}
	if early, late := peak(heap[1:6]), peak(heap[15:]); late > early+early/10 {
		t.Errorf("the live heap grew across reloads: at most %d KiB after reloads 2-6, %d KiB after 16-20", early, late)
	}
	if !reachable(t, net.JoinHostPort(addr(n-1), strconv.Itoa(ports[0]))) {
		t.Error("the last service does not answer after 20 reloads")
	}
}
