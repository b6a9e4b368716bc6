package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestRedirectResetsAndInstances: a redirect's sessions are accepted and
// started on the relay's threads (spawn.RelayListener). Clients that
// reset their connection mid-session each give their instance back
// exactly once: with instances = 2 and two sessions held, a third client
// is refused, and the next one is served as soon as one of the two ends. A backend that
// refuses is logged as before, and the client closed. The daemon ends
// with the descriptors it began with.
func TestRedirectResetsAndInstances(t *testing.T) {
	backend, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	holdAccepted(t, backend, func(c net.Conn) {
		go func() {
			io.Copy(c, c)
			c.Close()
		}()
	})
	ports := freePorts(t, 3) // the two services, and one nobody listens on
	dir := newDir(t)
	conf := baseDefaults + `
service proxy
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	user        = nobody
	instances   = 2
	redirect    = 127.0.0.1 ` + strconv.Itoa(backend.Addr().(*net.TCPAddr).Port) + `
}
service dead
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	user        = nobody
	redirect    = 127.0.0.1 ` + strconv.Itoa(ports[2]) + `
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])

	// open connects and has one line echoed, so that the session is up.
	open := func(line string) (*net.TCPConn, *bufio.Reader) {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		tc := c.(*net.TCPConn)
		tc.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(tc, line+"\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(tc)
		got, err := br.ReadString('\n')
		if err != nil || got != line+"\n" {
			t.Fatalf("%s: echo %q, %v", line, got, err)
		}
		return tc, br
	}
	const resets = 6
	for i := 0; i < resets; i++ {
		c, _ := open(fmt.Sprintf("reset %d", i))
		c.SetLinger(0)
		c.Close() // an RST, mid-session
	}
	waitCount(t, func() string { return readFile(d.svcLog) }, `EXIT: proxy `, resets, 10*time.Second)
	// The daemon's descriptors once the log is open and no session runs.
	fdsBefore := countFDs(d.pid())
	linksBefore := fdLinks(d.pid())

	// The resets gave their instances back: two sessions are served.
	a, _ := open("held a")
	defer a.Close()
	b, _ := open("held b")
	defer b.Close()
	// A third is refused at the limit (xinetd's instances; a slot given
	// back twice by a reset would let it in).
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "third\n")
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := c.Read(make([]byte, 16)); n != 0 || err == nil {
		t.Fatalf("a third session was served while two instances were held: %d bytes, %v", n, err)
	}
	d.waitSvcLog(`FAIL: proxy service_limit`, 10*time.Second)
	// One ends: the next client is served.
	a.Close()
	waitCount(t, func() string { return readFile(d.svcLog) }, `EXIT: proxy `, resets+1, 10*time.Second)
	f, _ := open("fourth")
	f.Close()
	b.Close()

	// A backend that refuses: logged, and the client closed.
	dc, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dc.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := dc.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("client of a refusing backend read %d bytes, %v", n, err)
	}
	dc.Close()
	d.waitLog(fmt.Sprintf(`service dead: spawn: redirect: connect 127.0.0.1:%d: connect: connection refused`, ports[2]), 10*time.Second)

	waitCount(t, func() string { return readFile(d.svcLog) }, `EXIT: proxy `, resets+3, 10*time.Second)
	deadline := waitBound(10 * time.Second)
	for countFDs(d.pid()) > fdsBefore {
		if time.Now().After(deadline) {
			t.Fatalf("daemon descriptors: %d before, %d after every session ended\nbefore %v\nafter  %v", fdsBefore, countFDs(d.pid()), linksBefore, fdLinks(d.pid()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fdLinks lists what pid's descriptors are (for a failure's message).
func fdLinks(pid int) []string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, e.Name()+"="+l)
	}
	return out
}
