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
	// Ident replaces "xinetd" in syslog identities and -filelog lines;
	// "" is "gxinetd".
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
	file    *os.File
	buf     []byte
	dropped atomic.Uint64
}

// NewDaemon opens the destination of the daemon's messages. An unknown
// -syslog facility falls back to daemon and is reported at ERROR, as
// xinetd does; a -filelog file that cannot be opened is an error.
func NewDaemon(o DaemonOptions) (*Daemon, error) {
	if o.Ident == "" {
		o.Ident = "gxinetd"
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
	if badFacility != "" {
		d.Logf(LevelError, "init", "Bad syslog facility: %s", badFacility)
	}
	return d, nil
}

// stderrPath reports whether -filelog names standard error itself, which
// is written directly: opening /dev/stderr anew fails when the daemon has
// dropped privileges or stderr is a file it may not open.
func stderrPath(p string) bool { return p == "-" || p == "/dev/stderr" }

func (d *Daemon) openFile() error {
	if stderrPath(d.o.Path) {
		if f, ok := d.o.Stderr.(*os.File); ok {
			d.file = f
			return nil
		}
	}
	f, err := os.OpenFile(d.o.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("logging: daemon log: %w", err)
	}
	d.file = f
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
		if d.file == nil {
			if err := d.openFile(); err != nil {
				d.dropped.Add(1)
				break
			}
		}
		if _, err := d.file.Write(b); err != nil {
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
			d.file = nil
		}
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
	if d.file != nil && !stderrPath(d.o.Path) {
		_ = d.file.Close()
	}
	d.file = nil
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
