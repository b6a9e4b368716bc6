package service

import (
	"encoding/json"
	"fmt"
	"strings"
)

// SocketType is the socket_type attribute (inetd.conf's second field).
type SocketType int

const (
	SockUnset SocketType = iota
	SockStream
	SockDgram
	SockRaw
	SockSeqPacket
	SockRDM // inetd.conf only; xinetd has no rdm
)

var socketTypeNames = []string{"", "stream", "dgram", "raw", "seqpacket", "rdm"}

func (t SocketType) String() string {
	if int(t) < len(socketTypeNames) {
		return socketTypeNames[t]
	}
	return fmt.Sprintf("SocketType(%d)", int(t))
}

// ParseSocketType maps a (case-insensitive) word to a SocketType.
func ParseSocketType(s string) (SocketType, bool) {
	for i, n := range socketTypeNames {
		if i > 0 && strings.EqualFold(s, n) {
			return SocketType(i), true
		}
	}
	return SockUnset, false
}

func (t SocketType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }
func (t *SocketType) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*t = SockUnset
		return nil
	}
	v, ok := ParseSocketType(string(b))
	if !ok {
		return fmt.Errorf("service: unknown socket type %q", b)
	}
	*t = v
	return nil
}

// Family is the address family a service listens on.
type Family int32

const (
	// FamilyDual is an IPv6 socket that also accepts IPv4 clients as
	// v4-mapped addresses (xinetd's default since 2.3.15).
	FamilyDual Family = iota
	FamilyIPv4
	FamilyIPv6
	FamilyUnix // inetd.conf "unix" services (FreeBSD)
)

var familyNames = []string{"dual", "ipv4", "ipv6", "unix"}

func (f Family) String() string {
	if int(f) < len(familyNames) {
		return familyNames[f]
	}
	return fmt.Sprintf("Family(%d)", int(f))
}
func (f Family) MarshalText() ([]byte, error) { return []byte(f.String()), nil }
func (f *Family) UnmarshalText(b []byte) error {
	for i, n := range familyNames {
		if string(b) == n {
			*f = Family(i)
			return nil
		}
	}
	return fmt.Errorf("service: unknown family %q", b)
}

// The flag-like attributes (type, flags, log_on_*) are sets of named bits
// whose canonical order is the order of their name table, which is also
// xinetd's dump order.

func formatBits(v uint32, names []string) []string {
	var out []string
	for i, n := range names {
		if n != "" && v&(1<<uint(i)) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func parseBit(word string, names []string) (uint32, bool) {
	for i, n := range names {
		if n != "" && strings.EqualFold(word, n) {
			return 1 << uint(i), true
		}
	}
	return 0, false
}

func marshalBits(v uint32, names []string) ([]byte, error) {
	out := formatBits(v, names)
	if out == nil {
		out = []string{}
	}
	return json.Marshal(out)
}

func unmarshalBits(b []byte, names []string, what string) (uint32, error) {
	var words []string
	if err := json.Unmarshal(b, &words); err != nil {
		return 0, err
	}
	var v uint32
	for _, w := range words {
		bit, ok := parseBit(w, names)
		if !ok {
			return 0, fmt.Errorf("service: unknown %s %q", what, w)
		}
		v |= bit
	}
	return v, nil
}

// TypeFlags is the `type` attribute.
type TypeFlags uint32

const (
	TypeRPC TypeFlags = 1 << iota
	TypeInternal
	TypeUnlisted
	TypeSpecial
	TypeTCPMux
	TypeTCPMuxPlus
)

// typeNames is in xinetd's dump order (RPC INTERNAL UNLISTED SPECIAL TCPMUX TCPMUXPLUS).
var typeNames = []string{"RPC", "INTERNAL", "UNLISTED", "SPECIAL", "TCPMUX", "TCPMUXPLUS"}

func (t TypeFlags) Has(b TypeFlags) bool { return t&b != 0 }
func (t TypeFlags) Names() []string      { return formatBits(uint32(t), typeNames) }
func (t TypeFlags) String() string       { return strings.Join(t.Names(), " ") }

// ParseType maps one `type` word to its bit.
func ParseType(word string) (TypeFlags, bool) {
	b, ok := parseBit(word, typeNames)
	return TypeFlags(b), ok
}
func (t TypeFlags) MarshalJSON() ([]byte, error) { return marshalBits(uint32(t), typeNames) }
func (t *TypeFlags) UnmarshalJSON(b []byte) error {
	v, err := unmarshalBits(b, typeNames, "type")
	*t = TypeFlags(v)
	return err
}

// Flags is the `flags` attribute.
type Flags uint32

const (
	FlagReuse Flags = 1 << iota
	FlagIntercept
	FlagNoRetry
	FlagIDOnly
	FlagNameInArgs
	FlagNoDelay
	FlagKeepAlive
	FlagNoLibwrap
	FlagSensor
	FlagIPv4
	FlagIPv6
	FlagLabeled
)

// flagNames is in xinetd's dump order.
var flagNames = []string{"REUSE", "INTERCEPT", "NORETRY", "IDONLY", "NAMEINARGS", "NODELAY", "KEEPALIVE", "NOLIBWRAP", "SENSOR", "IPv4", "IPv6", "LABELED"}

// FlagNames lists every flag word, for did-you-mean suggestions.
func FlagNames() []string { return append([]string(nil), flagNames...) }

func (f Flags) Has(b Flags) bool { return f&b != 0 }
func (f Flags) Names() []string  { return formatBits(uint32(f), flagNames) }
func (f Flags) String() string   { return strings.Join(f.Names(), " ") }

// ParseFlag maps one `flags` word to its bit.
func ParseFlag(word string) (Flags, bool) {
	b, ok := parseBit(word, flagNames)
	return Flags(b), ok
}
func (f Flags) MarshalJSON() ([]byte, error) { return marshalBits(uint32(f), flagNames) }
func (f *Flags) UnmarshalJSON(b []byte) error {
	v, err := unmarshalBits(b, flagNames, "flag")
	*f = Flags(v)
	return err
}

// LogSuccess is the `log_on_success` attribute.
type LogSuccess uint32

const (
	LogSuccessHost LogSuccess = 1 << iota
	LogSuccessDuration
	LogSuccessExit
	LogSuccessPID
	LogSuccessUserID
	LogSuccessTraffic
)

// logSuccessNames is in xinetd's dump order (HOST DURATION EXIT PID USERID TRAFFIC).
var logSuccessNames = []string{"HOST", "DURATION", "EXIT", "PID", "USERID", "TRAFFIC"}

func (l LogSuccess) Has(b LogSuccess) bool { return l&b != 0 }
func (l LogSuccess) Names() []string       { return formatBits(uint32(l), logSuccessNames) }
func (l LogSuccess) String() string        { return strings.Join(l.Names(), " ") }

// ParseLogSuccess maps one log_on_success word to its bit.
func ParseLogSuccess(word string) (LogSuccess, bool) {
	b, ok := parseBit(word, logSuccessNames)
	return LogSuccess(b), ok
}
func (l LogSuccess) MarshalJSON() ([]byte, error) { return marshalBits(uint32(l), logSuccessNames) }
func (l *LogSuccess) UnmarshalJSON(b []byte) error {
	v, err := unmarshalBits(b, logSuccessNames, "log_on_success flag")
	*l = LogSuccess(v)
	return err
}

// LogFailure is the `log_on_failure` attribute.
type LogFailure uint32

const (
	LogFailureHost LogFailure = 1 << iota
	LogFailureAttempt
	LogFailureUserID
)

// logFailureNames is in xinetd's dump order (HOST ATTEMPT USERID).
var logFailureNames = []string{"HOST", "ATTEMPT", "USERID"}

func (l LogFailure) Has(b LogFailure) bool { return l&b != 0 }
func (l LogFailure) Names() []string       { return formatBits(uint32(l), logFailureNames) }
func (l LogFailure) String() string        { return strings.Join(l.Names(), " ") }

// ParseLogFailure maps one log_on_failure word to its bit.
func ParseLogFailure(word string) (LogFailure, bool) {
	b, ok := parseBit(word, logFailureNames)
	return LogFailure(b), ok
}
func (l LogFailure) MarshalJSON() ([]byte, error) { return marshalBits(uint32(l), logFailureNames) }
func (l *LogFailure) UnmarshalJSON(b []byte) error {
	v, err := unmarshalBits(b, logFailureNames, "log_on_failure flag")
	*l = LogFailure(v)
	return err
}

// LogKind says where a service's records go.
type LogKind int

const (
	LogNone LogKind = iota
	LogSyslog
	LogFile
)

var logKindNames = []string{"none", "syslog", "file"}

func (k LogKind) String() string {
	if int(k) < len(logKindNames) {
		return logKindNames[k]
	}
	return fmt.Sprintf("LogKind(%d)", int(k))
}
func (k LogKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }
func (k *LogKind) UnmarshalText(b []byte) error {
	for i, n := range logKindNames {
		if string(b) == n {
			*k = LogKind(i)
			return nil
		}
	}
	return fmt.Errorf("service: unknown log kind %q", b)
}

// LogFormat is gxinetd's log_format attribute (beyond xinetd).
type LogFormat string

const (
	LogFormatXinetd LogFormat = "xinetd"
	LogFormatLogfmt LogFormat = "logfmt"
	LogFormatJSON   LogFormat = "json"
)

// SyslogFacilities lists the facility names log_type SYSLOG and -syslog accept.
var SyslogFacilities = []string{"daemon", "auth", "authpriv", "user", "mail", "lpr", "news", "uucp", "ftp",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}

// SyslogLevels lists the level names log_type SYSLOG accepts, most severe first.
var SyslogLevels = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}
