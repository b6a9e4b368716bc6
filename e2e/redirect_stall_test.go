package e2e

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

// stalledBackend listens on a port of its own with a backlog of none and
// never accepts; the test's own connection fills its queue, so the kernel
// drops every further SYN and a connect to it stays in progress until it
// times out, like a backend that has stopped.
func stalledBackend(t *testing.T) int {
	t.Helper()
	port := testnet.Ports(t, 1)[0]
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return port
}

// TestRedirectToStalledBackend: sessions connecting to a backend that
// does not answer hold nothing else up (the relay's event loop completes
// the connect; nothing waits for it): every other service on the daemon
// is served at once, the sessions end at their connect_timeout, and the
// daemon says why (before, a timed-out connect was taken for a client's
// timeout and not logged, though servers.md promised the line).
func TestRedirectToStalledBackend(t *testing.T) {
	ports := freePorts(t, 3)
	dir := newDir(t)
	be := stalledBackend(t)
	conf := baseDefaults + `
service stalled
{
	type            = UNLISTED
	socket_type     = stream
	protocol        = tcp
	port            = {{P0}}
	wait            = no
	redirect        = 127.0.0.1 ` + strconv.Itoa(be) + `
	connect_timeout = 4
	user            = root
}
service daytime
{
	type        = INTERNAL UNLISTED
	id          = daytime-stream
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
}
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
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < 20; i++ {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", ports[0]), 5*time.Second)
		if err != nil {
			t.Fatalf("redirect client %d: %v", i, err)
		}
		held = append(held, c)
	}
	// Twenty sessions are connecting now; the other services answer
	// while they do (twenty connects of 4 s made one after the other
	// would hold them for 80 s).
	began := time.Now()
	for i := 0; i < 5; i++ {
		got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 10*time.Second)
		if err != nil || !dayTimeRE.MatchString(got) {
			t.Fatalf("daytime %d with redirects connecting: %q, %v\n%s", i, got, err, d.daemonLog())
		}
		got, err = tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[2]), "", 10*time.Second)
		if err != nil || got != "served\n" {
			t.Fatalf("server %d with redirects connecting: %q, %v\n%s", i, got, err, d.daemonLog())
		}
	}
	if el := time.Since(began); el > 30*time.Second {
		t.Errorf("ten exchanges took %v with redirects connecting", el)
	}
	// Each session ends at its connect timeout: the client sees the
	// close, and the daemon says why (before, a timeout was taken for a
	// client's and not logged).
	for i, c := range held {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		var b [1]byte
		if _, err := c.Read(b[:]); err == nil {
			t.Fatalf("redirect client %d read data from a backend that never answered", i)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("redirect client %d still open 30 s after its connect_timeout of 4 s", i)
		}
	}
	d.waitLog(`service stalled: spawn: redirect: connect 127\.0\.0\.1:`+strconv.Itoa(be)+`: i/o timeout`, 10*time.Second)
}
