package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/spawn"
)

// TestForkFailureRetries is xinetd §7.5: a fork that fails for lack of
// processes or memory is retried every forkRetry with the request's own
// copy of the connection, up to maxForkFailures attempts in all, and not
// at all with NORETRY; each failure is logged, giving up is logged and
// counted, and a retry that works starts the server.
func TestForkFailureRetries(t *testing.T) {
	old, oldRetry := startServer, forkRetry
	defer func() { startServer, forkRetry = old, oldRetry }()
	forkRetry = 10 * time.Millisecond
	cases := []struct {
		name      string
		flags     string
		fails     int
		wantCalls int
		started   bool
	}{
		{"recovers", "", 2, 3, true},
		{"gives-up", "", 1000, maxForkFailures, false},
		{"noretry", "\tflags = NORETRY\n", 1000, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := fmt.Sprintf("defaults\n{\n\tlog_type = FILE %s\n\tcps = 0 0\n}\n"+
				"service forky\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\twait = no\n\tuser = root\n"+
				"\tbind = 127.0.0.1\n\tport = %d\n\tserver = /bin/true\n%s}\n",
				filepath.Join(dir, "service.log"), freeBlock(t, 1), tc.flags)
			path := filepath.Join(dir, "xinetd.conf")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			o := &Options{ConfigFile: path, DontFork: true, FileLog: filepath.Join(dir, "daemon.log")}
			dl, err := newDaemonLog(o)
			if err != nil {
				t.Fatal(err)
			}
			d := newDaemon(o, dl)
			if n := d.startServing(loadWith(o, d.db)); n != 1 {
				t.Fatalf("%d services available", n)
			}
			defer d.shutdown(false)
			r := d.byID["forky"]
			var calls atomic.Int32
			startServer = func(sp spawn.Spec, stdio *os.File) (*spawn.Process, error) {
				if int(calls.Add(1)) <= tc.fails {
					return nil, &spawn.StartError{Step: "fork", Arg: sp.Path, Err: unix.EAGAIN}
				}
				return spawn.Start(sp, stdio)
			}
			stdio, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			d.spawnServer(r, r.svc.Load(), stdio, true, spawn.Conn{}, nil, nil, 0)

			done := func() bool {
				return r.cnt.served.Load() == 1 || r.cnt.execFail.Load() == 1
			}
			for deadline := time.Now().Add(5 * time.Second); !done() && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(5 * forkRetry) // no retry after the end
			if got := int(calls.Load()); got != tc.wantCalls {
				t.Errorf("%d start attempts, want %d", got, tc.wantCalls)
			}
			if got := r.cnt.served.Load() == 1; got != tc.started {
				t.Errorf("server started: %v, want %v (exec failures counted: %d)", got, tc.started, r.cnt.execFail.Load())
			}
			if !tc.started && r.cnt.execFail.Load() != 1 {
				t.Errorf("%d exec failures counted, want 1", r.cnt.execFail.Load())
			}
			dl.Close()
			b, _ := os.ReadFile(o.FileLog)
			log := string(b)
			if n := strings.Count(log, "forky: fork failed: Resource temporarily unavailable"); n != min(tc.fails, tc.wantCalls) {
				t.Errorf("%d fork-failure lines, want %d:\n%s", n, min(tc.fails, tc.wantCalls), log)
			}
			if gaveUp := strings.Contains(log, "service forky: too many consecutive fork failures"); gaveUp != (tc.name == "gives-up") {
				t.Errorf("give-up line present: %v:\n%s", gaveUp, log)
			}
		})
	}
}
