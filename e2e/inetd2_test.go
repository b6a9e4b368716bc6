package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// sysRoot makes a -sysroot tree whose /etc/services names the given
// ports (name -> port, tcp), so internal inetd.conf services, which are
// chosen by name, can run on unprivileged ports. passwd, group and
// protocols are the machine's own.
func sysRoot(t *testing.T, dir string, services map[string]int) string {
	t.Helper()
	root := filepath.Join(dir, "root")
	etc := filepath.Join(root, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "group", "protocols"} {
		b, err := os.ReadFile("/etc/" + f)
		if err != nil {
			t.Skipf("/etc/%s: %v", f, err)
		}
		os.WriteFile(filepath.Join(etc, f), b, 0o644)
	}
	var sb strings.Builder
	for name, port := range services {
		fmt.Fprintf(&sb, "%s\t%d/tcp\n%s\t%d/udp\n", name, port, name, port)
	}
	os.WriteFile(filepath.Join(etc, "services"), []byte(sb.String()), 0o644)
	return root
}

// catServed reports whether a /bin/cat server answers on addr: it sends
// a line and expects it back within a generous bound (a server started
// on a loaded host). The connection stays open when served (the caller
// closes it).
func catServed(t *testing.T, addr string) (net.Conn, bool) {
	t.Helper()
	return catServedWithin(t, addr, 15*time.Second)
}

// catNotServed reports whether no /bin/cat server answers on addr within
// a short wait: a check that something does not happen ends on its
// bound, so that bound is kept short.
func catNotServed(t *testing.T, addr string) bool {
	t.Helper()
	c, ok := catServedWithin(t, addr, 2*time.Second)
	if ok {
		c.Close()
	}
	return !ok
}

func catServedWithin(t *testing.T, addr string, wait time.Duration) (net.Conn, bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, false
	}
	c.SetDeadline(time.Now().Add(wait))
	io.WriteString(c, "ping\n")
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	c.SetDeadline(time.Time{})
	if err != nil || string(buf) != "ping\n" {
		c.Close()
		return nil, false
	}
	return c, true
}

// isRefused reports whether dialling addr is refused by the kernel (no
// listener any more).
func isRefused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// TestInetdLimits drives each limit of FreeBSD's command line and each
// dialect's wait suffix with real clients.
func TestInetdLimits(t *testing.T) {
	user := currentUser(t)
	type kind int
	const (
		concurrent kind = iota // at most N servers at once for this client
		perIPRate              // N connections per client per minute, then refused
		rate                   // N invocations per minute, then the service closes
	)
	cases := []struct {
		name, dialect, wait string
		flags               []string
		kind                kind
		n                   int
	}{
		{"freebsd -c 2", "freebsd", "nowait", []string{"-c", "2"}, concurrent, 2},
		{"freebsd -s 1", "freebsd", "nowait", []string{"-s", "1"}, concurrent, 1},
		{"freebsd -C 2", "freebsd", "nowait", []string{"-C", "2"}, perIPRate, 2},
		{"freebsd -R 2", "freebsd", "nowait", []string{"-R", "2"}, rate, 2},
		{"freebsd nowait/2", "freebsd", "nowait/2", nil, concurrent, 2},
		{"freebsd nowait/0/3", "freebsd", "nowait/0/3", nil, perIPRate, 3},
		{"freebsd nowait/0/0/1", "freebsd", "nowait/0/0/1", nil, concurrent, 1},
		{"freebsd line beats -c", "freebsd", "nowait/1", []string{"-c", "5"}, concurrent, 1},
		{"openbsd nowait.3", "openbsd", "nowait.3", nil, rate, 3},
		{"linux nowait.3", "linux", "nowait.3", nil, rate, 3},
		{"netbsd nowait:3", "netbsd", "nowait:3", nil, rate, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Each case has a daemon and port of its own; much of a
			// case's time is waiting out a check that nothing is served.
			t.Parallel()
			ports := freePorts(t, 1)
			dir := newDir(t)
			server := "/bin/cat\tcat"
			if tc.kind != concurrent {
				server = "/bin/echo\techo served"
			}
			var line string
			args := append([]string{"-dialect", tc.dialect, "-killservers", "-grace", "1s"}, tc.flags...)
			if tc.dialect == "freebsd" {
				// FreeBSD has no address prefix: -a keeps it on loopback.
				line = fmt.Sprintf("%d\tstream\ttcp\t%s\t%s\t%s\n", ports[0], tc.wait, user, server)
				args = append(args, "-a", "127.0.0.1")
			} else {
				line = fmt.Sprintf("127.0.0.1:%d\tstream\ttcp\t%s\t%s\t%s\n", ports[0], tc.wait, user, server)
			}
			d := startInetd(t, dir, line, args...)
			addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
			switch tc.kind {
			case concurrent:
				var held []net.Conn
				defer func() {
					for _, c := range held {
						c.Close()
					}
				}()
				for i := 0; i < tc.n; i++ {
					c, ok := catServed(t, addr)
					if !ok {
						t.Fatalf("connection %d of %d not served\n%s", i+1, tc.n, d.daemonLog())
					}
					held = append(held, c)
				}
				if !catNotServed(t, addr) {
					t.Fatalf("connection %d served while %d servers run", tc.n+1, tc.n)
				}
				// Room again once one ends.
				held[0].Close()
				held = held[1:]
				deadline := waitBound(5 * time.Second)
				for {
					if c, ok := catServed(t, addr); ok {
						held = append(held, c)
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("no connection served after a server ended\n%s", d.daemonLog())
					}
					time.Sleep(100 * time.Millisecond)
				}
			case perIPRate:
				for i := 0; i < tc.n; i++ {
					if got, err := tcpExchange(t, addr, "", 5*time.Second); got != "served\n" {
						t.Fatalf("connection %d of %d = %q, %v\n%s", i+1, tc.n, got, err, d.daemonLog())
					}
				}
				if got, _ := tcpExchange(t, addr, "", 5*time.Second); got == "served\n" {
					t.Fatalf("connection %d in a minute served", tc.n+1)
				}
				// Only this client is limited: the service stays open.
				if isRefused(addr) {
					t.Fatalf("a per-address limit closed the whole service")
				}
			case rate:
				for i := 0; i < tc.n; i++ {
					if got, err := tcpExchange(t, addr, "", 5*time.Second); got != "served\n" {
						t.Fatalf("invocation %d of %d = %q, %v\n%s", i+1, tc.n, got, err, d.daemonLog())
					}
				}
				// The next one trips the limit; the service is then closed.
				got, _ := tcpExchange(t, addr, "", 5*time.Second)
				if got == "served\n" {
					t.Fatalf("invocation %d in a minute served", tc.n+1)
				}
				d.waitLog(`server failing \(looping\)`, 5*time.Second)
				deadline := waitBound(5 * time.Second)
				for !isRefused(addr) {
					if time.Now().After(deadline) {
						t.Fatalf("service still accepting after it failed (looping)")
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
}

// TestInetdBindAndPidFlags: -a binds inetd.conf services to one address;
// -p writes the pidfile.
func TestInetdBindAndPidFlags(t *testing.T) {
	ports := freePorts(t, 1)
	user := currentUser(t)
	line := fmt.Sprintf("%d\tstream\ttcp4\tnowait\t%s\t/bin/echo\techo hi\n", ports[0], user)
	listenAddr := func() string {
		t.Helper()
		// thread-self: this thread's namespace, whatever the process's main
		// thread is in.
		b, _ := os.ReadFile("/proc/thread-self/net/tcp")
		for _, l := range lines(string(b))[1:] {
			f := strings.Fields(l)
			if len(f) > 3 && f[3] == "0A" && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", ports[0])) {
				return f[1][:8]
			}
		}
		return ""
	}
	t.Run("-a", func(t *testing.T) {
		dir := newDir(t)
		pidfile := filepath.Join(dir, "inetd.pid")
		d := startInetd(t, dir, line, "-dialect", "freebsd", "-a", "127.0.0.1", "-p", pidfile)
		if got := listenAddr(); got != "0100007F" {
			t.Errorf("with -a 127.0.0.1 the listener is on %q, want 0100007F", got)
		}
		if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); got != "hi\n" {
			t.Errorf("served %q, %v", got, err)
		}
		if got, err := ReadPid(pidfile); err != nil || got != d.pid() {
			t.Errorf("-p pidfile says %d (%v), daemon is %d", got, err, d.pid())
		}
		d.signal(syscall.SIGTERM)
		d.waitExit(10 * time.Second)
		if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
			t.Errorf("-p pidfile left after SIGTERM")
		}
	})
	t.Run("no -a", func(t *testing.T) {
		dir := newDir(t)
		startInetd(t, dir, line, "-dialect", "freebsd")
		if got := listenAddr(); got != "00000000" {
			t.Errorf("without -a the listener is on %q, want the wildcard", got)
		}
	})
}

// TestInetdLogFlag: -l sends a START record for every connection to
// syslog (daemon.info).
func TestInetdLogFlag(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	sock := filepath.Join(dir, "log.sock")
	rx, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	line := fmt.Sprintf("127.0.0.1:%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo hi\n", ports[0], currentUser(t))
	startInetd(t, dir, line, "-l", "-syslog-socket", sock)
	got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second)
	if got != "hi\n" {
		t.Fatalf("served %q, %v", got, err)
	}
	re := mustRE(`^<30>.* xinetd\[\d+\]: START: \S+ pid=(\d+) from=(::ffff:)?127\.0\.0\.1$`)
	buf := make([]byte, 2048)
	deadline := waitBound(5 * time.Second)
	var seen []string
	for time.Now().Before(deadline) {
		rx.SetReadDeadline(deadline)
		n, err := rx.Read(buf)
		if err != nil {
			break
		}
		msg := string(buf[:n])
		seen = append(seen, msg)
		if m := re.FindStringSubmatch(msg); m != nil && m[1] != "0" {
			return
		}
	}
	t.Fatalf("no START record with a pid on the syslog socket; got %q", seen)
}

// TestInetdTCPWrappers: -w wraps external services, -W internal ones,
// with the hosts.allow/hosts.deny given; the clustered -wW -C 60 of the
// FreeBSD handbook works too.
func TestInetdTCPWrappers(t *testing.T) {
	user := currentUser(t)
	cases := []struct {
		name           string
		flags          []string
		allow          string
		external, intl bool // served?
	}{
		{"none", nil, "", true, true},
		{"-w", []string{"-w"}, "", false, true},
		{"-W", []string{"-W"}, "", true, false},
		{"-w -W", []string{"-w", "-W"}, "", false, false},
		{"-wW -C 60 allowed", []string{"-wW", "-C", "60"}, "ALL: 127.0.0.1\n", true, true},
		{"-wW -C 60 denied", []string{"-wW", "-C", "60"}, "", false, false},
		{"-w per daemon", []string{"-wW"}, "echo: 127.0.0.1\n", true, false},
		{"-W per daemon", []string{"-wW"}, "daytime: 127.0.0.1\n", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // a daemon and ports of its own
			ports := freePorts(t, 2)
			dir := newDir(t)
			root := sysRoot(t, dir, map[string]int{"daytime": ports[1]})
			allow, deny := filepath.Join(dir, "hosts.allow"), filepath.Join(dir, "hosts.deny")
			os.WriteFile(allow, []byte(tc.allow), 0o644)
			os.WriteFile(deny, []byte("ALL: ALL\n"), 0o644)
			conf := fmt.Sprintf("%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo external\n"+
				"daytime\tstream\ttcp\tnowait\troot\tinternal\n", ports[0], user)
			args := append([]string{"-dialect", "freebsd", "-a", "127.0.0.1", "-sysroot", root,
				"-hosts-allow", allow, "-hosts-deny", deny}, tc.flags...)
			d := startInetd(t, dir, conf, args...)
			got, _ := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second)
			if (got == "external\n") != tc.external {
				t.Errorf("external service: got %q, want served=%v\n%s", got, tc.external, d.daemonLog())
			}
			got, _ = tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 5*time.Second)
			if dayTimeRE.MatchString(got) != tc.intl {
				t.Errorf("internal service: got %q, want served=%v\n%s", got, tc.intl, d.daemonLog())
			}
		})
	}
	// The clustered form is read as the separate flags: -t shows -C.
	ports := freePorts(t, 1)
	dir := newDir(t)
	path := filepath.Join(dir, "inetd.conf")
	os.WriteFile(path, []byte(fmt.Sprintf("%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo x\n", ports[0], user)), 0o644)
	out, err := exec.Command(gxinetd, "-t", "-json", "-inetd", path, "-dialect", "freebsd", "-wW", "-C", "60").Output()
	if err != nil {
		t.Fatalf("-t -json -wW -C 60: %v\n%s", err, out)
	}
	var cfg struct {
		Services []struct {
			Inetd struct {
				PerIPPerMinute int `json:"per_ip_per_minute"`
			} `json:"inetd"`
		} `json:"services"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil || len(cfg.Services) != 1 || cfg.Services[0].Inetd.PerIPPerMinute != 60 {
		t.Fatalf("-C 60 not applied: %+v %v\n%s", cfg, err, out)
	}
}

// identQuery asks an ident server with nc, as a remote host would.
func identQuery(t *testing.T, authPort int, query string) string {
	t.Helper()
	cmd := exec.Command("nc", "-N", "-w", "5", "127.0.0.1", strconv.Itoa(authPort))
	cmd.Stdin = strings.NewReader(query)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nc: %v (%q)", err, out)
	}
	return string(out)
}

// TestAuthBuiltin: FreeBSD inetd's RFC 1413 server, asked with nc about
// a real connection the test holds open to another service.
func TestAuthBuiltin(t *testing.T) {
	needCmd(t, "nc")
	user := currentUser(t)
	uid := strconv.Itoa(os.Geteuid())
	ports := freePorts(t, 5)
	dir := newDir(t)
	auth := func(id, port, args string) string {
		return fmt.Sprintf(`
service auth
{
	id          = %s
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = %s
	wait        = no
	server_args = %s
}
`, id, port, args)
	}
	discard := `
service discard
{
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
}
`
	conf := baseDefaults + discard + auth("real", "{{P1}}", "-r") + auth("numeric", "{{P2}}", "-r -i -o OTHER") +
		auth("hidden", "{{P3}}", "-d fallback") + auth("noident", "{{P4}}", "-r -n -d fallback")
	start(t, dir, render(t, dir, conf, ports))
	held, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	lport := held.LocalAddr().(*net.TCPAddr).Port
	q := fmt.Sprintf("%d , %d\r\n", lport, ports[0])
	want := fmt.Sprintf("%d , %d : USERID : UNIX : %s\r\n", lport, ports[0], user)
	if got := identQuery(t, ports[1], q); got != want {
		t.Errorf("-r: %q, want %q", got, want)
	}
	if got, want := identQuery(t, ports[2], q), fmt.Sprintf("%d , %d : USERID : OTHER : %s\r\n", lport, ports[0], uid); got != want {
		t.Errorf("-r -i -o OTHER: %q, want %q", got, want)
	}
	if got, want := identQuery(t, ports[3], q), fmt.Sprintf("%d , %d : USERID : UNIX : fallback\r\n", lport, ports[0]); got != want {
		t.Errorf("-d fallback (no -r): %q, want %q", got, want)
	}
	// -n hides only users who ask for it with ~/.noident.
	home, _ := os.UserHomeDir()
	if _, err := os.Stat(filepath.Join(home, ".noident")); err == nil {
		t.Logf("%s/.noident exists: -n answer not checked", home)
	} else if got := identQuery(t, ports[4], q); got != want {
		t.Errorf("-r -n without ~/.noident: %q, want %q", got, want)
	}
	// A connection that does not exist: NO-USER, or the -d name.
	noConn := fmt.Sprintf("%d , %d\r\n", ports[0], 1)
	if got, want := identQuery(t, ports[1], noConn), fmt.Sprintf("%d , 1 : ERROR : NO-USER\r\n", ports[0]); got != want {
		t.Errorf("unknown connection: %q, want %q", got, want)
	}
	if got, want := identQuery(t, ports[4], noConn), fmt.Sprintf("%d , 1 : USERID : UNIX : fallback\r\n", ports[0]); got != want {
		t.Errorf("unknown connection with -d: %q, want %q", got, want)
	}
	if got, want := identQuery(t, ports[1], "70000 , 1\r\n"), "70000 , 1 : ERROR : INVALID-PORT\r\n"; got != want {
		t.Errorf("bad port: %q, want %q", got, want)
	}

	// The same from an inetd.conf line: auth is chosen by name, so the
	// test's /etc/services maps it to an unprivileged port.
	t.Run("inetd.conf", func(t *testing.T) {
		ports2 := freePorts(t, 1)
		dir := newDir(t)
		root := sysRoot(t, dir, map[string]int{"auth": ports2[0]})
		startInetd(t, dir, "auth\tstream\ttcp\tnowait\troot\tinternal\tauth -r -o FreeBSD\n",
			"-dialect", "freebsd", "-a", "127.0.0.1", "-sysroot", root)
		want := fmt.Sprintf("%d , %d : USERID : FreeBSD : %s\r\n", lport, ports[0], user)
		if got := identQuery(t, ports2[0], q); got != want {
			t.Errorf("inetd.conf auth -r -o FreeBSD: %q, want %q", got, want)
		}
	})
}

// TestInetdReloadKeepsSockets: SIGHUP re-reads the inetd.conf; a line
// that did not change keeps its socket (a client load sees no refusal
// through three reloads), a line whose port changed moves.
func TestInetdReloadKeepsSockets(t *testing.T) {
	ports := freePorts(t, 4)
	dir := newDir(t)
	user := currentUser(t)
	confFor := func(moving int, extra string) string {
		return fmt.Sprintf("127.0.0.1:%d\tstream\ttcp\tnowait.100000\t%s\t/bin/echo\techo steady\n"+
			"127.0.0.1:%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo moving\n%s", ports[0], user, moving, user, extra)
	}
	d := startInetd(t, dir, confFor(ports[1], ""), "-dialect", "linux")
	steady := fmt.Sprintf("127.0.0.1:%d", ports[0])
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			got, err := tcpExchange(t, steady, "", 5*time.Second)
			if got != "steady\n" {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%q %v", got, err))
				continue
			}
			ok.Add(1)
		}
	}()
	// Each reload happens while the load runs: a few connections are
	// made before it, however slow the machine (never a fixed sleep).
	loadGoesOn := func() {
		t.Helper()
		from := ok.Load() + failed.Load()
		for deadline := time.Now().Add(20 * time.Second); ok.Load()+failed.Load() < from+7; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the client load stalled at %d connections", ok.Load()+failed.Load())
			}
		}
	}
	extras := []string{"# a comment\n", fmt.Sprintf("127.0.0.1:%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo extra\n", ports[3], user), ""}
	for i, extra := range extras {
		loadGoesOn()
		if err := os.WriteFile(d.conf, []byte(confFor(ports[1], extra)), 0o644); err != nil {
			t.Fatal(err)
		}
		d.signal(syscall.SIGHUP)
		d.waitLog(fmt.Sprintf(`(?s)(Reconfigured: new=\d+ old=\d+ dropped=\d+.*){%d}`, i+1), 10*time.Second)
	}
	loadGoesOn()
	close(stop)
	<-done
	if failed.Load() != 0 {
		t.Fatalf("%d of %d connections to the unchanged line failed during reloads; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if ok.Load() < 20 {
		t.Fatalf("only %d connections made: the load did not run", ok.Load())
	}
	// The changed line moves.
	os.WriteFile(d.conf, []byte(confFor(ports[2], "")), 0o644)
	d.signal(syscall.SIGHUP)
	d.waitLog(`(?s)(Reconfigured: new=\d+ old=\d+ dropped=\d+.*){4}`, 10*time.Second)
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[2]), "", 5*time.Second); got != "moving\n" {
		t.Fatalf("moved line not served on its new port: %q %v", got, err)
	}
	if !isRefused(fmt.Sprintf("127.0.0.1:%d", ports[1])) {
		t.Fatalf("old port of the moved line still open")
	}
	if got, _ := tcpExchange(t, steady, "", 5*time.Second); got != "steady\n" {
		t.Fatalf("unchanged line after the move: %q", got)
	}
}

// TestXconvEndToEnd: xconv -d writes drop-ins that gxinetd serves through
// includedir; exit statuses tell exact, lossy and failed conversions
// apart; tcp_wrappers rules become only_from that the daemon enforces.
func TestXconvEndToEnd(t *testing.T) {
	user := currentUser(t)
	ports := freePorts(t, 4)
	dir := newDir(t)
	xrun := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(xconv, args...)
		var stderr syncBuf
		cmd.Stderr = &stderr
		out, _ := cmd.Output()
		return string(out), stderr.String(), cmd.ProcessState.ExitCode()
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}

	// Exact: 0, and the drop-ins are served.
	exact := write("exact.conf", fmt.Sprintf("127.0.0.1:%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo drop-in one\n"+
		"127.0.0.1:%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo drop-in two\n", ports[0], user, ports[1], user))
	dropDir := filepath.Join(dir, "xinetd.d")
	if _, errText, code := xrun("-d", dropDir, exact); code != 0 {
		t.Fatalf("xconv -d on an exact input: exit %d\n%s", code, errText)
	}
	ents, _ := os.ReadDir(dropDir)
	if len(ents) < 2 {
		t.Fatalf("xconv -d wrote %d files", len(ents))
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".") {
			t.Errorf("drop-in %q has a dot: xinetd would skip it", e.Name())
		}
	}
	main := write("xinetd.conf", strings.ReplaceAll(baseDefaults, "{{LOG}}", filepath.Join(dir, "services.log"))+"\nincludedir "+dropDir+"\n")
	d := start(t, dir, main)
	for i, want := range []string{"drop-in one\n", "drop-in two\n"} {
		if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[i]), "", 5*time.Second); got != want {
			t.Errorf("drop-in %d served %q, %v\n%s", i, got, err, d.daemonLog())
		}
	}
	// A second run into the same directory refuses to overwrite: 2.
	if _, errText, code := xrun("-d", dropDir, exact); code != 2 {
		t.Errorf("xconv -d over existing files: exit %d, want 2\n%s", code, errText)
	}

	// Lossy: 1, and the loss is named with file:line.
	lossy := write("lossy.conf", fmt.Sprintf("%d\tstream\ttcp\tnowait/3/10\t%s\t/bin/echo\techo x\n", ports[2], user))
	if out, errText, code := xrun("-dialect", "freebsd", lossy); code != 1 || !strings.Contains(errText, lossy+":1:") || !strings.Contains(out, "# xconv:") {
		t.Errorf("lossy input: exit %d, want 1\nstderr:\n%s\nout:\n%s", code, errText, out)
	}
	// Failed: 2.
	if _, _, code := xrun(filepath.Join(dir, "missing.conf")); code != 2 {
		t.Errorf("unreadable input: exit %d, want 2", code)
	}
	if _, _, code := xrun("-dialect", "plan9", exact); code != 2 {
		t.Errorf("unknown dialect: exit %d, want 2", code)
	}

	// tcp_wrappers: tcpd lines with allow-list rules become only_from.
	wrapped := write("wrapped.conf", fmt.Sprintf(
		"%d\tstream\ttcp46\tnowait\t%s\t/usr/sbin/tcpd\t/bin/echo mine\n"+
			"%d\tstream\ttcp46\tnowait\t%s\t/usr/sbin/tcpd\t/bin/cat\n", ports[2], user, ports[3], user))
	allow := write("hosts.allow", "echo: 127.0.0.1\ncat: 10.0.0.0/255.0.0.0\n")
	deny := write("hosts.deny", "ALL: ALL\n")
	out, errText, code := xrun("-dialect", "freebsd", "-hosts-allow", allow, "-hosts-deny", deny, wrapped)
	if code != 0 {
		t.Fatalf("wrapped conversion: exit %d\n%s\n%s", code, errText, out)
	}
	if !mustRE(`only_from\s+=\s+127\.0\.0\.1`).MatchString(out) || !mustRE(`only_from\s+=\s+10\.0\.0\.0/8`).MatchString(out) {
		t.Fatalf("no only_from in the conversion:\n%s", out)
	}
	if strings.Contains(out, "tcpd") {
		t.Errorf("conversion still runs tcpd:\n%s", out)
	}
	dir2 := newDir(t)
	conf := filepath.Join(dir2, "xinetd.conf")
	os.WriteFile(conf, []byte(out), 0o644)
	start(t, dir2, conf)
	if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[2]), "", 5*time.Second); got != "mine\n" {
		t.Errorf("allowed address refused: %q %v", got, err)
	}
	if got, _ := tcpExchange(t, fmt.Sprintf("[::1]:%d", ports[2]), "", 5*time.Second); got == "mine\n" {
		t.Errorf("::1 is not in only_from but was served")
	}
	if !catNotServed(t, fmt.Sprintf("127.0.0.1:%d", ports[3])) {
		t.Errorf("127.0.0.1 is outside only_from 10.0.0.0/8 but was served")
	}
}

// TestInetdRateFlagZero: FreeBSD's -R 0 lifts the per-minute limit; no
// -R keeps the dialect's 256; -R N sets N.
func TestInetdRateFlagZero(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	path := filepath.Join(dir, "inetd.conf")
	os.WriteFile(path, []byte(fmt.Sprintf("%d\tstream\ttcp\tnowait\t%s\t/bin/echo\techo x\n", ports[0], currentUser(t))), 0o644)
	perMinute := func(flags ...string) int {
		t.Helper()
		out, err := exec.Command(gxinetd, append([]string{"-t", "-json", "-inetd", path, "-dialect", "freebsd"}, flags...)...).Output()
		if err != nil {
			t.Fatalf("-t -json %v: %v\n%s", flags, err, out)
		}
		var cfg struct {
			Services []struct {
				Inetd struct {
					PerMinute int `json:"per_minute"`
				} `json:"inetd"`
			} `json:"services"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil || len(cfg.Services) != 1 {
			t.Fatalf("-t -json %v: %v\n%s", flags, err, out)
		}
		return cfg.Services[0].Inetd.PerMinute
	}
	for _, tc := range []struct {
		flags []string
		want  int
	}{{nil, 256}, {[]string{"-R", "5"}, 5}, {[]string{"-R", "0"}, 0}, {[]string{"-R0"}, 0}} {
		if got := perMinute(tc.flags...); got != tc.want {
			t.Errorf("%v: per_minute %d, want %d", tc.flags, got, tc.want)
		}
	}
	// Past the default 256 per minute, with -R 0 every one is served.
	d := startInetd(t, dir, readFile(path), "-dialect", "freebsd", "-a", "127.0.0.1", "-R", "0")
	for i := 0; i < 260; i++ {
		if got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second); got != "x\n" {
			t.Fatalf("connection %d with -R 0: %q %v\n%s", i, got, err, d.daemonLog())
		}
	}
}
