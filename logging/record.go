package logging

import (
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gxinetd/gxinetd/internal/service"
)

// Event is the kind of a service log record.
type Event int

const (
	// EventStart is written when a server starts (or a builtin or a
	// redirect runs, or a server is started but cannot run).
	EventStart Event = iota
	// EventExit is written when a server has been reaped, when a session
	// of a builtin xinetd forks for (echo, discard, chargen, tcpmux) or of
	// a redirect ends, and after the START of a server that could not
	// run.
	EventExit
	// EventFail is written when a request is refused.
	EventFail
	// EventUserID carries the answer of a successful ident lookup. On the
	// success path it follows START, as in xinetd, whose child does the
	// lookup after its parent has logged START.
	EventUserID
	// EventNoID is written when an IDONLY service's ident lookup failed,
	// between a START and an EXIT.
	EventNoID
	// EventTraffic is written when a redirect session ends.
	EventTraffic
)

var eventNames = [...]string{"START", "EXIT", "FAIL", "USERID", "NOID", "TRAFFIC"}

func (e Event) String() string {
	if e >= 0 && int(e) < len(eventNames) {
		return eventNames[e]
	}
	return "UNKNOWN"
}

// Record is one service log record. The daemon fills the fields that
// apply to the event; the formatters pick what the service's log_on_*
// flags ask for.
type Record struct {
	Event   Event
	Time    time.Time // zero: the time Log is called
	Service *service.Service
	// PID is the server's pid; 0 for builtins answered in-process, as
	// xinetd prints pid=0 for its non-forking builtins.
	PID int
	// Remote is the client; the zero value prints as "<no address>"
	// (wait=yes stream services never see their client).
	Remote netip.AddrPort
	Local  netip.AddrPort
	// Reason is xinetd's FAIL word ("address", "connections per second",
	// ...), the NOID reason ("no server", "timeout", ...), or why gxinetd
	// ended a server, for EXIT ("max_duration", "seccomp").
	Reason string
	// ReasonCode is the stable code written by the logfmt and JSON
	// formats; empty derives one from Reason.
	ReasonCode string
	ExitStatus int
	// Signal, when non-zero, replaces status= by signal= in EXIT.
	Signal   int
	Duration time.Duration
	BytesIn  int64
	BytesOut int64
	// UserID is the ident answer for USERID records: the text after
	// "USERID :" as the ident server sent it.
	UserID string
	// Proxy is the load balancer the connection came through, when a
	// PROXY protocol header named the client (Remote) for it; zero
	// otherwise.
	Proxy netip.AddrPort
}

func (r *Record) id() string {
	if r.Service == nil {
		return ""
	}
	return r.Service.ID
}

func (r *Record) name() string {
	if r.Service == nil {
		return ""
	}
	return r.Service.Name
}

func (r *Record) success() service.LogSuccess {
	if r.Service == nil {
		return 0
	}
	return r.Service.LogOnSuccess
}

func (r *Record) failure() service.LogFailure {
	if r.Service == nil {
		return 0
	}
	return r.Service.LogOnFailure
}

// appendAddr writes a client address the way xinetd's logs show it:
// numeric, v4-mapped addresses kept as such, "<no address>" when unknown.
func appendAddr(dst []byte, a netip.AddrPort) []byte {
	if !a.Addr().IsValid() {
		return append(dst, "<no address>"...)
	}
	return a.Addr().AppendTo(dst)
}

// FormatXinetd appends the record in xinetd 2.3.15's layout, without
// the file prefix or a newline, e.g. "START: echo pid=0 from=127.0.0.1".
// Optional parts follow the service's log_on_success / log_on_failure
// flags exactly as xinetd's log.c does. It does not allocate when dst has
// room.
func FormatXinetd(dst []byte, r *Record) []byte {
	dst = append(dst, r.Event.String()...)
	dst = append(dst, ": "...)
	dst = append(dst, r.id()...)
	succ := r.success()
	switch r.Event {
	case EventStart:
		if succ.Has(service.LogSuccessPID) {
			dst = append(dst, " pid="...)
			dst = strconv.AppendInt(dst, int64(r.PID), 10)
		}
		if succ.Has(service.LogSuccessHost) {
			dst = append(dst, " from="...)
			dst = appendAddr(dst, r.Remote)
			// After from=, never in FAIL records: fail2ban's xinetd
			// filter anchors "FAIL: ... from=<HOST>" at the line's end.
			if r.Proxy.IsValid() {
				dst = append(dst, " proxy="...)
				dst = r.Proxy.Addr().AppendTo(dst)
			}
		}
	case EventExit:
		if succ.Has(service.LogSuccessExit) {
			if r.Signal != 0 {
				dst = append(dst, " signal="...)
				dst = strconv.AppendInt(dst, int64(r.Signal), 10)
			} else {
				dst = append(dst, " status="...)
				dst = strconv.AppendInt(dst, int64(r.ExitStatus), 10)
			}
		}
		if succ.Has(service.LogSuccessPID) {
			dst = append(dst, " pid="...)
			dst = strconv.AppendInt(dst, int64(r.PID), 10)
		}
		if succ.Has(service.LogSuccessDuration) {
			dst = append(dst, " duration="...)
			dst = strconv.AppendInt(dst, int64(r.Duration/time.Second), 10)
			dst = append(dst, "(sec)"...)
		}
		if r.Reason != "" {
			// Only gxinetd ends servers for a reason of its own
			// (max_duration, a seccomp kill): xinetd's lines never have it.
			dst = append(dst, " reason="...)
			dst = append(dst, r.Reason...)
		}
	case EventFail:
		dst = append(dst, ' ')
		dst = append(dst, reasonWord(r)...)
		if r.failure().Has(service.LogFailureHost) {
			dst = append(dst, " from="...)
			dst = appendAddr(dst, r.Remote)
		}
	case EventUserID:
		dst = append(dst, ' ')
		dst = appendSafe(dst, r.UserID)
	case EventNoID:
		dst = append(dst, ' ')
		dst = appendAddr(dst, r.Remote)
		dst = append(dst, ' ')
		dst = append(dst, reasonWord(r)...)
	case EventTraffic:
		dst = append(dst, " in="...)
		dst = strconv.AppendInt(dst, r.BytesIn, 10)
		dst = append(dst, "(bytes) out="...)
		dst = strconv.AppendInt(dst, r.BytesOut, 10)
		dst = append(dst, "(bytes)"...)
	}
	return dst
}

func reasonWord(r *Record) string {
	if r.Reason != "" {
		return r.Reason
	}
	if r.ReasonCode != "" {
		return r.ReasonCode
	}
	return "UNKNOWN"
}

// reasonCodes maps xinetd's FAIL and NOID words to the codes the
// structured formats use when the daemon gave none.
var reasonCodes = map[string]string{
	"connections per second":         "cps",
	"no server":                      "no_server",
	"system error":                   "system_error",
	"error while receiving response": "receive_error",
	"bad response":                   "bad_response",
}

// Code returns the record's stable reason code: ReasonCode when set,
// otherwise one derived from Reason (blanks become underscores).
func (r *Record) Code() string {
	if r.ReasonCode != "" {
		return r.ReasonCode
	}
	if c, ok := reasonCodes[r.Reason]; ok {
		return c
	}
	for i := 0; i < len(r.Reason); i++ {
		if r.Reason[i] == ' ' {
			b := []byte(r.Reason)
			for j := range b {
				if b[j] == ' ' {
					b[j] = '_'
				}
			}
			return string(b)
		}
	}
	if r.Reason == "" {
		return "unknown"
	}
	return r.Reason
}

// appendSafe copies text from the network (ident answers) into a log
// line, replacing control characters so that a hostile answer cannot
// forge extra lines or terminal escapes.
func appendSafe(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			dst = append(dst, '?')
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// fieldSink receives structured fields; the logfmt and JSON writers share
// the selection logic through it so both formats always agree.
type fieldSink interface {
	str(key, val string)
	num(key string, val int64)
	addr(key string, a netip.Addr)
	time(key string, t time.Time)
}

// structuredFields emits, in a fixed order, the fields of a record for
// the structured formats. The same flags as the xinetd layout decide the
// optional ones, so switching format never reveals more than the
// configuration asked for.
func structuredFields(s fieldSink, r *Record) {
	s.time("time", r.Time)
	s.str("event", r.Event.String())
	s.str("service", r.name())
	s.str("id", r.id())
	succ, fail := r.success(), r.failure()
	remote := false
	switch r.Event {
	case EventStart:
		if succ.Has(service.LogSuccessPID) {
			s.num("pid", int64(r.PID))
		}
		remote = succ.Has(service.LogSuccessHost)
	case EventExit:
		if succ.Has(service.LogSuccessPID) {
			s.num("pid", int64(r.PID))
		}
	case EventFail:
		remote = fail.Has(service.LogFailureHost)
	case EventUserID, EventNoID:
		remote = true
	}
	if remote && r.Remote.Addr().IsValid() {
		s.addr("remote", r.Remote.Addr())
		s.num("remote_port", int64(r.Remote.Port()))
		if r.Local.Addr().IsValid() {
			s.addr("local", r.Local.Addr())
		}
		if r.Proxy.IsValid() {
			s.addr("proxy", r.Proxy.Addr())
			s.num("proxy_port", int64(r.Proxy.Port()))
		}
	}
	switch r.Event {
	case EventFail, EventNoID:
		s.str("reason", r.Code())
	case EventExit:
		if succ.Has(service.LogSuccessDuration) {
			s.num("duration_ms", r.Duration.Milliseconds())
		}
		if succ.Has(service.LogSuccessExit) {
			if r.Signal != 0 {
				s.num("signal", int64(r.Signal))
			} else {
				s.num("exit_status", int64(r.ExitStatus))
			}
		}
		if r.Reason != "" {
			s.str("reason", r.Code())
		}
	case EventTraffic:
		s.num("bytes_in", r.BytesIn)
		s.num("bytes_out", r.BytesOut)
	case EventUserID:
		s.str("userid", r.UserID)
	}
}

const rfc3339Milli = "2006-01-02T15:04:05.000Z07:00"

type logfmtWriter struct {
	b     []byte
	first bool
}

func (w *logfmtWriter) key(k string) {
	if !w.first {
		w.b = append(w.b, ' ')
	}
	w.first = false
	w.b = append(w.b, k...)
	w.b = append(w.b, '=')
}

func (w *logfmtWriter) str(k, v string) {
	w.key(k)
	w.b = appendLogfmtValue(w.b, v)
}
func (w *logfmtWriter) num(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}
func (w *logfmtWriter) addr(k string, a netip.Addr) {
	w.key(k)
	w.b = a.AppendTo(w.b)
}
func (w *logfmtWriter) time(k string, t time.Time) {
	w.key(k)
	w.b = t.AppendFormat(w.b, rfc3339Milli)
}

func appendLogfmtValue(dst []byte, v string) []byte {
	needQuote := v == ""
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f {
			needQuote = true
			break
		}
	}
	if !needQuote {
		return append(dst, v...)
	}
	return appendQuoted(dst, v)
}

// appendQuoted writes v as a double-quoted string with JSON-compatible
// escapes (valid for both logfmt and JSON).
func appendQuoted(dst []byte, v string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(v); {
		c := v[i]
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(v[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, v[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20 || c == 0x7f:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
		i++
	}
	return append(dst, '"')
}

// FormatLogfmt appends the record as one logfmt line (no newline):
// time event service id [pid] [remote remote_port local [proxy proxy_port]] [reason]
// [duration_ms] [exit_status|signal] [bytes_in bytes_out] [userid].
func FormatLogfmt(dst []byte, r *Record) []byte {
	w := logfmtWriter{b: dst, first: true}
	structuredFields(&w, r)
	return w.b
}

type jsonWriter struct {
	b     []byte
	first bool
}

func (w *jsonWriter) key(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}
func (w *jsonWriter) str(k, v string) {
	w.key(k)
	w.b = appendQuoted(w.b, v)
}
func (w *jsonWriter) num(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}
func (w *jsonWriter) addr(k string, a netip.Addr) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = a.AppendTo(w.b)
	w.b = append(w.b, '"')
}
func (w *jsonWriter) time(k string, t time.Time) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = t.AppendFormat(w.b, rfc3339Milli)
	w.b = append(w.b, '"')
}

// FormatJSON appends the record as one JSON object (no newline) with the
// same fields, in the same order, as FormatLogfmt.
func FormatJSON(dst []byte, r *Record) []byte {
	w := jsonWriter{b: append(dst, '{'), first: true}
	structuredFields(&w, r)
	return append(w.b, '}')
}

// Format appends the record in the service's log_format.
func Format(dst []byte, r *Record) []byte {
	var f service.LogFormat
	if r.Service != nil {
		f = r.Service.LogFormat
	}
	switch f {
	case service.LogFormatLogfmt:
		return FormatLogfmt(dst, r)
	case service.LogFormatJSON:
		return FormatJSON(dst, r)
	}
	return FormatXinetd(dst, r)
}

// AppendFilePrefix appends xinetd's file-log time stamp
// "YY/M/D@HH:MM:SS: " in t's location: the year modulo 100 padded to two
// digits, month and day not padded, the time fields padded.
func AppendFilePrefix(dst []byte, t time.Time) []byte {
	dst = appendStamp(dst, t)
	return append(dst, ':', ' ')
}

func appendStamp(dst []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	dst = append2(dst, y%100)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(mo), 10)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(d), 10)
	dst = append(dst, '@')
	dst = append2(dst, h)
	dst = append(dst, ':')
	dst = append2(dst, mi)
	dst = append(dst, ':')
	return append2(dst, s)
}

func append2(dst []byte, n int) []byte {
	return append(dst, byte('0'+n/10%10), byte('0'+n%10))
}
