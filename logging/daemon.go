package logging

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Level is the severity of one of the daemon's own messages.
type Level int

const (
	LevelCrit Level = iota
	LevelError
	LevelWarning
	LevelNotice
	LevelInfo
	LevelDebug
)

var levelWords = [...]string{"CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"}
var levelSeverity = [...]int{2, 3, 4, 5, 6, 7}

// String returns xinetd's word for the level (CRITICAL, ERROR, ...).
func (l Level) String() string {
	if l >= 0 && int(l) < len(levelWords) {
		return levelWords[l]
	}
	return "UNKNOWN"
}

// DaemonOptions says where the daemon's own messages go.
type DaemonOptions struct {
	// Mode is "syslog" (the default), "file" (-filelog) or "debug" (-d).
	Mode string
	// Facility is the syslog facility of -syslog; "" is daemon.
	Facility string
	// Path is the -filelog file.
	Path string
	// Ident is the name in syslog identities and -filelog lines; "" is
	// DefaultIdent.
	Ident string
	// Stderr receives -d output (xinetd writes to /dev/tty).
	Stderr io.Writer
	// SyslogPath is the syslog socket; "" is /dev/log.
	SyslogPath string
	// Debug lets DEBUG messages through in syslog and file modes; they
	// always pass in debug mode.
	Debug bool
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Daemon writes gxinetd's own messages in xinetd's layouts. Its methods
// are safe for concurrent use, and a nil *Daemon discards everything, so
// packages can take one optionally.
type Daemon struct {
	o       DaemonOptions
	pid     int
	pri     int // facility*8, syslog mode
	mu      sync.Mutex
	sys     *syslogConn
	out     io.Writer // file mode: where lines go
	file    *os.File  // file mode: what Close and Reopen close (nil for stderr)
	buf     []byte
	dropped atomic.Uint64
	// fallback is set when syslog was unreachable at start-up and the
	// messages went to standard error instead.
	fallback error
}

// NewDaemon opens the destination of the daemon's messages. An unknown
// -syslog facility falls back to daemon and is reported at ERROR, as
// xinetd does; a -filelog file that cannot be opened is an error.
func NewDaemon(o DaemonOptions) (*Daemon, error) {
	if o.Ident == "" {
		o.Ident = DefaultIdent
	}
	if o.Mode == "" {
		o.Mode = "syslog"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	d := &Daemon{o: o, pid: os.Getpid()}
	var badFacility string
	switch o.Mode {
	case "syslog":
		f, ok := Facility(o.Facility)
		if o.Facility == "" {
			f, ok = facilityCodes["daemon"], true
		}
		if !ok {
			badFacility = o.Facility
			f = facilityCodes["daemon"]
		}
		d.pri = f * 8
		d.sys = &syslogConn{path: o.SyslogPath, timeout: 200 * time.Millisecond}
		if err := d.sys.dial(); err != nil {
			// No syslog (a container, a chroot, a machine whose syslog
			// daemon is down): messages sent there would vanish, and a
			// daemon that serves nothing would print nothing. Standard
			// error is where a supervisor or `docker logs` looks.
			d.fallback = err
			d.o.Mode, d.o.Path, d.out = "file", "/dev/stderr", o.Stderr
		}
	case "file":
		if o.Path == "" {
			return nil, errors.New("logging: daemon log: -filelog needs a file name")
		}
		if err := d.openFile(); err != nil {
			return nil, err
		}
	case "debug":
	default:
		return nil, fmt.Errorf("logging: daemon log: unknown mode %q", o.Mode)
	}
	if d.fallback != nil {
		d.Logf(LevelNotice, "init", "syslog is unreachable (%v): daemon messages go to standard error", d.fallback)
	}
	if badFacility != "" {
		d.Logf(LevelError, "init", "Bad syslog facility: %s", badFacility)
	}
	return d, nil
}

// SyslogFallback reports the error that made the daemon's messages go to
// standard error instead of syslog at start-up, or nil.
func (d *Daemon) SyslogFallback() error {
	if d == nil {
		return nil
	}
	return d.fallback
}

// SyslogReachable dials the syslog socket (path "" is /dev/log) and
// hangs up: nil when messages sent there would arrive.
func SyslogReachable(path string) error {
	c := &syslogConn{path: path, timeout: 200 * time.Millisecond}
	if err := c.dial(); err != nil {
		return err
	}
	c.close()
	return nil
}

// stderrPath reports whether -filelog names standard error itself, which
// is written directly: opening /dev/stderr anew fails when the daemon has
// dropped privileges, when stderr is a file it may not open, and when it
// is a socket (systemd's journal stream), which cannot be opened at all.
func stderrPath(p string) bool {
	fd, ok := stdioFD(p)
	return p == "-" || ok && fd == 2
}

func (d *Daemon) openFile() error {
	if stderrPath(d.o.Path) {
		d.out, d.file = d.o.Stderr, nil
		return nil
	}
	var f *os.File
	var err error
	if fd, ok := stdioFD(d.o.Path); ok {
		f, err = dupFD(fd, d.o.Path)
	} else {
		f, err = os.OpenFile(d.o.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}
	if err != nil {
		return fmt.Errorf("logging: daemon log: %w", err)
	}
	d.out, d.file = f, f
	return nil
}

// Logf writes one message. fn names the function the message comes from;
// xinetd shows it in CRITICAL messages and in -d output.
func (d *Daemon) Logf(l Level, fn string, format string, args ...any) {
	if d == nil {
		return
	}
	if l == LevelDebug && !d.o.Debug && d.o.Mode != "debug" {
		return
	}
	text := format
	if len(args) > 0 {
		text = fmt.Sprintf(format, args...)
	}
	now := d.o.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.buf[:0]
	switch d.o.Mode {
	case "debug":
		b = appendStamp(b, now)
		b = append(b, ": "...)
		b = append(b, l.String()...)
		b = append(b, ": "...)
		b = appendFn(b, d.pid, fn)
		b = appendSafeLine(b, text)
		b = append(b, '\n')
		if _, err := d.o.Stderr.Write(b); err != nil {
			d.dropped.Add(1)
		}
	case "file":
		b = appendStamp(b, now)
		b = append(b, ' ')
		b = append(b, d.o.Ident...)
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(d.pid), 10)
		b = append(b, "]: "...)
		b = append(b, l.String()...)
		b = append(b, ": "...)
		if l == LevelCrit {
			b = appendFn(b, d.pid, fn)
		}
		b = appendSafeLine(b, text)
		b = append(b, '\n')
		if d.out == nil {
			if err := d.openFile(); err != nil {
				d.dropped.Add(1)
				break
			}
		}
		if _, err := d.out.Write(b); err != nil {
			d.dropped.Add(1)
		}
	default:
		sev := levelSeverity[LevelInfo]
		if l >= 0 && int(l) < len(levelSeverity) {
			sev = levelSeverity[l]
		}
		b = appendSyslogHeader(b, d.pri+sev, now, d.o.Ident, d.pid)
		if l == LevelCrit {
			b = appendFn(b, d.pid, fn)
		}
		b = appendSafeLine(b, text)
		if err := d.sys.write(b); err != nil {
			d.dropped.Add(1)
		}
	}
	d.buf = b
}

// Dropped counts messages that could not be written.
func (d *Daemon) Dropped() uint64 {
	if d == nil {
		return 0
	}
	return d.dropped.Load()
}

func appendFn(b []byte, pid int, fn string) []byte {
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, " {"...)
	b = append(b, fn...)
	return append(b, "} "...)
}

// appendSafeLine keeps one message on one line: embedded newlines (from
// a file name or a client's text) would otherwise forge log lines.
func appendSafeLine(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\n', '\r':
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return b
}

// Reopen reopens the -filelog file (after it was moved away) and drops
// the syslog connection so the next message redials.
func (d *Daemon) Reopen() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.o.Mode {
	case "file":
		if stderrPath(d.o.Path) {
			return
		}
		if d.file != nil {
			_ = d.file.Close()
		}
		d.out, d.file = nil, nil
		if err := d.openFile(); err != nil {
			d.dropped.Add(1)
		}
	case "syslog":
		d.sys.close()
	}
}

// Close releases the destination.
func (d *Daemon) Close() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.file != nil {
		_ = d.file.Close()
	}
	d.out, d.file = nil, nil
	if d.sys != nil {
		d.sys.close()
	}
}

// Errno formats an error the way xinetd's %m does:
// "No such file or directory (errno = 2)". Errors that carry no errno
// are returned as their text.
func Errno(err error) string {
	if err == nil {
		return "Success (errno = 0)"
	}
	var en syscall.Errno
	if !errors.As(err, &en) {
		return err.Error()
	}
	s := en.Error()
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s + " (errno = " + strconv.Itoa(int(en)) + ")"
}
