package e2e

import (
	"fmt"
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

func readAllFrom(src, addr string) (string, error) {
	c, err := dialFrom(src, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
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
	served := 0
	for i := 0; i < 6; i++ {
		if got, err := tcpExchange(t, addr, "", 2*time.Second); err == nil && dayTimeRE.MatchString(got) {
			served++
		}
	}
	if served > 3 {
		t.Errorf("cps = 2 served %d of 6 immediate connections", served)
	}
	d.waitSvcLog(`FAIL: limited connections per second from=(::ffff:)?127\.0\.0\.1`, 5*time.Second)
	d.waitLog(`Deactivating service daytime due to excessive incoming connections\.  Restarting in 1 seconds\.`, 5*time.Second)
	d.waitLog(`Activating service daytime`, 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	if got, err := tcpExchange(t, addr, "", 2*time.Second); err != nil || !dayTimeRE.MatchString(got) {
		t.Errorf("service not back after WAIT: %q %v", got, err)
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
	for _, src := range []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		c, err := dialFrom(src, addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		time.Sleep(150 * time.Millisecond)
	}
	log := d.waitSvcLog(`(?s)FAIL: hold per_source_limit from=(::ffff:)?127\.0\.0\.1.*FAIL: hold service_limit from=(::ffff:)?127\.0\.0\.3`, 5*time.Second)
	_ = log
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
