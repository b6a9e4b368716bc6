package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/spawn"
)

// TestFailedStartRecords: a server start that fails in the new process
// writes START (then the held-back USERID) and EXIT, with pid 0 and the
// status for the failed step; a failure before any process existed
// writes no START/EXIT (a fork failure under NORETRY writes its FAIL).
// Every start failure is counted. The real execve failures are in
// e2e/records_test.go; the steps a root daemon cannot be made to fail
// are injected here.
func TestFailedStartRecords(t *testing.T) {
	old := startServer
	defer func() { startServer = old }()
	cases := []struct {
		name string
		err  error
		want []string // the service's records, without time stamps
	}{
		{"exec-enoexec", &spawn.StartError{Step: "exec", Arg: "/bin/true", Err: unix.ENOEXEC},
			[]string{"START: badstart pid=0 from=127.0.0.1", "USERID: badstart UNIX : alice", "EXIT: badstart status=126 pid=0 duration=N(sec)"}},
		{"exec-eacces", &spawn.StartError{Step: "exec", Arg: "/bin/true", Err: unix.EACCES},
			[]string{"START: badstart pid=0 from=127.0.0.1", "USERID: badstart UNIX : alice", "EXIT: badstart status=126 pid=0 duration=N(sec)"}},
		{"exec-enoent", &spawn.StartError{Step: "exec", Arg: "/bin/true", Err: unix.ENOENT},
			[]string{"START: badstart pid=0 from=127.0.0.1", "USERID: badstart UNIX : alice", "EXIT: badstart status=127 pid=0 duration=N(sec)"}},
		{"exec-wrapped-enotdir", &spawn.StartError{Step: "exec", Arg: "/bin/true", Err: fmt.Errorf("exec helper: %w", unix.ENOTDIR)},
			[]string{"START: badstart pid=0 from=127.0.0.1", "USERID: badstart UNIX : alice", "EXIT: badstart status=127 pid=0 duration=N(sec)"}},
		{"setuid", &spawn.StartError{Step: "setuid", Arg: "65534", Err: unix.EPERM},
			[]string{"START: badstart pid=0 from=127.0.0.1", "USERID: badstart UNIX : alice", "EXIT: badstart status=1 pid=0 duration=N(sec)"}},
		{"rlimit", &spawn.StartError{Step: "rlimit_files", Arg: "64", Err: unix.EINVAL},
			[]string{"START: badstart pid=0 from=127.0.0.1", "USERID: badstart UNIX : alice", "EXIT: badstart status=1 pid=0 duration=N(sec)"}},
		// No process was made: nothing to start or end (NORETRY: one FAIL).
		{"fork", &spawn.StartError{Step: "fork", Arg: "/bin/true", Err: unix.EAGAIN},
			[]string{"FAIL: badstart fork from=127.0.0.1"}},
		{"fork-other", &spawn.StartError{Step: "fork", Arg: "/bin/true", Err: unix.EMFILE}, nil},
		{"not-a-start-error", errors.New("spawn: start: no descriptor"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			svcLog := filepath.Join(dir, "service.log")
			conf := fmt.Sprintf("defaults\n{\n\tlog_type = FILE %s\n\tlog_on_success = PID HOST EXIT DURATION USERID\n"+
				"\tlog_on_failure = HOST\n\tcps = 0 0\n}\n"+
				"service badstart\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\twait = no\n\tuser = root\n"+
				"\tbind = 127.0.0.1\n\tport = %d\n\tserver = /bin/true\n\tflags = NORETRY\n}\n",
				svcLog, freeBlock(t, 1))
			path := filepath.Join(dir, "xinetd.conf")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			o := &Options{ConfigFile: path, DontFork: true, FileLog: filepath.Join(dir, "daemon.log")}
			dl, err := newDaemonLog(o)
			if err != nil {
				t.Fatal(err)
			}
			defer dl.Close()
			d := newDaemon(o, dl)
			if n := d.startServing(loadWith(o, d.db)); n != 1 {
				t.Fatalf("%d services available", n)
			}
			r := d.byID["badstart"]
			svc := r.svc.Load()
			startServer = func(spawn.Spec, *os.File) (*spawn.Process, error) { return nil, tc.err }
			stdio, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			remote, local := netip.MustParseAddrPort("127.0.0.1:40000"), netip.MustParseAddrPort("127.0.0.1:7")
			ch := d.spawnServer(r, svc, stdio, true, spawn.Conn{Remote: remote, Local: local, RemoteKnown: true}, nil, nil, 0,
				userIDRecord(svc, remote, local, "UNIX : alice"))
			if ch != nil {
				t.Fatalf("a failed start returned a child")
			}
			if n := r.cnt.execFail.Load(); n != 1 {
				t.Errorf("%d start failures counted, want 1", n)
			}
			d.shutdown(false)
			var got []string
			stamp := regexp.MustCompile(`^\d\d/\d+/\d+@\d\d:\d\d:\d\d: `)
			duration := regexp.MustCompile(`duration=\d+\(sec\)`)
			b, _ := os.ReadFile(svcLog)
			for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
				if l != "" {
					got = append(got, duration.ReplaceAllString(stamp.ReplaceAllString(l, ""), "duration=N(sec)"))
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestFailedStartStatus pins the statuses docs/logging.md documents.
func TestFailedStartStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		ok     bool
	}{
		{&spawn.StartError{Step: "exec", Err: syscall.ENOENT}, 127, true},
		{&spawn.StartError{Step: "exec", Err: syscall.ENOTDIR}, 127, true},
		{&spawn.StartError{Step: "exec", Err: syscall.EACCES}, 126, true},
		{&spawn.StartError{Step: "exec", Err: syscall.ENOEXEC}, 126, true},
		{&spawn.StartError{Step: "exec", Err: syscall.E2BIG}, 126, true},
		{&spawn.StartError{Step: "chdir", Err: syscall.ENOENT}, 1, true},
		{&spawn.StartError{Step: "setgroups", Err: syscall.EPERM}, 1, true},
		{fmt.Errorf("service x: %w", &spawn.StartError{Step: "nice", Err: syscall.EPERM}), 1, true},
		{&spawn.StartError{Step: "fork", Err: syscall.EAGAIN}, 0, false},
		{errors.New("no descriptor"), 0, false},
		{nil, 0, false},
	} {
		status, ok := failedStartStatus(tc.err)
		if status != tc.status || ok != tc.ok {
			t.Errorf("failedStartStatus(%v) = %d, %v; want %d, %v", tc.err, status, ok, tc.status, tc.ok)
		}
	}
}
