package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/logging"
)

// countIn counts the lines of s that match pattern.
func acCount(s, pattern string) int {
	re := regexp.MustCompile(pattern)
	n := 0
	for _, l := range lines(s) {
		if re.MatchString(l) {
			n++
		}
	}
	return n
}

// holdFrom connects from src and keeps the connection open until the
// test ends, so the server it started stays counted.
func acHold(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	c, err := dialFrom(src, addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dumpNow sends SIGUSR1 and parses the dump it appends (the last one).
func (d *daemon) acDump() *logging.ParsedDump {
	d.t.Helper()
	path := filepath.Join(d.dir, "xinetd.dump")
	before := strings.Count(readFile(path), "END OF DUMP")
	d.signal(syscall.SIGUSR1)
	deadline := waitBound(5 * time.Second)
	for strings.Count(readFile(path), "END OF DUMP") <= before {
		if time.Now().After(deadline) {
			d.t.Fatalf("no state dump appeared in %s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f, err := os.Open(path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	pd, err := logging.ParseStateDump(f)
	if err != nil {
		d.t.Fatalf("ParseStateDump: %v\n%s", err, readFile(path))
	}
	return pd
}

// acWaitFile waits (bounded) until path exists; on timeout it shows the
// daemon's messages, which say why a command did not run.
func (d *daemon) acWaitFile(path string, timeout time.Duration) {
	d.t.Helper()
	deadline := waitBound(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s did not appear within %v; daemon log:\n%s", path, timeout, d.daemonLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func acCounter(pd *logging.ParsedDump, id string) (logging.ServiceCounters, bool) {
	for _, c := range pd.Counters {
		if c.ID == id {
			return c, true
		}
	}
	return logging.ServiceCounters{}, false
}

// TestTCPWrappersThroughDaemon drives hosts.allow / hosts.deny through the
// daemon: how the daemon name is chosen, EXCEPT, banners, spawn, twist
// (allow and deny side), and the two ways to bypass tcp_wrappers.
func TestTCPWrappersThroughDaemon(t *testing.T) {
	ports := freePorts(t, 9)
	dir := newDir(t)
	os.Mkdir(filepath.Join(dir, "banners"), 0o755)
	writeFile(t, filepath.Join(dir, "banners", "bannerd"), "welcome %a\nline two\n")
	allow := fmt.Sprintf(`# test rules
bannerd : ALL : banners %[1]s/banners
spawnd : ALL : spawn /usr/bin/touch %[1]s/spawned-%%a
twistd : 127.0.0.1 : twist /bin/echo twisted %%a
`, dir)
	deny := `ALL : 127.0.0.5
mydaemon : 127.0.0.6
nia-echo : 127.0.0.7
echo : 127.0.0.8
daytime : 127.0.0.9
exceptd : ALL EXCEPT 127.0.0.1
twistdeny : ALL : twist /bin/echo denied %a
`
	writeFile(t, filepath.Join(dir, "hosts.allow"), allow)
	writeFile(t, filepath.Join(dir, "hosts.deny"), deny)
	ext := func(id, port, server, args, extra string) string {
		return `
service ` + id + `
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = ` + port + `
	wait        = no
` + extra + `	user        = ` + currentUser(t) + `
	server      = ` + server + `
	server_args = ` + args + `
}
`
	}
	intl := func(id, port, extra string) string {
		return `
service daytime
{
	id          = ` + id + `
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = ` + port + `
	wait        = no
` + extra + `}
`
	}
	conf := baseDefaults +
		intl("attr", "{{P0}}", "\tlibwrap = mydaemon\n") + // daemon name from the libwrap attribute
		ext("nia", "{{P1}}", "/bin/echo", "nia-echo hi-nia", "\tflags = NAMEINARGS\n") + // argv[0]
		ext("plain", "{{P2}}", "/bin/echo", "hi-plain", "") + // basename of server
		intl("byname", "{{P3}}", "") + // service name for internal services
		intl("exc", "{{P4}}", "\tlibwrap = exceptd\n") +
		intl("ban", "{{P5}}", "\tlibwrap = bannerd\n") +
		intl("spw", "{{P6}}", "\tlibwrap = spawnd\n") +
		ext("tw", "{{P7}}", "/bin/echo", "from-the-server", "\tlibwrap = twistd\n") +
		intl("twd", "{{P8}}", "\tlibwrap = twistdeny\n")
	d := start(t, dir, render(t, dir, conf, ports),
		"-hosts-allow", filepath.Join(dir, "hosts.allow"), "-hosts-deny", filepath.Join(dir, "hosts.deny"))
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }

	type probe struct {
		src   string
		svc   int
		id    string
		allow bool
		want  string // regexp the answer must match when allowed
	}
	daytime := dayTimeRE.String()
	for _, p := range []probe{
		{"127.0.0.1", 0, "attr", true, daytime},
		{"127.0.0.6", 0, "attr", false, ""},
		{"127.0.0.9", 0, "attr", true, daytime}, // "daytime" rule must not apply: the name is mydaemon
		{"127.0.0.5", 0, "attr", false, ""},     // ALL : 127.0.0.5
		{"127.0.0.1", 1, "nia", true, `^hi-nia\n$`},
		{"127.0.0.7", 1, "nia", false, ""},
		{"127.0.0.8", 1, "nia", true, `^hi-nia\n$`}, // "echo" rule must not apply with NAMEINARGS
		{"127.0.0.8", 2, "plain", false, ""},
		{"127.0.0.7", 2, "plain", true, `^hi-plain\n$`},
		{"127.0.0.9", 3, "byname", false, ""},
		{"127.0.0.6", 3, "byname", true, daytime},
		{"127.0.0.5", 3, "byname", false, ""},
		{"127.0.0.1", 4, "exc", true, daytime},
		{"127.0.0.2", 4, "exc", false, ""},
	} {
		got, err := readAllFrom(p.src, addr(p.svc))
		if err != nil {
			t.Errorf("%s from %s: %v", p.id, p.src, err)
			continue
		}
		if p.allow && !regexp.MustCompile(p.want).MatchString(got) {
			t.Errorf("%s from %s: want it served (%s), got %q", p.id, p.src, p.want, got)
		}
		if !p.allow {
			if got != "" {
				t.Errorf("%s from %s: want it refused with nothing sent, got %q", p.id, p.src, got)
			}
			d.waitSvcLog(`FAIL: `+p.id+` libwrap from=(::ffff:)?`+regexp.QuoteMeta(p.src)+`\n`, 5*time.Second)
		}
	}
	d.waitLog(`INFO: libwrap refused connection to attr \(libwrap=mydaemon\) from (::ffff:)?127\.0\.0\.6`, 5*time.Second)
	d.waitLog(`INFO: libwrap refused connection to nia \(libwrap=nia-echo\) from (::ffff:)?127\.0\.0\.7`, 5*time.Second)
	d.waitLog(`INFO: libwrap refused connection to plain \(libwrap=echo\) from (::ffff:)?127\.0\.0\.8`, 5*time.Second)
	d.waitLog(`INFO: libwrap refused connection to byname \(libwrap=daytime\) from (::ffff:)?127\.0\.0\.9`, 5*time.Second)
	// A refused external server is never started.
	if strings.Contains(readFile(d.svcLog), "START: plain pid=") && acCount(readFile(d.svcLog), `START: plain .*from=(::ffff:)?127\.0\.0\.8$`) > 0 {
		t.Errorf("a server was started for a libwrap refusal:\n%s", readFile(d.svcLog))
	}

	// banners: the file named after the daemon, %-expanded, CRLF line ends, then the service.
	got, _ := readAllFrom("127.0.0.1", addr(5))
	if want := "welcome 127.0.0.1\r\nline two\r\n"; !strings.HasPrefix(got, want) || !dayTimeRE.MatchString(strings.TrimPrefix(got, want)) {
		t.Errorf("banners: got %q, want %q then the daytime", got, want)
	}

	// spawn: runs beside the service, with %a expanded.
	if got, _ := readAllFrom("127.0.0.3", addr(6)); !dayTimeRE.MatchString(got) {
		t.Errorf("spawn service must still be served: %q", got)
	}
	d.acWaitFile(filepath.Join(dir, "spawned-127.0.0.3"), 5*time.Second)

	// twist: the client gets the command's output instead of the server's.
	if got, _ := readAllFrom("127.0.0.1", addr(7)); got != "twisted 127.0.0.1\n" {
		t.Errorf("twist (hosts.allow): got %q, want the twist command's output", got)
	}
	if got, _ := readAllFrom("127.0.0.2", addr(7)); got != "from-the-server\n" {
		t.Errorf("no rule matches 127.0.0.2: want the server's output, got %q", got)
	}
	// twist in hosts.deny: the classic "send a message and close".
	if got, _ := readAllFrom("127.0.0.1", addr(8)); got != "denied 127.0.0.1\n" {
		t.Errorf("twist (hosts.deny): got %q, want the twist command's output", got)
	}
	d.waitSvcLog(`FAIL: twd libwrap from=(::ffff:)?127\.0\.0\.1\n`, 5*time.Second)
}

// TestTCPWrappersBypass: flags = NOLIBWRAP exempts one service, and
// -nolibwrap exempts them all.
func TestTCPWrappersBypass(t *testing.T) {
	ports := freePorts(t, 2)
	dir := newDir(t)
	writeFile(t, filepath.Join(dir, "hosts.allow"), "")
	writeFile(t, filepath.Join(dir, "hosts.deny"), "ALL : 127.0.0.5\n")
	conf := baseDefaults + daytimeConf("wrapped", "{{P0}}") + `
service daytime
{
	id          = exempt
	type        = INTERNAL UNLISTED
	flags       = NOLIBWRAP
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
}
`
	path := render(t, dir, conf, ports)
	files := []string{"-hosts-allow", filepath.Join(dir, "hosts.allow"), "-hosts-deny", filepath.Join(dir, "hosts.deny")}
	for _, tc := range []struct {
		name      string
		args      []string
		wrappedOK bool
	}{
		{"libwrap", files, false},
		{"-nolibwrap", append([]string{"-nolibwrap"}, files...), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(dir, "services.log"))
			os.Remove(filepath.Join(dir, "daemon.log"))
			d := start(t, dir, path, tc.args...)
			defer d.kill()
			got, _ := readAllFrom("127.0.0.5", fmt.Sprintf("127.0.0.1:%d", ports[0]))
			if ok := dayTimeRE.MatchString(got); ok != tc.wrappedOK {
				t.Errorf("wrapped service from 127.0.0.5: served=%v, want %v (%q)", ok, tc.wrappedOK, got)
			}
			if got, _ := readAllFrom("127.0.0.5", fmt.Sprintf("127.0.0.1:%d", ports[1])); !dayTimeRE.MatchString(got) {
				t.Errorf("NOLIBWRAP service must ignore hosts.deny: %q", got)
			}
			if !tc.wrappedOK {
				d.waitSvcLog(`FAIL: wrapped libwrap from=(::ffff:)?127\.0\.0\.5`, 5*time.Second)
			}
			if strings.Contains(readFile(d.svcLog), "FAIL: exempt") {
				t.Errorf("NOLIBWRAP service logged a refusal:\n%s", readFile(d.svcLog))
			}
		})
	}
	// As with libwrap, which reads the files for every request, a rule
	// appended to hosts.deny (what DenyHosts does) applies without SIGHUP.
	t.Run("edit", func(t *testing.T) {
		os.Remove(filepath.Join(dir, "daemon.log"))
		d := start(t, dir, path, files...)
		defer d.kill()
		addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
		if got, _ := readAllFrom("127.0.0.4", addr); !dayTimeRE.MatchString(got) {
			t.Fatalf("127.0.0.4 not listed yet: %q", got)
		}
		f, err := os.OpenFile(filepath.Join(dir, "hosts.deny"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("daytime : 127.0.0.4\n")
		f.Close()
		deadline := waitBound(5 * time.Second)
		for {
			got, _ := readAllFrom("127.0.0.4", addr)
			if got == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("appended hosts.deny rule not obeyed within 5s")
			}
			time.Sleep(200 * time.Millisecond)
		}
		d.waitSvcLog(`FAIL: wrapped libwrap from=(::ffff:)?127\.0\.0\.4`, 5*time.Second)
		d.waitLog(`tcp_wrappers tables changed`, 5*time.Second)
	})
}

// hm formats minutes since midnight as access_times wants them.
func acHM(m int) string {
	m = ((m % 1440) + 1440) % 1440
	return fmt.Sprintf("%d:%02d", m/60, m%60)
}

// TestAccessTimesWindows computes windows around the current local time:
// one that excludes now refuses with FAIL time, one that includes it
// (plain and wrapping past midnight) serves.
func TestAccessTimesWindows(t *testing.T) {
	now := time.Now()
	m := now.Hour()*60 + now.Minute()
	excl := acHM(m+120) + "-" + acHM(m+180)
	incl := acHM(m-60) + "-" + acHM(m+60)
	if m-60 < 0 || m+60 >= 1440 {
		incl = "0:00-23:59"
	}
	var wrap string
	if m >= 720 {
		wrap = acHM(m-60) + "-0:05"
	} else {
		wrap = "23:00-" + acHM(m+60)
	}
	// A wrapping window that leaves out the two hours around now; it
	// only wraps when now is not within an hour of midnight.
	wrapOut := acHM(m+60) + "-" + acHM(m-60)
	if m < 60 || m >= 1380 {
		wrapOut = excl
	}
	ports := freePorts(t, 4)
	dir := newDir(t)
	svc := func(id, port, times string) string {
		return `
service daytime
{
	id           = ` + id + `
	type         = INTERNAL UNLISTED
	socket_type  = stream
	protocol     = tcp
	port         = ` + port + `
	wait         = no
	access_times = ` + times + `
}
`
	}
	conf := baseDefaults + svc("outside", "{{P0}}", excl) + svc("inside", "{{P1}}", incl) + svc("wrapping", "{{P2}}", wrap) + svc("wrapout", "{{P3}}", wrapOut)
	d := start(t, dir, render(t, dir, conf, ports))
	t.Logf("now %s: outside %s, inside %s, wrapping %s, wrapout %s", acHM(m), excl, incl, wrap, wrapOut)
	for _, p := range []struct {
		id    string
		port  int
		times string
	}{{"outside", ports[0], excl}, {"wrapout", ports[3], wrapOut}} {
		if got, _ := readAllFrom("127.0.0.1", fmt.Sprintf("127.0.0.1:%d", p.port)); got != "" {
			t.Errorf("%s: now is outside access_times %s: want refusal, got %q", p.id, p.times, got)
		}
		d.waitSvcLog(`FAIL: `+p.id+` time from=(::ffff:)?127\.0\.0\.1`, 5*time.Second)
	}
	for i, id := range []string{"inside", "wrapping"} {
		if got, _ := readAllFrom("127.0.0.1", fmt.Sprintf("127.0.0.1:%d", ports[i+1])); !dayTimeRE.MatchString(got) {
			t.Errorf("%s: now is within access_times: want it served, got %q", id, got)
		}
	}
	if s := readFile(d.svcLog); strings.Contains(s, "FAIL: inside") || strings.Contains(s, "FAIL: wrapping") {
		t.Errorf("a window that includes now refused:\n%s", s)
	}
}

// TestMaxLoadRefuses uses the machine's real load: with max_load far
// below it, every request is refused with FAIL load.
func TestMaxLoadRefuses(t *testing.T) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Skipf("no /proc/loadavg: %v", err)
	}
	f := strings.Fields(string(b))
	load, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatalf("/proc/loadavg: %q", b)
	}
	// A margin over 0.01: the load moves while the test runs.
	if load < 0.05 {
		t.Skipf("1-minute load is %.2f, too close to max_load = 0.01 to expect a refusal", load)
	}
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := baseDefaults + `
service daytime
{
	id          = loaded
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	max_load    = 0.01
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	if got, _ := readAllFrom("127.0.0.1", fmt.Sprintf("127.0.0.1:%d", ports[0])); got != "" {
		t.Errorf("load %.2f >= max_load 0.01: want refusal, got %q", load, got)
	}
	d.waitSvcLog(`FAIL: loaded load from=(::ffff:)?127\.0\.0\.1`, 5*time.Second)
	d.waitLog(`ERROR: refused connect from (::ffff:)?127\.0\.0\.1 due to excessive load`, 5*time.Second)
}

// TestPerSourcePrefixGroupsClients: per_source_prefix = 24 64 puts
// 127.0.0.1 and 127.0.0.2 in one bucket of per_source = 1.
func TestPerSourcePrefixGroupsClients(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := baseDefaults + `
service hold
{
	type              = UNLISTED
	socket_type       = stream
	protocol          = tcp
	port              = {{P0}}
	wait              = no
	user              = ` + currentUser(t) + `
	server            = /bin/sleep
	server_args       = 30
	per_source        = 1
	per_source_prefix = 24 64
}
`
	d := start(t, dir, render(t, dir, conf, ports), "-killservers", "-grace", "1s")
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	acHold(t, "127.0.0.1", addr)
	d.waitSvcLog(`START: hold pid=\d+ from=(::ffff:)?127\.0\.0\.1\n`, 5*time.Second)
	acHold(t, "127.0.0.2", addr)
	d.waitSvcLog(`FAIL: hold per_source_limit from=(::ffff:)?127\.0\.0\.2\n`, 5*time.Second)
	// Another /24 is another bucket.
	acHold(t, "127.0.1.1", addr)
	d.waitSvcLog(`START: hold pid=\d+ from=(::ffff:)?127\.0\.1\.1\n`, 5*time.Second)
	if n := strings.Count(readFile(d.svcLog), "START: hold"); n != 2 {
		t.Errorf("%d servers started, want 2:\n%s", n, readFile(d.svcLog))
	}
}

// TestUDPRefusalsLoggedOnce: five refused datagrams from one source
// address and port within a minute give one FAIL record (xinetd's
// DGRAM_IGNORE_TIME), but every one is counted.
func TestUDPRefusalsLoggedOnce(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := baseDefaults + `
service daytime
{
	id          = dtu
	type        = INTERNAL UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P0}}
	wait        = yes
	only_from   = 127.0.0.2
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	srv := &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: ports[0]}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 5; i++ {
		if _, err := c.WriteToUDP([]byte("x"), srv); err != nil {
			t.Fatal(err)
		}
	}
	// The socket is served in order: once the allowed client's answer
	// (and START) is there, all five refusals have been decided.
	ok, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	ok.WriteToUDP([]byte("x"), srv)
	ok.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	if n, _, err := ok.ReadFromUDP(buf); err != nil || !strings.Contains(string(buf[:n]), ":") {
		t.Fatalf("allowed client got %q, %v", buf[:n], err)
	}
	d.waitSvcLog(`START: dtu pid=0 from=(::ffff:)?127\.0\.0\.2`, 5*time.Second)
	if n := acCount(readFile(d.svcLog), `FAIL: dtu address from=(::ffff:)?127\.0\.0\.1$`); n != 1 {
		t.Errorf("%d FAIL records for 5 refused datagrams from one source, want 1:\n%s", n, readFile(d.svcLog))
	}
	// A second source port is a new source.
	c2, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.WriteToUDP([]byte("x"), srv)
	waitIn(t, func() string { return readFile(d.svcLog) }, `(?s)(FAIL: dtu address from=(::ffff:)?127\.0\.0\.1\n.*){2}`, 5*time.Second)
	pd := d.acDump()
	if ctr, found := acCounter(pd, "dtu"); !found || ctr.Refused["address"] != 6 || ctr.Served != 1 {
		t.Errorf("dump counters for dtu = %+v (found %v), want refused address = 6, served = 1", ctr, found)
	}
}

// TestGlobalProcessLimit: -limit 2 counts servers of every service.
func TestGlobalProcessLimit(t *testing.T) {
	ports := freePorts(t, 2)
	dir := newDir(t)
	hold := func(id, port string) string {
		return `
service ` + id + `
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = ` + port + `
	wait        = no
	user        = ` + currentUser(t) + `
	server      = /bin/sleep
	server_args = 30
}
`
	}
	conf := baseDefaults + hold("h1", "{{P0}}") + hold("h2", "{{P1}}")
	d := start(t, dir, render(t, dir, conf, ports), "-limit", "2", "-killservers", "-grace", "1s")
	a1, a2 := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	acHold(t, "127.0.0.1", a1)
	d.waitSvcLog(`START: h1 pid=\d+`, 5*time.Second)
	acHold(t, "127.0.0.1", a2)
	d.waitSvcLog(`START: h2 pid=\d+`, 5*time.Second)
	acHold(t, "127.0.0.1", a1)
	d.waitSvcLog(`FAIL: h1 process_limit from=(::ffff:)?127\.0\.0\.1`, 5*time.Second)
	acHold(t, "127.0.0.1", a2)
	d.waitSvcLog(`FAIL: h2 process_limit from=(::ffff:)?127\.0\.0\.1`, 5*time.Second)
	if n := strings.Count(readFile(d.svcLog), "START: "); n != 2 {
		t.Errorf("%d servers started under -limit 2:\n%s", n, readFile(d.svcLog))
	}
	pd := d.acDump()
	if pd.ProcessLimit != 2 || pd.RunningServers != 2 {
		t.Errorf("dump: process_limit = %d, running_servers = %d; want 2 and 2", pd.ProcessLimit, pd.RunningServers)
	}
}

// TestSensorForeverSurvivesReload: an address a SENSOR listed forever
// stays refused by every service after SIGHUP, and the dump shows it.
func TestSensorForeverSurvivesReload(t *testing.T) {
	ports := freePorts(t, 2)
	dir := newDir(t)
	conf := baseDefaults + daytimeConf("dt", "{{P0}}") + `
service trap
{
	type        = INTERNAL UNLISTED
	flags       = SENSOR
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	deny_time   = FOREVER
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	dt := fmt.Sprintf("127.0.0.1:%d", ports[0])
	readAllFrom("127.0.0.7", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	d.waitLog(`CRITICAL: \d+ \{\w+\} Adding (::ffff:)?127\.0\.0\.7 to the global_no_access list for -1 minutes`, 5*time.Second)
	d.signal(syscall.SIGHUP)
	d.waitLog(`Reconfigured: new=0 old=2 dropped=0`, 10*time.Second)
	if got, _ := readAllFrom("127.0.0.7", dt); got != "" {
		t.Errorf("listed address served after SIGHUP: %q", got)
	}
	d.waitSvcLog(`FAIL: dt address from=(::ffff:)?127\.0\.0\.7`, 5*time.Second)
	if got, _ := readAllFrom("127.0.0.1", dt); !dayTimeRE.MatchString(got) {
		t.Errorf("others must still be served: %q", got)
	}
	pd := d.acDump()
	found := false
	for _, e := range pd.DenyList {
		if e.Addr == "127.0.0.7" {
			found = true
			if !e.Expires.IsZero() {
				t.Errorf("deny_time = FOREVER listed until %v", e.Expires)
			}
		}
	}
	if !found {
		t.Errorf("127.0.0.7 missing from the dump's deny list: %+v", pd.DenyList)
	}
	if !regexp.MustCompile(`(?m)^gxinetd deny list:\n\t127\.0\.0\.7 forever$`).MatchString(readFile(filepath.Join(dir, "xinetd.dump"))) {
		t.Errorf("dump text lacks the forever entry:\n%s", readFile(filepath.Join(dir, "xinetd.dump")))
	}
}
