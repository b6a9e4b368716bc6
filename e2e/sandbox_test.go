package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// sandboxSvc is an external service of the sandbox tests, on port {{Pn}}.
func sandboxSvc(name string, port int, user string, lines string) string {
	return fmt.Sprintf(`
service %s
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P%d}}
	wait        = no
	user        = %s
%s
}
`, name, port, user, lines)
}

// TestMaxDuration: a server that outlives max_duration gets SIGTERM, one
// that ignores SIGTERM gets SIGKILL after the grace period, and each EXIT
// record says why; a server that ends in time has no reason.
func TestMaxDuration(t *testing.T) {
	ports := freePorts(t, 3)
	dir := newDir(t)
	u := currentUser(t)
	// A server that ignores SIGTERM, and so do the sleeps it starts.
	if err := os.WriteFile(filepath.Join(dir, "stubborn"), []byte("#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 1; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := baseDefaults +
		sandboxSvc("sleeper", 0, u, "\tserver = /bin/sleep\n\tserver_args = 100\n\tmax_duration = 1\n") +
		sandboxSvc("stubborn", 1, u, "\tserver = {{DIR}}/stubborn\n\tmax_duration = 1\n") +
		sandboxSvc("quick", 2, u, "\tserver = /bin/sleep\n\tserver_args = 0\n\tmax_duration = 5\n")
	d := start(t, dir, render(t, dir, conf, ports), "-grace", "2s")
	var conns []net.Conn
	for _, p := range ports {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	m := d.waitSvcLog(`EXIT: sleeper signal=15 pid=\d+ duration=(\d+)\(sec\) reason=max_duration`, 15*time.Second)
	if n, _ := strconv.Atoi(m[1]); n < 1 || n > 5 {
		t.Errorf("sleeper ended after %s s; max_duration is 1", m[1])
	}
	m = d.waitSvcLog(`EXIT: stubborn signal=9 pid=\d+ duration=(\d+)\(sec\) reason=max_duration`, 15*time.Second)
	if n, _ := strconv.Atoi(m[1]); n < 3 || n > 8 {
		t.Errorf("stubborn ended after %s s; max_duration 1 + grace 2", m[1])
	}
	d.waitSvcLog(`EXIT: quick status=0 pid=\d+ duration=0\(sec\)\n`, 10*time.Second)
	d.waitLog(`service sleeper: server \d+ ran for its max_duration of 1s; sending signal 15`, 5*time.Second)
}
