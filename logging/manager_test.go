package logging

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// syslogReceiver is a unixgram socket standing in for /dev/log.
type syslogReceiver struct {
	path string
	conn *net.UnixConn
}

func newSyslogReceiver(t *testing.T, path string) *syslogReceiver {
	t.Helper()
	_ = os.Remove(path)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &syslogReceiver{path: path, conn: c}
}

func (r *syslogReceiver) read(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := r.conn.Read(buf)
	if err != nil {
		t.Fatalf("syslog receiver: %v", err)
	}
	return string(buf[:n])
}

func syslogSvc(id, fac, level string) *service.Service {
	return &service.Service{Name: id, ID: id, Status: service.StatusAccepted,
		LogType:      service.LogType{Kind: service.LogSyslog, Facility: fac, Level: level},
		LogOnSuccess: sHost | sPID | sExit | sDuration, LogOnFailure: fHost}
}

// TestSyslogDatagrams reads back exact datagrams, in the layout of the
// capture in testdata/xinetd/04-syslog-capture.txt, and checks that the
// sink reconnects when the receiver is recreated (a restarted syslogd).
func TestSyslogDatagrams(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "log")
	rcv := newSyslogReceiver(t, sock)
	at := time.Date(2026, 11, 23, 0, 34, 41, 0, time.Local)
	m := NewManager(Options{Ident: "xinetd", SyslogPath: sock})
	defer m.Close()
	echo := syslogSvc("echo", "local3", "")
	echoU := syslogSvc("echo-u", "auth", "err")
	if err := m.Configure(&service.Defaults{}, []*service.Service{echo, echoU}); err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	m.Log(Record{Event: EventStart, Time: at, Service: echo, PID: 5360, Remote: ap("127.0.0.1:4000")})
	m.Log(Record{Event: EventExit, Time: at, Service: echo, PID: 5360})
	m.Log(Record{Event: EventFail, Time: at, Service: echoU, Reason: "address", Remote: ap("127.0.0.1:4000")})
	want := []string{
		fmt.Sprintf("<158>Nov 23 00:34:41 xinetd[%d]: START: echo pid=5360 from=127.0.0.1", pid),
		fmt.Sprintf("<158>Nov 23 00:34:41 xinetd[%d]: EXIT: echo status=0 pid=5360 duration=0(sec)", pid),
		fmt.Sprintf("<35>Nov 23 00:34:41 xinetd[%d]: FAIL: echo-u address from=127.0.0.1", pid),
	}
	for _, w := range want {
		if got := rcv.read(t); got != w {
			t.Errorf("datagram\n got %q\nwant %q", got, w)
		}
	}
	// The capture has the same layout with the capture's pid.
	capture := readAll(t, "testdata/xinetd/04-syslog-capture.txt")
	if !strings.Contains(capture, "<158>Nov 23 00:34:41 xinetd[5315]: START: echo pid=5360 from=127.0.0.1\n") {
		t.Fatal("capture does not contain the expected START datagram")
	}

	// Restart the "syslogd": the old socket goes away, a new one appears.
	rcv.conn.Close()
	rcv = newSyslogReceiver(t, sock)
	day := time.Date(2026, 3, 5, 9, 8, 7, 0, time.Local)
	m.Log(Record{Event: EventStart, Time: day, Service: echo, PID: 1, Remote: ap("[::1]:4000")})
	if got, w := rcv.read(t), fmt.Sprintf("<158>Mar  5 09:08:07 xinetd[%d]: START: echo pid=1 from=::1", pid); got != w {
		t.Errorf("after reconnect got %q, want %q", got, w)
	}
	if !m.Flush(5 * time.Second) {
		t.Fatal("flush timed out")
	}
	st, _ := m.Stats().Sink("syslog")
	if st.Written != 4 || st.Dropped != 0 {
		t.Errorf("syslog stats %+v, want 4 written 0 dropped", st)
	}
}

func TestSyslogNoServerCountsDrops(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "absent")
	m := NewManager(Options{SyslogPath: sock})
	defer m.Close()
	s := syslogSvc("a", "daemon", "info")
	if err := m.Configure(nil, []*service.Service{s}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		m.Log(Record{Event: EventStart, Service: s})
	}
	m.Flush(5 * time.Second)
	st, _ := m.Stats().Sink("syslog")
	if st.Dropped != 3 || st.Errors != 3 || st.Written != 0 {
		t.Errorf("stats %+v, want 3 dropped/errors", st)
	}
}

// TestLogNeverBlocks stalls the syslog sink (a receiver that does not
// read) and shows that Log keeps returning, that the overflow is counted
// and reported, and that nothing queued is lost once the sink recovers.
func TestLogNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "log")
	rcv := newSyslogReceiver(t, sock)
	var dlog bytes.Buffer
	var dmu sync.Mutex
	daemon, err := NewDaemon(DaemonOptions{Mode: "debug", Stderr: lockedWriter{&dmu, &dlog}})
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(Options{SyslogPath: sock, QueueSize: 16, WriteTimeout: 30 * time.Second, Daemon: daemon})
	defer m.Close()
	s := syslogSvc("load", "daemon", "info")
	if err := m.Configure(nil, []*service.Service{s}); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			m.Log(Record{Event: EventStart, Service: s, PID: i})
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Log blocked behind a stalled sink")
	}
	st, _ := m.Stats().Sink("syslog")
	if st.Dropped == 0 {
		t.Fatalf("no drops counted with a stalled sink: %+v", st)
	}
	// Unstall: read everything until the queue is empty.
	stop := make(chan struct{})
	var got int
	go func() {
		buf := make([]byte, 4096)
		for {
			_ = rcv.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := rcv.conn.Read(buf); err == nil {
				got++
				continue
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	if !m.Flush(20 * time.Second) {
		t.Fatal("sink did not drain after the receiver started reading")
	}
	st, _ = m.Stats().Sink("syslog")
	if st.Written+st.Dropped != n {
		t.Errorf("written %d + dropped %d != %d", st.Written, st.Dropped, n)
	}
	// One more record makes the writer report the drops.
	m.Log(Record{Event: EventStart, Service: s})
	m.Flush(5 * time.Second)
	close(stop)
	dmu.Lock()
	defer dmu.Unlock()
	if !strings.Contains(dlog.String(), "syslog: dropped") {
		t.Errorf("drops not reported to the daemon log:\n%s", dlog.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestOneWriterPerPathAndReopenAfterMove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shared.log")
	a := fileSvc("a", path, sPID, 0)
	b := fileSvc("b", dir+"/./shared.log", sPID, 0) // same file, spelled differently
	m := NewManager(Options{})
	defer m.Close()
	if err := m.Configure(nil, []*service.Service{a, b}); err != nil {
		t.Fatal(err)
	}
	st := m.Stats()
	if len(st.Sinks) != 1 || st.Sinks[0].Name != "file:"+path {
		t.Fatalf("sinks = %+v, want one for %s", st.Sinks, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("log file mode %v, want 0644", fi.Mode().Perm())
	}
	m.Log(Record{Event: EventStart, Service: a, PID: 1})
	m.Log(Record{Event: EventStart, Service: b, PID: 2})
	m.Flush(5 * time.Second)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	m.Log(Record{Event: EventStart, Service: a, PID: 3}) // still goes to the moved file
	m.Flush(5 * time.Second)
	m.Reopen()
	m.Log(Record{Event: EventStart, Service: b, PID: 4})
	m.Flush(5 * time.Second)
	re := regexp.MustCompile(`(?m)^\d\d/\d+/\d+@\d\d:\d\d:\d\d: START: `)
	old := re.ReplaceAllString(readAll(t, path+".1"), "")
	if old != "a pid=1\nb pid=2\na pid=3\n" {
		t.Errorf("moved file = %q", old)
	}
	cur := re.ReplaceAllString(readAll(t, path), "")
	if cur != "b pid=4\n" {
		t.Errorf("new file = %q", cur)
	}
	fi, err = os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("reopened file: %v mode %v, want 0644", err, fi.Mode().Perm())
	}

	// A reload keeps the writer and the lumberjack logger.
	lj := lumberjackFor(path, 5)
	if err := m.Configure(nil, []*service.Service{b}); err != nil {
		t.Fatal(err)
	}
	if lumberjackFor(path, 5) != lj {
		t.Error("reload replaced the lumberjack logger")
	}
	m.Log(Record{Event: EventStart, Service: b, PID: 5})
	m.Flush(5 * time.Second)
	if cur := re.ReplaceAllString(readAll(t, path), ""); cur != "b pid=4\nb pid=5\n" {
		t.Errorf("after reload file = %q", cur)
	}
}

func TestConfigureErrorNamesService(t *testing.T) {
	dir := t.TempDir()
	good := fileSvc("good", filepath.Join(dir, "ok.log"), sPID, 0)
	bad := fileSvc("bad", filepath.Join(dir, "missing-dir", "x.log"), sPID, 0)
	m := NewManager(Options{})
	defer m.Close()
	err := m.Configure(nil, []*service.Service{good, bad})
	var ce ConfigureError
	if !errors.As(err, &ce) || !ce.Failed("bad") || ce.Failed("good") {
		t.Fatalf("Configure error = %v, want one naming service bad", err)
	}
	if !strings.Contains(err.Error(), "service bad") || !errors.Is(err.(ConfigureError)[0], syscall.ENOENT) {
		t.Errorf("error %q does not name the service and cause", err)
	}
	m.Log(Record{Event: EventStart, Service: bad})
	m.Log(Record{Event: EventStart, Service: good})
	m.Flush(5 * time.Second)
	if st, _ := m.Stats().Sink("unrouted"); st.Dropped != 1 {
		t.Errorf("unrouted drops = %d, want 1", st.Dropped)
	}
	if st, _ := m.Stats().Sink("file:" + good.LogType.Path); st.Written != 1 {
		t.Errorf("good sink written = %d, want 1", st.Written)
	}
}

// TestFileLimits uses byte-sized limits: one soft-limit warning, and a
// rotation (not silence) at the hard limit, keeping Backups old files.
func TestFileLimits(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lim.log")
	var dlog bytes.Buffer
	var mu sync.Mutex
	lw := lockedWriter{&mu, &dlog}
	daemon, _ := NewDaemon(DaemonOptions{Mode: "debug", Stderr: lw})
	s := fileSvc("lim", path, sPID|sHost, 0)
	s.LogType.Soft, s.LogType.Hard = 300, 600
	m := NewManager(Options{Daemon: daemon, Backups: 2})
	defer m.Close()
	if err := m.Configure(nil, []*service.Service{s}); err != nil {
		t.Fatal(err)
	}
	// Each line is 47 bytes: "26/11/23@00:54:46: START: lim pid=NNNNN from=127.0.0.1\n" minus variations.
	lineLen := len(AppendFilePrefix(nil, time.Now())) + len("START: lim pid=10000 from=127.0.0.1\n")
	for i := 0; i < 10; i++ {
		m.Log(Record{Event: EventStart, Service: s, PID: 10000 + i, Remote: ap("127.0.0.1:1")})
	}
	m.Flush(5 * time.Second)
	fi, _ := os.Stat(path)
	if fi.Size() != int64(10*lineLen) {
		t.Fatalf("size %d, want %d (below hard limit, no rotation)", fi.Size(), 10*lineLen)
	}
	if c := strings.Count(lw.String(), "exceeded soft limit"); c != 1 {
		t.Errorf("soft limit warnings = %d, want 1:\n%s", c, lw.String())
	}
	// Push past the hard limit several times.
	for i := 10; i < 60; i++ {
		m.Log(Record{Event: EventStart, Service: s, PID: 10000 + i, Remote: ap("127.0.0.1:1")})
		if i%10 == 0 {
			m.Flush(5 * time.Second)
			time.Sleep(2 * time.Millisecond) // distinct backup names (millisecond stamps)
		}
	}
	m.Flush(5 * time.Second)
	st, _ := m.Stats().Sink("file:" + path)
	if st.Rotations == 0 || st.Dropped != 0 || st.Written != 60 {
		t.Fatalf("stats %+v: want rotations, 60 written, no drops", st)
	}
	fi, _ = os.Stat(path)
	if fi.Size() > 600 || fi.Size() == 0 {
		t.Errorf("current file %d bytes, want 1..600", fi.Size())
	}
	if !strings.Contains(lw.String(), "exceeded hard limit") {
		t.Errorf("rotation not reported:\n%s", lw.String())
	}
	// lumberjack removes surplus backups asynchronously.
	deadline := time.Now().Add(5 * time.Second)
	var backups []string
	for {
		backups, _ = filepath.Glob(filepath.Join(dir, "lim-*.log"))
		if len(backups) <= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(backups) == 0 || len(backups) > 2 {
		t.Errorf("backups = %v, want 1..2", backups)
	}
	for _, b := range backups {
		if fi, err := os.Stat(b); err != nil || fi.Size() > 600 {
			t.Errorf("backup %s: %v size %d > hard limit", b, err, fi.Size())
		}
	}
}

func TestDefaultHardLimit(t *testing.T) {
	tests := map[int64]int64{1024: 6144, 10240: 15360, 1 << 20: (1 << 20) + 10485, 100 << 20: (100 << 20) + 20480}
	for soft, want := range tests {
		if got := DefaultHardLimit(soft); got != want {
			t.Errorf("DefaultHardLimit(%d) = %d, want %d", soft, got, want)
		}
	}
}

func TestStructuredFileHasNoPrefix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.log")
	s := fileSvc("j", path, sPID, 0)
	s.LogFormat = service.LogFormatJSON
	m := NewManager(Options{})
	defer m.Close()
	if err := m.Configure(nil, []*service.Service{s}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m.Log(Record{Event: EventStart, Service: s, PID: 9, Time: at})
	m.Flush(5 * time.Second)
	want := `{"time":"2026-01-02T03:04:05.000Z","event":"START","service":"j","id":"j","pid":9}` + "\n"
	if got := readAll(t, path); got != want {
		t.Errorf("file = %q, want %q", got, want)
	}
}

func BenchmarkLogFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.log")
	s := fileSvc("bench", path, sPID|sHost|sExit, fHost)
	m := NewManager(Options{QueueSize: 1 << 16})
	defer m.Close()
	if err := m.Configure(nil, []*service.Service{s}); err != nil {
		b.Fatal(err)
	}
	r := Record{Event: EventStart, Service: s, PID: 4242, Remote: ap("127.0.0.1:4000")}
	b.ReportAllocs()
	for b.Loop() {
		m.Log(r)
	}
	m.Flush(30 * time.Second)
}

func TestReloadRetiresSinksKeepsCounters(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "log")
	rcv := newSyslogReceiver(t, sock)
	a := fileSvc("a", filepath.Join(dir, "a.log"), sPID, 0)
	sy := syslogSvc("s", "daemon", "")
	m := NewManager(Options{SyslogPath: sock})
	defer m.Close()
	if err := m.Configure(nil, []*service.Service{a, sy}); err != nil {
		t.Fatal(err)
	}
	m.Log(Record{Event: EventStart, Service: a})
	m.Log(Record{Event: EventStart, Service: sy})
	rcv.read(t)
	m.Flush(5 * time.Second)
	// The new configuration drops both; the file sink retires, syslog stays.
	if err := m.Configure(nil, nil); err != nil {
		t.Fatal(err)
	}
	m.Log(Record{Event: EventStart, Service: a}) // an old service logging late
	m.Log(Record{Event: EventStart, Service: sy})
	rcv.read(t)
	m.Flush(5 * time.Second)
	st := m.Stats()
	if fa, _ := st.Sink("file:" + a.LogType.Path); fa.Written != 1 {
		t.Errorf("retired file sink counters %+v", fa)
	}
	if s, _ := st.Sink("syslog"); s.Written != 2 {
		t.Errorf("syslog %+v, want 2 written", s)
	}
	if u, _ := st.Sink("unrouted"); u.Dropped != 1 {
		t.Errorf("unrouted %+v, want 1", u)
	}
	if d := st.Drops(); d["unrouted"] != 1 || d["syslog"] != 0 {
		t.Errorf("Drops() = %v", d)
	}
}
