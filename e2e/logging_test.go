package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

// lgRecord is one structured log line, values as text.
type lgRecord map[string]string

// lgParseJSON reads one JSON record; numbers are kept as their text.
func lgParseJSON(line string) (lgRecord, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	r := lgRecord{}
	for k, v := range m {
		switch x := v.(type) {
		case string:
			r[k] = x
		case json.Number:
			if _, err := x.Int64(); err != nil {
				return nil, fmt.Errorf("field %s = %v is not an integer", k, x)
			}
			r[k] = x.String()
		default:
			return nil, fmt.Errorf("field %s has unexpected type %T", k, v)
		}
	}
	return r, nil
}

// lgParseLogfmt reads one logfmt record: key=value pairs separated by
// one blank, values either bare or Go-quoted.
func lgParseLogfmt(line string) (lgRecord, error) {
	r := lgRecord{}
	for line != "" {
		k, rest, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \"") {
			return nil, fmt.Errorf("bad key at %q", line)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && rest[end] != '"' {
				if rest[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(rest) {
				return nil, fmt.Errorf("unterminated value at %q", rest)
			}
			uq, err := strconv.Unquote(rest[:end+1])
			if err != nil {
				return nil, fmt.Errorf("value %s: %v", rest[:end+1], err)
			}
			v, rest = uq, rest[end+1:]
		} else {
			i := strings.IndexByte(rest, ' ')
			if i < 0 {
				i = len(rest)
			}
			v, rest = rest[:i], rest[i:]
		}
		if _, dup := r[k]; dup {
			return nil, fmt.Errorf("key %s twice", k)
		}
		r[k] = v
		if rest != "" && !strings.HasPrefix(rest, " ") {
			return nil, fmt.Errorf("no blank after %s=%s", k, v)
		}
		line = strings.TrimPrefix(rest, " ")
	}
	return r, nil
}

// lgRecords parses every line of a structured log file.
func lgRecords(t *testing.T, path, format string) []lgRecord {
	t.Helper()
	var out []lgRecord
	for _, l := range lines(readFile(path)) {
		var r lgRecord
		var err error
		if format == "json" {
			r, err = lgParseJSON(l)
		} else {
			r, err = lgParseLogfmt(l)
		}
		if err != nil {
			t.Fatalf("%s: %s line %q: %v", path, format, l, err)
		}
		out = append(out, r)
	}
	return out
}

// lgFind returns the records whose fields include every pair of want.
func lgFind(recs []lgRecord, want lgRecord) []lgRecord {
	var out []lgRecord
next:
	for _, r := range recs {
		for k, v := range want {
			if r[k] != v {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

var lgKnownFields = map[string]bool{"time": true, "event": true, "service": true, "id": true, "pid": true,
	"remote": true, "remote_port": true, "local": true, "reason": true, "duration_ms": true, "exit_status": true,
	"signal": true, "bytes_in": true, "bytes_out": true, "userid": true}

// lgWaitRecords polls a structured log until a record with want's fields
// is there (bounded) and returns all records.
func lgWaitRecords(t *testing.T, path, format string, want lgRecord, timeout time.Duration) []lgRecord {
	t.Helper()
	deadline := waitBound(timeout)
	for {
		recs := lgRecords(t, path, format)
		if len(lgFind(recs, want)) > 0 {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s record with %v in %s within %v:\n%s", format, want, path, timeout, readFile(path))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lgScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// lgDial connects from src and returns the answer and the client port.
func lgDial(t *testing.T, src, addr, send string) (string, int) {
	t.Helper()
	c, err := dialFrom(src, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if send != "" {
		io.WriteString(c, send)
		c.(*net.TCPConn).CloseWrite()
	}
	b, _ := io.ReadAll(c)
	return string(b), c.LocalAddr().(*net.TCPAddr).Port
}

func lgIsLoopback(s string) bool { return s == "127.0.0.1" || s == "::ffff:127.0.0.1" }

// TestStructuredLogFormats: log_format = json and logfmt, in defaults and
// per service: every record parses, carries the documented field names,
// and the values are what happened.
func TestStructuredLogFormats(t *testing.T) {
	for _, tc := range []struct{ def, own string }{{"json", "logfmt"}, {"logfmt", "json"}} {
		t.Run("defaults="+tc.def, func(t *testing.T) {
			ports := freePorts(t, 6)
			dir := newDir(t)
			lgScript(t, filepath.Join(dir, "exit3.sh"), "exit 3")
			lgScript(t, filepath.Join(dir, "killed.sh"), "kill -TERM $$\nsleep 5")
			user := currentUser(t)
			conf := `
defaults
{
	log_type       = FILE {{DIR}}/def.log
	log_format     = ` + tc.def + `
	log_on_success = PID HOST EXIT DURATION
	log_on_failure = HOST
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
	only_from   = 127.0.0.1
}
service exiter
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	user        = ` + user + `
	server      = {{DIR}}/exit3.sh
}
service killed
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P2}}
	wait        = no
	user        = ` + user + `
	server      = {{DIR}}/killed.sh
}
service echo
{
	id          = echo-in
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P3}}
	wait        = no
}
service proxy
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P4}}
	wait           = no
	user           = ` + user + `
	redirect       = 127.0.0.1 {{P3}}
	log_on_success += TRAFFIC
}
service daytime
{
	id          = own
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P5}}
	wait        = no
	log_type    = FILE {{DIR}}/own.log
	log_format  = ` + tc.own + `
	no_access   = 127.0.0.3
}
`
			d := start(t, dir, render(t, dir, conf, ports))
			addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
			def, own := filepath.Join(dir, "def.log"), filepath.Join(dir, "own.log")

			_, dtPort := lgDial(t, "127.0.0.1", addr(0), "")
			_, failPort := lgDial(t, "127.0.0.2", addr(0), "")
			lgDial(t, "127.0.0.1", addr(1), "")
			lgDial(t, "127.0.0.1", addr(2), "")
			if got, _ := lgDial(t, "127.0.0.1", addr(4), "hello"); got != "hello" {
				t.Errorf("redirect to echo: %q", got)
			}
			_, ownPort := lgDial(t, "127.0.0.1", addr(5), "")
			lgDial(t, "127.0.0.3", addr(5), "")

			recs := lgWaitRecords(t, def, tc.def, lgRecord{"event": "TRAFFIC"}, 5*time.Second)
			recs = lgWaitRecords(t, def, tc.def, lgRecord{"event": "EXIT", "service": "killed"}, 5*time.Second)
			recs = lgWaitRecords(t, def, tc.def, lgRecord{"event": "EXIT", "service": "exiter"}, 5*time.Second)
			for _, r := range recs {
				for k := range r {
					if !lgKnownFields[k] {
						t.Errorf("undocumented field %q in %v", k, r)
					}
				}
				if _, err := time.Parse(time.RFC3339Nano, r["time"]); err != nil {
					t.Errorf("time field %q: %v", r["time"], err)
				}
			}
			if strings.Contains(readFile(def), "@") {
				t.Errorf("structured file lines must have no YY/M/D@ prefix:\n%s", readFile(def))
			}
			// one waits for the record (records are written
			// asynchronously, in no order across services), then wants it
			// alone.
			one := func(path, format string, want lgRecord) lgRecord {
				t.Helper()
				recs := lgWaitRecords(t, path, format, want, 5*time.Second)
				got := lgFind(recs, want)
				if len(got) != 1 {
					t.Fatalf("%d records with %v, want 1; all:\n%v", len(got), want, recs)
				}
				return got[0]
			}
			st := one(def, tc.def, lgRecord{"event": "START", "id": "dt", "service": "daytime", "pid": "0"})
			if !lgIsLoopback(st["remote"]) || st["remote_port"] != strconv.Itoa(dtPort) || !lgIsLoopback(st["local"]) {
				t.Errorf("START remote/remote_port/local = %v, want the client 127.0.0.1:%d", st, dtPort)
			}
			fl := one(def, tc.def, lgRecord{"event": "FAIL", "id": "dt", "reason": "address"})
			if fl["remote"] != "127.0.0.2" && fl["remote"] != "::ffff:127.0.0.2" || fl["remote_port"] != strconv.Itoa(failPort) {
				t.Errorf("FAIL remote = %v, want 127.0.0.2:%d", fl, failPort)
			}
			ex := one(def, tc.def, lgRecord{"event": "EXIT", "id": "exiter"})
			sx := one(def, tc.def, lgRecord{"event": "START", "id": "exiter"})
			if ex["exit_status"] != "3" || ex["pid"] == "" || ex["pid"] != sx["pid"] || ex["pid"] == "0" || ex["duration_ms"] == "" || ex["signal"] != "" {
				t.Errorf("EXIT of a server that exits 3: %v (START %v)", ex, sx)
			}
			if _, has := ex["remote"]; has {
				t.Errorf("EXIT carries remote, which the xinetd layout never shows: %v", ex)
			}
			kx := one(def, tc.def, lgRecord{"event": "EXIT", "id": "killed"})
			if kx["signal"] != strconv.Itoa(int(syscall.SIGTERM)) || kx["exit_status"] != "" {
				t.Errorf("EXIT of a server killed by SIGTERM: %v", kx)
			}
			tr := one(def, tc.def, lgRecord{"event": "TRAFFIC", "id": "proxy"})
			if tr["bytes_in"] != "5" || tr["bytes_out"] != "5" {
				t.Errorf("TRAFFIC of a 5-byte echo: %v", tr)
			}
			// The service with its own format and file.
			os1 := one(own, tc.own, lgRecord{"event": "START", "id": "own", "service": "daytime"})
			if os1["remote_port"] != strconv.Itoa(ownPort) {
				t.Errorf("own START: %v, want remote_port %d", os1, ownPort)
			}
			one(own, tc.own, lgRecord{"event": "FAIL", "id": "own", "reason": "address"})
			if strings.Contains(readFile(def), `own`) {
				t.Errorf("records of the service with its own log_type went to the common file:\n%s", readFile(def))
			}
			_ = d
		})
	}
}

// TestFileLogLimitsAndReopen: FILE soft and hard limits with tiny sizes,
// then the classic rotation by mv and SIGHUP.
func TestFileLogLimitsAndReopen(t *testing.T) {
	ports := freePorts(t, 2)
	dir := newDir(t)
	conf := baseDefaults + `
service daytime
{
	id          = lim
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	log_type    = FILE {{DIR}}/lim.log 300 600
}
` + daytimeConf("dt", "{{P1}}")
	d := start(t, dir, render(t, dir, conf, ports))
	lim := filepath.Join(dir, "lim.log")
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	size := func() int64 {
		fi, err := os.Stat(lim)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	// Past the soft limit, below the hard one.
	for i := 0; i < 30 && size() <= 300; i++ {
		tcpExchange(t, addr, "", 3*time.Second)
		time.Sleep(30 * time.Millisecond)
	}
	if s := size(); s <= 300 || s > 600 {
		t.Fatalf("lim.log is %d bytes, want between the limits", s)
	}
	d.waitLog(`WARNING: Size of lim log exceeded soft limit: `+regexp.QuoteMeta(lim)+` has \d+ bytes \(soft limit 300\)`, 5*time.Second)
	// Past the hard limit: the file is rotated, never larger than 600.
	backups := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "lim-*.log"))
		return m
	}
	for i := 0; i < 40 && len(backups()) == 0; i++ {
		tcpExchange(t, addr, "", 3*time.Second)
		if s := size(); s > 600 {
			t.Fatalf("lim.log grew to %d bytes, past the hard limit 600", s)
		}
		time.Sleep(30 * time.Millisecond)
	}
	if len(backups()) == 0 {
		t.Fatalf("no rotated backup of lim.log appeared; dir has %v", lgLs(dir))
	}
	d.waitLog(`WARNING: Size of lim log exceeded hard limit: `+regexp.QuoteMeta(lim)+` rotated at 600 bytes`, 5*time.Second)
	if n := strings.Count(d.daemonLog(), "exceeded soft limit"); n != 1 {
		t.Errorf("%d soft-limit warnings before the rotation, want 1:\n%s", n, d.daemonLog())
	}
	for _, b := range backups() {
		if fi, _ := os.Stat(b); fi == nil || fi.Size() > 600 || fi.Size() <= 300 {
			t.Errorf("backup %s has the wrong size", b)
		}
	}

	// mv + SIGHUP: new records go to a new services.log.
	tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 3*time.Second)
	d.waitSvcLog(`START: dt `, 5*time.Second)
	if err := os.Rename(d.svcLog, d.svcLog+".1"); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	d.waitLog(`Reconfigured:`, 10*time.Second)
	old := readFile(d.svcLog + ".1")
	tcpExchange(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), "", 3*time.Second)
	d.waitSvcLog(`START: dt `, 5*time.Second)
	if readFile(d.svcLog+".1") != old {
		t.Errorf("the renamed file still gets records after SIGHUP")
	}
	if n := strings.Count(readFile(d.svcLog), "START: dt "); n != 1 {
		t.Errorf("new services.log has %d START records, want 1:\n%s", n, readFile(d.svcLog))
	}
}

func lgLs(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// lgIdent is an RFC 1413 server on ADDR:113 run by the test. It answers
// alice; in mode "slow" it never answers, in mode "bad" it answers junk.
type lgIdent struct {
	ln      net.Listener
	mu      sync.Mutex
	queries []string
	mode    string
	held    []net.Conn
}

func lgIdentOn(t *testing.T, addr string, mode string) *lgIdent {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "113"))
	if err != nil {
		t.Skipf("port 113 on %s is not free (%v): the ident tests need it", addr, err)
	}
	s := &lgIdent{ln: ln, mode: mode}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
		s.mu.Lock()
		for _, c := range s.held {
			c.Close()
		}
		s.mu.Unlock()
	})
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.answer(c)
		}
	}()
	return s
}

func (s *lgIdent) answer(c net.Conn) {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	q := strings.TrimRight(line, "\r\n")
	s.mu.Lock()
	s.queries = append(s.queries, q)
	if s.mode == "slow" {
		s.held = append(s.held, c)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	defer c.Close()
	if err != nil {
		return
	}
	if s.mode == "bad" {
		io.WriteString(c, "this is not\x1b an answer\r\n")
		return
	}
	a, b, _ := strings.Cut(q, ",")
	fmt.Fprintf(c, "%s , %s : USERID : UNIX : alice\r\n", strings.TrimSpace(a), strings.TrimSpace(b))
}

// holding reports whether a silent server holds a query unanswered.
func (s *lgIdent) holding() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held) > 0
}

func (s *lgIdent) seen(q string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.queries {
		if x == q {
			return true
		}
	}
	return false
}

// TestIdentUserID: USERID and NOID records with real ident servers on
// port 113: one in the test, a silent one, and gxinetd's own auth builtin.
func TestIdentUserID(t *testing.T) {
	needRoot(t)
	// Port 113 on 127.0.0.x is the same for every test process on the
	// host: take turns with them instead of skipping when one has it.
	testnet.Lock(t, "port-113")
	good := lgIdentOn(t, "127.0.0.1", "")
	slow := lgIdentOn(t, "127.0.0.4", "slow")
	lgIdentOn(t, "127.0.0.5", "bad")
	// gxinetd's auth builtin will take 127.0.0.6:113; make sure it can.
	if ln, err := net.Listen("tcp", "127.0.0.6:113"); err != nil {
		t.Skipf("port 113 on 127.0.0.6 is not free: %v", err)
	} else {
		ln.Close()
	}
	ports := freePorts(t, 4)
	dir := newDir(t)
	// uid's lookups are answered: its ident_timeout only bounds a broken
	// test, and is long because gxinetd's own auth builtin scans the
	// host's connection table, which on a loaded machine can take more
	// than a second or two. slowid's short one is what a silent ident
	// server costs its client.
	conf := `
defaults
{
	log_type       = FILE {{LOG}}
	log_on_success = PID HOST USERID
	log_on_failure = HOST USERID
	cps            = 0 0
}
service daytime
{
	id            = uid
	type          = INTERNAL UNLISTED
	socket_type   = stream
	protocol      = tcp
	port          = {{P0}}
	wait          = no
	ident_timeout = 30
}
service daytime
{
	id            = slowid
	type          = INTERNAL UNLISTED
	socket_type   = stream
	protocol      = tcp
	port          = {{P3}}
	wait          = no
	ident_timeout = 4
}
service daytime
{
	id          = idonly
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	flags       = IDONLY
	log_type    = FILE {{DIR}}/ident.json
	log_format  = json
}
service daytime
{
	id          = refuse
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P2}}
	wait        = no
	only_from   = 127.0.0.2
}
service auth
{
	type           = INTERNAL
	socket_type    = stream
	protocol       = tcp
	port           = 113
	bind           = 127.0.0.6
	wait           = no
	server_args    = -r
	log_on_success = PID HOST
}
`
	d := start(t, dir, render(t, dir, conf, ports))
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }

	// Success path: the answer is logged, the query named both ports.
	got, cport := lgDial(t, "127.0.0.1", addr(0), "")
	if !dayTimeRE.MatchString(got) {
		t.Errorf("uid service: %q", got)
	}
	d.waitSvcLog(`USERID: uid UNIX : alice\n`, 5*time.Second)
	if q := fmt.Sprintf("%d,%d", cport, ports[0]); !good.seen(q) {
		t.Errorf("ident query %q not received; got %v", q, good.queries)
	}

	// gxinetd's own auth builtin answers for a connection from 127.0.0.6.
	if got, _ := lgDial(t, "127.0.0.6", addr(0), ""); !dayTimeRE.MatchString(got) {
		t.Errorf("uid service from 127.0.0.6: %q", got)
	}
	d.waitSvcLog(`USERID: uid UNIX : root\n`, 5*time.Second)

	// IDONLY with no ident server: NOID, and the service does not run.
	if got, _ := lgDial(t, "127.0.0.3", addr(1), ""); got != "" {
		t.Errorf("IDONLY without an ident answer must not serve: %q", got)
	}
	recs := lgWaitRecords(t, filepath.Join(dir, "ident.json"), "json", lgRecord{"event": "NOID"}, 5*time.Second)
	noid := lgFind(recs, lgRecord{"event": "NOID", "id": "idonly"})
	if len(noid) != 1 || noid[0]["reason"] != "no_server" || !strings.HasSuffix(noid[0]["remote"], "127.0.0.3") {
		t.Errorf("NOID record: %v, want reason no_server from 127.0.0.3", noid)
	}
	// As xinetd's child that did the lookup: START (pid 0 here: no
	// server ran), NOID, EXIT (TestRecordsIdentOrder checks the order).
	if n := len(lgFind(recs, lgRecord{"event": "START", "id": "idonly", "pid": "0"})); n != 1 {
		t.Errorf("IDONLY refused client: %d START records with pid 0, want 1", n)
	}
	// A malformed answer: NOID bad_response, and the line in the daemon log
	// with its control character made harmless.
	if got, _ := lgDial(t, "127.0.0.5", addr(1), ""); got != "" {
		t.Errorf("IDONLY with a bad ident answer must not serve: %q", got)
	}
	recs = lgWaitRecords(t, filepath.Join(dir, "ident.json"), "json", lgRecord{"event": "NOID", "reason": "bad_response"}, 5*time.Second)
	d.waitLog(`ERROR: Bad line received from identity server at (::ffff:)?127\.0\.0\.5: this is not\? an answer\n`, 5*time.Second)
	// IDONLY with an answer serves, and the JSON USERID record carries it.
	if got, _ := lgDial(t, "127.0.0.1", addr(1), ""); !dayTimeRE.MatchString(got) {
		t.Errorf("IDONLY with an ident answer must serve: %q", got)
	}
	recs = lgWaitRecords(t, filepath.Join(dir, "ident.json"), "json", lgRecord{"event": "USERID", "userid": "UNIX : alice"}, 5*time.Second)
	if u := lgFind(recs, lgRecord{"event": "USERID"})[0]; !lgIsLoopback(u["remote"]) || u["remote_port"] == "" {
		t.Errorf("USERID json record: %v", u)
	}

	// The dump counts both IDONLY refusals under reason noid.
	if ctr, ok := acCounter(d.acDump(), "idonly"); !ok || ctr.Refused["noid"] != 2 || ctr.Served != 1 {
		t.Errorf("idonly counters = %+v, want refused noid = 2, served = 1", ctr)
	}
	// A silent ident server delays only its own client, for ident_timeout:
	// another client of the same service, asked about while that lookup
	// hangs, is served before it ends (an order, not a measured time).
	type res struct {
		got string
		dur time.Duration
	}
	slowDone := make(chan res, 1)
	go func() {
		t0 := time.Now()
		c, err := dialFrom("127.0.0.4", addr(3))
		if err != nil {
			slowDone <- res{err.Error(), 0}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(c)
		slowDone <- res{string(b), time.Since(t0)}
	}()
	// The lookup hangs once the silent server holds the daemon's query.
	for deadline := waitBound(5 * time.Second); !slow.holding(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no ident query reached the silent server:\n%s", d.daemonLog())
		}
	}
	if got, _ := lgDial(t, "127.0.0.1", addr(3), ""); !dayTimeRE.MatchString(got) {
		t.Errorf("slowid service while another client's ident hangs: %q", got)
	}
	select {
	case r := <-slowDone:
		t.Errorf("the client with a silent ident server (%q after %v) was served before another client of the service: one hanging lookup held up the other", r.got, r.dur)
	default:
		r := <-slowDone
		if !dayTimeRE.MatchString(r.got) || r.dur < 3500*time.Millisecond {
			t.Errorf("client with a silent ident server: %q after %v, want the service after ident_timeout = 4s", r.got, r.dur)
		}
	}

	// Failure path: the refused client's user is looked up and logged.
	if got, _ := lgDial(t, "127.0.0.1", addr(2), ""); got != "" {
		t.Errorf("refuse service served: %q", got)
	}
	d.waitSvcLog(`FAIL: refuse address from=(::ffff:)?127\.0\.0\.1\n(.*\n)*.*USERID: refuse UNIX : alice\n`, 5*time.Second)
}

// lgScrape fetches /metrics from a chosen source address.
func lgScrape(t *testing.T, src, addr string) (int, string) {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		return d.DialContext(ctx, network, a)
	}}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics from %s: %v", src, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// lgMetric reads one sample's value; -1 when absent.
func lgMetric(body, series string) int {
	for _, l := range lines(body) {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return -2
			}
			return n
		}
	}
	return -1
}

// TestMetricsEndpoint: the Prometheus listener counts what the test did
// and refuses clients outside metrics_only_from.
func TestMetricsEndpoint(t *testing.T) {
	ports := freePorts(t, 3)
	dir := newDir(t)
	conf := `
defaults
{
	log_type          = FILE {{LOG}}
	log_on_success    = PID HOST
	log_on_failure    = HOST
	cps               = 0 0
	metrics           = 127.0.0.1:{{P2}}
	metrics_only_from = 127.0.0.1
}
service daytime
{
	id          = dt
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
	only_from   = 127.0.0.1
}
service hold
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	user        = ` + currentUser(t) + `
	server      = /bin/sleep
	server_args = 30
	instances   = 1
}
`
	d := start(t, dir, render(t, dir, conf, ports), "-killservers", "-grace", "1s")
	maddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	code, body := lgScrape(t, "127.0.0.1", maddr)
	if code != 200 || lgMetric(body, `gxinetd_connections_total{service="dt"}`) != 0 {
		t.Fatalf("fresh scrape: %d\n%s", code, body)
	}
	for i := 0; i < 3; i++ {
		readAllFrom("127.0.0.1", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	}
	for i := 0; i < 2; i++ {
		readAllFrom("127.0.0.2", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	}
	acHold(t, "127.0.0.1", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	d.waitSvcLog(`START: hold pid=`, 5*time.Second)
	acHold(t, "127.0.0.1", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	d.waitSvcLog(`FAIL: hold service_limit`, 5*time.Second)
	d.waitSvcLog(`(?s)(FAIL: dt address.*){2}`, 5*time.Second)

	code, body = lgScrape(t, "127.0.0.1", maddr)
	for series, want := range map[string]int{
		`gxinetd_connections_total{service="dt"}`:                      3,
		`gxinetd_refused_total{service="dt",reason="address"}`:         2,
		`gxinetd_connections_total{service="hold"}`:                    1,
		`gxinetd_refused_total{service="hold",reason="service_limit"}`: 1,
		`gxinetd_running{service="hold"}`:                              1,
		`gxinetd_running_servers`:                                      1,
		`gxinetd_services{state="Active"}`:                             2,
		`gxinetd_deny_list_entries`:                                    0,
		`gxinetd_exec_failures_total{service="hold"}`:                  0,
	} {
		if got := lgMetric(body, series); got != want {
			t.Errorf("%s = %d, want %d", series, got, want)
		}
	}
	if code != 200 || !strings.Contains(body, "# TYPE gxinetd_connections_total counter") {
		t.Errorf("scrape: %d\n%s", code, body)
	}
	if code, body := lgScrape(t, "127.0.0.2", maddr); code != http.StatusForbidden {
		t.Errorf("client outside metrics_only_from: %d, want 403\n%s", code, body)
	}
	// A reload that changes only metrics_only_from takes effect on the
	// same listener; the counters survive it.
	render(t, dir, strings.Replace(conf, "metrics_only_from = 127.0.0.1", "metrics_only_from = 127.0.0.2", 1), ports)
	d.signal(syscall.SIGHUP)
	d.waitLog(`Reconfigured:`, 10*time.Second)
	if code, _ := lgScrape(t, "127.0.0.1", maddr); code != http.StatusForbidden {
		t.Errorf("after the reload 127.0.0.1 is outside metrics_only_from: %d, want 403", code)
	}
	code, body = lgScrape(t, "127.0.0.2", maddr)
	if code != 200 || lgMetric(body, `gxinetd_connections_total{service="dt"}`) != 3 {
		t.Errorf("after the reload 127.0.0.2 is allowed and the counters kept: %d\n%s", code, body)
	}
}

// TestStateDumpMatchesTraffic: the SIGUSR1 dump, parsed back, shows the
// services' states and the counters of what the test did; -cc 1 runs the
// consistency check meanwhile without finding anything.
func TestStateDumpMatchesTraffic(t *testing.T) {
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
	no_access   = 127.0.0.9
}
service waiter
{
	type        = UNLISTED
	socket_type = dgram
	protocol    = udp
	port        = {{P1}}
	wait        = yes
	user        = ` + currentUser(t) + `
	server      = /bin/sleep
	server_args = 30
}
service daytime
{
	id          = tripped
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P2}}
	wait        = no
	cps         = 1 30
}
`
	d := start(t, dir, render(t, dir, conf, ports), "-d", "-cc", "1", "-killservers", "-grace", "1s")
	dt := fmt.Sprintf("127.0.0.1:%d", ports[0])
	// A small load: concurrent clients, refusals, a running wait server.
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				tcpExchange(t, dt, "", 3*time.Second)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 3; i++ {
		readAllFrom("127.0.0.9", dt)
	}
	u, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("wake"))
	u.Close()
	d.waitSvcLog(`START: waiter pid=\d+`, 5*time.Second)
	// Two connections within a second trip cps = 1: both connect before
	// either is read, so the daemon takes them in one burst however
	// slowly this test runs.
	tripAddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	var trips []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.DialTimeout("tcp", tripAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		trips = append(trips, c)
	}
	for _, c := range trips {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.ReadAll(c)
	}
	d.waitLog(`Deactivating service daytime due to excessive incoming connections`, 5*time.Second)
	d.waitSvcLog(`(?s)(FAIL: dt address.*){3}`, 5*time.Second)

	pd := d.acDump()
	states := map[string]string{}
	for _, s := range pd.Services {
		states[s.ID] = s.State
	}
	for id, want := range map[string]string{"dt": "Active", "waiter": "Suspended", "tripped": "Disabled"} {
		if states[id] != want {
			t.Errorf("service %s state %q, want %q (all: %v)", id, states[id], want, states)
		}
	}
	for _, c := range []struct {
		id      string
		served  uint64
		refused map[string]uint64
		running int
	}{
		{"dt", 20, map[string]uint64{"address": 3}, 0},
		{"waiter", 1, map[string]uint64{}, 1},
		{"tripped", 1, map[string]uint64{"cps": 1}, 0},
	} {
		got, ok := acCounter(pd, c.id)
		if !ok {
			t.Errorf("no counters for %s", c.id)
			continue
		}
		if got.Served != c.served || got.Running != c.running || len(got.Refused) != len(c.refused) {
			t.Errorf("%s counters = %+v, want served %d running %d refused %v", c.id, got, c.served, c.running, c.refused)
		}
		for k, v := range c.refused {
			if got.Refused[k] != v {
				t.Errorf("%s refused %s = %d, want %d", c.id, k, got.Refused[k], v)
			}
		}
	}
	if pd.RunningServers != 1 || len(pd.Servers) != 1 || pd.Servers[0].ID != "waiter" {
		t.Errorf("server table: running_servers = %d, %+v", pd.RunningServers, pd.Servers)
	}
	for sink, n := range pd.LogDrops {
		if n != 0 {
			t.Errorf("log drops reported for %s: %d", sink, n)
		}
	}
	if pd.ConfigFile != d.conf {
		t.Errorf("config_file = %q, want %q", pd.ConfigFile, d.conf)
	}
	// Two consistency checks after the load, none of them unhappy.
	n := strings.Count(d.daemonLog(), "Consistency check passed")
	d.waitLog(fmt.Sprintf(`(?s)(Consistency check passed.*){%d}`, n+2), 5*time.Second)
	if log := d.daemonLog(); strings.Contains(log, "Consistency check detected") || regexp.MustCompile(`ERROR: \d+ \{check\}`).MatchString(log) {
		t.Errorf("consistency check found problems:\n%s", log)
	}
}

// lgStartBare runs gxinetd with exactly the given message options (no
// -filelog); the caller decides when it is ready.
func lgStartBare(t *testing.T, dir, conf string, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: dir, conf: conf, logFile: filepath.Join(dir, "no-daemon.log"),
		svcLog: filepath.Join(dir, "services.log"), stderr: &syncBuf{}, exited: make(chan struct{})}
	full := append([]string{"-f", conf, "-dontfork", "-pidfile", filepath.Join(dir, "gxinetd.pid"),
		"-dumpfile", filepath.Join(dir, "xinetd.dump")}, args...)
	d.cmd = exec.Command(gxinetd, full...)
	d.cmd.Stderr = d.stderr
	d.cmd.Stdout = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	return d
}

// TestDaemonMessageDestinations: -syslog sends the daemon's messages to
// syslog with its facility; -d writes xinetd's debug layout on stderr.
func TestDaemonMessageDestinations(t *testing.T) {
	ports := freePorts(t, 2)
	trap := `
service trap
{
	type        = INTERNAL UNLISTED
	flags       = SENSOR
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	deny_time   = 1
}
`
	t.Run("syslog", func(t *testing.T) {
		dir := newDir(t)
		sock := filepath.Join(dir, "log.sock")
		rx, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer rx.Close()
		d := lgStartBare(t, dir, render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}")+trap, ports),
			"-syslog", "daemon", "-syslog-socket", sock)
		buf := make([]byte, 4096)
		var seen []string
		expect := func(re string) {
			t.Helper()
			want := regexp.MustCompile(re)
			deadline := waitBound(10 * time.Second)
			for time.Now().Before(deadline) {
				rx.SetReadDeadline(deadline)
				n, err := rx.Read(buf)
				if err != nil {
					break
				}
				msg := strings.TrimRight(string(buf[:n]), "\n")
				seen = append(seen, msg)
				if want.MatchString(msg) {
					return
				}
			}
			t.Fatalf("no %q datagram; got:\n%s\nstderr:\n%s", want, strings.Join(seen, "\n"), d.stderr.String())
		}
		// <29> = daemon (3) * 8 + notice (5): text only.
		expect(fmt.Sprintf(`^<29>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d xinetd\[%d\]: Started working: 2 available services$`, d.pid()))
		// <26> = daemon * 8 + crit (2): CRITICAL text carries "PID {function} ".
		readAllFrom("127.0.0.7", fmt.Sprintf("127.0.0.1:%d", ports[1]))
		expect(fmt.Sprintf(`^<26>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d xinetd\[%[1]d\]: %[1]d \{\w+\} Adding (::ffff:)?127\.0\.0\.7 to the global_no_access list for 1 minutes$`, d.pid()))
	})
	t.Run("debug", func(t *testing.T) {
		dir := newDir(t)
		d := lgStartBare(t, dir, render(t, dir, baseDefaults+daytimeConf("dt", "{{P0}}")+trap, ports), "-d")
		m := d.waitLog(fmt.Sprintf(`(?m)^(\d\d)/(\d{1,2})/(\d{1,2})@\d\d:\d\d:\d\d: NOTICE: %d \{main\} Started working: 2 available services$`, d.pid()), 10*time.Second)
		readAllFrom("127.0.0.7", fmt.Sprintf("127.0.0.1:%d", ports[1]))
		d.waitLog(fmt.Sprintf(`(?m)^\d\d/\d{1,2}/\d{1,2}@\d\d:\d\d:\d\d: CRITICAL: %d \{\w+\} Adding (::ffff:)?127\.0\.0\.7 to the global_no_access list for 1 minutes$`, d.pid()), 5*time.Second)
		now := time.Now()
		if m[1] != fmt.Sprintf("%02d", now.Year()%100) || m[2] != strconv.Itoa(int(now.Month())) {
			t.Errorf("date part %v does not match today", m[1:])
		}
		// The -d configuration dump precedes the messages.
		if !strings.Contains(d.stderr.String(), "Service configuration: daytime") {
			t.Errorf("-d did not dump the configuration:\n%s", d.stderr.String())
		}
	})
}

// TestConsistencyCheckNoFalseAlarms: -cc 1 while requests sit in states
// where the access engine counts them but no server process exists yet
// or the process belongs to another path: a server chosen through
// tcpmux, a tcp_wrappers twist command, a slow ident lookup. None of
// them is an inconsistency.
func TestConsistencyCheckNoFalseAlarms(t *testing.T) {
	slowIdent := os.Geteuid() == 0
	if slowIdent {
		testnet.Lock(t, "port-113")
		if ln, err := net.Listen("tcp", "127.0.0.4:113"); err != nil {
			slowIdent = false
		} else {
			ln.Close()
			lgIdentOn(t, "127.0.0.4", "slow")
		}
	}
	ports := freePorts(t, 3)
	dir := newDir(t)
	user := currentUser(t)
	writeFile(t, filepath.Join(dir, "hosts.allow"), "twistd : ALL : twist /bin/sleep 4\n")
	writeFile(t, filepath.Join(dir, "hosts.deny"), "")
	conf := baseDefaults + `
service tcpmux
{
	type        = INTERNAL UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P0}}
	wait        = no
}
service muxsleep
{
	type        = UNLISTED TCPMUX
	socket_type = stream
	protocol    = tcp
	wait        = no
	user        = ` + user + `
	server      = /bin/sleep
	server_args = 30
}
service tw
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	port        = {{P1}}
	wait        = no
	libwrap     = twistd
	user        = ` + user + `
	server      = /bin/echo
}
service slowid
{
	type           = UNLISTED
	socket_type    = stream
	protocol       = tcp
	port           = {{P2}}
	wait           = no
	user           = ` + user + `
	server         = /bin/sleep
	server_args    = 30
	log_on_success += USERID
	ident_timeout  = 4
}
`
	d := start(t, dir, render(t, dir, conf, ports), "-d", "-cc", "1", "-killservers", "-grace", "1s",
		"-hosts-allow", filepath.Join(dir, "hosts.allow"), "-hosts-deny", filepath.Join(dir, "hosts.deny"))
	mux := acHold(t, "127.0.0.1", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	io.WriteString(mux, "muxsleep\r\n")
	d.waitSvcLog(`START: muxsleep pid=\d+`, 5*time.Second)
	acHold(t, "127.0.0.1", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if slowIdent {
		acHold(t, "127.0.0.4", fmt.Sprintf("127.0.0.1:%d", ports[2]))
	} else {
		t.Log("not root or 127.0.0.4:113 busy: the slow-ident part is skipped")
	}
	n := strings.Count(d.daemonLog(), "Consistency check passed")
	d.waitLog(fmt.Sprintf(`(?s)(Consistency check (passed|detected).*){%d}`, n+3), 6*time.Second)
	if log := d.daemonLog(); strings.Contains(log, "Consistency check detected") {
		t.Errorf("consistency check raised false alarms:\n%s", log)
	}
}
