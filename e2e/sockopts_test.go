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

// TestBuiltinKeepAlive: a connection the daemon answers itself (echo) has
// keepalive only with flags = KEEPALIVE, and then with the system's
// timers, as its listener gives it; Go's 15 s default must not leak in.
// ss shows the daemon side's timer.
func TestBuiltinKeepAlive(t *testing.T) {
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("ss (iproute2) not installed")
	}
	ports := freePorts(t, 2)
	dir := newDir(t)
	svc := func(id, port, flags string) string {
		return `
service echo
{
	type        = INTERNAL UNLISTED
	id          = ` + id + `
	socket_type = stream
	protocol    = tcp
	port        = ` + port + `
	wait        = no
	bind        = 127.0.0.1
` + flags + `
}
`
	}
	conf := baseDefaults + svc("plain", "{{P0}}", "") + svc("kept", "{{P1}}", "\tflags = KEEPALIVE")
	start(t, dir, render(t, dir, conf, ports))
	idle, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_keepalive_time")
	for i, wantKeep := range []bool{false, true} {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[i]))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "hello\n")
		buf := make([]byte, 6)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ss", "-tnoH", "state", "established", fmt.Sprintf("( sport = :%d )", ports[i])).CombinedOutput()
		c.Close()
		if err != nil {
			t.Fatalf("ss: %v: %s", err, out)
		}
		line := strings.TrimSpace(string(out))
		if line == "" {
			t.Fatalf("service %d: ss shows no daemon-side connection", i)
		}
		hasKeep := strings.Contains(line, "timer:(keepalive")
		if hasKeep != wantKeep {
			t.Errorf("service %d: keepalive %v, want %v: %s", i, hasKeep, wantKeep, line)
		}
		// The system's idle time (7200 s unless changed) shows in minutes;
		// Go's 15 s default would show in seconds.
		if wantKeep && strings.TrimSpace(string(idle)) == "7200" && !strings.Contains(line, "min,") {
			t.Errorf("service %d: keepalive timer is not the system's 2 h: %s", i, line)
		}
	}
}
