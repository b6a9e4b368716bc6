package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestReloadEndsRemovedServicesSessions: a reload that removes a service
// ends its in-process sessions (a redirect's, a builtin's), as xinetd's
// SIGKILL ends a removed redirect's children; a kept service's sessions
// go on untouched.
func TestReloadEndsRemovedServicesSessions(t *testing.T) {
	ports := freePorts(t, 3)
	dir := newDir(t)
	// The redirect's backend: echoes lines back, holds connections open.
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
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	echo := func(id, port string) string {
		return `
service echo
{
	id          = ` + id + `
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = ` + port + `
	wait        = no
	bind        = 127.0.0.1
}
`
	}
	redirect := `
service relay
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	user        = root
	bind        = 127.0.0.1
	redirect    = 127.0.0.1 ` + strconv.Itoa(be.Addr().(*net.TCPAddr).Port) + `
}
`
	d := start(t, dir, render(t, dir, baseDefaults+echo("gone", "{{P0}}")+redirect+echo("kept", "{{P2}}"), ports))

	open := func(port int) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		r := bufio.NewReader(c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			t.Fatal(err)
		}
		if l, err := r.ReadString('\n'); l != "ping\n" {
			t.Fatalf("port %d answered %q, %v", port, l, err)
		}
		return c, r
	}
	gone, goneR := open(ports[0])
	relay, relayR := open(ports[1])
	kept, keptR := open(ports[2])

	render(t, dir, baseDefaults+echo("kept", "{{P2}}"), ports)
	d.signal(syscall.SIGHUP)
	d.waitLog(`Reconfigured: new=0 old=1 dropped=2`, 10*time.Second)

	for name, c := range map[string]struct {
		c net.Conn
		r *bufio.Reader
	}{"builtin": {gone, goneR}, "redirect": {relay, relayR}} {
		c.c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c.c, "again\n")
		if l, err := c.r.ReadString('\n'); err == nil {
			t.Errorf("%s session of a removed service still answers %q after the reload", name, l)
		}
	}
	kept.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(kept, "still\n")
	if l, err := keptR.ReadString('\n'); l != "still\n" {
		t.Errorf("a kept service's session ended by the reload: %q, %v", l, err)
	}
}
