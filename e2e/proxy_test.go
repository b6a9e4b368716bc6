package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

// The PROXY protocol tests speak the protocol themselves (the haproxy
// tests in haproxy_test.go run the real balancer): headers the way the
// specification writes them, sent from 127.0.0.1, the "balancer".

func ppV1(src, dst string) []byte {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	fam := "TCP4"
	if s.Addr().Is6() {
		fam = "TCP6"
	}
	return []byte(fmt.Sprintf("PROXY %s %s %s %d %d\r\n", fam, s.Addr(), d.Addr(), s.Port(), d.Port()))
}

func ppV2(src, dst string) []byte {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21")
	if s.Addr().Is4() {
		b = append(b, 0x11, 0, 12)
		a, c := s.Addr().As4(), d.Addr().As4()
		b = append(append(b, a[:]...), c[:]...)
	} else {
		b = append(b, 0x21, 0, 36)
		a, c := s.Addr().As16(), d.Addr().As16()
		b = append(append(b, a[:]...), c[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, s.Port())
	return binary.BigEndian.AppendUint16(b, d.Port())
}

var ppV2Local = []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")

// ppExchange connects from src to addr, writes each piece (pausing
// between them), half-closes and reads to EOF.
func ppExchange(t *testing.T, src, addr string, pause time.Duration, pieces ...[]byte) string {
	t.Helper()
	c, err := dialFrom(src, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	c.(*net.TCPConn).SetNoDelay(true)
	for i, p := range pieces {
		if i > 0 && pause > 0 {
			time.Sleep(pause)
		}
		if _, err := c.Write(p); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	return string(b)
}

func envOf(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

// TestProxyProtocolIn: behind a balancer, the client its header names is
// who the server, the logs and the builtins see, on the raw accept path
// (a server), the Go accept path (echo), with a header that arrives in
// pieces, and with a v2 LOCAL header (a health check: the connection's
// own addresses). The server sees exactly the client's bytes.
func TestProxyProtocolIn(t *testing.T) {
	ports := freePorts(t, 4)
	dir := newDir(t)
	lgScript(t, filepath.Join(dir, "envcat.sh"), "env\necho ---\nexec cat")
	user := currentUser(t)
	conf := baseDefaults + `
service envcat
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P0}}
	wait           = no
	user           = ` + user + `
	server         = {{DIR}}/envcat.sh
	proxy_protocol = v1 v2
	proxy_from     = 127.0.0.1
}
service echo
{
	id             = echo-pp
	type           = INTERNAL UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P1}}
	wait           = no
	proxy_protocol = v2
	proxy_from     = 127.0.0.0/8
	log_type       = FILE {{DIR}}/echo.json
	log_format     = json
	log_on_success = PID HOST
}
service envcat-banner
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P2}}
	wait           = no
	user           = ` + user + `
	server         = {{DIR}}/envcat.sh
	banner         = {{DIR}}/banner.txt
	proxy_protocol = v1
	proxy_from     = 127.0.0.1
}
`
	if err := os.WriteFile(filepath.Join(dir, "banner.txt"), []byte("WELCOME\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, render(t, dir, conf, ports))
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }

	for _, tc := range []struct {
		name   string
		hdr    []byte
		pause  time.Duration
		split  int
		client string
		port   string
		local  string
	}{
		{"v1 ipv4", ppV1("192.0.2.10:40001", "198.51.100.1:143"), 0, 0, "192.0.2.10", "40001", "198.51.100.1"},
		{"v2 ipv4", ppV2("192.0.2.11:40002", "198.51.100.1:143"), 0, 0, "192.0.2.11", "40002", "198.51.100.1"},
		{"v2 ipv6", ppV2("[2001:db8::7]:40003", "[2001:db8::1]:143"), 0, 0, "2001:db8::7", "40003", "2001:db8::1"},
		{"v1 in pieces", ppV1("192.0.2.12:40004", "198.51.100.1:143"), 300 * time.Millisecond, 9, "192.0.2.12", "40004", "198.51.100.1"},
		{"v2 in pieces", ppV2("192.0.2.13:40005", "198.51.100.1:143"), 300 * time.Millisecond, 14, "192.0.2.13", "40005", "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := []byte("PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\nclient bytes\n")
			var out string
			if tc.split > 0 {
				out = ppExchange(t, "127.0.0.1", addr(0), tc.pause, tc.hdr[:tc.split], tc.hdr[tc.split:], payload)
			} else {
				out = ppExchange(t, "127.0.0.1", addr(0), 0, append(append([]byte(nil), tc.hdr...), payload...))
			}
			env, echoed, _ := strings.Cut(out, "---\n")
			e := envOf(env)
			for k, want := range map[string]string{"REMOTE_HOST": tc.client, "REMOTE_PORT": tc.port, "TCPREMOTEIP": tc.client,
				"TCPREMOTEPORT": tc.port, "TCPLOCALIP": tc.local, "LOCAL_PORT": "143"} {
				if e[k] != want {
					t.Errorf("%s = %q, want %q\n%s", k, e[k], want, env)
				}
			}
			if echoed != string(payload) {
				t.Errorf("server read %q, want exactly the client's %q", echoed, payload)
			}
			d.waitSvcLog(`START: envcat pid=\d+ from=`+strings.ReplaceAll(tc.client, ".", `\.`)+` proxy=(::ffff:)?127\.0\.0\.1\n`, 5*time.Second)
		})
	}

	// Go's accept path (the stream builtins), logged as JSON.
	if got := ppExchange(t, "127.0.0.1", addr(1), 0, append(ppV2("192.0.2.20:5000", "198.51.100.2:7"), "ping\n"...)); got != "ping\n" {
		t.Errorf("echo through a header: %q", got)
	}
	recs := lgWaitRecords(t, filepath.Join(dir, "echo.json"), "json", lgRecord{"event": "START", "remote": "192.0.2.20"}, 5*time.Second)
	if r := lgFind(recs, lgRecord{"event": "START", "remote": "192.0.2.20"})[0]; !lgIsLoopback(r["proxy"]) || r["remote_port"] != "5000" || r["local"] != "198.51.100.2" || r["pid"] != "0" {
		t.Errorf("echo START record: %v", r)
	}
	// A header still on its way when the connection is accepted.
	if got := ppExchange(t, "127.0.0.1", addr(1), 300*time.Millisecond, ppV2("192.0.2.21:5001", "198.51.100.2:7")[:7], ppV2("192.0.2.21:5001", "198.51.100.2:7")[7:], []byte("pong\n")); got != "pong\n" {
		t.Errorf("echo through a header in pieces: %q", got)
	}
	recs = lgWaitRecords(t, filepath.Join(dir, "echo.json"), "json", lgRecord{"event": "START", "remote": "192.0.2.21"}, 5*time.Second)
	if r := lgFind(recs, lgRecord{"event": "START", "remote": "192.0.2.21"})[0]; !lgIsLoopback(r["proxy"]) {
		t.Errorf("echo START record: %v", r)
	}

	// A health check (v2 LOCAL): the connection's own addresses.
	out := ppExchange(t, "127.0.0.1", addr(0), 0, append(append([]byte(nil), ppV2Local...), "hc\n"...))
	env, echoed, _ := strings.Cut(out, "---\n")
	if e := envOf(env); e["TCPREMOTEIP"] != "127.0.0.1" || e["LOCAL_PORT"] != fmt.Sprint(ports[0]) || echoed != "hc\n" {
		t.Errorf("LOCAL header: env %v, echoed %q", e, echoed)
	}
	d.waitSvcLog(`START: envcat pid=\d+ from=(::ffff:)?127\.0\.0\.1\n`, 5*time.Second)

	// With a banner (the raw path hands the connection to the net.Conn
	// path after the header): the banner goes to the client, then the
	// server runs for the header's client.
	out = ppExchange(t, "127.0.0.1", addr(2), 0, append(ppV1("192.0.2.30:6000", "198.51.100.3:143"), "b\n"...))
	if !strings.HasPrefix(out, "WELCOME\n") || envOf(out)["REMOTE_HOST"] != "192.0.2.30" || !strings.HasSuffix(out, "---\nb\n") {
		t.Errorf("banner service: %q", out)
	}
}

// TestProxyProtocolRefusals: a balancer outside proxy_from, no header in
// time, every kind of bad header: each refused with its own reason in
// the FAIL record, the JSON log and the metrics, and nothing started.
func TestProxyProtocolRefusals(t *testing.T) {
	ports := freePorts(t, 3)
	dir := newDir(t)
	lgScript(t, filepath.Join(dir, "started.sh"), "touch "+dir+"/started; echo served")
	user := currentUser(t)
	conf := `
defaults
{
	log_type        = FILE {{LOG}}
	log_on_success  = PID HOST EXIT
	log_on_failure  = HOST
	cps             = 0 0
	metrics         = 127.0.0.1:{{P2}}
}
service untrusted
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P0}}
	wait           = no
	user           = ` + user + `
	server         = {{DIR}}/started.sh
	proxy_protocol = v1 v2
	proxy_from     = 127.0.0.2
}
service strict
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P1}}
	wait           = no
	user           = ` + user + `
	server         = {{DIR}}/started.sh
	proxy_protocol = v1
	proxy_from     = 127.0.0.1
	proxy_timeout  = 1
	log_type       = FILE {{DIR}}/strict.json
	log_format     = json
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }

	// Not in proxy_from: refused at once, header or not, LOCAL included.
	// (From 127.0.0.3: each source has its own refusal-log budget.)
	for _, in := range [][]byte{ppV1("192.0.2.1:1", "192.0.2.2:2"), ppV2Local, []byte("hello\n")} {
		start := time.Now()
		if got := ppExchange(t, "127.0.0.3", addr(0), 0, in); got != "" {
			t.Errorf("untrusted balancer served: %q", got)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("refusing an untrusted peer took %v", el)
		}
	}
	d.waitSvcLog(`(?s)(FAIL: untrusted proxy_untrusted from=(::ffff:)?127\.0\.0\.3\n.*){3}`, 5*time.Second)

	// No header: after proxy_timeout. A trickle: the same.
	c, err := dialFrom("127.0.0.1", addr(1))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(15 * time.Second))
	c.Write([]byte("PROX"))
	b, _ := io.ReadAll(c) // the daemon closes it
	c.Close()
	if len(b) != 0 {
		t.Errorf("timed-out connection got %q", b)
	}
	// Bad headers, each refused at once.
	for _, in := range []string{
		"GET / HTTP/1.0\r\n\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 70000 1\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY UNKNOWN " + strings.Repeat("x", 120) + "\r\n",
		string(ppV2("192.0.2.1:1", "192.0.2.2:2")), // v2 where only v1 is accepted
		"PROXY TCP4 192.0.2.1",                     // truncated: the client closes
	} {
		if got := ppExchange(t, "127.0.0.1", addr(1), 0, []byte(in)); got != "" {
			t.Errorf("%q was served: %q", in, got)
		}
	}
	recs := lgWaitRecords(t, filepath.Join(dir, "strict.json"), "json", lgRecord{"event": "FAIL", "reason": "proxy_timeout"}, 10*time.Second)
	deadline := waitBound(10 * time.Second)
	for len(lgFind(recs, lgRecord{"event": "FAIL", "reason": "proxy_malformed"})) < 7 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		recs = lgRecords(t, filepath.Join(dir, "strict.json"), "json")
	}
	if n := len(lgFind(recs, lgRecord{"event": "FAIL", "reason": "proxy_malformed"})); n != 7 {
		t.Errorf("%d proxy_malformed records, want 7:\n%s", n, readFile(filepath.Join(dir, "strict.json")))
	}
	for _, r := range lgFind(recs, lgRecord{"event": "FAIL"}) {
		if !lgIsLoopback(r["remote"]) {
			t.Errorf("a refusal before a valid header names the connection's own peer: %v", r)
		}
	}
	d.waitLog(`bad PROXY protocol header from (::ffff:)?127\.0\.0\.1: proxyproto: v1: bad port`, 5*time.Second)
	d.waitLog(`bad PROXY protocol header from (::ffff:)?127\.0\.0\.1: proxyproto: connection closed before a complete header`, 5*time.Second)

	status, body := lgScrape(t, "127.0.0.1", addr(2))
	if status != 200 {
		t.Fatalf("metrics: %d", status)
	}
	for series, want := range map[string]int{
		`gxinetd_refused_total{service="untrusted",reason="proxy_untrusted"}`: 3,
		`gxinetd_refused_total{service="strict",reason="proxy_timeout"}`:      1,
		`gxinetd_refused_total{service="strict",reason="proxy_malformed"}`:    7,
		`gxinetd_connections_total{service="strict"}`:                         0,
	} {
		if got := lgMetric(body, series); got != want {
			t.Errorf("%s = %d, want %d", series, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
		t.Error("a server was started for a refused connection")
	}
	if strings.Contains(readFile(d.svcLog), "START:") {
		t.Errorf("START records for refused connections:\n%s", readFile(d.svcLog))
	}
}

// TestProxyProtocolAccess: only_from, per_source, tcp_wrappers and
// SENSOR judge the client the header names, not the balancer.
func TestProxyProtocolAccess(t *testing.T) {
	ports := freePorts(t, 4)
	dir := newDir(t)
	lgScript(t, filepath.Join(dir, "hold.sh"), "echo hello\nexec sleep 30")
	user := currentUser(t)
	deny := filepath.Join(dir, "hosts.deny")
	if err := os.WriteFile(deny, []byte("ALL: 203.0.113.66\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := baseDefaults + `
service daytime
{
	type           = INTERNAL UNLISTED
	id             = only
	socket_type    = stream
	protocol       = tcp
	port           = {{P0}}
	wait           = no
	flags          = NOLIBWRAP
	only_from      = 192.0.2.0/24
	proxy_protocol = v1 v2
	proxy_from     = 127.0.0.1
}
service hold
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P1}}
	wait           = no
	user           = ` + user + `
	server         = {{DIR}}/hold.sh
	per_source     = 1
	libwrap        = hold
	proxy_protocol = v1
	proxy_from     = 127.0.0.1
}
service trap
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P2}}
	wait           = no
	flags          = SENSOR NOLIBWRAP
	deny_time      = 10
	proxy_protocol = v1
	proxy_from     = 127.0.0.1
}
`
	d := start(t, dir, render(t, dir, conf, ports), "-hosts-deny", deny, "-hosts-allow", filepath.Join(dir, "hosts.allow"))
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }

	// only_from: the header's client decides.
	if got := ppExchange(t, "127.0.0.1", addr(0), 0, ppV1("192.0.2.5:1000", "198.51.100.1:13")); !dayTimeRE.MatchString(got) {
		t.Errorf("client in only_from: %q", got)
	}
	if got := ppExchange(t, "127.0.0.1", addr(0), 0, ppV2("203.0.113.9:1000", "198.51.100.1:13")); got != "" {
		t.Errorf("client outside only_from served: %q", got)
	}
	d.waitSvcLog(`FAIL: only address from=203\.0\.113\.9\n`, 5*time.Second)

	// per_source: one server per client, however many share the balancer.
	hold := func(src string) (net.Conn, string) {
		c, err := dialFrom("127.0.0.1", addr(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(ppV1(src, "198.51.100.1:143"))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return c, line
	}
	if _, line := hold("192.0.2.40:1"); line != "hello\n" {
		t.Fatalf("first connection of a client: %q", line)
	}
	d.waitSvcLog(`START: hold pid=\d+ from=192\.0\.2\.40 proxy=(::ffff:)?127\.0\.0\.1\n`, 5*time.Second)
	if _, line := hold("192.0.2.40:2"); line != "" {
		t.Errorf("second connection of the same client: %q", line)
	}
	d.waitSvcLog(`FAIL: hold per_source_limit from=192\.0\.2\.40\n`, 5*time.Second)
	if _, line := hold("192.0.2.41:3"); line != "hello\n" {
		t.Errorf("another client behind the same balancer: %q", line)
	}
	// tcp_wrappers: hosts.deny names the header's client.
	if _, line := hold("203.0.113.66:4"); line != "" {
		t.Errorf("client in hosts.deny: %q", line)
	}
	d.waitSvcLog(`FAIL: hold libwrap from=203\.0\.113\.66\n`, 5*time.Second)

	// SENSOR: the client the header names goes on the deny list, and is
	// refused everywhere; the balancer is not.
	ppExchange(t, "127.0.0.1", addr(2), 0, ppV1("192.0.2.99:1", "198.51.100.1:23"))
	d.waitSvcLog(`FAIL: trap address from=192\.0\.2\.99\n`, 5*time.Second)
	if got := ppExchange(t, "127.0.0.1", addr(0), 0, ppV1("192.0.2.99:2", "198.51.100.1:13")); got != "" {
		t.Errorf("sensor-listed client served: %q", got)
	}
	d.waitSvcLog(`FAIL: only address from=192\.0\.2\.99\n`, 5*time.Second)
	if got := ppExchange(t, "127.0.0.1", addr(0), 0, ppV1("192.0.2.98:2", "198.51.100.1:13")); !dayTimeRE.MatchString(got) {
		t.Errorf("another client of the same balancer after the sensor: %q", got)
	}
}

// TestProxyProtocolIdent: ident asks the header's client, about the
// ports the client knows (its own and the balancer's front end), from an
// address of this host; a client with no ident server gets NOID.
func TestProxyProtocolIdent(t *testing.T) {
	needRoot(t)
	testnet.Lock(t, "port-113")
	good := lgIdentOn(t, "127.0.0.7", "")
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := `
defaults
{
	log_type       = FILE {{LOG}}
	log_on_success = PID HOST USERID
	cps            = 0 0
}
service daytime
{
	id             = idonly
	type           = INTERNAL UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P0}}
	wait           = no
	flags          = IDONLY
	ident_timeout  = 2
	proxy_protocol = v1
	proxy_from     = 127.0.0.1
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	if got := ppExchange(t, "127.0.0.1", addr, 0, ppV1("127.0.0.7:5555", "198.51.100.1:1313")); !dayTimeRE.MatchString(got) {
		t.Errorf("client with an ident answer: %q", got)
	}
	d.waitSvcLog(`USERID: idonly UNIX : alice\n`, 5*time.Second)
	if !good.seen("5555,1313") {
		t.Errorf("ident query for the client's ports not seen; got %v", good.queries)
	}
	// No ident server at the client: refused with the reason.
	if got := ppExchange(t, "127.0.0.1", addr, 0, ppV1("127.0.0.8:5556", "198.51.100.1:1313")); got != "" {
		t.Errorf("IDONLY client without ident served: %q", got)
	}
	d.waitSvcLog(`NOID: idonly 127\.0\.0\.8 no server\n`, 5*time.Second)
}

// TestRedirectProxyProtocolOut: redirect_proxy_protocol = v1/v2 sends the
// backend a header naming the client (the header's, when the connection
// came with one) before any of its bytes; half-close still works.
func TestRedirectProxyProtocolOut(t *testing.T) {
	ports := freePorts(t, 3)
	be, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	bePort := be.Addr().(*net.TCPAddr).Port
	got := make(chan string, 8)
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				b, _ := io.ReadAll(c) // to the client's half-close
				got <- string(b)
				io.WriteString(c, "answer after EOF\n")
			}(c)
		}
	}()
	dir := newDir(t)
	conf := baseDefaults + fmt.Sprintf(`
service out1
{
	type                    = UNLISTED
	socket_type             = stream
	protocol                = tcp
	port                    = {{P0}}
	wait                    = no
	user                    = %[2]s
	redirect                = 127.0.0.1 %[1]d
	redirect_proxy_protocol = v1
}
service out2
{
	type                    = UNLISTED
	socket_type             = stream
	protocol                = tcp
	port                    = {{P1}}
	wait                    = no
	user                    = %[2]s
	redirect                = 127.0.0.1 %[1]d
	redirect_proxy_protocol = v2
}
service inout
{
	type                    = UNLISTED
	socket_type             = stream
	protocol                = tcp
	port                    = {{P2}}
	wait                    = no
	user                    = %[2]s
	redirect                = 127.0.0.1 %[1]d
	redirect_proxy_protocol = v1
	proxy_protocol          = v2
	proxy_from              = 127.0.0.1
}
`, bePort, currentUser(t))
	start(t, dir, render(t, dir, conf, ports))
	wait := func() string {
		select {
		case s := <-got:
			return s
		case <-time.After(20 * time.Second):
			t.Fatal("backend got nothing")
		}
		return ""
	}
	// v1, a direct client.
	c, err := dialFrom("127.0.0.1", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	cport := c.LocalAddr().(*net.TCPAddr).Port
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "request\n")
	c.(*net.TCPConn).CloseWrite()
	answer, _ := io.ReadAll(c)
	c.Close()
	if s, want := wait(), fmt.Sprintf("PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\nrequest\n", cport, ports[0]); s != want {
		t.Errorf("v1 backend read %q, want %q", s, want)
	}
	if string(answer) != "answer after EOF\n" {
		t.Errorf("client got %q after its half-close", answer)
	}
	// v2, a direct client.
	c, err = dialFrom("127.0.0.1", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if err != nil {
		t.Fatal(err)
	}
	cport = c.LocalAddr().(*net.TCPAddr).Port
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "x")
	c.(*net.TCPConn).CloseWrite()
	io.ReadAll(c)
	c.Close()
	if s, want := wait(), string(ppV2(fmt.Sprintf("127.0.0.1:%d", cport), fmt.Sprintf("127.0.0.1:%d", ports[1])))+"x"; s != want {
		t.Errorf("v2 backend read %q, want %q", s, want)
	}
	// In and out: the backend hears of the header's client.
	out := ppExchange(t, "127.0.0.1", fmt.Sprintf("127.0.0.1:%d", ports[2]), 0, append(ppV2("192.0.2.77:4444", "198.51.100.9:25"), "mail\n"...))
	if s, want := wait(), "PROXY TCP4 192.0.2.77 198.51.100.9 4444 25\r\nmail\n"; s != want {
		t.Errorf("in-and-out backend read %q, want %q", s, want)
	}
	if out != "answer after EOF\n" {
		t.Errorf("in-and-out client got %q", out)
	}
}

// TestProxyProtocolReload: SIGHUP applies changed PROXY attributes to the
// running socket: a balancer added to proxy_from is trusted at once, and
// a service that stops taking a header serves its clients directly.
func TestProxyProtocolReload(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := func(pp string) string {
		return baseDefaults + `
service daytime
{
	id          = dt
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
` + pp + `}
`
	}
	path := render(t, dir, conf("\tproxy_protocol = v1\n\tproxy_from = 127.0.0.2\n"), ports)
	d := start(t, dir, path)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	if got := ppExchange(t, "127.0.0.1", addr, 0, ppV1("192.0.2.1:1", "198.51.100.1:13")); got != "" {
		t.Fatalf("untrusted balancer served: %q", got)
	}
	d.waitSvcLog(`FAIL: dt proxy_untrusted from=(::ffff:)?127\.0\.0\.1\n`, 5*time.Second)

	render(t, dir, conf("\tproxy_protocol = v1\n\tproxy_from = 127.0.0.2 127.0.0.1\n"), ports)
	d.signal(syscall.SIGHUP)
	d.waitLog(`Reconfigured: new=0 old=1 dropped=0`, 10*time.Second)
	if got := ppExchange(t, "127.0.0.1", addr, 0, ppV1("192.0.2.1:1", "198.51.100.1:13")); !dayTimeRE.MatchString(got) {
		t.Fatalf("balancer added to proxy_from: %q", got)
	}
	d.waitSvcLog(`START: dt pid=0 from=192\.0\.2\.1 proxy=(::ffff:)?127\.0\.0\.1\n`, 5*time.Second)

	render(t, dir, conf(""), ports)
	d.signal(syscall.SIGHUP)
	d.waitLog(`(?s)(Reconfigured: new=0 old=1 dropped=0.*){2}`, 10*time.Second)
	if got := ppExchange(t, "127.0.0.1", addr, 0); !dayTimeRE.MatchString(got) {
		t.Fatalf("without proxy_protocol a direct client is served: %q", got)
	}
}

// TestUpgradeDrainsRelaySession: a redirect session runs in the relay,
// with no goroutine of the request left; after an upgrade the old daemon
// must still count it, and stay until it ends.
func TestUpgradeDrainsRelaySession(t *testing.T) {
	ports := freePorts(t, 4)
	dir := newDir(t)
	bin := upBinary(t, dir)
	u := upStart(t, bin, dir, render(t, dir, upConf(echoBackend(t)), ports))
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[3]), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	say := func(line string) {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, line); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(line))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != line {
			t.Fatalf("sent %q, got %q, %v", line, buf, err)
		}
	}
	say("before\n")
	old := u.pid()
	u.mustUpgrade("-drain", "30s")
	// The old daemon has only this session left: it must not go.
	time.Sleep(1500 * time.Millisecond)
	if !upAlive(old) {
		t.Fatalf("the old daemon exited with a redirect session open:\n%s", u.log())
	}
	say("after\n")
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Errorf("end of session: %q %v", rest, err)
	}
	if !upGone(old, 10*time.Second) {
		t.Fatalf("the old daemon did not exit when its session ended:\n%s", u.log())
	}
}

// TestProxyProtocolReadWithHeader: the stream builtins that read what the
// client sends (echo) take the header and the client's first bytes in
// one read, and get those bytes first, whatever the header says (a v2
// LOCAL health check too); daytime reads and drops them, also when the
// header comes in pieces after part of it was read; tcpmux, which hands
// the connection on after its request line, reads only the header, so
// the server it starts gets every byte after the line.
func TestProxyProtocolReadWithHeader(t *testing.T) {
	ports := freePorts(t, 4)
	dir := newDir(t)
	user := currentUser(t)
	conf := baseDefaults + `
service echo
{
	type           = INTERNAL UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P0}}
	wait           = no
	proxy_protocol = v1 v2
	proxy_from     = 127.0.0.1
}
service daytime
{
	type           = INTERNAL UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P1}}
	wait           = no
	proxy_protocol = v2
	proxy_from     = 127.0.0.1
}
service daytime
{
	id             = daytime-banner
	type           = INTERNAL UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P3}}
	wait           = no
	banner         = {{DIR}}/banner.txt
	proxy_protocol = v2
	proxy_from     = 127.0.0.1
}
service tcpmux
{
	type           = INTERNAL UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P2}}
	wait           = no
	proxy_protocol = v2
	proxy_from     = 127.0.0.1
}
service muxplus
{
	type        = UNLISTED TCPMUXPLUS
	socket_type = stream
	protocol    = tcp
	wait        = no
	user        = ` + user + `
	server      = /bin/cat
}
`
	if err := os.WriteFile(filepath.Join(dir, "banner.txt"), []byte("WELCOME\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir, render(t, dir, conf, ports))
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	join := func(b ...[]byte) []byte {
		var out []byte
		for _, p := range b {
			out = append(out, p...)
		}
		return out
	}
	long := strings.Repeat("0123456789abcdef", 64) + "\n" // more than the header's buffer
	for _, tc := range []struct {
		name   string
		pieces [][]byte
		want   string
	}{
		{"v2 and data", [][]byte{join(ppV2("192.0.2.50:7000", "198.51.100.5:7"), []byte("one\n"))}, "one\n"},
		{"v1 and data", [][]byte{join(ppV1("192.0.2.51:7001", "198.51.100.5:7"), []byte("two\n"))}, "two\n"},
		{"v2 and more than a buffer", [][]byte{join(ppV2("192.0.2.52:7002", "198.51.100.5:7"), []byte(long))}, long},
		{"LOCAL and data", [][]byte{join(ppV2Local, []byte("hc\n"))}, "hc\n"},
		{"pieces then data", [][]byte{ppV2("192.0.2.53:7003", "198.51.100.5:7")[:9], join(ppV2("192.0.2.53:7003", "198.51.100.5:7")[9:], []byte("three\n"))}, "three\n"},
	} {
		if got := ppExchange(t, "127.0.0.1", addr(0), 300*time.Millisecond, tc.pieces...); got != tc.want {
			t.Errorf("echo, %s: %q, want %q", tc.name, got, tc.want)
		}
	}
	d.waitSvcLog(`START: echo pid=0 from=192\.0\.2\.53\b`, 5*time.Second)

	h := ppV2("192.0.2.60:8000", "198.51.100.6:13")
	for _, pieces := range [][][]byte{{join(h, []byte("ignored\n"))}, {h[:5], h[5:20], h[20:]}} {
		if got := ppExchange(t, "127.0.0.1", addr(1), 300*time.Millisecond, pieces...); !strings.HasSuffix(got, "\r\n") || len(got) < 10 {
			t.Errorf("daytime after a header in %d pieces: %q", len(pieces), got)
		}
	}
	if n := strings.Count(readFile(d.svcLog), "START: daytime pid=0 from=192.0.2.60"); n != 2 {
		d.waitSvcLog(`(?s)START: daytime pid=0 from=192\.0\.2\.60\b.*START: daytime pid=0 from=192\.0\.2\.60\b`, 5*time.Second)
	}

	// With a banner: the header read with what follows it, then the
	// banner and the time.
	if got := ppExchange(t, "127.0.0.1", addr(3), 0, join(ppV2("192.0.2.61:8001", "198.51.100.6:13"), []byte("ignored\n"))); !strings.HasPrefix(got, "WELCOME\n") || !strings.HasSuffix(got, "\r\n") || len(got) < 18 {
		t.Errorf("daytime with a banner after a header: %q", got)
	}
	d.waitSvcLog(`START: daytime-banner pid=0 from=192\.0\.2\.61\b`, 5*time.Second)

	if got := ppExchange(t, "127.0.0.1", addr(2), 0, join(ppV2("192.0.2.70:9000", "198.51.100.7:1"), []byte("muxplus\r\nafter the name\n"))); got != "+Go\r\nafter the name\n" {
		t.Errorf("tcpmux behind a header: %q, want the server to get every byte after the name", got)
	}
	d.waitSvcLog(`START: muxplus pid=\d+ from=192\.0\.2\.70\b`, 5*time.Second)
}

// TestProxyProtocolSilentPeer: a peer that connects and sends nothing.
// The listeners defer the accept (TCP_DEFER_ACCEPT) until the first
// bytes, so the kernel holds such a connection before the daemon sees
// it; that hold is part of proxy_timeout, not added to it. A silent
// balancer is refused proxy_timeout after its handshake with
// proxy_timeout (2 s, 3 s: the daemon waited the kernel's 3 s and then
// its own 2 or 3 s, 5 and 6 s in all); a silent peer outside proxy_from
// is refused as proxy_untrusted when the kernel hands it over, within
// proxy_timeout; a header sent after the kernel's hold but within
// proxy_timeout is served. Nothing is started for the refused ones.
func TestProxyProtocolSilentPeer(t *testing.T) {
	ports := freePorts(t, 4)
	dir := newDir(t)
	lgScript(t, filepath.Join(dir, "started.sh"), "touch "+dir+"/started; echo served")
	lgScript(t, filepath.Join(dir, "late.sh"), "echo served")
	user := currentUser(t)
	conf := baseDefaults + `
service spawned
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P0}}
	wait           = no
	user           = ` + user + `
	server         = {{DIR}}/started.sh
	proxy_protocol = v2
	proxy_from     = 127.0.0.1
	proxy_timeout  = 2
}
service echo
{
	type           = INTERNAL UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P1}}
	wait           = no
	proxy_protocol = v1 v2
	proxy_from     = 127.0.0.1
}
service untrusted
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P2}}
	wait           = no
	user           = ` + user + `
	server         = {{DIR}}/started.sh
	proxy_protocol = v2
	proxy_from     = 127.0.0.2
	proxy_timeout  = 2
}
service late
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P3}}
	wait           = no
	user           = ` + user + `
	server         = {{DIR}}/late.sh
	proxy_protocol = v2
	proxy_from     = 127.0.0.1
	proxy_timeout  = 6
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }

	type result struct {
		got     string
		elapsed time.Duration
		err     error
	}
	// silent connects, sends nothing (or, after wait, header) and reads
	// until the daemon closes the connection.
	probe := func(port int, wait time.Duration, header []byte) <-chan result {
		ch := make(chan result, 1)
		go func() {
			c, err := dialFrom("127.0.0.1", addr(port))
			if err != nil {
				ch <- result{err: err}
				return
			}
			defer c.Close()
			begin := time.Now()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if header != nil {
				time.Sleep(wait)
				if _, err := c.Write(header); err != nil {
					ch <- result{err: err}
					return
				}
			}
			b, err := io.ReadAll(c)
			ch <- result{string(b), time.Since(begin), err}
		}()
		return ch
	}
	spawned, echo, untrusted := probe(0, 0, nil), probe(1, 0, nil), probe(2, 0, nil)
	// After the kernel's hold (3 s of proxy_timeout 6), before the deadline.
	late := probe(3, 4*time.Second, ppV2("192.0.2.9:4000", "192.0.2.10:80"))

	for _, c := range []struct {
		name    string
		ch      <-chan result
		timeout time.Duration
	}{
		{"spawned (proxy_timeout 2)", spawned, 2 * time.Second},
		{"echo (proxy_timeout 3)", echo, 3 * time.Second},
		{"untrusted (proxy_timeout 2)", untrusted, 2 * time.Second},
	} {
		r := <-c.ch
		if r.err != nil {
			t.Errorf("%s: %v", c.name, r.err)
			continue
		}
		if r.got != "" {
			t.Errorf("%s: a silent peer was served %q", c.name, r.got)
		}
		// Never before the kernel's hold of at least 1 s, never much
		// after proxy_timeout (the old code: 5 and 6 s).
		if r.elapsed < 500*time.Millisecond || r.elapsed > c.timeout+1500*time.Millisecond {
			t.Errorf("%s: refused after %v, want about %v or less", c.name, r.elapsed.Round(time.Millisecond), c.timeout)
		}
	}
	if r := <-late; r.err != nil || r.got != "served\n" {
		t.Errorf("a header sent 4 s after the connect (proxy_timeout 6): %q, %v", r.got, r.err)
	}
	d.waitSvcLog(`FAIL: spawned proxy_timeout from=(::ffff:)?127\.0\.0\.1\n`, 10*time.Second)
	d.waitSvcLog(`FAIL: echo proxy_timeout from=(::ffff:)?127\.0\.0\.1\n`, 10*time.Second)
	d.waitSvcLog(`FAIL: untrusted proxy_untrusted from=(::ffff:)?127\.0\.0\.1\n`, 10*time.Second)
	d.waitSvcLog(`START: late pid=\d+ from=192\.0\.2\.9 `, 10*time.Second)
	if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
		t.Error("a server was started for a silent peer")
	}
	for _, name := range []string{"spawned", "echo", "untrusted"} {
		if strings.Contains(readFile(d.svcLog), "START: "+name) {
			t.Errorf("START record for a silent peer of %s:\n%s", name, readFile(d.svcLog))
		}
	}
}
