package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

var update = flag.Bool("update", false, "rewrite gxinetd-defined golden files")

const (
	sHost     = service.LogSuccessHost
	sDuration = service.LogSuccessDuration
	sExit     = service.LogSuccessExit
	sPID      = service.LogSuccessPID
	sUserID   = service.LogSuccessUserID
	sTraffic  = service.LogSuccessTraffic
	fHost     = service.LogFailureHost
	fAttempt  = service.LogFailureAttempt
	fUserID   = service.LogFailureUserID
)

func fileSvc(id, path string, succ service.LogSuccess, fail service.LogFailure) *service.Service {
	return &service.Service{
		Name: id, ID: id, Status: service.StatusAccepted,
		LogType:      service.LogType{Kind: service.LogFile, Path: path},
		LogOnSuccess: succ, LogOnFailure: fail,
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestFormatXinetdFlagCombinations(t *testing.T) {
	v4 := ap("127.0.0.1:40000")
	mapped := ap("[::ffff:127.0.0.1]:40000")
	tests := []struct {
		name string
		succ service.LogSuccess
		fail service.LogFailure
		rec  Record
		want string
	}{
		{"start no flags", sExit, 0, Record{Event: EventStart, PID: 7, Remote: v4}, "START: svc"},
		{"start pid", sPID, 0, Record{Event: EventStart, PID: 7, Remote: v4}, "START: svc pid=7"},
		{"start host", sHost, 0, Record{Event: EventStart, PID: 7, Remote: v4}, "START: svc from=127.0.0.1"},
		{"start pid host", sPID | sHost, 0, Record{Event: EventStart, PID: 7, Remote: v4}, "START: svc pid=7 from=127.0.0.1"},
		{"start builtin pid 0", sPID | sHost, 0, Record{Event: EventStart, Remote: v4}, "START: svc pid=0 from=127.0.0.1"},
		{"start no address", sPID | sHost, 0, Record{Event: EventStart, PID: 9}, "START: svc pid=9 from=<no address>"},
		{"start v4-mapped", sHost, 0, Record{Event: EventStart, Remote: mapped}, "START: svc from=::ffff:127.0.0.1"},
		{"start ipv6", sHost, 0, Record{Event: EventStart, Remote: ap("[::1]:5")}, "START: svc from=::1"},
		{"exit exit", sExit, 0, Record{Event: EventExit, PID: 7, ExitStatus: 3}, "EXIT: svc status=3"},
		{"exit signal", sExit, 0, Record{Event: EventExit, PID: 7, ExitStatus: 3, Signal: 13}, "EXIT: svc signal=13"},
		{"exit pid only", sPID | sDuration, 0, Record{Event: EventExit, PID: 7, Duration: 1500 * time.Millisecond}, "EXIT: svc pid=7 duration=1(sec)"},
		{"exit duration", sDuration, 0, Record{Event: EventExit, PID: 7, Duration: 3 * time.Second}, "EXIT: svc duration=3(sec)"},
		{"exit exit pid", sExit | sPID, 0, Record{Event: EventExit, PID: 7}, "EXIT: svc status=0 pid=7"},
		{"exit exit duration", sExit | sDuration, 0, Record{Event: EventExit, PID: 7, Duration: 999 * time.Millisecond}, "EXIT: svc status=0 duration=0(sec)"},
		{"exit all", sExit | sPID | sDuration | sHost, 0, Record{Event: EventExit, PID: 7, Signal: 9, Duration: 4 * time.Second}, "EXIT: svc signal=9 pid=7 duration=4(sec)"},
		{"exit max_duration", sExit | sPID, 0, Record{Event: EventExit, PID: 7, Signal: 15, Reason: "max_duration"}, "EXIT: svc signal=15 pid=7 reason=max_duration"},
		{"exit seccomp", sExit, 0, Record{Event: EventExit, PID: 7, Signal: 31, Reason: "seccomp"}, "EXIT: svc signal=31 reason=seccomp"},
		{"fail attempt", 0, fAttempt, Record{Event: EventFail, Reason: "address", Remote: v4}, "FAIL: svc address"},
		{"fail host", 0, fHost, Record{Event: EventFail, Reason: "connections per second", Remote: v4}, "FAIL: svc connections per second from=127.0.0.1"},
		{"fail userid only", 0, fUserID, Record{Event: EventFail, Reason: "service_limit", Remote: v4}, "FAIL: svc service_limit"},
		{"fail no reason", 0, fHost, Record{Event: EventFail}, "FAIL: svc UNKNOWN from=<no address>"},
		{"userid", sUserID, 0, Record{Event: EventUserID, UserID: "UNIX : alice  "}, "USERID: svc UNIX : alice  "},
		{"userid control chars", sUserID, 0, Record{Event: EventUserID, UserID: "UNIX : a\nFAIL: x"}, "USERID: svc UNIX : a?FAIL: x"},
		{"noid", sUserID, 0, Record{Event: EventNoID, Remote: v4, Reason: "bad response"}, "NOID: svc 127.0.0.1 bad response"},
		{"noid unknown addr", sUserID, 0, Record{Event: EventNoID, Reason: "no server"}, "NOID: svc <no address> no server"},
		{"traffic", sTraffic, 0, Record{Event: EventTraffic, BytesIn: 3, BytesOut: 0}, "TRAFFIC: svc in=3(bytes) out=0(bytes)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.rec.Service = fileSvc("svc", "/dev/null", tc.succ, tc.fail)
			got := string(FormatXinetd(nil, &tc.rec))
			if got != tc.want {
				t.Errorf("FormatXinetd = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFilePrefix(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 23, 0, 35, 17, 0, loc), "26/11/23@00:35:17: "},
		{time.Date(2005, 1, 2, 3, 4, 5, 999, loc), "05/1/2@03:04:05: "},
		{time.Date(2100, 12, 31, 23, 59, 59, 0, loc), "00/12/31@23:59:59: "},
	}
	for _, tc := range tests {
		if got := string(AppendFilePrefix(nil, tc.t)); got != tc.want {
			t.Errorf("AppendFilePrefix(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

// sampleFlags are the log_on_* settings of the configurations behind the
// captured service logs (xinetd-samples/NN-*.conf).
var sampleFlags = map[string]struct {
	succ  service.LogSuccess
	fail  service.LogFailure
	extra map[string]service.LogSuccess // per-id additions
}{
	"11-access.service-log.txt":                 {sHost | sPID | sExit, fHost | fAttempt, nil},
	"12-ipv6.service-log.txt":                   {sHost | sPID, fHost, nil},
	"13-limits.service-log.txt":                 {sHost | sPID | sExit | sDuration, fHost, nil},
	"14-reconfig.service-log.txt":               {sHost | sPID | sExit | sDuration, fHost, nil},
	"15-ident.service-log.txt":                  {sHost | sPID | sUserID, fHost | fUserID, nil},
	"16-builtins-sensor-banner.service-log.txt": {sHost | sPID, fHost | fAttempt, nil},
	"17-libwrap-intercept.service-log.txt":      {sHost | sPID | sExit, fHost | fAttempt, nil},
	"18-loglimits.service-log-before-HUP.txt":   {sHost | sPID | sExit, fHost, nil},
	"18-loglimits.service-log-after-HUP.txt":    {sHost | sPID | sExit, fHost, nil},
	"20-tcpmux-redirect-wait.service-log.txt":   {sHost | sPID | sExit | sDuration, fHost | fAttempt, map[string]service.LogSuccess{"redir": sTraffic}},
	"21-wait-suspended-forever.service-log.txt": {sHost | sPID | sExit, fHost, nil},
}

var sampleLineRE = regexp.MustCompile(`^(\d\d)/(\d+)/(\d+)@(\d\d):(\d\d):(\d\d): (START|EXIT|FAIL|USERID|NOID|TRAFFIC): (\S+)(.*)$`)

func parseAddr(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	if s == "<no address>" {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.MustParseAddr(s), 1)
}

// recordFromSample reads the values of one captured line into a Record;
// which optional parts the line shows is decided by the service's flags
// when it is formatted again.
func recordFromSample(t *testing.T, line string, svc func(id string) *service.Service) Record {
	t.Helper()
	m := sampleLineRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("unparsable sample line %q", line)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	r := Record{
		Time:    time.Date(2000+n(1), time.Month(n(2)), n(3), n(4), n(5), n(6), 0, time.Local),
		Service: svc(m[8]),
	}
	rest := m[9]
	num := func(key string) int {
		re := regexp.MustCompile(` ` + key + `=(\d+)`)
		if mm := re.FindStringSubmatch(rest); mm != nil {
			v, _ := strconv.Atoi(mm[1])
			return v
		}
		return -1
	}
	from := func() {
		if i := strings.Index(rest, " from="); i >= 0 {
			r.Remote = parseAddr(t, rest[i+len(" from="):])
			rest = rest[:i]
		}
	}
	switch m[7] {
	case "START":
		r.Event = EventStart
		r.PID = max(num("pid"), 0)
		from()
	case "EXIT":
		r.Event = EventExit
		r.PID = max(num("pid"), 0)
		r.ExitStatus = max(num("status"), 0)
		r.Signal = max(num("signal"), 0)
		r.Duration = time.Duration(max(num("duration"), 0))*time.Second + 400*time.Millisecond
	case "FAIL":
		r.Event = EventFail
		from()
		r.Reason = strings.TrimPrefix(rest, " ")
	case "USERID":
		r.Event = EventUserID
		r.UserID = strings.TrimPrefix(rest, " ")
	case "NOID":
		r.Event = EventNoID
		addr, reason, _ := strings.Cut(strings.TrimPrefix(rest, " "), " ")
		r.Remote, r.Reason = parseAddr(t, addr), reason
	case "TRAFFIC":
		r.Event = EventTraffic
		r.BytesIn, r.BytesOut = int64(num("in")), int64(num("out"))
	}
	return r
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestGoldenSampleServiceLogs rebuilds every captured FILE log: each line
// through FormatXinetd, and each whole file through a Manager writing a
// real file, which must come out byte for byte identical.
func TestGoldenSampleServiceLogs(t *testing.T) {
	for file, fl := range sampleFlags {
		t.Run(file, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "svc.log")
			svcs := map[string]*service.Service{}
			var order []*service.Service
			svc := func(id string) *service.Service {
				if s, ok := svcs[id]; ok {
					return s
				}
				s := fileSvc(id, path, fl.succ|fl.extra[id], fl.fail)
				s.LogType.Common = true
				svcs[id] = s
				order = append(order, s)
				return s
			}
			lines := readLines(t, filepath.Join("testdata/xinetd", file))
			var recs []Record
			for _, l := range lines {
				l = strings.TrimSuffix(l, "\n")
				r := recordFromSample(t, l, svc)
				got := string(FormatXinetd(AppendFilePrefix(nil, r.Time), &r))
				if got != l {
					t.Errorf("line:\n got %q\nwant %q", got, l)
				}
				recs = append(recs, r)
			}
			m := NewManager(Options{})
			defer m.Close()
			d := &service.Defaults{LogType: service.LogType{Kind: service.LogFile, Path: path}}
			if err := m.Configure(d, order); err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				m.Log(r)
			}
			if !m.Flush(5 * time.Second) {
				t.Fatal("flush timed out")
			}
			got, _ := os.ReadFile(path)
			want, _ := os.ReadFile(filepath.Join("testdata/xinetd", file))
			if !bytes.Equal(got, want) {
				t.Errorf("file differs:\n%s\nwant:\n%s", got, want)
			}
			st, _ := m.Stats().Sink("file:" + path)
			if st.Written != uint64(len(recs)) || st.Dropped != 0 {
				t.Errorf("stats = %+v, want %d written, 0 dropped", st, len(recs))
			}
		})
	}
}

// TestLogRules checks which records xinetd would write at all.
func TestLogRules(t *testing.T) {
	tests := []struct {
		name  string
		kind  service.LogKind
		succ  service.LogSuccess
		fail  service.LogFailure
		event Event
		want  bool
	}{
		{"no log_type logs nothing", service.LogNone, sHost | sPID | sExit, fHost, EventStart, false},
		{"no log_type no fail", service.LogNone, sHost, fHost | fAttempt, EventFail, false},
		{"start needs log_on_success", service.LogFile, 0, fHost, EventStart, false},
		{"start with EXIT alone", service.LogFile, sExit, 0, EventStart, true},
		{"exit needs EXIT or DURATION", service.LogFile, sHost | sPID, 0, EventExit, false},
		{"exit with DURATION", service.LogFile, sDuration, 0, EventExit, true},
		{"exit with EXIT", service.LogFile, sExit, 0, EventExit, true},
		{"fail needs log_on_failure", service.LogFile, sHost, 0, EventFail, false},
		{"fail with ATTEMPT alone", service.LogFile, 0, fAttempt, EventFail, true},
		{"fail with USERID alone", service.LogFile, 0, fUserID, EventFail, true},
		{"traffic needs TRAFFIC", service.LogFile, sHost | sExit, 0, EventTraffic, false},
		{"traffic", service.LogFile, sTraffic, 0, EventTraffic, true},
		{"userid", service.LogFile, sUserID, 0, EventUserID, true},
		{"noid", service.LogSyslog, 0, 0, EventNoID, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := fileSvc("x", "/dev/null", tc.succ, tc.fail)
			s.LogType.Kind = tc.kind
			r := Record{Event: tc.event, Service: s}
			if got := wanted(&r); got != tc.want {
				t.Errorf("wanted = %v, want %v", got, tc.want)
			}
		})
	}
	if wanted(&Record{Event: EventStart}) {
		t.Error("a record without a service must not be written")
	}
}

// TestStructuredGolden pins one example per record in logfmt and JSON
// (docs/logging.md shows the same lines) and checks that the JSON parses.
func TestStructuredGolden(t *testing.T) {
	at := time.Date(2026, 11, 23, 0, 35, 17, 250e6, time.UTC)
	svc := &service.Service{Name: "echo", ID: "echo-stream", LogOnSuccess: sHost | sPID | sExit | sDuration | sTraffic | sUserID,
		LogOnFailure: fHost | fAttempt}
	remote, local := ap("127.0.0.1:40000"), ap("127.0.0.1:7")
	recs := []Record{
		{Event: EventStart, Time: at, Service: svc, PID: 4242, Remote: remote, Local: local},
		{Event: EventExit, Time: at, Service: svc, PID: 4242, ExitStatus: 0, Duration: 1500 * time.Millisecond},
		{Event: EventExit, Time: at, Service: svc, PID: 4243, Signal: 13, Duration: 20 * time.Millisecond},
		{Event: EventExit, Time: at, Service: svc, PID: 4244, Signal: 15, Duration: 60 * time.Second, Reason: "max_duration"},
		{Event: EventFail, Time: at, Service: svc, Reason: "connections per second", Remote: remote, Local: local},
		{Event: EventFail, Time: at, Service: svc, Reason: "address", ReasonCode: "only_from", Remote: remote, Local: local},
		{Event: EventUserID, Time: at, Service: svc, UserID: `UNIX : "alice" `, Remote: remote, Local: local},
		{Event: EventNoID, Time: at, Service: svc, Reason: "no server", Remote: remote, Local: local},
		{Event: EventTraffic, Time: at, Service: svc, BytesIn: 3, BytesOut: 12},
	}
	var out bytes.Buffer
	for _, r := range recs {
		out.Write(FormatLogfmt(nil, &r))
		out.WriteByte('\n')
		j := FormatJSON(nil, &r)
		var v map[string]any
		if err := json.Unmarshal(j, &v); err != nil {
			t.Errorf("invalid JSON %s: %v", j, err)
		}
		if v["event"] != r.Event.String() || v["id"] != "echo-stream" {
			t.Errorf("JSON %s lacks event/id", j)
		}
		out.Write(j)
		out.WriteByte('\n')
	}
	golden := "testdata/structured.golden"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("structured output differs from %s:\n%s", golden, out.Bytes())
	}
}

func TestLogfmtQuoting(t *testing.T) {
	tests := map[string]string{
		"plain":      "plain",
		"":           `""`,
		"two words":  `"two words"`,
		`a"b`:        `"a\"b"`,
		"a=b":        `"a=b"`,
		"line\nnext": `"line\nnext"`,
		"\x01":       `"\u0001"`,
	}
	for in, want := range tests {
		if got := string(appendLogfmtValue(nil, in)); got != want {
			t.Errorf("appendLogfmtValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestReasonCode(t *testing.T) {
	tests := []struct{ reason, code, want string }{
		{"connections per second", "", "cps"},
		{"address", "", "address"},
		{"per_source_limit", "", "per_source_limit"},
		{"some new reason", "", "some_new_reason"},
		{"address", "only_from", "only_from"},
		{"", "", "unknown"},
	}
	for _, tc := range tests {
		r := Record{Reason: tc.reason, ReasonCode: tc.code}
		if got := r.Code(); got != tc.want {
			t.Errorf("Code(%q,%q) = %q, want %q", tc.reason, tc.code, got, tc.want)
		}
	}
}

func BenchmarkFormatXinetd(b *testing.B) {
	s := fileSvc("echo-stream", "/dev/null", sHost|sPID|sExit|sDuration, fHost)
	r := Record{Event: EventExit, Service: s, PID: 12345, Remote: ap("[::ffff:127.0.0.1]:4000"), Duration: 3 * time.Second,
		Time: time.Now()}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFilePrefix(buf[:0], r.Time)
		buf = FormatXinetd(buf, &r)
	}
}

func TestFormatXinetdAllocs(t *testing.T) {
	s := fileSvc("echo-stream", "/dev/null", sHost|sPID|sExit|sDuration, fHost)
	r := Record{Event: EventStart, Service: s, PID: 12345, Remote: ap("[::ffff:127.0.0.1]:4000"), Time: time.Now()}
	buf := make([]byte, 0, 256)
	n := testing.AllocsPerRun(100, func() {
		buf = AppendFilePrefix(buf[:0], r.Time)
		buf = FormatXinetd(buf, &r)
	})
	if n != 0 {
		t.Errorf("FormatXinetd allocates %v times per record, want 0", n)
	}
}

// readAll is a helper for tests reading a file that may still be growing.
func readAll(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String()
}
