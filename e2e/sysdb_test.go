package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadRereadsUsersAndGroups: a SIGHUP sees users and groups added
// since the start, both when the configuration is validated and when the
// server is started (initgroups for groups = yes).
func TestReloadRereadsUsersAndGroups(t *testing.T) {
	needRoot(t)
	ports := freePorts(t, 1)
	dir := newDir(t)
	etc := filepath.Join(dir, "root", "etc")
	os.MkdirAll(etc, 0o755)
	writeFile(t, filepath.Join(etc, "passwd"), "root:x:0:0:root:/root:/bin/sh\n")
	writeFile(t, filepath.Join(etc, "group"), "root:x:0:\n")
	svc := `
service whoami
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	user        = newbie
	groups      = yes
	server      = /usr/bin/id
}
`
	d := start(t, dir, render(t, dir, baseDefaults+daytimeConf("dt", "0"), ports), "-sysroot", filepath.Join(dir, "root"))
	writeFile(t, filepath.Join(etc, "passwd"), "root:x:0:0:root:/root:/bin/sh\nnewbie:x:4242:4242::/:/bin/sh\n")
	writeFile(t, filepath.Join(etc, "group"), "root:x:0:\nnewbie:x:4242:\nextra:x:4343:newbie\n")
	render(t, dir, baseDefaults+svc, ports)
	d.signal(syscall.SIGHUP)
	d.waitLog(`Reconfigured: new=1`, 10*time.Second)
	got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second)
	if err != nil || !strings.HasPrefix(got, "uid=4242 gid=4242 groups=4242,4343") {
		t.Fatalf("server runs as %q (%v), want uid 4242 with the new group 4343\n%s", got, err, d.daemonLog())
	}
}
