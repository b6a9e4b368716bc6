package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestServerSocketOptions: a server's connection has keepalive and
// nodelay only when the service's flags ask for them (as in xinetd), and
// it is a blocking descriptor.
func TestServerSocketOptions(t *testing.T) {
	srv := testServer(t)
	ports := freePorts(t, 2)
	dir := newDir(t)
	svc := func(name, port, flags string) string {
		return `
service ` + name + `
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = ` + port + `
	wait        = no
	user        = ` + currentUser(t) + `
	server      = ` + srv + `
	server_args = sockopts
` + flags + `
}
`
	}
	conf := baseDefaults + svc("plain", "{{P0}}", "") + svc("tuned", "{{P1}}", "\tflags = KEEPALIVE NODELAY")
	start(t, dir, render(t, dir, conf, ports))
	for i, want := range []string{"keepalive=0 nodelay=0 nonblock=0", "keepalive=1 nodelay=1 nonblock=0"} {
		got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[i]), "", 5*time.Second)
		if err != nil || strings.TrimSpace(got) != want {
			t.Errorf("service %d: server sees %q (%v), want %q", i, got, err, want)
		}
	}
}

// TestBuiltinKeepAlive: a connection the daemon serves itself (echo, and
// both sides of a redirect) has keepalive only with flags = KEEPALIVE,
// and then with the system's timers; Go's 15 s default must not leak in.
// ss shows the daemon side's timer.
func TestBuiltinKeepAlive(t *testing.T) {
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("ss (iproute2) not installed")
	}
	// The redirect's upstream: echoes, one connection at a time.
	be, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	bePort := be.Addr().(*net.TCPAddr).Port
	ports := freePorts(t, 4)
	dir := newDir(t)
	svc := func(name, id, port, extra string) string {
		typ := "INTERNAL UNLISTED"
		if name != "echo" {
			typ = "UNLISTED"
		}
		return `
service ` + name + `
{
	type        = ` + typ + `
	id          = ` + id + `
	socket_type = stream
	protocol    = tcp
	port        = ` + port + `
	wait        = no
	bind        = 127.0.0.1
` + extra + `
}
`
	}
	redirect := fmt.Sprintf("\tredirect = 127.0.0.1 %d\n\tuser = %s\n", bePort, currentUser(t))
	conf := baseDefaults + svc("echo", "plain", "{{P0}}", "") + svc("echo", "kept", "{{P1}}", "\tflags = KEEPALIVE") +
		svc("proxied", "rplain", "{{P2}}", redirect) + svc("proxied", "rkept", "{{P3}}", redirect+"\tflags = KEEPALIVE")
	start(t, dir, render(t, dir, conf, ports))
	idle, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_keepalive_time")
	// check looks at the daemon's end of the connections ss selects.
	check := func(what, filter string, wantKeep bool) {
		t.Helper()
		out, err := exec.Command("ss", "-tnoH", "state", "established", filter).CombinedOutput()
		if err != nil {
			t.Fatalf("ss: %v: %s", err, out)
		}
		line := strings.TrimSpace(string(out))
		if line == "" {
			t.Fatalf("%s: ss shows no connection for %s", what, filter)
		}
		hasKeep := strings.Contains(line, "timer:(keepalive")
		if hasKeep != wantKeep {
			t.Errorf("%s: keepalive %v, want %v: %s", what, hasKeep, wantKeep, line)
		}
		// The system's idle time (7200 s unless changed) shows in minutes;
		// Go's 15 s default would show in seconds.
		if wantKeep && strings.TrimSpace(string(idle)) == "7200" && !strings.Contains(line, "min,") {
			t.Errorf("%s: keepalive timer is not the system's 2 h: %s", what, line)
		}
	}
	for i, wantKeep := range []bool{false, true, false, true} {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[i]))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "hello\n")
		buf := make([]byte, 6)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("service %d: %v", i, err)
		}
		check(fmt.Sprintf("service %d, client side", i), fmt.Sprintf("( sport = :%d )", ports[i]), wantKeep)
		if i >= 2 {
			// The daemon's connection to the upstream, from the daemon's end.
			check(fmt.Sprintf("service %d, upstream side", i), fmt.Sprintf("( dport = :%d )", bePort), wantKeep)
		}
		c.Close()
		// Let the session end before the next one shares the upstream port.
		deadline := waitBound(5 * time.Second)
		for time.Now().Before(deadline) {
			out, _ := exec.Command("ss", "-tnH", "state", "established", fmt.Sprintf("( dport = :%d )", bePort)).CombinedOutput()
			if strings.TrimSpace(string(out)) == "" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
