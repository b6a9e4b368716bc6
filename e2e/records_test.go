package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

// The order of the service records of one request is xinetd's in every
// log format (xinetd.md §7.3, §8, §11.4): START when the server is
// started, then what xinetd's child writes (USERID, NOID), then EXIT; a
// server that was started but never ran (failed execve) still gets START
// and EXIT; a tcp_wrappers twist runs as the request's server, with START
// and EXIT.

// rsParseXinetd reads one record of the classic layout (after the
// YY/M/D@HH:MM:SS: prefix) into the field names of the structured formats.
func rsParseXinetd(line string) lgRecord {
	r := lgRecord{}
	if i := strings.Index(line, ": "); i >= 0 && strings.Contains(line[:i], "@") {
		line = line[i+2:] // the time stamp
	}
	ev, rest, _ := strings.Cut(line, ": ")
	id, rest, _ := strings.Cut(rest, " ")
	r["event"], r["id"] = ev, id
	switch ev {
	case "USERID":
		r["userid"] = rest
		return r
	case "NOID":
		r["remote"], r["reason"], _ = strings.Cut(rest, " ")
		return r
	case "FAIL":
		r["reason"], rest, _ = strings.Cut(rest, " ")
	}
	names := map[string]string{"status": "exit_status", "from": "remote", "duration": "duration"}
	for _, kv := range strings.Fields(strings.ReplaceAll(rest, "<no address>", "<no\x00address>")) {
		k, v, _ := strings.Cut(strings.ReplaceAll(kv, "\x00", " "), "=")
		if n, ok := names[k]; ok {
			k = n
		}
		r[k] = v
	}
	return r
}

// rsRecords returns the records of service id in a log file of format
// ("xinetd", "logfmt" or "json"), in file order.
func rsRecords(t *testing.T, path, format, id string) []lgRecord {
	t.Helper()
	var all []lgRecord
	if format == "xinetd" {
		for _, l := range lines(readFile(path)) {
			all = append(all, rsParseXinetd(l))
		}
	} else {
		all = lgRecords(t, path, format)
	}
	return lgFind(all, lgRecord{"id": id})
}

// rsWant is one expected record: every field must match; the value "+"
// stands for a positive number.
type rsWant lgRecord

// rsExpect waits (bounded) until service id has as many records as want,
// then checks them in order, and that START and EXIT name the same pid.
func rsExpect(t *testing.T, path, format, id string, want ...rsWant) {
	t.Helper()
	var got []lgRecord
	for deadline := waitBound(10 * time.Second); ; {
		got = rsRecords(t, path, format, id)
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Anything written late (a record after EXIT) would show up here.
	time.Sleep(100 * time.Millisecond)
	got = rsRecords(t, path, format, id)
	show := func() string {
		var b strings.Builder
		for _, r := range got {
			fmt.Fprintf(&b, "\t%v\n", map[string]string(r))
		}
		return b.String()
	}
	if len(got) != len(want) {
		t.Errorf("%s (%s): %d records, want %d:\n%s--- file:\n%s", id, format, len(got), len(want), show(), readFile(path))
		return
	}
	pids := map[string]bool{}
	for i, w := range want {
		for k, v := range w {
			g, ok := got[i][k]
			if v == "+" {
				if n, err := strconv.Atoi(g); !ok || err != nil || n <= 0 {
					t.Errorf("%s (%s): record %d %s = %q, want a positive number:\n%s", id, format, i+1, k, g, show())
				}
				continue
			}
			if !ok || g != v {
				t.Errorf("%s (%s): record %d %s = %q, want %q:\n%s", id, format, i+1, k, g, v, show())
			}
		}
		if ev := got[i]["event"]; ev == "START" || ev == "EXIT" {
			pids[got[i]["pid"]] = true
		}
	}
	if len(pids) > 1 {
		t.Errorf("%s (%s): START and EXIT name different pids:\n%s", id, format, show())
	}
}

// rsDefaults logs every success flag, in the classic layout to {{LOG}}.
const rsDefaults = `
defaults
{
	log_type       = FILE {{LOG}}
	log_on_success = PID HOST EXIT DURATION
	log_on_failure = HOST
	cps            = 0 0
	bind           = 127.0.0.1
}
`

// rsFormats are the three log formats, each service logged in each.
var rsFormats = []struct{ suffix, format, attrs string }{
	{"", "xinetd", ""},
	{"-logfmt", "logfmt", "\tlog_type    = FILE {{DIR}}/records.logfmt\n\tlog_format  = logfmt\n"},
	{"-json", "json", "\tlog_type    = FILE {{DIR}}/records.json\n\tlog_format  = json\n"},
}

func rsLogPath(d *daemon, format string) string {
	switch format {
	case "logfmt":
		return filepath.Join(d.dir, "records.logfmt")
	case "json":
		return filepath.Join(d.dir, "records.json")
	}
	return d.svcLog
}

// TestRecordsFailedExec: a server that passes every check but whose
// execve fails (a file with the exec bit and no format the kernel knows:
// ENOEXEC; a server deleted after the configuration was read: ENOENT)
// gets START and EXIT, as xinetd's child that failed to exec. xinetd's
// child exits 0 there; gxinetd records 126 and 127 (docs/logging.md).
func TestRecordsFailedExec(t *testing.T) {
	dir := newDir(t)
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("this is no program\x00\x01\x02\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, "gone.sh")
	lgScript(t, gone, "echo still here")
	user := currentUser(t)
	svc := func(id, port, server, sock, extra string) string {
		wait := "no"
		if sock == "dgram" || strings.HasPrefix(id, "noexec-wait") {
			wait = "yes"
		}
		return `
service ` + id + `
{
	type        = UNLISTED
	socket_type = ` + sock + `
	port        = ` + port + `
	wait        = ` + wait + `
	user        = ` + user + `
	server      = ` + server + `
` + extra + `}
`
	}
	ports := freePorts(t, 9)
	conf := rsDefaults
	for i, f := range rsFormats {
		conf += svc("noexec"+f.suffix, fmt.Sprintf("{{P%d}}", i), garbage, "stream", f.attrs)
	}
	conf += svc("gone", "{{P3}}", gone, "stream", "")
	conf += svc("gone-json", "{{P4}}", gone, "stream", rsFormats[2].attrs)
	conf += svc("noexec-udp", "{{P5}}", garbage, "dgram", "")
	conf += svc("noexec-wait", "{{P6}}", garbage, "stream", "")
	conf += svc("noexec-wait-json", "{{P7}}", garbage, "stream", rsFormats[2].attrs)
	// A uid with no passwd entry and groups = yes: the initgroups lookup
	// fails (in xinetd's child: exit 1). A daemon that is not root
	// ignores user and group, so the start works there.
	conf += strings.Replace(svc("nopasswd", "{{P8}}", "/bin/echo", "stream", "\tgroups      = yes\n"),
		"user        = "+user, "user        = 4242", 1)
	d := start(t, dir, render(t, dir, conf, ports))
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }

	for i, f := range rsFormats {
		if got, _ := readAllFrom("127.0.0.1", addr(i)); got != "" {
			t.Errorf("noexec%s answered %q", f.suffix, got)
		}
		rsExpect(t, rsLogPath(d, f.format), f.format, "noexec"+f.suffix,
			rsWant{"event": "START", "pid": "0", "remote": "127.0.0.1"},
			rsWant{"event": "EXIT", "pid": "0", "exit_status": "126"})
	}
	d.waitLog(`ERROR: execv\( `+regexp.QuoteMeta(garbage)+` \) failed: Exec format error \(errno = 8\)`, 5*time.Second)

	for i, id := range []string{"gone", "gone-json"} {
		readAllFrom("127.0.0.1", addr(3+i))
		format := map[string]string{"gone": "xinetd", "gone-json": "json"}[id]
		rsExpect(t, rsLogPath(d, format), format, id,
			rsWant{"event": "START", "pid": "0", "remote": "127.0.0.1"},
			rsWant{"event": "EXIT", "pid": "0", "exit_status": "127"})
	}
	d.waitLog(`ERROR: execv\( `+regexp.QuoteMeta(gone)+` \) failed: No such file or directory \(errno = 2\)`, 5*time.Second)

	// wait=yes: the datagram's sender is known, a stream client is not.
	u, err := net.Dial("udp", addr(5))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.Write([]byte("ping"))
	rsExpect(t, d.svcLog, "xinetd", "noexec-udp",
		rsWant{"event": "START", "pid": "0", "remote": "127.0.0.1"},
		rsWant{"event": "EXIT", "pid": "0", "exit_status": "126"})
	readAllFrom("127.0.0.1", addr(6))
	rsExpect(t, d.svcLog, "xinetd", "noexec-wait",
		rsWant{"event": "START", "pid": "0", "remote": "<no address>"},
		rsWant{"event": "EXIT", "pid": "0", "exit_status": "126"})
	readAllFrom("127.0.0.1", addr(7))
	rsExpect(t, rsLogPath(d, "json"), "json", "noexec-wait-json",
		rsWant{"event": "START", "pid": "0"},
		rsWant{"event": "EXIT", "pid": "0", "exit_status": "126"})
	if r := rsRecords(t, rsLogPath(d, "json"), "json", "noexec-wait-json"); len(r) > 0 && r[0]["remote"] != "" {
		t.Errorf("wait=yes stream START names a client it cannot know: %v", r[0])
	}

	if os.Geteuid() != 0 {
		t.Log("not root: user = 4242 is not applied, the nopasswd part is skipped")
		return
	}
	if got, _ := readAllFrom("127.0.0.1", addr(8)); got != "" {
		t.Errorf("nopasswd answered %q", got)
	}
	rsExpect(t, d.svcLog, "xinetd", "nopasswd",
		rsWant{"event": "START", "pid": "0", "remote": "127.0.0.1"},
		rsWant{"event": "EXIT", "pid": "0", "exit_status": "1"})
	d.waitLog(`ERROR: service nopasswd: .*getpwuid 4242: no such user`, 5*time.Second)
}

// TestRecordsTwist: a tcp_wrappers twist runs as the request's server:
// START with its pid, EXIT when it ends, in every format. A twist in
// hosts.deny follows the refusal's FAIL.
func TestRecordsTwist(t *testing.T) {
	dir := newDir(t)
	writeFile(t, filepath.Join(dir, "hosts.allow"), "rstwist : ALL : twist /bin/echo twisted %a\n")
	writeFile(t, filepath.Join(dir, "hosts.deny"), "rsdeny : ALL : twist /bin/echo denied %a\n")
	user := currentUser(t)
	ports := freePorts(t, 4)
	conf := rsDefaults
	for i, f := range rsFormats {
		conf += `
service tw` + f.suffix + `
{
	type        = UNLISTED
	socket_type = stream
	port        = {{P` + strconv.Itoa(i) + `}}
	wait        = no
	user        = ` + user + `
	server      = /bin/echo
	server_args = from-the-server
	libwrap     = rstwist
` + f.attrs + `}
`
	}
	conf += `
service daytime
{
	id          = twd
	type        = INTERNAL UNLISTED
	socket_type = stream
	port        = {{P3}}
	wait        = no
	libwrap     = rsdeny
}
`
	d := start(t, dir, render(t, dir, conf, ports),
		"-hosts-allow", filepath.Join(dir, "hosts.allow"), "-hosts-deny", filepath.Join(dir, "hosts.deny"))
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	for i, f := range rsFormats {
		if got, _ := readAllFrom("127.0.0.1", addr(i)); got != "twisted 127.0.0.1\n" {
			t.Errorf("tw%s: got %q, want the twist's output", f.suffix, got)
		}
		rsExpect(t, rsLogPath(d, f.format), f.format, "tw"+f.suffix,
			rsWant{"event": "START", "pid": "+", "remote": "127.0.0.1"},
			rsWant{"event": "EXIT", "pid": "+", "exit_status": "0"})
	}
	if got, _ := readAllFrom("127.0.0.1", addr(3)); got != "denied 127.0.0.1\n" {
		t.Errorf("twd: got %q, want the twist's output", got)
	}
	rsExpect(t, d.svcLog, "xinetd", "twd",
		rsWant{"event": "FAIL", "reason": "libwrap", "remote": "127.0.0.1"},
		rsWant{"event": "START", "pid": "+", "remote": "127.0.0.1"},
		rsWant{"event": "EXIT", "pid": "+", "exit_status": "0"})
}

// TestRecordsIdentOrder: USERID follows START (xinetd's child looks the
// user up after its parent logged START), for a server, a forking
// builtin and a redirect, in every format; an IDONLY lookup that fails
// gives START, NOID and EXIT (status 0, as xinetd's child exits).
func TestRecordsIdentOrder(t *testing.T) {
	needRoot(t)
	testnet.Lock(t, "port-113")
	lgIdentOn(t, "127.0.0.1", "")
	// The redirect's upstream: says hello and closes.
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for i := 0; i < 100; i++ {
			c, err := up.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from upstream\n")
			c.Close()
		}
	}()
	upPort := up.Addr().(*net.TCPAddr).Port
	user := currentUser(t)
	ports := freePorts(t, 11)
	conf := strings.Replace(rsDefaults, "PID HOST EXIT DURATION", "PID HOST EXIT DURATION USERID", 1)
	p := 0
	port := func() string { p++; return fmt.Sprintf("{{P%d}}", p-1) }
	for _, f := range rsFormats {
		conf += `
service idext` + f.suffix + `
{
	type        = UNLISTED
	socket_type = stream
	port        = ` + port() + `
	wait        = no
	user        = ` + user + `
	server      = /bin/echo
	server_args = served
` + f.attrs + `}
service echo
{
	id          = idecho` + f.suffix + `
	type        = INTERNAL UNLISTED
	socket_type = stream
	port        = ` + port() + `
	wait        = no
` + f.attrs + `}
service idredir` + f.suffix + `
{
	type        = UNLISTED
	socket_type = stream
	port        = ` + port() + `
	wait        = no
	user        = ` + user + `
	redirect    = 127.0.0.1 ` + strconv.Itoa(upPort) + `
` + f.attrs + `}
`
	}
	conf += `
service idonly
{
	type        = UNLISTED
	socket_type = stream
	port        = ` + port() + `
	wait        = no
	user        = ` + user + `
	server      = /bin/echo
	flags       = IDONLY
}
service idonly-json
{
	type        = UNLISTED
	socket_type = stream
	port        = ` + port() + `
	wait        = no
	user        = ` + user + `
	server      = /bin/echo
	flags       = IDONLY
` + rsFormats[2].attrs + `}
`
	dir := newDir(t)
	d := start(t, dir, render(t, dir, conf, ports))
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	userid := "UNIX : alice"
	for i, f := range rsFormats {
		if got, _ := readAllFrom("127.0.0.1", addr(3*i)); got != "served\n" {
			t.Errorf("idext%s: %q", f.suffix, got)
		}
		rsExpect(t, rsLogPath(d, f.format), f.format, "idext"+f.suffix,
			rsWant{"event": "START", "pid": "+", "remote": "127.0.0.1"},
			rsWant{"event": "USERID", "userid": userid},
			rsWant{"event": "EXIT", "pid": "+", "exit_status": "0"})

		c, err := dialFrom("127.0.0.1", addr(3*i+1))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "hi\n")
		c.(*net.TCPConn).CloseWrite()
		if b, _ := io.ReadAll(c); string(b) != "hi\n" {
			t.Errorf("idecho%s: %q", f.suffix, b)
		}
		c.Close()
		rsExpect(t, rsLogPath(d, f.format), f.format, "idecho"+f.suffix,
			rsWant{"event": "START", "pid": "0", "remote": "127.0.0.1"},
			rsWant{"event": "USERID", "userid": userid},
			rsWant{"event": "EXIT", "pid": "0", "exit_status": "0"})

		if got, _ := readAllFrom("127.0.0.1", addr(3*i+2)); got != "hello from upstream\n" {
			t.Errorf("idredir%s: %q\n%s", f.suffix, got, d.daemonLog())
		}
		rsExpect(t, rsLogPath(d, f.format), f.format, "idredir"+f.suffix,
			rsWant{"event": "START", "pid": "0", "remote": "127.0.0.1"},
			rsWant{"event": "USERID", "userid": userid},
			rsWant{"event": "EXIT", "pid": "0", "exit_status": "0"})
	}
	// No ident server on 127.0.0.3: NOID between START and EXIT.
	for i, id := range []string{"idonly", "idonly-json"} {
		if got, _ := readAllFrom("127.0.0.3", addr(9+i)); got != "" {
			t.Errorf("%s served a client without an ident answer: %q", id, got)
		}
		format := map[string]string{"idonly": "xinetd", "idonly-json": "json"}[id]
		noid := rsWant{"event": "NOID", "remote": "127.0.0.3", "reason": "no server"}
		if format == "json" {
			noid["reason"] = "no_server"
		}
		rsExpect(t, rsLogPath(d, format), format, id,
			rsWant{"event": "START", "pid": "0", "remote": "127.0.0.3"},
			noid,
			rsWant{"event": "EXIT", "pid": "0", "exit_status": "0"})
	}
}
