package e2e

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// dialFrom connects from a chosen loopback source address.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return d.Dial("tcp", addr)
}

// readAllFrom connects from src and reads until the daemon closes the
// connection. The bound is generous: the answer may come from a server
// started on a loaded host; a refused client is closed at once.
func readAllFrom(src, addr string) (string, error) {
	c, err := dialFrom(src, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String(), nil
		}
	}
}

func TestOnlyFromNoAccessAndSensor(t *testing.T) {
	ports := freePorts(t, 3)
	dir := newDir(t)
	conf := baseDefaults + `
service daytime
{
	id          = dt
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	only_from   = 127.0.0.0/8
	no_access   = 127.0.0.5
	banner_fail = {{DIR}}/fail.txt
}
service daytime
{
	id          = dt-specific
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	only_from   = 127.0.0.9
	no_access   = 127.0.0.0/8
}
service trap
{
	type        = INTERNAL UNLISTED
	flags       = SENSOR
	socket_type = stream
	protocol    = tcp
	port        = {{P2}}
	wait        = no
	deny_time   = 5
}
`
	writeFile(t, dir+"/fail.txt", "go away\n")
	d := start(t, dir, render(t, dir, conf, ports))
	dt := fmt.Sprintf("127.0.0.1:%d", ports[0])
	spec := fmt.Sprintf("127.0.0.1:%d", ports[1])
	trap := fmt.Sprintf("127.0.0.1:%d", ports[2])

	if got, _ := readAllFrom("127.0.0.1", dt); !dayTimeRE.MatchString(got) {
		t.Errorf("127.0.0.1 must be served: %q", got)
	}
	if got, _ := readAllFrom("127.0.0.5", dt); got != "go away\n" {
		t.Errorf("127.0.0.5 is in no_access: want banner_fail only, got %q", got)
	}
	d.waitSvcLog(`FAIL: dt address from=(::ffff:)?127\.0\.0\.5`, 5*time.Second)
	// Most specific entry wins: the exact host in only_from beats the /8 in no_access.
	if got, _ := readAllFrom("127.0.0.9", spec); !dayTimeRE.MatchString(got) {
		t.Errorf("127.0.0.9 matches only_from exactly and must be served: %q", got)
	}
	if got, _ := readAllFrom("127.0.0.8", spec); got != "" {
		t.Errorf("127.0.0.8 must be refused: %q", got)
	}
	// SENSOR: touching the trap denies the address everywhere.
	readAllFrom("127.0.0.7", trap)
	d.waitSvcLog(`FAIL: trap address from=(::ffff:)?127\.0\.0\.7`, 5*time.Second)
	d.waitLog(`Adding (::ffff:)?127\.0\.0\.7 to the global_no_access list for 5 minutes`, 5*time.Second)
	if got, _ := readAllFrom("127.0.0.7", dt); got != "go away\n" {
		t.Errorf("sensor-listed 127.0.0.7 must be refused by every service: %q", got)
	}
	if got, _ := readAllFrom("127.0.0.1", dt); !dayTimeRE.MatchString(got) {
		t.Errorf("others still served: %q", got)
	}
	// No process was started for any refusal: no START for refused clients.
	if strings.Contains(readFile(d.svcLog), "START: dt pid=0 from=127.0.0.5") {
		t.Errorf("refused client got a START record")
	}
}

func TestCPSTripsAndReopens(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := baseDefaults + `
service daytime
{
	id          = limited
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	cps         = 2 1
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	// All six connect before any is read: they wait in the backlog and
	// the daemon takes them in one burst, well within one second however
	// slowly the test itself runs (one exchange after the other could
	// spread them over more than a second on a loaded machine, and then
	// cps need not trip, or the service could already be back). Once it
	// trips, the listener is closed: later ones may be refused.
	var conns []net.Conn
	for i := 0; i < 6; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			continue
		}
		defer c.Close()
		conns = append(conns, c)
	}
	served := 0
	for _, c := range conns {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if got, err := io.ReadAll(c); err == nil && dayTimeRE.Match(got) {
			served++
		}
	}
	if served > 3 {
		t.Errorf("cps = 2 served %d of 6 immediate connections", served)
	}
	d.waitSvcLog(`FAIL: limited connections per second from=(::ffff:)?127\.0\.0\.1`, 5*time.Second)
	d.waitLog(`Deactivating service daytime due to excessive incoming connections\.  Restarting in 1 seconds\.`, 5*time.Second)
	d.waitLog(`Activating service daytime`, 5*time.Second)
	// Served again (bounded, no fixed pause after the message).
	deadline := waitBound(5 * time.Second)
	for {
		got, err := tcpExchange(t, addr, "", 5*time.Second)
		if err == nil && dayTimeRE.MatchString(got) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service not back after WAIT: %q %v\n%s", got, err, d.daemonLog())
		}
		// Slower than cps = 2 trips (three within a second).
		time.Sleep(700 * time.Millisecond)
	}
}

func TestInstancesAndPerSourceExact(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := baseDefaults + `
service hold
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	user        = ` + currentUser(t) + `
	server      = /bin/sleep
	server_args = 30
	instances   = 3
	per_source  = 2
}
`
	d := start(t, dir, render(t, dir, conf, ports), "-grace", "1s")
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// Each client is decided before the next connects (connections are
	// decided concurrently, so a fixed pause would not say in which
	// order): its record is the sign.
	for _, c := range []struct{ src, record string }{
		{"127.0.0.1", `(?s)(START: hold .*){1}`},
		{"127.0.0.1", `(?s)(START: hold .*){2}`},
		{"127.0.0.1", `FAIL: hold per_source_limit from=(::ffff:)?127\.0\.0\.1\n`},
		{"127.0.0.2", `START: hold pid=\d+ from=(::ffff:)?127\.0\.0\.2\n`},
		{"127.0.0.3", `FAIL: hold service_limit from=(::ffff:)?127\.0\.0\.3\n`},
	} {
		conn, err := dialFrom(c.src, addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
		d.waitSvcLog(c.record, 5*time.Second)
	}
	if n := strings.Count(readFile(d.svcLog), "START: hold"); n != 3 {
		t.Errorf("%d servers started, want exactly 3:\n%s", n, readFile(d.svcLog))
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := osWriteFile(path, s); err != nil {
		t.Fatal(err)
	}
}
