package e2e

import (
	"fmt"
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
