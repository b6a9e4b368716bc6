package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/logging"
)

// envDetached marks the re-executed, detached daemon process.
const envDetached = "GXINETD_DETACHED_READY_FD"

// daemonize is the default start: Go cannot fork without exec, so the
// daemon re-executes itself detached (new session, stdio on /dev/null)
// and waits until the child says it is serving, or failed, before
// returning its own status. Scripts that run `gxinetd` and then connect
// therefore never race the start-up.
func daemonize(o *Options) int {
	// The detached daemon's standard error is /dev/null: without syslog
	// its messages would be lost, so say so while there is a terminal.
	if o.FileLog == "" && !o.Debug {
		if err := logging.SyslogReachable(o.SyslogPath); err != nil {
			fmt.Fprintf(os.Stderr, "gxinetd: %v: the daemon's messages will be lost; use -filelog FILE, or -dontfork (messages then go to standard error)\n", err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gxinetd: cannot find own executable: %v\n", err)
		return 1
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gxinetd: pipe: %v\n", err)
		return 1
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gxinetd: %v\n", err)
		return 1
	}
	env := append(os.Environ(), envDetached+"=3")
	if wd, err := os.Getwd(); err == nil {
		env = append(env, envStartDir+"="+wd) // for DumpFileOf
	}
	// The child starts in our directory so that relative paths on the
	// command line mean what the user meant; it moves to / itself once
	// it has made them absolute (detachedChdir).
	p, err := os.StartProcess(exe, os.Args, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{null, null, null, pw},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	pw.Close()
	null.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gxinetd: fork: %v. Exiting...\n", err)
		return 1
	}
	// The child writes "ok" when serving; EOF without it means it died.
	pr.SetReadDeadline(time.Now().Add(60 * time.Second))
	b, rerr := io.ReadAll(pr)
	pr.Close()
	if bytes.HasPrefix(b, []byte("ok")) {
		p.Release()
		return 0
	}
	if errors.Is(rerr, os.ErrDeadlineExceeded) && p.Signal(syscall.Signal(0)) == nil {
		// Still starting (a huge configuration, slow name service):
		// waiting for its exit would hang the caller for as long as it
		// serves. Like xinetd's parent, leave it running.
		fmt.Fprintf(os.Stderr, "gxinetd: daemon (pid %d) has not reported ready within 60s; leaving it starting\n", p.Pid)
		p.Release()
		return 0
	}
	st, _ := p.Wait()
	// The daemon's own messages went to its log (its stderr is
	// /dev/null): say where to look.
	fmt.Fprintf(os.Stderr, "gxinetd: the daemon did not start (%v); its messages are in %s\n", st, logWhere(o))
	if st != nil && st.ExitCode() > 0 {
		return st.ExitCode()
	}
	return 1
}

func logWhere(o *Options) string {
	switch {
	case o.FileLog != "":
		return o.FileLog
	case o.Syslog != "":
		return "syslog (facility " + o.Syslog + ")"
	}
	return "syslog (facility daemon)"
}

// detachedChdir makes every path option absolute, then moves the
// detached daemon to / so that it holds no directory busy. xinetd moves
// after the first load, and its relative -f then names a different file
// on every reload; resolving first keeps the same files for good.
func detachedChdir(o *Options) error {
	for _, p := range []*string{&o.ConfigFile, &o.InetdFile, &o.InetdCompatFile, &o.PidFile, &o.FileLog,
		&o.SyslogPath, &o.DumpFile, &o.HostsAllow, &o.HostsDeny, &o.SysRoot} {
		if *p == "" || filepath.IsAbs(*p) {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("daemon: resolving %s: %w", *p, err)
		}
		*p = abs
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("daemon: chdir /: %w", err)
	}
	return nil
}

// DetachedReadyFD reports the ready pipe handed to a detached child.
func DetachedReadyFD() int {
	v := os.Getenv(envDetached)
	if v == "" {
		return 0
	}
	os.Unsetenv(envDetached)
	// Servers must not see it; /proc/PID/environ keeps it for DumpFileOf.
	os.Unsetenv(envStartDir)
	n, _ := strconv.Atoi(v)
	return n
}

func signalReady(fd int) {
	if fd <= 0 {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	f.Write([]byte("ok"))
	f.Close()
}

// writePidFile writes PID atomically (a temporary file renamed into
// place), refusing when the file names another live gxinetd.
func writePidFile(path string) error { return writePidFileReplacing(path, 0) }

// writePidFileReplacing is writePidFile for a daemon taking over from pid
// old, which the file may name.
func writePidFileReplacing(path string, old int) error {
	if b, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && pid != os.Getpid() && pid != old && isGxinetd(pid) {
			return fmt.Errorf("pidfile %s names a running gxinetd (pid %d); not starting a second one", path, pid)
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".gxinetd-pid-*")
	if err != nil {
		return fmt.Errorf("writing pidfile %s: %w", path, err)
	}
	fmt.Fprintf(tmp, "%d\n", os.Getpid())
	tmp.Chmod(0o644)
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing pidfile %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing pidfile %s: %w", path, err)
	}
	return nil
}

// isGxinetd reports whether pid is a live process running a gxinetd binary.
func isGxinetd(pid int) bool {
	if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return err == nil && strings.Contains(string(comm), "gxinetd")
	}
	return strings.Contains(filepath.Base(strings.TrimSuffix(exe, " (deleted)")), "gxinetd")
}

func (d *Daemon) removePidFile() {
	if d.o.PidFile == "" {
		return
	}
	if b, err := os.ReadFile(d.o.PidFile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(d.o.PidFile)
	}
}

// ReadPidFile returns the pid a pidfile names.
func ReadPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s: no pid in it", path)
	}
	return pid, nil
}

// sdNotify sends a state change to systemd when NOTIFY_SOCKET is set
// (Type=notify); without systemd it does nothing.
func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write([]byte(state))
}

// adoptActivatedSockets takes the listening sockets systemd passed in
// (LISTEN_PID, LISTEN_FDS) into the pool that services draw from, so a
// service whose address matches uses it instead of binding.
func (d *Daemon) adoptActivatedSockets() {
	pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID"))
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	if pid != os.Getpid() || n <= 0 {
		return
	}
	for fd := 3; fd < 3+n; fd++ {
		unix.CloseOnExec(fd)
		if i := fd - 3; i < len(names) && d.adoptStored(fd, names[i]) {
			continue // our own, from systemd's store (handover.go)
		}
		k, err := sockKeyOfFD(fd)
		if err != nil {
			d.log.Logf(logging.LevelWarning, "activate", "ignoring passed descriptor %d: %v", fd, err)
			continue
		}
		unix.SetNonblock(fd, true)
		sk, err := wrapSock(fd, k)
		if err != nil {
			continue
		}
		sk.activated = true
		d.activated[k] = sk
	}
}

// activationEnvStripped removes systemd's activation variables from the
// environment servers inherit.
func activationEnvStripped(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if strings.HasPrefix(e, "LISTEN_PID=") || strings.HasPrefix(e, "LISTEN_FDS=") ||
			strings.HasPrefix(e, "LISTEN_FDNAMES=") || strings.HasPrefix(e, "NOTIFY_SOCKET=") ||
			strings.HasPrefix(e, envDetached+"=") || strings.HasPrefix(e, "FDSTORE=") || strings.HasPrefix(e, envHandover+"=") {
			continue
		}
		out = append(out, e)
	}
	return out
}
