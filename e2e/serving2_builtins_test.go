package e2e

// Builtin serving paths (GitHub issue 4): the UDP reflection guard, the
// bounds on stream builtins, tcpmux.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// udpFrom sends one datagram from a socket bound to src and reports the
// answer, if any arrives within wait.
func udpFrom(t *testing.T, network, src, dst string, msg []byte, wait time.Duration) ([]byte, bool) {
	t.Helper()
	la, err := net.ResolveUDPAddr(network, src)
	if err != nil {
		t.Fatal(err)
	}
	ra, err := net.ResolveUDPAddr(network, dst)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP(network, la, ra)
	if err != nil {
		t.Fatalf("bind %s: %v", src, err)
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return nil, false
	}
	return buf[:n], true
}

// TestUDPReflectionGuard: datagram builtins do not answer privileged
// source ports or the daemon's own builtin ports (which is how two
// super-servers would ping-pong), say so once per source, and answer
// everybody else.
func TestUDPReflectionGuard(t *testing.T) {
	needRoot(t)
	ports := freePorts(t, 2)
	dir := newDir(t)
	conf := baseDefaults + `
service echo
{
	id          = echo-dgram
	type        = INTERNAL UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P0}}
	wait        = yes
}
service daytime
{
	id          = daytime-dgram
	type        = INTERNAL UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P1}}
	wait        = yes
	bind        = 127.0.0.1
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	echo := fmt.Sprintf("127.0.0.1:%d", ports[0])

	// A privileged source port: nothing back, one log line for two tries.
	// The socket bound to it is kept until the test ends: closed and bound
	// again, the port could meanwhile be another process's (another test
	// run probes the same range).
	var priv *net.UDPConn
	for p := 999; p > 900 && priv == nil; p-- {
		priv, _ = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
	}
	if priv == nil {
		t.Skip("no free privileged UDP port on 127.0.0.1")
	}
	defer priv.Close()
	privileged := priv.LocalAddr().String()
	echoAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ports[0]}
	for i := 0; i < 2; i++ {
		if _, err := priv.WriteToUDP([]byte("spoofed?"), echoAddr); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := net.SplitHostPort(privileged)
	pat := `refused datagram from \[::ffff:` + strings.ReplaceAll(host, ".", `\.`) + `\]:` + port + `: privileged source port`
	d.waitLog(pat, 5*time.Second)
	priv.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, _, err := priv.ReadFromUDP(make([]byte, 64)); err == nil {
		t.Fatalf("answered a privileged source port (%d bytes)", n)
	}

	// The daemon's own builtin port (daytime's, bound to 127.0.0.1 only,
	// so ::1 with that port is free for the client).
	own := fmt.Sprintf("[::1]:%d", ports[1])
	for i := 0; i < 2; i++ {
		if b, ok := udpFrom(t, "udp6", own, fmt.Sprintf("[::1]:%d", ports[0]), []byte("loop?"), 500*time.Millisecond); ok {
			t.Fatalf("answered a datagram from our own builtin port: %q", b)
		}
	}
	d.waitLog(`refused datagram from \[::1\]:\d+: source port is one of our own builtin ports`, 5*time.Second)
	log := d.daemonLog()
	if n := countIn(log, pat); n != 1 {
		t.Errorf("privileged source logged %d times for 2 datagrams, want 1:\n%s", n, log)
	}
	if n := countIn(log, `own builtin ports`); n != 1 {
		t.Errorf("loop source logged %d times for 2 datagrams, want 1:\n%s", n, log)
	}
	if n := countIn(readFile(d.svcLog), `START: echo-dgram`); n != 0 {
		t.Errorf("guarded datagrams must not be served or logged as served:\n%s", readFile(d.svcLog))
	}

	// An ordinary client is answered, over both families.
	if b, ok := udpFrom(t, "udp4", "127.0.0.1:0", echo, []byte("hello"), 3*time.Second); !ok || string(b) != "hello" {
		t.Fatalf("ordinary IPv4 client: %q, %v", b, ok)
	}
	if b, ok := udpFrom(t, "udp6", "[::1]:0", fmt.Sprintf("[::1]:%d", ports[0]), []byte("hello6"), 3*time.Second); !ok || string(b) != "hello6" {
		t.Fatalf("ordinary IPv6 client: %q, %v", b, ok)
	}
}

// TestStreamBuiltinsBounded: idle_timeout closes an idle echo session,
// max_bytes ends chargen.
func TestStreamBuiltinsBounded(t *testing.T) {
	ports := freePorts(t, 2)
	dir := newDir(t)
	conf := baseDefaults + `
service echo
{
	id           = idle-echo
	type         = INTERNAL UNLISTED
	socket_type  = stream
	protocol     = tcp
	port         = {{P0}}
	wait         = no
	idle_timeout = 2
}
service chargen
{
	id          = short-chargen
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	max_bytes   = 10000
}
`
	d := start(t, dir, render(t, dir, conf, ports))

	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Active first: an echo every second keeps the session for longer
	// than one timeout (each pause leaves a second to spare).
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var last time.Time
	for i := 0; i < 4; i++ {
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping\n" {
			t.Fatalf("echo %d: %q, %v", i, buf, err)
		}
		last = time.Now()
		if i < 3 {
			time.Sleep(time.Second)
		}
	}
	// Then idle: the daemon closes it about two seconds after the last echo.
	b, err := io.ReadAll(c)
	if err != nil || len(b) != 0 {
		t.Fatalf("idle echo: %q, %v", b, err)
	}
	if el := time.Since(last); el < 1500*time.Millisecond {
		t.Errorf("idle echo closed after %v, want about 2 s", el)
	}
	d.waitSvcLog(`EXIT: idle-echo status=0 pid=0`, 5*time.Second)

	got, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 10*time.Second)
	if err != nil {
		t.Fatalf("chargen: %v", err)
	}
	if len(got) == 0 || len(got) > 10000 || len(got) < 10000-74 {
		t.Fatalf("chargen with max_bytes = 10000 sent %d bytes", len(got))
	}
	// Whole lines of the pattern, from wherever the rotation stands.
	full := len(got) / 74
	matched := false
	for k := 0; k < 95 && !matched; k++ {
		ok := true
		for i := 0; i < full && ok; i++ {
			ok = got[i*74:(i+1)*74] == chargenLine(k+i)
		}
		matched = ok
	}
	if !matched {
		t.Fatalf("chargen output is not the chargen pattern: %q", got[:148])
	}
}

// TestTCPMux: RFC 1078 through the tcpmux builtin: a plain TCPMUX
// service answers itself, a TCPMUXPLUS one after "+Go", help lists the
// names, an unknown name gets "-" and no stray NUL byte.
func TestTCPMux(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	user := currentUser(t)
	conf := baseDefaults + `
service tcpmux
{
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
}
service muxplain
{
	type        = UNLISTED TCPMUX
	socket_type = stream
	protocol    = tcp
	wait        = no
	user        = ` + user + `
	server      = /bin/echo
	server_args = plain server
}
service muxplus
{
	type        = UNLISTED TCPMUXPLUS
	socket_type = stream
	protocol    = tcp
	wait        = no
	user        = ` + user + `
	server      = /bin/cat
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	cases := []struct{ send, want string }{
		{"muxplain\r\n", "plain server\n"},
		{"MuxPlain\r\n", "plain server\n"},
		// cat gets what follows the name line, untouched.
		{"muxplus\r\nafter the name\n", "+Go\r\nafter the name\n"},
		{"help\r\n", "muxplain\r\nmuxplus\r\n"},
		{"nosuch\r\n", "-Service name not found\r\n"},
	}
	for _, c := range cases {
		got, err := tcpExchange(t, addr, c.send, 5*time.Second)
		if err != nil || got != c.want {
			t.Errorf("tcpmux %q = %q, %v; want %q", c.send, got, err, c.want)
		}
		if bytes.IndexByte([]byte(got), 0) >= 0 {
			t.Errorf("tcpmux %q: reply holds a NUL byte: %q", c.send, got)
		}
	}
	// The selected service is logged as itself.
	d.waitSvcLog(`START: muxplain pid=\d+ from=::ffff:127\.0\.0\.1`, 5*time.Second)
	d.waitSvcLog(`EXIT: muxplus status=0 pid=\d+`, 5*time.Second)
}
