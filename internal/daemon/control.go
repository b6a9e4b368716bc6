package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/logging"
)

// The control socket is how `gxinetd -upgrade` asks a running daemon to
// replace itself, and learns how that went: a signal could ask, but could
// not answer. It is a unix stream socket next to the pidfile (the
// pidfile's name with .ctl for .pid), mode 0600, and the daemon also
// checks that the peer is root or its own user. One request a
// connection:
//
//	upgrade [drain=DURATION]
//
// and one JSON line back: {"pid":N} once the new daemon serves and the
// pidfile names it, or {"error":"why"} with the old daemon still serving.
// The socket is passed to the new daemon with the listeners, so there is
// no moment without it.

// controlPath is the control socket of the daemon with this pidfile.
func controlPath(pidfile string) string {
	if p, ok := strings.CutSuffix(pidfile, ".pid"); ok && p != "" && !strings.HasSuffix(p, "/") {
		return p + ".ctl"
	}
	return pidfile + ".ctl"
}

// DefaultPidFile is where -dump and -upgrade look without -pidfile (the
// shipped unit's).
const DefaultPidFile = "/run/gxinetd.pid"

// maxRequest bounds a control request line.
const maxRequest = 512

// maxDrain bounds what a request may ask for.
const maxDrain = 24 * time.Hour

// defaultDrain is how long the old daemon lets its in-process sessions
// (builtins, redirects) finish after an upgrade, unless -drain says.
const defaultDrain = 30 * time.Second

type ctlCommand struct {
	drain time.Duration
}

// parseControlRequest reads one request line.
func parseControlRequest(line string) (ctlCommand, error) {
	c := ctlCommand{drain: defaultDrain}
	if len(line) > maxRequest {
		return c, errors.New("request too long")
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return c, errors.New("empty request")
	}
	if f[0] != "upgrade" {
		return c, fmt.Errorf("unknown request %q", f[0])
	}
	for _, a := range f[1:] {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k != "drain" {
			return c, fmt.Errorf("unknown argument %q", a)
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxDrain {
			return c, fmt.Errorf("drain %q: want a duration from 0 to %s", v, maxDrain)
		}
		c.drain = d
	}
	return c, nil
}

type ctlReply struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// ctlRequest is one request waiting for the run loop.
type ctlRequest struct {
	conn *net.UnixConn
	cmd  ctlCommand
	once sync.Once
}

func (r *ctlRequest) answer(rep ctlReply) {
	r.once.Do(func() {
		b, _ := json.Marshal(rep)
		r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		r.conn.Write(append(b, '\n'))
		r.conn.Close()
	})
}

func (r *ctlRequest) fail(format string, args ...any) {
	r.answer(ctlReply{Error: fmt.Sprintf(format, args...)})
}

// control is the daemon's side of the socket.
type control struct {
	d        *Daemon
	ln       *net.UnixListener
	path     string
	dev, ino uint64 // the path's node, so only our own is unlinked
	reqs     chan *ctlRequest
	busy     atomic.Bool // an upgrade is under way
	stop     chan struct{}
	wg       sync.WaitGroup
}

// inherit keeps the control listener a predecessor passed.
func (c *control) inherit(ln *net.UnixListener, path string) {
	c.ln, c.path = ln, path
	var st unix.Stat_t
	if unix.Lstat(path, &st) == nil {
		c.dev, c.ino = st.Dev, st.Ino
	}
}

// startControl opens (or keeps the inherited) control socket and serves
// it; without a pidfile there is none.
func (d *Daemon) startControl() {
	c := &d.up.ctl
	c.d = d
	if d.o.PidFile == "" {
		if c.ln != nil {
			c.ln.Close()
			c.ln = nil
		}
		return
	}
	path := controlPath(d.o.PidFile)
	if c.ln != nil && c.path != path {
		c.ln.Close() // the predecessor's, for another pidfile: its path is not ours
		c.ln = nil
	}
	if c.ln == nil {
		ln, err := listenControl(path)
		if err != nil {
			d.log.Logf(logging.LevelError, "control", "control socket %s: %v; gxinetd -upgrade cannot reach this daemon", path, err)
			return
		}
		c.inherit(ln, path)
	}
	c.reqs = make(chan *ctlRequest)
	c.stop = make(chan struct{})
	c.wg.Add(1)
	go c.acceptLoop(c.ln, c.stop)
}

// listenControl makes the socket: bound, made 0600, then listening, so
// nobody can connect while it has a wider mode.
func listenControl(path string) (*net.UnixListener, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err == nil {
		if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			return nil, errors.New("exists and is not a socket; not replacing it")
		}
		os.Remove(path)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return nil, err
	}
	if err := unix.Listen(fd, 16); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	return ul, nil
}

func (c *control) acceptLoop(ln *net.UnixListener, stop chan struct{}) {
	defer c.wg.Done()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			select {
			case <-stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.handle(conn, stop)
		}()
	}
}

func (c *control) handle(conn *net.UnixConn, stop chan struct{}) {
	req := &ctlRequest{conn: conn}
	if uid, err := peerUID(conn); err != nil || (uid != 0 && uid != os.Geteuid()) {
		req.fail("permission denied")
		return
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(conn, maxRequest+1)).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		req.fail("reading the request: %v", err)
		return
	}
	conn.SetReadDeadline(time.Time{})
	if req.cmd, err = parseControlRequest(strings.TrimRight(line, "\r\n")); err != nil {
		req.fail("%v", err)
		return
	}
	if c.busy.Load() {
		req.fail("an upgrade is already under way")
		return
	}
	select {
	case c.reqs <- req:
	case <-stop:
		req.fail("the daemon is stopping")
	case <-time.After(10 * time.Second):
		req.fail("the daemon is busy; try again")
	}
}

// stopControl stops answering. keepPath leaves the socket's path alone: a
// successor serves it.
func (c *control) stopControl(keepPath bool) {
	if c.ln == nil {
		return
	}
	close(c.stop)
	c.ln.Close()
	c.wg.Wait()
	if !keepPath {
		var st unix.Stat_t
		if unix.Lstat(c.path, &st) == nil && st.Dev == c.dev && st.Ino == c.ino {
			os.Remove(c.path)
		}
	}
	c.ln = nil
}

func peerUID(conn *net.UnixConn) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}

// RequestUpgrade is `gxinetd -upgrade`: it asks the daemon named by the
// pidfile to start a fresh copy of its binary and hand it every
// listener, and returns 0 once the new daemon serves and the pidfile
// names it. Any failure leaves the old daemon serving; the reason goes to
// stderr and the status is 1.
func RequestUpgrade(pidfile string, drain time.Duration, stdout, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "gxinetd: -upgrade: "+format+"\n", args...)
		return 1
	}
	if pidfile == "" {
		pidfile = DefaultPidFile
	}
	if drain < 0 || drain > maxDrain {
		return fail("-drain must be between 0 and %s", maxDrain)
	}
	old, err := ReadPidFile(pidfile)
	if err != nil {
		return fail("%v", err)
	}
	if !isGxinetd(old) {
		return fail("pidfile %s names pid %d, which is not a running gxinetd", pidfile, old)
	}
	path := controlPath(pidfile)
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return fail("cannot reach pid %d through %s: %v", old, path, err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	if uid, err := peerUID(uc); err != nil || (uid != 0 && uid != os.Geteuid()) {
		return fail("%s is not served by root or by this user; not trusting it", path)
	}
	uc.SetDeadline(time.Now().Add(upgradeReadyTimeout + 60*time.Second))
	if _, err := fmt.Fprintf(uc, "upgrade drain=%s\n", drain); err != nil {
		return fail("sending the request to pid %d: %v", old, err)
	}
	line, err := bufio.NewReader(uc).ReadString('\n')
	if err != nil && line == "" {
		return fail("pid %d gave no answer: %v", old, err)
	}
	var rep ctlReply
	if err := json.Unmarshal([]byte(line), &rep); err != nil {
		return fail("pid %d answered %q", old, strings.TrimSpace(line))
	}
	if rep.Error != "" {
		return fail("%s", rep.Error)
	}
	if now, err := ReadPidFile(pidfile); err != nil || now != rep.Pid {
		return fail("pid %d serves, but the pidfile %s does not name it (%d, %v)", rep.Pid, pidfile, now, err)
	}
	fmt.Fprintf(stdout, "gxinetd: pid %d serves in place of pid %d\n", rep.Pid, old)
	return 0
}

// notifyMainPID tells systemd that another process is the service's main
// process now.
func notifyMainPID(pid int) {
	sdNotify(fmt.Sprintf("MAINPID=%d", pid))
}
