package e2e

// End-to-end tests of the serving paths (GitHub issue 4): wait=yes
// stream and datagram services with external servers, refusals of wait
// services, banners, exec failures, the server environment and argv.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	srvOnce sync.Once
	srvPath string
	srvErr  error
)

// testServer builds e2e/testdata/serving2srv once per test binary and
// returns its path (inside the world-readable binDir).
func testServer(t *testing.T) string {
	t.Helper()
	srvOnce.Do(func() {
		srvPath = filepath.Join(binDir, "serving2srv")
		out, err := exec.Command("go", "build", "-o", srvPath, "./testdata/serving2srv").CombinedOutput()
		if err != nil {
			srvErr = fmt.Errorf("building testdata/serving2srv: %v\n%s", err, out)
		}
	})
	if srvErr != nil {
		t.Fatal(srvErr)
	}
	return srvPath
}

// reloadWith rewrites the configuration and sends SIGHUP, then waits
// until the daemon says it has reconfigured.
func reloadWith(t *testing.T, d *daemon, conf string, ports []int) {
	t.Helper()
	n := strings.Count(d.daemonLog(), "Reconfigured:")
	render(t, d.dir, conf, ports)
	d.signal(syscall.SIGHUP)
	deadline := waitBound(10 * time.Second)
	for strings.Count(d.daemonLog(), "Reconfigured:") <= n {
		if time.Now().After(deadline) {
			t.Fatalf("no reconfiguration after SIGHUP:\n%s", d.daemonLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countIn counts the matches of pattern in a log text.
func countIn(text, pattern string) int {
	return len(regexp.MustCompile(pattern).FindAllStringIndex(text, -1))
}

// waitCount polls until pattern matches at least n times in read().
func waitCount(t *testing.T, read func() string, pattern string, n int, timeout time.Duration) {
	t.Helper()
	deadline := waitBound(timeout)
	for countIn(read(), pattern) < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %d x %q; got:\n%s", timeout, n, pattern, read())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hourWindowExcludingNow is an access_times range that does not contain
// the current local time, whatever it is.
func hourWindowExcludingNow() string {
	h := (time.Now().Hour() + 2) % 24
	return fmt.Sprintf("%02d:00-%02d:30", h, h)
}

func waitStreamConf(srv, extra string) string {
	return `
service waitstream
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = yes
	user        = root
	server      = ` + srv + `
	server_args = acceptone hello
	banner_fail = {{DIR}}/fail.txt
` + extra + `
}
`
}

// TestStreamWaitExternalServer: the listening socket goes to a server
// that accepts by itself; it comes back to the daemon when that server
// exits, so consecutive connections are each served. (socat 1.7.4 has no
// ACCEPT-FD address, so the server is testdata/serving2srv.)
func TestStreamWaitExternalServer(t *testing.T) {
	needRoot(t)
	srv := testServer(t)
	ports := freePorts(t, 1)
	dir := newDir(t)
	d := start(t, dir, render(t, dir, baseDefaults+waitStreamConf(srv, ""), ports))
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		for i := 0; i < 2; i++ {
			got, err := tcpExchange(t, fmt.Sprintf("%s:%d", host, ports[0]), "", 5*time.Second)
			if err != nil || !strings.HasPrefix(got, "hello from ") {
				t.Fatalf("%s connection %d: %q, %v", host, i, got, err)
			}
		}
	}
	// The daemon never saw the client: xinetd logs "<no address>".
	waitCount(t, func() string { return readFile(d.svcLog) },
		`START: waitstream pid=\d+ from=<no address>`, 4, 5*time.Second)
	waitCount(t, func() string { return readFile(d.svcLog) },
		`EXIT: waitstream status=0 pid=\d+ duration=\d+\(sec\)`, 4, 5*time.Second)
}

// TestStreamWaitRefusedIsNotSuspended: xinetd leaves a wait=yes service
// refused by a limit suspended for good. gxinetd refuses each pending
// connection on its own, and serves again once a reload lifts the limit.
func TestStreamWaitRefusedIsNotSuspended(t *testing.T) {
	needRoot(t)
	srv := testServer(t)
	for _, limit := range []string{"\tinstances   = 0", "\taccess_times = " + hourWindowExcludingNow()} {
		t.Run(strings.Fields(limit)[0], func(t *testing.T) {
			ports := freePorts(t, 1)
			dir := newDir(t)
			os.WriteFile(filepath.Join(dir, "fail.txt"), []byte("go away\n"), 0o644)
			d := start(t, dir, render(t, dir, baseDefaults+waitStreamConf(srv, limit), ports))
			addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
			for i := 0; i < 3; i++ {
				got, err := tcpExchange(t, addr, "", 5*time.Second)
				if err != nil || got != "go away\n" {
					t.Fatalf("refused connection %d: want banner_fail then close, got %q, %v", i, got, err)
				}
			}
			// xinetd's reason words; the daemon accepted the refused
			// connection, so unlike xinetd it knows the client.
			reason := "service_limit"
			if strings.Contains(limit, "access_times") {
				reason = "time"
			}
			waitCount(t, func() string { return readFile(d.svcLog) }, `FAIL: waitstream `+reason+` from=::ffff:127\.0\.0\.1\n`, 3, 5*time.Second)
			if n := countIn(readFile(d.svcLog), `START: waitstream`); n != 0 {
				t.Fatalf("a refused wait service started %d servers", n)
			}
			reloadWith(t, d, baseDefaults+waitStreamConf(srv, ""), ports)
			got, err := tcpExchange(t, addr, "", 5*time.Second)
			if err != nil || !strings.HasPrefix(got, "hello from ") {
				t.Fatalf("after the reload lifted the limit: %q, %v", got, err)
			}
		})
	}
}

func waitDgramConf(srv, extra string) string {
	return `
service waitdgram
{
	type        = UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P0}}
	wait        = yes
	user        = root
	server      = ` + srv + `
	server_args = udpone got: 300
` + extra + `
}
`
}

// udpSendAll sends one datagram from each of len(msgs) client sockets at
// once and collects the answers within timeout.
func udpSendAll(t *testing.T, network, addr string, msgs []string, timeout time.Duration) map[string]string {
	t.Helper()
	var mu sync.Mutex
	got := map[string]string{}
	var conns []net.Conn
	for _, m := range msgs {
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func(m string, c net.Conn) {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(timeout))
			buf := make([]byte, 4096)
			n, err := c.Read(buf)
			if err == nil {
				mu.Lock()
				got[m] = string(buf[:n])
				mu.Unlock()
			}
		}(msgs[i], c)
	}
	wg.Wait()
	return got
}

// TestDgramWaitQueuedDatagramsSurvive: datagrams that arrive while a
// single-shot server runs stay queued for the next server (xinetd drains
// them), so every one is answered.
func TestDgramWaitQueuedDatagramsSurvive(t *testing.T) {
	needRoot(t)
	srv := testServer(t)
	ports := freePorts(t, 1)
	dir := newDir(t)
	d := start(t, dir, render(t, dir, baseDefaults+waitDgramConf(srv, ""), ports))
	for _, nw := range []struct{ network, host string }{{"udp4", "127.0.0.1"}, {"udp6", "[::1]"}} {
		msgs := []string{"one-" + nw.network, "two-" + nw.network, "three-" + nw.network}
		got := udpSendAll(t, nw.network, fmt.Sprintf("%s:%d", nw.host, ports[0]), msgs, 8*time.Second)
		for _, m := range msgs {
			if got[m] != "got:"+m {
				t.Errorf("%s: datagram %q answered %q (all answers: %v)", nw.network, m, got[m], got)
			}
		}
	}
	// The sender seen with MSG_PEEK is the client of each START.
	waitCount(t, func() string { return readFile(d.svcLog) }, `START: waitdgram pid=\d+ from=(::ffff:)?127\.0\.0\.1`, 3, 5*time.Second)
	waitCount(t, func() string { return readFile(d.svcLog) }, `START: waitdgram pid=\d+ from=::1\n`, 3, 5*time.Second)
	waitCount(t, func() string { return readFile(d.svcLog) }, `EXIT: waitdgram status=0`, 6, 5*time.Second)
}

// TestDgramWaitRefusedThenReloaded: a refused datagram is dropped on its
// own (later ones are judged again, the service is not suspended), and a
// reload that lifts the limit serves.
func TestDgramWaitRefusedThenReloaded(t *testing.T) {
	needRoot(t)
	srv := testServer(t)
	ports := freePorts(t, 1)
	dir := newDir(t)
	d := start(t, dir, render(t, dir, baseDefaults+waitDgramConf(srv, "\taccess_times = "+hourWindowExcludingNow()), ports))
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	for i := 0; i < 3; i++ {
		if b, err := udpExchange(t, "udp4", addr, []byte(fmt.Sprint("refused ", i)), 500*time.Millisecond); err == nil {
			t.Fatalf("refused datagram %d was answered: %q", i, b)
		}
	}
	waitCount(t, func() string { return readFile(d.svcLog) }, `FAIL: waitdgram time from=`, 1, 5*time.Second)
	dump := stateDump(t, d)
	if !strings.Contains(dump, "State = Active") {
		t.Errorf("a refused wait service must stay active:\n%s", dump)
	}
	reloadWith(t, d, baseDefaults+waitDgramConf(srv, ""), ports)
	b, err := udpExchange(t, "udp4", addr, []byte("now"), 5*time.Second)
	if err != nil || string(b) != "got:now" {
		t.Fatalf("after the reload: %q, %v", b, err)
	}
}

// TestWaitServerSurvivesReload: a reload while a wait=yes server runs
// must leave the socket with that server (blocking, as it got it) and
// start no second server on it until the first exits.
func TestWaitServerSurvivesReload(t *testing.T) {
	needRoot(t)
	srv := testServer(t)
	ports := freePorts(t, 1)
	dir := newDir(t)
	slow := strings.Replace(waitDgramConf(srv, ""), "udpone got: 300", "udpone got: 1500", 1)
	d := start(t, dir, render(t, dir, baseDefaults+slow, ports))
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	type result struct {
		got     map[string]string
		elapsed time.Duration
	}
	res := make(chan result, 1)
	go func() {
		t0 := time.Now()
		got := udpSendAll(t, "udp4", addr, []string{"a", "b"}, 10*time.Second)
		res <- result{got, time.Since(t0)}
	}()
	d.waitSvcLog(`START: waitdgram`, 5*time.Second)
	reloadWith(t, d, baseDefaults+slow+"\n", ports)
	r := <-res
	if r.got["a"] != "got:a" || r.got["b"] != "got:b" {
		t.Fatalf("answers across a reload: %v", r.got)
	}
	// Each server takes 1.5 s: one at a time, the second answer comes
	// after 3 s; two servers sharing the socket would both answer at 1.5 s.
	if r.elapsed < 2900*time.Millisecond {
		t.Fatalf("both datagrams answered within %v: a second server ran while the first held the socket", r.elapsed)
	}
	waitCount(t, func() string { return readFile(d.svcLog) }, `EXIT: waitdgram status=0`, 2, 5*time.Second)
}

// stateDump asks for a SIGUSR1 dump and returns the newest one.
func stateDump(t *testing.T, d *daemon) string {
	t.Helper()
	path := filepath.Join(d.dir, "xinetd.dump")
	before := strings.Count(readFile(path), "END OF DUMP")
	d.signal(syscall.SIGUSR1)
	deadline := waitBound(5 * time.Second)
	for {
		text := readFile(path)
		if strings.Count(text, "END OF DUMP") > before {
			if i := strings.LastIndex(text, "INTERNAL STATE DUMP"); i >= 0 {
				text = text[i:]
			}
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("no state dump in %s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBannersInXinetdOrder: banner, banner_success, then the server's
// output on success; banner then banner_fail on a refusal.
func TestBannersInXinetdOrder(t *testing.T) {
	ports := freePorts(t, 2)
	dir := newDir(t)
	for name, text := range map[string]string{"b.txt": "BANNER\n", "s.txt": "SUCCESS\n", "f.txt": "FAIL\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	svc := func(id, port, extra string) string {
		return `
service ` + id + `
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = ` + port + `
	wait           = no
	user           = ` + currentUser(t) + `
	server         = /bin/echo
	server_args    = server output
	banner         = {{DIR}}/b.txt
	banner_success = {{DIR}}/s.txt
	banner_fail    = {{DIR}}/f.txt
` + extra + `
}
`
	}
	conf := baseDefaults + svc("welcome", "{{P0}}", "") + svc("refuse", "{{P1}}", "\tno_access = 127.0.0.1 ::1")
	d := start(t, dir, render(t, dir, conf, ports))
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		got, err := tcpExchange(t, fmt.Sprintf("%s:%d", host, ports[0]), "", 5*time.Second)
		if err != nil || got != "BANNER\nSUCCESS\nserver output\n" {
			t.Errorf("%s success path = %q, %v", host, got, err)
		}
		got, err = tcpExchange(t, fmt.Sprintf("%s:%d", host, ports[1]), "", 5*time.Second)
		if err != nil || got != "BANNER\nFAIL\n" {
			t.Errorf("%s refusal path = %q, %v", host, got, err)
		}
	}
	d.waitSvcLog(`FAIL: refuse address from=::1\n`, 5*time.Second)
}

// TestExecFailureKeepsServing: a server that vanished after the
// configuration was accepted costs only the connection: the daemon says
// why, counts it in the state dump, serves the other services, and (with
// NORETRY or without) does not retry an exec that cannot work.
func TestExecFailureKeepsServing(t *testing.T) {
	ports := freePorts(t, 3)
	dir := newDir(t)
	gone := filepath.Join(dir, "gone.sh")
	if err := os.WriteFile(gone, []byte("#!/bin/sh\necho still here\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	svc := func(id, port, socketType, wait, extra string) string {
		proto := "tcp"
		if socketType == "dgram" {
			proto = "udp"
		}
		return `
service ` + id + `
{
	type        = UNLISTED
	socket_type = ` + socketType + `
	protocol    = ` + proto + `
	port        = ` + port + `
	wait        = ` + wait + `
	user        = ` + currentUser(t) + `
	server      = ` + gone + `
` + extra + `
}
`
	}
	conf := baseDefaults + svc("vanished", "{{P0}}", "stream", "no", "") +
		svc("vanished-noretry", "{{P1}}", "stream", "no", "\tflags = NORETRY") +
		svc("vanished-dgram", "{{P2}}", "dgram", "yes", "") + daytimeSvc("alive", "{{P0}}", "\tbind = ::1\n\tv6only = yes")
	// "alive" shares no socket: it listens on ::1 only, vanished on the
	// IPv4 wildcard.
	conf = strings.Replace(conf, "server      = "+gone+"\n\n}", "server      = "+gone+"\n\tflags = IPv4\n}", 1)
	d := start(t, dir, render(t, dir, conf, ports))
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || got != "still here\n" {
		t.Fatalf("before the removal: %q, %v", got, err)
	}
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	for i, port := range ports[:2] {
		for n := 0; n < 2; n++ {
			got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", port), "", 5*time.Second)
			if err != nil || got != "" {
				t.Fatalf("service %d, connection %d to a vanished server: want an empty close, got %q, %v", i, n, got, err)
			}
		}
	}
	for n := 0; n < 2; n++ {
		if b, err := udpExchange(t, "udp4", fmt.Sprintf("127.0.0.1:%d", ports[2]), []byte("x"), 300*time.Millisecond); err == nil {
			t.Fatalf("datagram to a vanished server answered: %q", b)
		}
	}
	pat := `execv\( ` + regexp.QuoteMeta(gone) + ` \) failed: No such file or directory \(errno = 2\)`
	waitCount(t, d.daemonLog, pat, 6, 5*time.Second)
	if !reachable(t, fmt.Sprintf("[::1]:%d", ports[0])) {
		t.Fatalf("the daemon must keep serving other services:\n%s", d.daemonLog())
	}
	dump := stateDump(t, d)
	for _, id := range []string{"vanished", "vanished-noretry", "vanished-dgram"} {
		m := regexp.MustCompile(`(?s)Service = ` + regexp.QuoteMeta(id) + `\n.*?exec_failures = (\d+)`).FindStringSubmatch(dump)
		if m == nil || m[1] != "2" {
			t.Errorf("dump: %s exec failures = %v, want 2:\n%s", id, m, dump)
		}
	}
	// Nothing is retried: the count stays where it is.
	time.Sleep(300 * time.Millisecond)
	if n := countIn(d.daemonLog(), pat); n != 6 {
		t.Fatalf("%d exec failures logged for 6 requests:\n%s", n, d.daemonLog())
	}
	// The file back: served again, no reload needed.
	if err := os.WriteFile(gone, []byte("#!/bin/sh\necho back\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); err != nil || got != "back\n" {
		t.Fatalf("after the server came back: %q, %v", got, err)
	}
}

// TestServerEnvironmentAndArgv: REMOTE_HOST and friends for IPv6 and
// IPv4 clients, NAMEINARGS whichever line comes first, passenv.
func TestServerEnvironmentAndArgv(t *testing.T) {
	srv := testServer(t)
	t.Setenv("GX_PASSED", "yes-passed")
	t.Setenv("GX_SECRET", "not-for-servers")
	ports := freePorts(t, 4)
	dir := newDir(t)
	svc := func(id, port, body string) string {
		return `
service ` + id + `
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = ` + port + `
	wait        = no
	user        = ` + currentUser(t) + `
` + body + `
}
`
	}
	conf := baseDefaults +
		svc("env", "{{P0}}", "\tserver = /usr/bin/env\n\tpassenv = GX_PASSED PATH") +
		svc("argsfirst", "{{P1}}", "\tserver = "+srv+"\n\tserver_args = myname args one two\n\tflags = NAMEINARGS") +
		svc("flagsfirst", "{{P2}}", "\tflags = NAMEINARGS\n\tserver = "+srv+"\n\tserver_args = myname args one two") +
		svc("plain", "{{P3}}", "\tserver = "+srv+"\n\tserver_args = args one two")
	start(t, dir, render(t, dir, conf, ports))

	for _, c := range []struct{ host, remote string }{{"::1", "::1"}, {"127.0.0.1", "::ffff:127.0.0.1"}} {
		conn, err := net.Dial("tcp", net.JoinHostPort(c.host, fmt.Sprint(ports[0])))
		if err != nil {
			t.Fatal(err)
		}
		lport := conn.LocalAddr().(*net.TCPAddr).Port
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		var b strings.Builder
		buf := make([]byte, 4096)
		for i := 0; i < 100; i++ {
			n, err := conn.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		conn.Close()
		env := map[string]string{}
		for _, l := range lines(b.String()) {
			if k, v, ok := strings.Cut(l, "="); ok {
				env[k] = v
			}
		}
		want := map[string]string{
			"REMOTE_HOST": c.remote, "REMOTE_PORT": fmt.Sprint(lport),
			"TCPREMOTEIP": strings.TrimPrefix(c.remote, "::ffff:"), "TCPREMOTEPORT": fmt.Sprint(lport),
			"LOCAL_PORT": fmt.Sprint(ports[0]), "GX_PASSED": "yes-passed", "PROTO": "TCP",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("client %s: %s = %q, want %q (environment %v)", c.host, k, env[k], v, env)
			}
		}
		if _, ok := env["GX_SECRET"]; ok {
			t.Errorf("passenv must pass only the listed variables: %v", env)
		}
		if env["PATH"] == "" {
			t.Errorf("PATH is in passenv but missing: %v", env)
		}
	}
	for i, want := range []string{"myname\nargs\none\ntwo\n", "myname\nargs\none\ntwo\n", "serving2srv\nargs\none\ntwo\n"} {
		got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[i+1]), "", 5*time.Second)
		if err != nil || got != want {
			t.Errorf("argv of service %d = %q, %v; want %q", i+1, got, err, want)
		}
	}
}

// TestStreamWaitServerThatNeverAccepts: a wait=yes stream server that
// exits without accepting leaves the connection pending, so it is started
// again at once (as in xinetd) until cps stops the loop; the client is
// then closed and the service comes back after the cps wait.
func TestStreamWaitServerThatNeverAccepts(t *testing.T) {
	needRoot(t)
	srv := testServer(t)
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := baseDefaults + `
service lazy
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = yes
	user        = root
	server      = /bin/true
	cps         = 5 1
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	got, err := tcpExchange(t, addr, "", 10*time.Second)
	if err != nil || got != "" {
		t.Fatalf("a connection nobody accepts must be closed: %q, %v", got, err)
	}
	d.waitLog(`Deactivating service lazy due to excessive incoming connections\.  Restarting in 1 seconds\.`, 5*time.Second)
	d.waitLog(`Activating service lazy`, 5*time.Second)
	if n := countIn(readFile(d.svcLog), `START: lazy`); n < 5 || n > 7 {
		t.Errorf("%d servers started before cps stopped the loop, want about 5:\n%s", n, readFile(d.svcLog))
	}
	// Back in service, with a server that accepts.
	reloadWith(t, d, strings.Replace(conf, "server      = /bin/true", "server      = "+srv+"\n\tserver_args = acceptone back", 1), ports)
	if got, err := tcpExchange(t, addr, "", 5*time.Second); err != nil || !strings.HasPrefix(got, "back from ") {
		t.Fatalf("after the reload: %q, %v", got, err)
	}
}
