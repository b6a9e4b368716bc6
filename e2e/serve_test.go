package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const baseDefaults = `
defaults
{
	log_type        = FILE {{LOG}}
	log_on_success  = PID HOST EXIT DURATION
	log_on_failure  = HOST
	cps             = 0 0
	instances       = UNLIMITED
}
`

func builtinConf(name string, port string) string {
	return fmt.Sprintf(`
service %[1]s
{
	id          = %[1]s-stream
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = %[2]s
	wait        = no
}
service %[1]s
{
	id          = %[1]s-dgram
	type        = INTERNAL UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = %[2]s
	wait        = yes
}
`, name, port)
}

// chargenLine is line k of the chargen pattern: 72 characters from the 93
// printable characters '!'..'}', starting k places further each line.
func chargenLine(k int) string {
	b := make([]byte, 72)
	for j := range b {
		b[j] = byte(0x21 + ((k%95)+j)%93)
	}
	return string(b) + "\r\n"
}

func TestBuiltinsTCPAndUDP(t *testing.T) {
	ports := freePorts(t, 5)
	dir := newDir(t)
	conf := baseDefaults + builtinConf("echo", "{{P0}}") + builtinConf("discard", "{{P1}}") +
		builtinConf("daytime", "{{P2}}") + builtinConf("time", "{{P3}}") + builtinConf("chargen", "{{P4}}")
	d := start(t, dir, render(t, dir, conf, ports))
	_ = d
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		host := host
		t.Run(host, func(t *testing.T) {
			addr := func(i int) string { return host + ":" + strconv.Itoa(ports[i]) }
			// echo, TCP: everything comes back, and half-close ends it.
			got, err := tcpExchange(t, addr(0), "hello, echo\n", 5*time.Second)
			if err != nil || got != "hello, echo\n" {
				t.Errorf("tcp echo = %q, %v", got, err)
			}
			// discard: nothing comes back.
			got, err = tcpExchange(t, addr(1), "into the void", 5*time.Second)
			if err != nil || got != "" {
				t.Errorf("tcp discard = %q, %v", got, err)
			}
			// daytime: "DD MON YYYY HH:MM:SS ZONE\r\n".
			got, err = tcpExchange(t, addr(2), "", 5*time.Second)
			if err != nil || !dayTimeRE.MatchString(got) {
				t.Errorf("tcp daytime = %q, %v", got, err)
			}
			// time: 4 bytes, seconds since 1900.
			got, err = tcpExchange(t, addr(3), "", 5*time.Second)
			checkTime(t, "tcp time", []byte(got), err)
			// chargen: the rotating pattern, read a bounded amount.
			c, err := net.DialTimeout("tcp", addr(4), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 74*200)
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Errorf("chargen read: %v", err)
			}
			c.Close()
			// The stream starts wherever the shared rotation stands; lines k
			// and k+93 coincide, so accept any start the pattern allows.
			matched := false
			for k := 0; k < 95 && !matched; k++ {
				ok := true
				for i := 0; i < 200 && ok; i++ {
					ok = string(buf[i*74:(i+1)*74]) == chargenLine(k+i)
				}
				matched = ok
			}
			if !matched {
				t.Fatalf("chargen output is not the chargen pattern: %q", buf[:148])
			}

			network := "udp4"
			if strings.HasPrefix(host, "[") {
				network = "udp6"
			}
			b, err := udpExchange(t, network, addr(0), []byte("ping over udp"), 3*time.Second)
			if err != nil || string(b) != "ping over udp" {
				t.Errorf("udp echo = %q, %v", b, err)
			}
			b, err = udpExchange(t, network, addr(2), []byte("x"), 3*time.Second)
			if err != nil || !dayTimeRE.Match(b) {
				t.Errorf("udp daytime = %q, %v", b, err)
			}
			b, err = udpExchange(t, network, addr(3), []byte("x"), 3*time.Second)
			checkTime(t, "udp time", b, err)
			b, err = udpExchange(t, network, addr(4), []byte("x"), 3*time.Second)
			if err != nil || len(b) != 1024 || !bytes.HasSuffix(b, []byte("\r\n")) {
				t.Errorf("udp chargen = %d bytes, %v", len(b), err)
			}
		})
	}

	// Real clients: nc, socat and rdate.
	t.Run("real-clients", func(t *testing.T) {
		needCmd(t, "nc", "socat", "rdate")
		out, err := exec.Command("sh", "-c", fmt.Sprintf("printf 'via nc\\n' | nc -N 127.0.0.1 %d", ports[0])).Output()
		if err != nil || string(out) != "via nc\n" {
			t.Errorf("nc echo = %q, %v", out, err)
		}
		out, err = patient(func(wait int) ([]byte, error) {
			return exec.Command("sh", "-c", fmt.Sprintf("printf 'via socat udp6' | socat -T%[1]d -t%[1]d - UDP6:[::1]:%[2]d", wait, ports[0])).Output()
		}, func(b []byte) bool { return string(b) == "via socat udp6" })
		if err != nil || string(out) != "via socat udp6" {
			t.Errorf("socat udp6 echo = %q, %v", out, err)
		}
		out, err = patient(func(wait int) ([]byte, error) {
			return exec.Command("socat", fmt.Sprintf("-T%d", wait), fmt.Sprintf("-t%d", wait), "-", fmt.Sprintf("TCP6:[::1]:%d", ports[2])).Output()
		}, dayTimeRE.Match)
		if err != nil || !dayTimeRE.Match(out) {
			t.Errorf("socat tcp6 daytime = %q, %v", out, err)
		}
		for _, proto := range []string{"tcp", "udp"} {
			args := []string{"-p", "-o", strconv.Itoa(ports[3]), "127.0.0.1"}
			if proto == "udp" {
				args = append([]string{"-u"}, args...)
			}
			out, err = exec.Command("rdate", args...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), strconv.Itoa(time.Now().Year())) {
				t.Errorf("rdate %s = %q, %v", proto, out, err)
			}
		}
	})
	// Every builtin through socat and nc, TCP and UDP, IPv4 and IPv6.
	t.Run("socat-nc-matrix", func(t *testing.T) { builtinClientMatrix(t, ports) })
	// In-process builtins log pid=0, as xinetd's.
	d.waitSvcLog(`START: daytime-stream pid=0 from=`, 5*time.Second)
}

// patient runs a real client whose timeouts are whole seconds (socat's
// -T and -t, nc's -w) first with short ones, and again with long ones
// when the answer is not what ok wants: a client that gives up after a
// second (socat waits only half a second after its input ends, by
// default) turns a slow answer on a loaded host into a wrong one, while
// long timeouts on every run would make the many datagram clients, which
// always wait them out, slow.
func patient(run func(wait int) ([]byte, error), ok func([]byte) bool) ([]byte, error) {
	out, err := run(1)
	if ok(out) {
		return out, err
	}
	return run(10)
}

// builtinClientMatrix drives echo, discard, daytime, time and chargen
// (ports[0..4]) with the real socat and nc over tcp4, tcp6, udp4 and udp6.
func builtinClientMatrix(t *testing.T, ports []int) {
	needCmd(t, "nc", "socat")
	names := []string{"echo", "discard", "daytime", "time", "chargen"}
	check := map[string]func(out []byte, udp bool) bool{
		"echo":    func(out []byte, _ bool) bool { return string(out) == "ping" },
		"discard": func(out []byte, _ bool) bool { return len(out) == 0 },
		"daytime": func(out []byte, _ bool) bool { return dayTimeRE.Match(out) },
		"time": func(out []byte, _ bool) bool {
			if len(out) != 4 {
				return false
			}
			d := int64(binary.BigEndian.Uint32(out)) - 2208988800 - time.Now().Unix()
			return d > -5 && d < 5
		},
		"chargen": func(out []byte, udp bool) bool {
			if udp {
				return len(out) == 1024 && bytes.HasSuffix(out, []byte("\r\n"))
			}
			return len(out) == 740 && bytes.Count(out, []byte("\r\n")) == 10
		},
	}
	type client struct {
		name string
		argv func(fam, host string, port int, udp bool, builtin string, wait int) []string
	}
	clients := []client{
		{"socat", func(fam, host string, port int, udp bool, builtin string, wait int) []string {
			proto := "TCP" + fam
			if udp {
				proto = "UDP" + fam
			}
			addr := fmt.Sprintf("%s:%s:%d", proto, host, port)
			if builtin == "chargen" && !udp {
				return []string{"socat", fmt.Sprintf("-T%d", wait+1), "-u", addr + ",readbytes=740", "STDOUT"}
			}
			return []string{"socat", fmt.Sprintf("-T%d", wait), fmt.Sprintf("-t%d", wait), "-", addr}
		}},
		{"nc", func(fam, host string, port int, udp bool, builtin string, wait int) []string {
			h := strings.Trim(host, "[]")
			args := []string{"nc", "-" + fam, "-w", strconv.Itoa(wait)}
			if udp {
				args = append(args, "-u")
			} else if builtin != "chargen" {
				args = append(args, "-N")
			}
			return append(args, h, strconv.Itoa(port))
		}},
	}
	// The forty runs are independent (each its own client and socket);
	// most of their time is the datagram clients' wait for the end of a
	// timeout, so a few run at once.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	defer wg.Wait()
	for _, c := range clients {
		for _, fam := range []string{"4", "6"} {
			host := "127.0.0.1"
			if fam == "6" {
				host = "[::1]"
			}
			for _, udp := range []bool{false, true} {
				for i, name := range names {
					wg.Add(1)
					sem <- struct{}{}
					go func() {
						defer func() { <-sem; wg.Done() }()
						out, err := patient(func(wait int) ([]byte, error) {
							argv := c.argv(fam, host, ports[i], udp, name, wait)
							cmd := exec.Command(argv[0], argv[1:]...)
							cmd.Stdin = strings.NewReader("ping")
							if !udp && name != "echo" && name != "discard" {
								// daytime, time and chargen write and close: data sent
								// to them can make the kernel reset the connection
								// before the client has read the answer.
								cmd.Stdin = strings.NewReader("")
							}
							if name == "chargen" && !udp && c.name == "nc" {
								// nc has no byte limit: read a bounded prefix ourselves.
								cmd.Stdin = nil
								return readPrefix(cmd, 740)
							}
							return cmd.Output()
						}, func(out []byte) bool { return check[name](out, udp) })
						if !check[name](out, udp) {
							t.Errorf("%s %s over %s: %q (%v)", c.name, name, map[bool]string{false: "tcp" + fam, true: "udp" + fam}[udp], out, err)
						}
					}()
				}
			}
		}
	}
}

// readPrefix runs cmd and returns the first n bytes of its output, then
// stops it (it is ours, by PID).
func readPrefix(cmd *exec.Cmd, n int) ([]byte, error) {
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, n)
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(pipe, buf); done <- err }()
	select {
	case err := <-done:
		return buf, err
	case <-time.After(5 * time.Second):
		return nil, fmt.Errorf("no %d bytes within 5s", n)
	}
}

var dayTimeRE = mustRE(`^\d\d (JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC) \d{4} \d\d:\d\d:\d\d \S+\r\n$`)

func checkTime(t *testing.T, what string, b []byte, err error) {
	t.Helper()
	if err != nil || len(b) != 4 {
		t.Errorf("%s = %x, %v", what, b, err)
		return
	}
	got := int64(binary.BigEndian.Uint32(b)) - 2208988800
	if d := got - time.Now().Unix(); d < -5 || d > 5 {
		t.Errorf("%s is %d s off", what, d)
	}
}

func TestExternalServerEnvironment(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := baseDefaults + `
service printenv
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	user        = ` + currentUser(t) + `
	server      = /usr/bin/env
	env         = GREETING=hello
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	lport := c.LocalAddr().(*net.TCPAddr).Port
	c.SetDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(c)
	c.Close()
	env := string(out)
	for _, want := range []string{"GREETING=hello", "REMOTE_HOST=", fmt.Sprintf("REMOTE_PORT=%d", lport),
		fmt.Sprintf("TCPREMOTEPORT=%d", lport), fmt.Sprintf("LOCAL_PORT=%d", ports[0]), "TCPLOCALIP="} {
		if !strings.Contains(env, want) {
			t.Errorf("server environment lacks %q:\n%s", want, env)
		}
	}
	m := d.waitSvcLog(`START: printenv pid=(\d+) from=(\S+)`, 5*time.Second)
	d.waitSvcLog(`EXIT: printenv status=0 pid=`+m[1]+` duration=\d+\(sec\)`, 5*time.Second)
}

func currentUser(t *testing.T) string {
	if os.Geteuid() == 0 {
		return "root"
	}
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// TestPrivilegesAndLimitsInChild checks, from inside the server, that the
// user, groups, umask, nice and every rlimit are in force.
func TestPrivilegesAndLimitsInChild(t *testing.T) {
	needRoot(t)
	ports := freePorts(t, 2)
	dir := newDir(t)
	probe := filepath.Join(dir, "probe")
	script := "#!/bin/sh\ngrep -E '^(Uid|Gid|Groups|SigBlk|SigIgn):' /proc/self/status\necho umask=$(umask)\n" +
		"echo nice=$(cut -d' ' -f19 /proc/self/stat)\ncat /proc/self/limits\nls /proc/self/fd | wc -l | sed 's/^/fds=/'\n"
	if err := os.WriteFile(probe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := baseDefaults + `
service probe
{
	type         = UNLISTED
	socket_type  = stream
	protocol     = tcp
	port         = {{P0}}
	wait         = no
	user         = nobody
	server       = ` + probe + `
	umask        = 027
	nice         = -5
	rlimit_as    = 512M
	rlimit_cpu   = 7
	rlimit_data  = 256M
	rlimit_rss   = 128M
	rlimit_stack = 4M
	rlimit_files = 77
}
service probe-groups
{
	type         = UNLISTED
	socket_type  = stream
	protocol     = tcp
	port         = {{P1}}
	wait         = no
	user         = root
	group        = nogroup
	groups       = yes
	server       = ` + probe + `
}
`
	start(t, dir, render(t, dir, conf, ports))
	out, err := tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[0]), "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "Gid:\t65534\t65534\t65534\t65534",
		"SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000", "umask=0027", "nice=-5"} {
		if !strings.Contains(out, want) {
			t.Errorf("probe output lacks %q:\n%s", want, out)
		}
	}
	if m := mustRE(`(?m)^Groups:\s*$`).FindString(out); m == "" {
		t.Errorf("nobody must have no supplementary groups:\n%s", out)
	}
	limits := map[string]string{
		"Max address space": "536870912", "Max cpu time": "7", "Max data size": "268435456",
		"Max resident set": "134217728", "Max stack size": "4194304", "Max open files": "77",
	}
	for name, v := range limits {
		if !mustRE(`(?m)^` + name + `\s+` + v + `\s+` + v + `\s`).MatchString(out) {
			t.Errorf("limit %s is not %s/%s:\n%s", name, v, v, out)
		}
	}
	if !strings.Contains(out, "fds=4") { // 0, 1, 2 and the one ls opens
		t.Errorf("server must see only fds 0-2:\n%s", out)
	}
	out, err = tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// groups = yes: initgroups("root", root's primary group), group = nogroup as gid.
	if !strings.Contains(out, "Gid:\t65534") {
		t.Errorf("group = nogroup not applied:\n%s", out)
	}
	if m := mustRE(`(?m)^Groups:\s*0\b`).FindString(out); m == "" {
		t.Errorf("groups = yes must give root's groups:\n%s", out)
	}
}

func TestNoZombiesNoFDGrowth(t *testing.T) {
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := baseDefaults + `
service hello
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	user        = ` + currentUser(t) + `
	server      = /bin/echo
	server_args = hello
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	// Warm up, then measure once the warm-up's servers are gone.
	for i := 0; i < 20; i++ {
		tcpExchange(t, addr, "", 5*time.Second)
	}
	for deadline := waitBound(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if kids, _ := children(d.pid()); len(kids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the warm-up's servers did not end")
		}
	}
	before := countFDs(d.pid())
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := 0
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				got, err := tcpExchange(t, addr, "", 5*time.Second)
				if err != nil || got != "hello\n" {
					mu.Lock()
					bad++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if bad > 0 {
		t.Errorf("%d of 480 connections failed", bad)
	}
	deadline := waitBound(5 * time.Second)
	for {
		kids, zombies := children(d.pid())
		after := countFDs(d.pid())
		if len(kids) == 0 && zombies == 0 && after <= before+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the load: %d children (%d zombies), fds %d -> %d", len(kids), zombies, before, after)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedirectHalfCloseAndLargeTransfer(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() {
				// Echo everything, then, after the client's EOF, one more line:
				// only a proxy with half-close delivers it.
				io.Copy(c, c)
				io.WriteString(c, "bye after EOF\n")
				c.Close()
			}()
		}
	}()
	ports := freePorts(t, 1)
	dir := newDir(t)
	conf := baseDefaults + `
service proxy
{
	type            = UNLISTED
	socket_type     = stream
	protocol        = tcp
	port            = {{P0}}
	wait            = no
	user            = nobody
	redirect        = 127.0.0.1 ` + strconv.Itoa(backend.Addr().(*net.TCPAddr).Port) + `
	log_on_success  += TRAFFIC
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	got, err := tcpExchange(t, addr, "abc\n", 5*time.Second)
	if err != nil || got != "abc\nbye after EOF\n" {
		t.Fatalf("half-close through redirect = %q, %v", got, err)
	}
	d.waitSvcLog(`TRAFFIC: proxy in=4\(bytes\) out=18\(bytes\)`, 5*time.Second)

	// 32 MiB each way, checked byte for byte.
	const size = 32 << 20
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i*7 + i>>11)
	}
	want := sha256.Sum256(append(append([]byte{}, src...), "bye after EOF\n"...))
	go func() {
		c.Write(src)
		c.(*net.TCPConn).CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	c.Close()
	if err != nil || n != size+14 || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("large transfer: %d bytes, %v, hash ok=%v", n, err, bytes.Equal(h.Sum(nil), want[:]))
	}
}
