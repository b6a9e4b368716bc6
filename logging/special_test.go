package logging

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestSpecialFileLogsAreNeverRotated: a FILE log whose hard limit is
// passed many times over, on a FIFO, on a link to one of the process's
// descriptors (what /dev/stdout is) and on a character device, keeps
// logging every record and is never renamed or replaced.
func TestSpecialFileLogsAreNeverRotated(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	fdLink := filepath.Join(dir, "stdout")
	if err := os.Symlink(fmt.Sprintf("/proc/self/fd/%d", pw.Fd()), fdLink); err != nil {
		t.Fatal(err)
	}
	devLink := filepath.Join(dir, "null")
	if err := os.Symlink("/dev/null", devLink); err != nil {
		t.Fatal(err)
	}
	// The reader of the FIFO: the sink opens it when the first record
	// comes, and waits for a reader until then.
	fifoLines := make(chan []string, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			fifoLines <- nil
			return
		}
		defer f.Close()
		var got []string
		sc := bufio.NewScanner(f)
		for len(got) < 60 && sc.Scan() {
			got = append(got, sc.Text())
		}
		fifoLines <- got
	}()
	pipeLines := make(chan []string, 1)
	go func() {
		var got []string
		sc := bufio.NewScanner(pr)
		for len(got) < 60 && sc.Scan() {
			got = append(got, sc.Text())
		}
		pipeLines <- got
	}()

	var dlog bytes.Buffer
	var mu sync.Mutex
	lw := lockedWriter{&mu, &dlog}
	daemon, _ := NewDaemon(DaemonOptions{Mode: "debug", Stderr: lw})
	var svcs []*service.Service
	for i, p := range []string{fifo, fdLink, devLink} {
		s := fileSvc(fmt.Sprintf("s%d", i), p, sPID|sHost, 0)
		s.LogType.Soft, s.LogType.Hard = 100, 200
		svcs = append(svcs, s)
	}
	m := NewManager(Options{Daemon: daemon, Backups: 2})
	defer m.Close()
	if err := m.Configure(nil, svcs); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		for _, s := range svcs {
			m.Log(Record{Event: EventStart, Service: s, PID: 10000 + i, Remote: ap("127.0.0.1:1")})
		}
		if i == 30 {
			m.Reopen() // SIGHUP in between: reopened, still not renamed
		}
	}
	if !m.Flush(10 * time.Second) {
		t.Fatal("records not written within 10s")
	}
	for _, c := range []struct {
		name string
		ch   chan []string
	}{{"fifo", fifoLines}, {"/proc/self/fd link", pipeLines}} {
		select {
		case got := <-c.ch:
			if len(got) != 60 || !strings.HasSuffix(got[59], "START: s0 pid=10059 from=127.0.0.1") && !strings.HasSuffix(got[59], "START: s1 pid=10059 from=127.0.0.1") {
				t.Errorf("%s: %d lines, last %q; want all 60", c.name, len(got), got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: reader got nothing; stats %+v\n%s", c.name, m.Stats(), lw.String())
		}
	}
	for i, s := range svcs {
		st, _ := m.Stats().Sink("file:" + s.LogType.Path)
		if st.Written != 60 || st.Rotations != 0 || st.Dropped != 0 {
			t.Errorf("service %d: %+v; want 60 written, no rotation, no drops", i, st)
		}
	}
	// Nothing renamed: the directory holds exactly what the test made.
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "fifo null stdout" {
		t.Errorf("directory now holds %v; want fifo null stdout (nothing rotated)", names)
	}
	if fi, err := os.Lstat(fdLink); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the descriptor link was replaced: %v %v", fi, err)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v %v", fi, err)
	}
	if strings.Contains(lw.String(), "exceeded hard limit") || !strings.Contains(lw.String(), "is not a regular file") {
		t.Errorf("daemon log:\n%s\nwant the no-limits notice and no rotation", lw.String())
	}
}

// TestStdioPathNotReopened: FILE /dev/stdout writes the process's own
// descriptor, so it works where re-opening the path cannot (a socket),
// and closing the log never closes standard output.
func TestStdioPathNotReopened(t *testing.T) {
	for _, c := range []struct {
		path string
		fd   int
		ok   bool
	}{
		{"/dev/stdout", 1, true}, {"/dev/stderr", 2, true}, {"/dev/fd/7", 7, true},
		{"/proc/self/fd/12", 12, true}, {"/proc/self/fd/x", 0, false}, {"/proc/self/fd/01", 0, false},
		{"/var/log/x", 0, false}, {fmt.Sprintf("/proc/%d/fd/3", os.Getpid()), 3, true},
	} {
		fd, ok := stdioFD(c.path)
		if fd != c.fd || ok != c.ok {
			t.Errorf("stdioFD(%q) = %d %v, want %d %v", c.path, fd, ok, c.fd, c.ok)
		}
	}
	// A unix socket is what journald hands a service as its stdout:
	// open("/proc/self/fd/N") fails on it with ENXIO.
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.SetNonblock(fds[1], true) // so that the read deadline works
	a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
	defer a.Close()
	defer b.Close()
	path := fmt.Sprintf("/proc/self/fd/%d", fds[0])
	if _, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); err == nil {
		t.Log("this kernel lets a socket be re-opened through /proc; the test still checks the write")
	}
	s := fileSvc("sock", path, sPID|sHost, 0)
	m := NewManager(Options{})
	if err := m.Configure(nil, []*service.Service{s}); err != nil {
		t.Fatalf("configure on a socket descriptor: %v", err)
	}
	m.Log(Record{Event: EventStart, Service: s, PID: 4242, Remote: ap("127.0.0.1:1")})
	m.Flush(5 * time.Second)
	m.Close()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(b).ReadString('\n')
	if err != nil || !strings.HasSuffix(line, "START: sock pid=4242 from=127.0.0.1\n") {
		t.Errorf("socket got %q %v", line, err)
	}
	if _, err := a.Write([]byte("x")); err != nil {
		t.Errorf("closing the log closed the descriptor itself: %v", err)
	}
}
