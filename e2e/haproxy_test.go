package e2e

// gxinetd behind a real haproxy (Debian package haproxy), and in front of
// one: the fleet set-up of GitHub issue 16 on loopback. haproxy runs as a
// child of the test, in the foreground, on ports from internal/testnet,
// and is stopped by PID.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startHAProxy runs haproxy on conf and waits until every address in
// listen accepts connections.
func startHAProxy(t *testing.T, dir, conf string, listen ...string) {
	t.Helper()
	needCmd(t, "haproxy")
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("haproxy", "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	var out syncBuf
	cmd := exec.Command("haproxy", "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	for _, a := range listen {
		deadline := waitBound(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				t.Fatalf("haproxy exited:\n%s", out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("haproxy does not listen on %s: %v\n%s", a, err, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestBehindHAProxy: haproxy with send-proxy (v1) and send-proxy-v2 in
// front of gxinetd; the spawned server, only_from, per_source and every
// log see the real client (127.0.0.3, or ::1 through an IPv6 front end),
// not haproxy (127.0.0.1).
func TestBehindHAProxy(t *testing.T) {
	needCmd(t, "haproxy")
	ports := freePorts(t, 8)
	dir := newDir(t)
	lgScript(t, filepath.Join(dir, "envcat.sh"), "env\necho ---\nexec cat")
	lgScript(t, filepath.Join(dir, "hold.sh"), "echo hello\nexec sleep 30")
	user := currentUser(t)
	conf := `
defaults
{
	log_type        = FILE {{LOG}}
	log_on_success  = PID HOST EXIT
	log_on_failure  = HOST
	cps             = 0 0
	proxy_from      = 127.0.0.1
}
service envcat
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P0}}
	bind           = 127.0.0.1
	wait           = no
	user           = ` + user + `
	server         = {{DIR}}/envcat.sh
	only_from      = 127.0.0.3 ::1
	proxy_protocol = v1 v2
	log_type       = FILE {{DIR}}/envcat.json
	log_format     = json
}
service hold
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P1}}
	bind           = 127.0.0.1
	wait           = no
	user           = ` + user + `
	server         = {{DIR}}/hold.sh
	per_source     = 1
	proxy_protocol = v2
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	front := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	startHAProxy(t, dir, fmt.Sprintf(`
global
	maxconn 200
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend v1
	bind 127.0.0.1:%[3]d
	default_backend gx_v1
frontend v2
	bind 127.0.0.1:%[4]d
	default_backend gx_v2
frontend v2six
	bind [::1]:%[5]d
	default_backend gx_v2
frontend hold
	bind 127.0.0.1:%[6]d
	default_backend gx_hold
backend gx_v1
	server gx 127.0.0.1:%[1]d send-proxy
backend gx_v2
	server gx 127.0.0.1:%[1]d send-proxy-v2
backend gx_hold
	server gx 127.0.0.1:%[2]d send-proxy-v2
`, ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]), front(2), front(3), fmt.Sprintf("[::1]:%d", ports[4]), front(5))

	for _, tc := range []struct {
		name, src, addr, client string
	}{
		{"send-proxy", "127.0.0.3", front(2), "127.0.0.3"},
		{"send-proxy-v2", "127.0.0.3", front(3), "127.0.0.3"},
		{"send-proxy-v2 ipv6", "::1", fmt.Sprintf("[::1]:%d", ports[4]), "::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialFrom(tc.src, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			cport := fmt.Sprint(c.LocalAddr().(*net.TCPAddr).Port)
			c.SetDeadline(time.Now().Add(15 * time.Second))
			io.WriteString(c, "through haproxy\n")
			c.(*net.TCPConn).CloseWrite()
			out, _ := io.ReadAll(c)
			c.Close()
			env, echoed, _ := strings.Cut(string(out), "---\n")
			e := envOf(env)
			if e["REMOTE_HOST"] != tc.client || e["TCPREMOTEIP"] != tc.client || e["REMOTE_PORT"] != cport {
				t.Errorf("server saw %s port %s, want %s port %s:\n%s", e["REMOTE_HOST"], e["REMOTE_PORT"], tc.client, cport, out)
			}
			if echoed != "through haproxy\n" {
				t.Errorf("server read %q", echoed)
			}
			recs := lgWaitRecords(t, filepath.Join(dir, "envcat.json"), "json", lgRecord{"event": "START", "remote": tc.client, "remote_port": cport}, 10*time.Second)
			r := lgFind(recs, lgRecord{"event": "START", "remote": tc.client, "remote_port": cport})[0]
			if !lgIsLoopback(r["proxy"]) {
				t.Errorf("START record does not name haproxy as the proxy: %v", r)
			}
		})
	}
	// only_from judges the real client: 127.0.0.4 is refused, by name.
	c, err := dialFrom("127.0.0.4", front(3))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(15 * time.Second))
	b, _ := io.ReadAll(c)
	c.Close()
	if len(b) != 0 {
		t.Errorf("client outside only_from served: %q", b)
	}
	recs := lgWaitRecords(t, filepath.Join(dir, "envcat.json"), "json", lgRecord{"event": "FAIL", "remote": "127.0.0.4"}, 10*time.Second)
	if r := lgFind(recs, lgRecord{"event": "FAIL", "remote": "127.0.0.4"})[0]; r["reason"] != "address" || !lgIsLoopback(r["proxy"]) {
		t.Errorf("FAIL record: %v", r)
	}

	// per_source counts the real clients, not haproxy.
	hold := func(src string) string {
		c, err := dialFrom(src, front(5))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(15 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	if got := hold("127.0.0.5"); got != "hello\n" {
		t.Fatalf("first client: %q", got)
	}
	if got := hold("127.0.0.5"); got != "" {
		t.Errorf("second connection of the same client behind haproxy: %q", got)
	}
	d.waitSvcLog(`FAIL: hold per_source_limit from=127\.0\.0\.5\n`, 10*time.Second)
	if got := hold("127.0.0.6"); got != "hello\n" {
		t.Errorf("another client behind the same haproxy: %q", got)
	}
	d.waitSvcLog(`START: hold pid=\d+ from=127\.0\.0\.6 proxy=(::ffff:)?127\.0\.0\.1\n`, 10*time.Second)
}

// TestRedirectIntoHAProxy: gxinetd's redirect sends a v2 header to an
// haproxy with accept-proxy, which passes the client on (send-proxy) to a
// backend: the backend hears of the client that connected to gxinetd.
// gxinetd itself is behind a second haproxy (send-proxy), so the client
// crosses gxinetd in both directions of the protocol.
func TestRedirectIntoHAProxy(t *testing.T) {
	needCmd(t, "haproxy")
	ports := freePorts(t, 4)
	// haproxy is given the backend's port in its configuration: it comes
	// from the held block, like the others.
	be, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[3]))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	heard := make(chan string, 4)
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				r := bufio.NewReader(c)
				hdr, _ := r.ReadString('\n')
				rest, _ := io.ReadAll(r)
				heard <- hdr + string(rest)
				io.WriteString(c, "backend answer\n")
			}(c)
		}
	}()
	dir := newDir(t)
	conf := baseDefaults + fmt.Sprintf(`
service relay
{
	type                    = UNLISTED
	socket_type             = stream
	protocol                = tcp
	port                    = {{P0}}
	wait                    = no
	user                    = %[1]s
	redirect                = 127.0.0.1 {{P1}}
	redirect_proxy_protocol = v2
	proxy_protocol          = v1
	proxy_from              = 127.0.0.1
}
`, currentUser(t))
	start(t, dir, render(t, dir, conf, ports))
	startHAProxy(t, dir, fmt.Sprintf(`
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend in
	bind 127.0.0.1:%[2]d
	default_backend gx
backend gx
	server gx 127.0.0.1:%[1]d send-proxy
frontend after
	bind 127.0.0.1:%[3]d accept-proxy
	default_backend app
backend app
	server app 127.0.0.1:%[4]d send-proxy
`, ports[0], ports[2], ports[1], ports[3]), fmt.Sprintf("127.0.0.1:%d", ports[2]))

	c, err := dialFrom("127.0.0.9", fmt.Sprintf("127.0.0.1:%d", ports[2]))
	if err != nil {
		t.Fatal(err)
	}
	cport := c.LocalAddr().(*net.TCPAddr).Port
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "hello backend\n")
	c.(*net.TCPConn).CloseWrite()
	answer, _ := io.ReadAll(c)
	c.Close()
	// The check that haproxy listens went through the whole chain too,
	// saying nothing: skip that session.
	want := fmt.Sprintf("PROXY TCP4 127.0.0.9 127.0.0.1 %d %d\r\nhello backend\n", cport, ports[2])
	for got := ""; !strings.HasSuffix(got, "hello backend\n"); {
		select {
		case got = <-heard:
			if strings.HasSuffix(got, "hello backend\n") && got != want {
				t.Errorf("backend heard %q, want %q", got, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the backend heard nothing from the client")
		}
	}
	if string(answer) != "backend answer\n" {
		t.Errorf("client got %q after its half-close", answer)
	}
}
