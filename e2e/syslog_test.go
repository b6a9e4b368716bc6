package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSyslogRecords: log_type SYSLOG writes RFC 3164 datagrams to the
// syslog socket with xinetd's record text.
func TestSyslogRecords(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	sock := filepath.Join(dir, "log.sock")
	rx, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	conf := `
defaults
{
	log_type       = SYSLOG local3
	log_on_success = PID HOST
	cps            = 0 0
}
service daytime
{
	id          = dt
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
}
`
	start(t, dir, render(t, dir, conf, ports), "-syslog-socket", sock, "-syslog-ident", "xinetd")
	tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second)
	buf := make([]byte, 2048)
	deadline := waitBound(5 * time.Second)
	for time.Now().Before(deadline) {
		rx.SetReadDeadline(deadline)
		n, err := rx.Read(buf)
		if err != nil {
			break
		}
		msg := string(buf[:n])
		// <158> = local3 (19) * 8 + info (6), as in xinetd's own capture.
		if strings.HasPrefix(msg, "<158>") && strings.Contains(msg, " xinetd[") && mustRE(`\]: START: dt pid=0 from=(::ffff:)?127\.0\.0\.1$`).MatchString(msg) {
			return
		}
	}
	t.Fatalf("no START datagram in xinetd's syslog form arrived")
}
