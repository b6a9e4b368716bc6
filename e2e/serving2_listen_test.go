package e2e

// Listener tests (GitHub issue 4): bind addresses and interfaces, address
// families, V6ONLY, a port already in use, the listen backlog.

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func daytimeSvc(id, port, extra string) string {
	return `
service daytime
{
	id          = ` + id + `
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = ` + port + `
	wait        = no
` + extra + `
}
`
}

// reachable reports whether a daytime answer comes from addr.
func reachable(t *testing.T, addr string) bool {
	t.Helper()
	got, err := tcpExchange(t, addr, "", 2*time.Second)
	return err == nil && dayTimeRE.MatchString(got)
}

func TestListenerAddressesAndFamilies(t *testing.T) {
	cases := []struct {
		id, extra string
		v4, v6    bool
		v4From    string // how an IPv4 client is logged, when served
	}{
		{"default", "", true, true, `::ffff:127\.0\.0\.1`},
		{"bind4", "\tbind = 127.0.0.1", true, false, `127\.0\.0\.1`},
		{"bind6", "\tbind = ::1", false, true, ""},
		{"flag4", "\tflags = IPv4", true, false, `127\.0\.0\.1`},
		{"flag6", "\tflags = IPv6", true, true, `::ffff:127\.0\.0\.1`},
		{"flag6only", "\tflags = IPv6\n\tv6only = yes", false, true, ""},
		{"v6only-yes", "\tv6only = yes", false, true, ""},
		// xinetd sets V6ONLY for any v6only line; gxinetd keeps the value.
		{"v6only-no", "\tv6only = no", true, true, `::ffff:127\.0\.0\.1`},
		{"lo", "\tbind = lo", true, true, `127\.0\.0\.1`},
	}
	ports := freePorts(t, len(cases))
	dir := newDir(t)
	conf := baseDefaults
	for i, c := range cases {
		conf += daytimeSvc(c.id, fmt.Sprintf("{{P%d}}", i), c.extra)
	}
	d := start(t, dir, render(t, dir, conf, ports))
	for i, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			if got := reachable(t, fmt.Sprintf("127.0.0.1:%d", ports[i])); got != c.v4 {
				t.Errorf("served on 127.0.0.1 = %v, want %v", got, c.v4)
			}
			if got := reachable(t, fmt.Sprintf("[::1]:%d", ports[i])); got != c.v6 {
				t.Errorf("served on ::1 = %v, want %v", got, c.v6)
			}
			if c.v4 {
				d.waitSvcLog(`START: `+c.id+` pid=0 from=`+c.v4From+`\n`, 5*time.Second)
			}
			if c.v6 {
				d.waitSvcLog(`START: `+c.id+` pid=0 from=::1\n`, 5*time.Second)
			}
		})
	}
}

// TestPortInUseDisablesOnlyThatService: a port another program holds
// stops only the service that wants it; the daemon says so, serves the
// others, and binds the port once it is free.
func TestPortInUseDisablesOnlyThatService(t *testing.T) {
	ports := freePorts(t, 2)
	squatter, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	dir := newDir(t)
	conf := baseDefaults + daytimeSvc("free", "{{P0}}", "\tbind = 127.0.0.1") + daytimeSvc("taken", "{{P1}}", "\tbind = 127.0.0.1")
	d := start(t, dir, render(t, dir, conf, ports))
	d.waitLog(`ERROR: bind failed \(Address already in use \(errno = 98\)\)\. service = taken`, 5*time.Second)
	if !reachable(t, fmt.Sprintf("127.0.0.1:%d", ports[0])) {
		t.Fatalf("the service with a free port must serve:\n%s", d.daemonLog())
	}
	if strings.Contains(d.daemonLog(), "service = free") {
		t.Fatalf("the free service was reported:\n%s", d.daemonLog())
	}
	// Retries while the port stays taken are quiet: one message, not one per retry.
	time.Sleep(6 * time.Second)
	if n := strings.Count(d.daemonLog(), "service = taken"); n != 1 {
		t.Errorf("bind failure logged %d times across retries, want once:\n%s", n, d.daemonLog())
	}
	squatter.Close()
	d.waitLog(`service taken: now listening on tcp/127\.0\.0\.1:`, 12*time.Second)
	if !reachable(t, fmt.Sprintf("127.0.0.1:%d", ports[1])) {
		t.Fatalf("the service must serve once its port is free")
	}
}

// TestBacklog: the backlog attribute reaches listen(2) (ss shows a
// listener's backlog as its Send-Q).
func TestBacklog(t *testing.T) {
	needCmd(t, "ss")
	ports := freePorts(t, 2)
	dir := newDir(t)
	conf := baseDefaults + daytimeSvc("small", "{{P0}}", "\tbind = 127.0.0.1\n\tbacklog = 7") +
		daytimeSvc("dflt", "{{P1}}", "\tbind = 127.0.0.1")
	start(t, dir, render(t, dir, conf, ports))
	for i, want := range []string{"7", "1024"} {
		out, err := exec.Command("ss", "-ltnH", fmt.Sprintf("sport = :%d", ports[i])).Output()
		if err != nil {
			t.Fatalf("ss: %v", err)
		}
		f := strings.Fields(string(out))
		if len(f) < 3 || f[0] != "LISTEN" {
			t.Fatalf("ss shows no listener on %d: %q", ports[i], out)
		}
		// The kernel caps the backlog at net.core.somaxconn.
		if f[2] != want && !(want == "1024" && f[2] == readSomaxconn()) {
			t.Errorf("port %d: backlog %s, want %s", ports[i], f[2], want)
		}
	}
}

func readSomaxconn() string {
	return strings.TrimSpace(readFile("/proc/sys/net/core/somaxconn"))
}
