package logging

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestDaemonDebugLayout(t *testing.T) {
	var buf bytes.Buffer
	at := time.Date(2026, 11, 23, 0, 31, 52, 0, time.Local)
	d, err := NewDaemon(DaemonOptions{Mode: "debug", Stderr: &buf, Now: fixedNow(at)})
	if err != nil {
		t.Fatal(err)
	}
	d.Logf(LevelDebug, "cnf_start_services", "Started service: %s", "echo-stream")
	d.Logf(LevelNotice, "main", "Started working: %d available services", 14)
	d.Logf(LevelWarning, "quit_program", "Exiting...")
	d.Logf(LevelError, "x", "bad\nline")
	pid := strconv.Itoa(os.Getpid())
	// The layout of testdata/config-dump-01-rich's neighbouring lines in 01-rich.debug.txt.
	want := "26/11/23@00:31:52: DEBUG: 718 {cnf_start_services} Started service: echo-stream\n" +
		"26/11/23@00:31:52: NOTICE: 718 {main} Started working: 14 available services\n" +
		"26/11/23@00:31:52: WARNING: 718 {quit_program} Exiting...\n" +
		"26/11/23@00:31:52: ERROR: 718 {x} bad line\n"
	if got := strings.ReplaceAll(buf.String(), " "+pid+" {", " 718 {"); got != want {
		t.Errorf("debug output:\n%s\nwant:\n%s", got, want)
	}
}

func TestDaemonFileLayoutMatchesCapture(t *testing.T) {
	path := filepath.Join(t.TempDir(), "daemon.log")
	at := time.Date(2026, 11, 23, 0, 34, 32, 0, time.Local)
	d, err := NewDaemon(DaemonOptions{Mode: "file", Path: path, Ident: "xinetd", Now: fixedNow(at)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Logf(LevelError, "parse", "Number of instances is invalid: abc [file=/tmp/xt/fatal.conf] [line=3]")
	d.Logf(LevelError, "parse", "A fatal error was encountered while parsing the default section. xinetd will exit.")
	d.Logf(LevelWarning, "quit_program", "Exiting...")
	d.Logf(LevelDebug, "quiet", "not written without Debug")
	got := strings.ReplaceAll(readAll(t, path), fmt.Sprintf("xinetd[%d]", os.Getpid()), "xinetd[5184]")
	want := readAll(t, "testdata/xinetd/05-fatal-defaults-filelog.txt")
	if got != want {
		t.Errorf("filelog:\n%s\nwant:\n%s", got, want)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	// CRITICAL carries "PID {fn} " in file mode too; Reopen follows a move.
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	d.Reopen()
	d.Logf(LevelCrit, "main", "no services. Exiting...")
	wantCrit := fmt.Sprintf("26/11/23@00:34:32 xinetd[%d]: CRITICAL: %d {main} no services. Exiting...\n", os.Getpid(), os.Getpid())
	if got := readAll(t, path); got != wantCrit {
		t.Errorf("after reopen %q, want %q", got, wantCrit)
	}
}

func TestDaemonSyslog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	rcv := newSyslogReceiver(t, sock)
	at := time.Date(2026, 11, 23, 0, 34, 40, 0, time.Local)
	d, err := NewDaemon(DaemonOptions{Facility: "bogus", SyslogPath: sock, Now: fixedNow(at)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pid := os.Getpid()
	d.Logf(LevelNotice, "main", "Started working: 3 available services")
	d.Logf(LevelCrit, "main", "no services. Exiting...")
	d.Logf(LevelDebug, "main", "dropped: not in debug mode")
	d.Logf(LevelInfo, "dump", "generated state dump in file /var/run/xinetd.dump")
	want := []string{
		// The default identity is xinetd's, which log filters look for.
		fmt.Sprintf("<27>Nov 23 00:34:40 xinetd[%d]: Bad syslog facility: bogus", pid),
		fmt.Sprintf("<29>Nov 23 00:34:40 xinetd[%d]: Started working: 3 available services", pid),
		fmt.Sprintf("<26>Nov 23 00:34:40 xinetd[%d]: %d {main} no services. Exiting...", pid, pid),
		fmt.Sprintf("<30>Nov 23 00:34:40 xinetd[%d]: generated state dump in file /var/run/xinetd.dump", pid),
	}
	for _, w := range want {
		if got := rcv.read(t); got != w {
			t.Errorf("got %q\nwant %q", got, w)
		}
	}
	d2, err := NewDaemon(DaemonOptions{Facility: "LOCAL3", SyslogPath: sock, Debug: true, Now: fixedNow(at), Ident: "gxinetd"})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	d2.Logf(LevelDebug, "f", "debug allowed")
	if got, w := rcv.read(t), fmt.Sprintf("<159>Nov 23 00:34:40 gxinetd[%d]: debug allowed", pid); got != w {
		t.Errorf("got %q, want %q", got, w)
	}
}

func TestDaemonErrors(t *testing.T) {
	if _, err := NewDaemon(DaemonOptions{Mode: "file"}); err == nil {
		t.Error("file mode without a path accepted")
	}
	if _, err := NewDaemon(DaemonOptions{Mode: "file", Path: filepath.Join(t.TempDir(), "no", "such")}); err == nil {
		t.Error("unopenable -filelog accepted")
	}
	if _, err := NewDaemon(DaemonOptions{Mode: "tty"}); err == nil {
		t.Error("unknown mode accepted")
	}
	var d *Daemon
	d.Logf(LevelError, "f", "nil daemon discards") // must not panic
	d.Reopen()
	d.Close()
}

func TestErrno(t *testing.T) {
	_, openErr := os.Open("/nonexistent/file")
	tests := []struct {
		err  error
		want string
	}{
		{openErr, "No such file or directory (errno = 2)"},
		{fmt.Errorf("wrapped: %w", syscall.EACCES), "Permission denied (errno = 13)"},
		{&fs.PathError{Op: "bind", Path: "x", Err: syscall.EADDRINUSE}, "Address already in use (errno = 98)"},
		{errors.New("plain"), "plain"},
		{nil, "Success (errno = 0)"},
	}
	for _, tc := range tests {
		if got := Errno(tc.err); got != tc.want {
			t.Errorf("Errno(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestFileLogToStderrIsWrittenDirectly(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := NewDaemon(DaemonOptions{Mode: "file", Path: "/dev/stderr", Stderr: w})
	if err != nil {
		t.Fatal(err)
	}
	d.Logf(LevelNotice, "main", "hello %s", "stderr")
	d.Reopen() // must not close or reopen stderr
	d.Logf(LevelNotice, "main", "still here")
	d.Close()
	if _, err := w.Write([]byte("open\n")); err != nil {
		t.Fatalf("Close closed the daemon's stderr: %v", err)
	}
	w.Close()
	b, _ := io.ReadAll(r)
	for _, want := range []string{"NOTICE: hello stderr\n", "NOTICE: still here\n", "open\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("stderr lacks %q:\n%s", want, b)
		}
	}
}

// TestDaemonSyslogUnreachableFallsBackToStderr: with no syslog socket (a
// container), messages go to standard error in the -filelog layout, the
// first one saying why, instead of vanishing.
func TestDaemonSyslogUnreachableFallsBackToStderr(t *testing.T) {
	var buf bytes.Buffer
	at := time.Date(2026, 11, 23, 0, 34, 40, 0, time.Local)
	nowhere := filepath.Join(t.TempDir(), "no-syslog-here")
	d, err := NewDaemon(DaemonOptions{SyslogPath: nowhere, Stderr: &buf, Now: fixedNow(at)})
	if err != nil {
		t.Fatal(err)
	}
	d.Logf(LevelNotice, "main", "Started working: 3 available services")
	d.Reopen() // SIGHUP: still standard error
	d.Logf(LevelCrit, "main", "no services. Exiting...")
	d.Close()
	pid := os.Getpid()
	want := fmt.Sprintf("26/11/23@00:34:40 xinetd[%[1]d]: NOTICE: syslog is unreachable (logging: syslog: connect %[2]s: dial unixgram %[2]s: connect: no such file or directory): daemon messages go to standard error\n"+
		"26/11/23@00:34:40 xinetd[%[1]d]: NOTICE: Started working: 3 available services\n"+
		"26/11/23@00:34:40 xinetd[%[1]d]: CRITICAL: %[1]d {main} no services. Exiting...\n", pid, nowhere)
	if got := buf.String(); got != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", got, want)
	}
	if d.SyslogFallback() == nil || d.Dropped() != 0 {
		t.Errorf("fallback %v, dropped %d", d.SyslogFallback(), d.Dropped())
	}
	if SyslogReachable(nowhere) == nil {
		t.Error("SyslogReachable: a missing socket reported reachable")
	}
	// A reachable syslog is used, and nothing goes to stderr.
	sock := filepath.Join(t.TempDir(), "log")
	rcv := newSyslogReceiver(t, sock)
	buf.Reset()
	d, err = NewDaemon(DaemonOptions{SyslogPath: sock, Stderr: &buf, Now: fixedNow(at)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Logf(LevelNotice, "main", "to syslog")
	if got := rcv.read(t); !strings.HasSuffix(got, "]: to syslog") || buf.Len() != 0 || d.SyslogFallback() != nil {
		t.Errorf("syslog got %q, stderr %q", got, buf.String())
	}
	if err := SyslogReachable(sock); err != nil {
		t.Errorf("SyslogReachable: %v", err)
	}
}
