package logging

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultSyslogPath is the local syslog socket (syslogd, rsyslog and
// journald all listen there).
const DefaultSyslogPath = "/dev/log"

// DefaultIdent is the syslog identity of every line gxinetd sends to
// syslog, and the name in -filelog lines. It is xinetd's: log filters
// written for xinetd (fail2ban's stock xinetd-fail filter, logwatch)
// select lines by that name, and a drop-in successor must not make them
// match nothing. -syslog-ident chooses another.
const DefaultIdent = "xinetd"

var facilityCodes = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

var severityCodes = map[string]int{
	"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7,
}

// Facility returns the syslog facility number of a name
// (case-insensitive), as log_type SYSLOG and -syslog accept them.
func Facility(name string) (int, bool) {
	c, ok := facilityCodes[strings.ToLower(name)]
	return c, ok
}

// Severity returns the syslog severity number of a level name
// (case-insensitive); "" is info, xinetd's default.
func Severity(name string) (int, bool) {
	if name == "" {
		return 6, true
	}
	c, ok := severityCodes[strings.ToLower(name)]
	return c, ok
}

// priority computes PRI for a facility and level name, falling back to
// daemon.info for unknown words (the parser rejects those earlier).
func priority(facility, level string) int {
	f, ok := Facility(facility)
	if !ok {
		f = facilityCodes["daemon"]
	}
	s, ok := Severity(level)
	if !ok {
		s = 6
	}
	return f*8 + s
}

// appendSyslogHeader writes the RFC 3164 header glibc's syslog(3) sends to
// /dev/log: "<PRI>Mmm dd hh:mm:ss IDENT[PID]: " (no host name; the local
// daemon adds it).
func appendSyslogHeader(dst []byte, pri int, t time.Time, ident string, pid int) []byte {
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(pri), 10)
	dst = append(dst, '>')
	dst = t.AppendFormat(dst, time.Stamp)
	dst = append(dst, ' ')
	dst = append(dst, ident...)
	dst = append(dst, '[')
	dst = strconv.AppendInt(dst, int64(pid), 10)
	dst = append(dst, "]: "...)
	return dst
}

// syslogConn is a connection to the local syslog socket that redials when
// the daemon behind it restarts. It is not safe for concurrent use; each
// owner serialises its writes.
type syslogConn struct {
	path    string
	timeout time.Duration
	conn    net.Conn
	stream  bool
}

func (c *syslogConn) dial() error {
	path := c.path
	if path == "" {
		path = DefaultSyslogPath
	}
	conn, err := net.DialTimeout("unixgram", path, c.timeout)
	if err == nil {
		c.conn, c.stream = conn, false
		return nil
	}
	// A stream-only syslog socket refuses datagram connects with EPROTOTYPE.
	if errors.Is(err, syscall.EPROTOTYPE) {
		conn, err2 := net.DialTimeout("unix", path, c.timeout)
		if err2 == nil {
			c.conn, c.stream = conn, true
			return nil
		}
		err = err2
	}
	return fmt.Errorf("logging: syslog: connect %s: %w", path, err)
}

// write sends one message. b must have one spare byte of capacity if the
// socket turns out to be a stream (a newline frames the message there).
// On a broken connection it redials once, which is how a restarted syslogd
// or journald is picked up; a timeout is reported, never retried, so that
// a full socket costs at most one timeout per record.
func (c *syslogConn) write(b []byte) error {
	for attempt := 0; attempt < 2; attempt++ {
		if c.conn == nil {
			if err := c.dial(); err != nil {
				return err
			}
		}
		msg := b
		if c.stream {
			msg = append(b, '\n')
		}
		if c.timeout > 0 {
			_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
		}
		_, err := c.conn.Write(msg)
		if err == nil {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("logging: syslog: write: %w", err)
		}
		c.close()
		if attempt == 1 {
			return fmt.Errorf("logging: syslog: write: %w", err)
		}
	}
	return nil
}

func (c *syslogConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}
