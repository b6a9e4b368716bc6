package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/spawn"
)

// testDaemon starts serving the configuration text conf (with %[1]s the
// service log path) the way Run does, without the signal loop. The
// caller stops it.
func testDaemon(t *testing.T, conf string, args ...any) (*Daemon, *Options) {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	text := fmt.Sprintf("defaults\n{\n\tlog_type = FILE %s\n\tlog_on_success = PID HOST EXIT\n\tlog_on_failure = HOST\n\tcps = 0 0\n}\n",
		filepath.Join(dir, "service.log")) + fmt.Sprintf(conf, args...)
	path := filepath.Join(dir, "xinetd.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	o := &Options{ConfigFile: path, DontFork: true, StayAlive: true, FileLog: filepath.Join(dir, "daemon.log"), Grace: time.Second}
	dl, err := newDaemonLog(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dl.Close)
	d := newDaemon(o, dl)
	if n := d.startServing(loadWith(o, d.db)); n == 0 {
		t.Fatalf("no service available:\n%s", readLog(o))
	}
	return d, o
}

func readLog(o *Options) string { return readFileText(o.FileLog) }

func readFileText(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// within runs f on its own goroutine and reports whether it returned in
// time; a deadlock fails the test instead of hanging it.
func within(t *testing.T, what string, timeout time.Duration, f func()) bool {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		t.Errorf("%s did not return within %v: deadlock", what, timeout)
		return false
	}
}

// TestStartBlockedDuringReloadAndShutdown is issue 13.1: a reload or a
// shutdown halts every serving goroutine and waits for it, and a wait=yes
// serving goroutine that is starting a server at that moment must still
// be able to record its child and come back. The start is held until the
// halt has begun (the goroutine's stop channel is closed), then let go.
// The old code held the daemon's lock across the halt, and the goroutine
// needed that lock to record the child: neither ever returned.
func TestStartBlockedDuringReloadAndShutdown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the server runs as root with the socket on its stdio (CI runs as root)")
	}
	for _, op := range []string{"reload", "shutdown"} {
		t.Run(op, func(t *testing.T) {
			port := freeBlock(t, 1)
			conf := "service waitudp\n{\n\ttype = UNLISTED\n\tsocket_type = dgram\n\tprotocol = udp\n\twait = yes\n\tuser = root\n" +
				"\tbind = 127.0.0.1\n\tport = %d\n\tserver = /usr/bin/head\n\tserver_args = -c 1\n}\n"
			old := startServer
			t.Cleanup(func() { startServer = old })
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			startServer = func(sp spawn.Spec, stdio *os.File) (*spawn.Process, error) {
				first := false
				once.Do(func() { first = true })
				if first {
					close(entered)
					<-release
				}
				return spawn.Start(sp, stdio)
			}
			d, o := testDaemon(t, conf, port)
			r := d.byID["waitudp"]
			var sr *sockRun
			for _, x := range r.socks.all() {
				sr = x
			}
			c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("x"))
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatalf("no server start:\n%s", readLog(o))
			}
			var stopped sync.WaitGroup
			stopped.Add(1)
			go func() {
				defer stopped.Done()
				if op == "reload" {
					d.reload()
				} else {
					d.shutdown(false)
				}
			}()
			// Let the start go only once the halt waits for its goroutine.
			for deadline := time.Now().Add(10 * time.Second); !sr.stopped(); {
				if time.Now().After(deadline) {
					t.Fatal("the halt never began")
				}
				time.Sleep(time.Millisecond)
			}
			close(release)
			if !within(t, op, 10*time.Second, stopped.Wait) {
				return
			}
			if op == "reload" {
				// The new configuration's goroutine takes over the socket
				// and serves on.
				c.Write([]byte("y"))
				svcLog := filepath.Join(filepath.Dir(o.FileLog), "service.log")
				for deadline := time.Now().Add(10 * time.Second); strings.Count(readFileText(svcLog), "START: waitudp") < 2; {
					if time.Now().After(deadline) {
						t.Fatalf("no server for the datagram sent after the reload:\n%s", readFileText(svcLog))
					}
					time.Sleep(10 * time.Millisecond)
				}
				within(t, "shutdown after the reload", 10*time.Second, func() { d.shutdown(false) })
			}
		})
	}
}
