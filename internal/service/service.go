package service

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
)

// Unlimited is the value of a Limit that has no bound (xinetd's UNLIMITED).
const Unlimited = -1

// Limit is a count such as instances or per_source. Unlimited (-1) means
// no bound; 0 refuses everything.
type Limit int

// Allows reports whether n running items stay within the limit when one more starts.
func (l Limit) Allows(n int) bool { return l < 0 || n < int(l) }

func (l Limit) String() string {
	if l < 0 {
		return "UNLIMITED"
	}
	return strconv.Itoa(int(l))
}

// AddrKind is the form of one only_from / no_access entry.
type AddrKind int

const (
	// AddrNumeric is a single address written without a mask. For IPv4,
	// xinetd's implicit mask applies (trailing zero octets are wildcards),
	// so Prefix may be shorter than /32.
	AddrNumeric AddrKind = iota
	// AddrNet is ADDR/BITS, a factorised a.b.{x,y} element, or an
	// /etc/networks name: always a prefix.
	AddrNet
	// AddrHost is a host name, matched against the forward-confirmed
	// reverse name of the client.
	AddrHost
	// AddrDomain is a .domain suffix.
	AddrDomain
)

var addrKindNames = []string{"numeric", "net", "host", "domain"}

func (k AddrKind) String() string {
	if int(k) < len(addrKindNames) {
		return addrKindNames[k]
	}
	return "unknown"
}
func (k AddrKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }
func (k *AddrKind) UnmarshalText(b []byte) error {
	for i, n := range addrKindNames {
		if string(b) == n {
			*k = AddrKind(i)
			return nil
		}
	}
	*k = AddrNumeric
	return nil
}

// AddrEntry is one word of only_from or no_access (one element, for a
// factorised word). Prefix is valid for AddrNumeric and AddrNet, Name for
// AddrHost (lower-case) and AddrDomain (lower-case, with the leading dot).
type AddrEntry struct {
	Kind   AddrKind     `json:"kind"`
	Prefix netip.Prefix `json:"prefix,omitzero"`
	Name   string       `json:"name,omitempty"`
	Text   string       `json:"text"` // as written
	Src    Source       `json:"src"`
}

// AddrList is an only_from or no_access list. Set distinguishes "never
// mentioned" (everyone allowed, for only_from) from "set but empty"
// (nobody allowed).
type AddrList struct {
	Set     bool        `json:"set"`
	Entries []AddrEntry `json:"entries"`
}

// TimeRange is one access_times interval in minutes since midnight, both
// bounds inclusive at minute granularity. End may be 1440 (24:00); Start >
// End means the interval wraps past midnight (22:00-06:00), both of which
// gxinetd accepts and xinetd does not.
type TimeRange struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Contains reports whether minute m (0..1439) lies in the interval.
func (r TimeRange) Contains(m int) bool {
	if r.Start <= r.End {
		return m >= r.Start && m <= r.End
	}
	return m >= r.Start || m <= r.End
}

// String formats the interval as HH:MM-HH:MM.
func (r TimeRange) String() string { return hhmm(r.Start) + "-" + hhmm(r.End) }

func hhmm(m int) string { return pad2(m/60) + ":" + pad2(m%60) }

func pad2(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// LogType is the log_type attribute.
type LogType struct {
	Kind     LogKind `json:"kind"`
	Facility string  `json:"facility,omitempty"` // syslog facility, lower-case
	Level    string  `json:"level,omitempty"`    // syslog level, lower-case; "info" when not written
	Path     string  `json:"path,omitempty"`     // file
	Soft     int64   `json:"soft,omitempty"`     // bytes; 0 = no limit
	Hard     int64   `json:"hard,omitempty"`     // bytes; 0 = no limit
	// Common is true for a FILE log inherited from defaults: all services
	// inheriting it share one writer ("Logging to common log file").
	Common bool   `json:"common,omitempty"`
	Src    Source `json:"src"`
}

// CPS is the cps attribute: at most Rate new connections per second; on
// a trip the listener is closed for Wait seconds. Rate 0 turns it off.
type CPS struct {
	Rate int `json:"rate"`
	Wait int `json:"wait"`
}

// Rlimit is one rlimit_* attribute. Set false means "leave as inherited".
// Value is in bytes (seconds for cpu, a count for files); Infinity means
// RLIM_INFINITY (UNLIMITED).
type Rlimit struct {
	Set      bool   `json:"set"`
	Infinity bool   `json:"infinity,omitempty"`
	Value    uint64 `json:"value,omitempty"`
}

// Rlimits groups the rlimit_* attributes.
type Rlimits struct {
	AS    Rlimit `json:"as"`
	CPU   Rlimit `json:"cpu"`
	Data  Rlimit `json:"data"`
	RSS   Rlimit `json:"rss"`
	Stack Rlimit `json:"stack"`
	Files Rlimit `json:"files"`
}

// RlimitsRef holds a service's Rlimits where one is set: few services set
// any, and the 96 bytes inline were what kept a Service in the
// allocator's next size class (1,280 bytes instead of 1,152; 12.8 MB at
// 100,000 services). JSON reads and writes it as the Rlimits itself.
type RlimitsRef struct{ p *Rlimits }

// RlimitsOf refers to a copy of r.
func RlimitsOf(r Rlimits) RlimitsRef { return RlimitsRef{&r} }

// Get returns the limits, all unset when none was.
func (r RlimitsRef) Get() Rlimits {
	if r.p == nil {
		return Rlimits{}
	}
	return *r.p
}

// Edit returns the limits to change, made on first use.
func (r *RlimitsRef) Edit() *Rlimits {
	if r.p == nil {
		r.p = &Rlimits{}
	}
	return r.p
}

// MarshalJSON writes the Rlimits, as the field did before it was a
// reference.
func (r RlimitsRef) MarshalJSON() ([]byte, error) { return json.Marshal(r.Get()) }

// UnmarshalJSON reads MarshalJSON's output; limits all unset are no
// limits at all.
func (r *RlimitsRef) UnmarshalJSON(b []byte) error {
	var v Rlimits
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	r.p = nil
	if v != (Rlimits{}) {
		r.p = &v
	}
	return nil
}

// DenyForever and DenyNever are the special deny_time values.
const (
	DenyNever   = 0
	DenyForever = -1
)

// PeerCred is the peer of a unix-domain connection as the kernel
// reports it (SO_PEERCRED): its process, user and primary group.
type PeerCred struct {
	PID int `json:"pid"`
	UID int `json:"uid"`
	GID int `json:"gid"`
}

// Redirect is the redirect attribute: a TCP upstream that the daemon
// proxies to in-process. Host is a literal address or a name that is
// resolved again for every connection.
type Redirect struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// Bind is the bind/interface attribute.
type Bind struct {
	// Text is the value as written.
	Text string `json:"text"`
	// Addr is set when the value is (or resolved at parse time to) one address.
	Addr netip.Addr `json:"addr,omitzero"`
	// Interface is set when the value names a network interface
	// (`eth0`, `eth0:ipv6`): the daemon follows its addresses.
	Interface string `json:"interface,omitempty"`
	// IfaceFamily restricts an interface bind to one family (FamilyIPv4
	// or FamilyIPv6); FamilyDual means every address of the interface.
	IfaceFamily Family `json:"iface_family,omitempty"`
	// Template is set when the value is a go-sockaddr template
	// (`{{ GetPrivateIP }}`): the daemon listens on what it gives on
	// this host and follows changes, as for an interface.
	Template string `json:"template,omitempty"`
}

// IsZero reports whether no bind was configured (listen on all addresses).
func (b Bind) IsZero() bool { return b.Text == "" }

// Cred is a resolved user or group.
type Cred struct {
	Name string `json:"name,omitempty"` // as written (may be numeric)
	ID   int    `json:"id"`
}

// Status is what became of an entry.
type Status string

const (
	StatusAccepted Status = "accepted"
	StatusRejected Status = "rejected"
	StatusDisabled Status = "disabled"
)

// Language says which configuration language an entry came from.
type Language string

const (
	LangXinetd Language = "xinetd"
	LangInetd  Language = "inetd"
)

// InetdLimits are the per-entry limits of inetd.conf dialects, and the
// command-line limits of FreeBSD inetd, expressed in one shape. The
// xinetd.conf attributes cpm and per_source_cpm set the same two rates. The parser
// maps them onto the common attributes where the meaning is the same
// (max-child -> Instances, max-child-per-ip -> PerSource) and keeps the
// per-minute rates here; the access engine enforces both.
type InetdLimits struct {
	// PerMinute caps invocations of the service per minute (OpenBSD/Linux
	// `.N`, NetBSD `:N`, FreeBSD -R). 0 means not set.
	PerMinute int `json:"per_minute,omitempty"`
	// PerIPPerMinute caps connections from one address per minute
	// (FreeBSD's second `/N`, -C). 0 means not set.
	PerIPPerMinute int `json:"per_ip_per_minute,omitempty"`
	// Dialect is the inetd dialect the line was read with.
	Dialect string `json:"dialect,omitempty"`
}

// Service is one entry: an xinetd `service` block or an inetd.conf line,
// after defaults have been applied and values resolved.
type Service struct {
	Name     string   `json:"name"`
	ID       string   `json:"id"`
	Language Language `json:"language"`
	Src      Source   `json:"src"`      // the `service` line (or the inetd.conf line)
	EndLine  int      `json:"end_line"` // the closing `}` (same as Src.Line for inetd.conf)
	Status   Status   `json:"status"`
	// Reasons holds the error diagnostics that rejected the entry.
	Reasons Diags `json:"reasons,omitempty"`
	// Origins maps an attribute name to where its value came from, for
	// values that did not come from the entry itself (Source.Origin set
	// to "defaults" or "default") as well as those that did.
	Origins Origins `json:"origins,omitzero"`

	Type       TypeFlags  `json:"type"`
	Flags      Flags      `json:"flags"`
	SocketType SocketType `json:"socket_type"`
	Protocol   string     `json:"protocol"` // "tcp", "udp", ... as in /etc/protocols
	ProtoNum   int        `json:"proto_num"`
	Family     Family     `json:"family"`
	Wait       bool       `json:"wait"`

	User   *Cred `json:"user,omitempty"`
	Group  *Cred `json:"group,omitempty"`
	Groups bool  `json:"groups"` // initgroups for the user (groups = yes)
	// LoginClass is FreeBSD's user/class: kept so the check mode can say
	// it is not supported.
	LoginClass string `json:"login_class,omitempty"`

	Server     string   `json:"server,omitempty"`
	ServerArgs []string `json:"server_args,omitempty"`
	// Argv is what the server is executed with: [basename(server),
	// server_args...], or server_args as written with NAMEINARGS.
	Argv []string `json:"argv,omitempty"`
	// Env is the env attribute, NAME=VALUE strings.
	Env []string `json:"env,omitempty"`
	// PassEnv is the passenv attribute; nil means not set anywhere, an
	// empty non-nil slice means "pass nothing".
	PassEnv []string `json:"passenv"`

	Port     int       `json:"port"`
	Bind     Bind      `json:"bind"`
	V6Only   *bool     `json:"v6only,omitempty"` // nil: not written (dual-stack)
	Redirect *Redirect `json:"redirect,omitempty"`
	// RedirectSource is the local address of the outgoing proxy connection.
	RedirectSource netip.Addr `json:"redirect_source,omitzero"`
	// Backlog is the listen(2) backlog; 0 means the daemon's default.
	Backlog int `json:"backlog,omitempty"`
	// SndBuf and RcvBuf are inetd.conf's ,sndbuf=N,rcvbuf=N (0 = unset).
	SndBuf int `json:"sndbuf,omitempty"`
	RcvBuf int `json:"rcvbuf,omitempty"`
	// UnixPath, UnixOwner, UnixGroup, UnixMode describe a unix-domain
	// service (FreeBSD inetd.conf, or the xinetd.conf attributes of the
	// same names): the socket's path and its file's owner, group, mode.
	UnixPath  string `json:"unix_path,omitempty"`
	UnixOwner *Cred  `json:"unix_owner,omitempty"`
	UnixGroup *Cred  `json:"unix_group,omitempty"`
	UnixMode  uint32 `json:"unix_mode,omitempty"`
	// OnlyUsers and OnlyGroups admit only peers of a unix-domain stream
	// service whose uid, or primary gid, is listed (only_users,
	// only_groups; the peer's credentials come from SO_PEERCRED). Empty
	// means no such restriction.
	OnlyUsers  []Cred `json:"only_users,omitempty"`
	OnlyGroups []Cred `json:"only_groups,omitempty"`

	OnlyFrom    AddrList    `json:"only_from"`
	NoAccess    AddrList    `json:"no_access"`
	AccessTimes []TimeRange `json:"access_times,omitempty"`

	Instances Limit `json:"instances"`
	PerSource Limit `json:"per_source"`
	// PerSourcePrefix4/6 group clients by prefix for per_source (beyond
	// xinetd); 32 and 128 mean one address.
	PerSourcePrefix4 int32       `json:"per_source_prefix4"`
	PerSourcePrefix6 int32       `json:"per_source_prefix6"`
	CPS              CPS         `json:"cps"`
	MaxLoad          float64     `json:"max_load,omitempty"`
	DenyTime         int         `json:"deny_time"` // minutes; DenyNever, DenyForever
	Inetd            InetdLimits `json:"inetd,omitempty"`

	Nice  *int       `json:"nice,omitempty"`
	Umask *uint32    `json:"umask,omitempty"`
	Rlim  RlimitsRef `json:"rlimits"`

	LogType      LogType    `json:"log_type"`
	LogOnSuccess LogSuccess `json:"log_on_success"`
	LogOnFailure LogFailure `json:"log_on_failure"`
	LogFormat    LogFormat  `json:"log_format,omitempty"`

	Banner        string `json:"banner,omitempty"`
	BannerSuccess string `json:"banner_success,omitempty"`
	BannerFail    string `json:"banner_fail,omitempty"`

	Libwrap string `json:"libwrap,omitempty"`

	RPCNumber int `json:"rpc_number,omitempty"`
	RPCLow    int `json:"rpc_version_low,omitempty"`
	RPCHigh   int `json:"rpc_version_high,omitempty"`

	// IdleTimeout bounds how long a stream builtin or a redirect session
	// may sit idle (idle_timeout, seconds; 0 = the daemon's default for
	// builtins, no limit for redirect).
	IdleTimeout int `json:"idle_timeout,omitempty"`
	// MaxBytes caps the bytes one stream builtin connection may move
	// (max_bytes; 0 = the daemon's default).
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// ConnectTimeout bounds the redirect's outgoing connect
	// (connect_timeout, seconds; 0 = the daemon's default).
	ConnectTimeout int `json:"connect_timeout,omitempty"`
	// IdentTimeout bounds RFC 1413 lookups for USERID (ident_timeout,
	// seconds; 0 = the daemon's default).
	IdentTimeout int `json:"ident_timeout,omitempty"`

	// Builtin is the internal service's name (echo, daytime, ..., tcpmux,
	// auth, sensor) for INTERNAL services, lower-case.
	Builtin string `json:"builtin,omitempty"`

	// ProxyProtocol is proxy_protocol: every connection must begin with a
	// PROXY protocol header of one of these versions, and the client it
	// names is the connection's peer from then on. 0 = no header.
	ProxyProtocol ProxyVersions `json:"proxy_protocol,omitempty"`
	// ProxyFrom is proxy_from: the balancers allowed to send that header.
	ProxyFrom AddrList `json:"proxy_from,omitzero"`
	// ProxyTimeout bounds the wait for the header (proxy_timeout,
	// seconds; 0 = DefaultProxyTimeout).
	ProxyTimeout int `json:"proxy_timeout,omitempty"`
	// RedirectProxyProtocol is redirect_proxy_protocol: the header
	// version (1 or 2) a redirect sends its backend first; 0 = none.
	RedirectProxyProtocol int `json:"redirect_proxy_protocol,omitempty"`

	// Sandbox isolates the server from the host (chroot, namespaces,
	// mounts, no_new_privs, seccomp).
	Sandbox Sandbox `json:"sandbox,omitzero"`
	// MaxDuration ends a server that runs longer (max_duration, seconds;
	// 0 = no limit): SIGTERM, then SIGKILL after the daemon's grace.
	MaxDuration int `json:"max_duration,omitempty"`
}

// IsInternal reports whether the daemon answers the service itself.
func (s *Service) IsInternal() bool { return s.Type.Has(TypeInternal) || s.Flags.Has(FlagSensor) }

// IsRedirect reports whether the service is proxied in-process.
func (s *Service) IsRedirect() bool { return s.Redirect != nil }

// IsTCPMuxClient reports whether the service is reached only through tcpmux.
func (s *Service) IsTCPMuxClient() bool { return s.Type.Has(TypeTCPMux | TypeTCPMuxPlus) }

// Network returns the Go network name for the service's socket ("tcp",
// "tcp4", "tcp6", "udp", ...). A dual-stack service gives "tcp"/"udp".
func (s *Service) Network() string {
	base := "tcp"
	if s.SocketType == SockDgram || strings.EqualFold(s.Protocol, "udp") {
		base = "udp"
	}
	switch s.Family {
	case FamilyIPv4:
		return base + "4"
	case FamilyIPv6:
		return base + "6"
	case FamilyUnix:
		if base == "udp" {
			return "unixgram"
		}
		return "unix"
	}
	return base
}

// Defaults is the `defaults` block as finally merged from every file.
// Only the attributes xinetd allows in defaults appear here, plus
// gxinetd's own global settings.
type Defaults struct {
	Src Source `json:"src"`
	// Origins maps each attribute set in defaults to where it was set.
	Origins Origins `json:"origins,omitzero"`

	LogType      LogType    `json:"log_type"`
	LogOnSuccess LogSuccess `json:"log_on_success"`
	LogOnFailure LogFailure `json:"log_on_failure"`
	LogFormat    LogFormat  `json:"log_format,omitempty"`
	OnlyFrom     AddrList   `json:"only_from"`
	NoAccess     AddrList   `json:"no_access"`
	PassEnv      []string   `json:"passenv"`
	Enabled      []string   `json:"enabled,omitempty"`
	Disabled     []string   `json:"disabled,omitempty"`

	Instances        Limit   `json:"instances"`
	PerSource        Limit   `json:"per_source"`
	PerSourcePrefix4 int32   `json:"per_source_prefix4"`
	PerSourcePrefix6 int32   `json:"per_source_prefix6"`
	CPS              CPS     `json:"cps"`
	MaxLoad          float64 `json:"max_load,omitempty"`
	Groups           bool    `json:"groups"`
	Umask            *uint32 `json:"umask,omitempty"`
	V6Only           *bool   `json:"v6only,omitempty"`
	Bind             Bind    `json:"bind"`

	Banner        string `json:"banner,omitempty"`
	BannerSuccess string `json:"banner_success,omitempty"`
	BannerFail    string `json:"banner_fail,omitempty"`

	IdentTimeout int `json:"ident_timeout,omitempty"`
	Backlog      int `json:"backlog,omitempty"`
	// CPM and PerSourceCPM are the cpm and per_source_cpm attributes
	// (service.InetdLimits' PerMinute and PerIPPerMinute); 0 is off.
	CPM          int `json:"cpm,omitempty"`
	PerSourceCPM int `json:"per_source_cpm,omitempty"`

	// Metrics is the address of the optional Prometheus listener
	// (`metrics = 127.0.0.1:9101`); MetricsOnlyFrom restricts its clients.
	Metrics         string   `json:"metrics,omitempty"`
	MetricsOnlyFrom AddrList `json:"metrics_only_from"`

	// ProxyFrom and ProxyTimeout are the defaults' proxy_from and
	// proxy_timeout, which services with proxy_protocol inherit.
	ProxyFrom    AddrList `json:"proxy_from,omitzero"`
	ProxyTimeout int      `json:"proxy_timeout,omitempty"`

	Sandbox     Sandbox `json:"sandbox,omitzero"`
	MaxDuration int     `json:"max_duration,omitempty"`
}

// Config is a whole configuration: the merged defaults, every entry in
// read order (accepted, rejected and disabled alike, so the check mode can
// report on all of them), every message, and the files that were read.
type Config struct {
	Main     string     `json:"main"`
	Files    []string   `json:"files"`
	Defaults Defaults   `json:"defaults"`
	Services []*Service `json:"services"`
	Diags    Diags      `json:"diags"`
}

// Accepted returns the entries that can be served, in read order.
func (c *Config) Accepted() []*Service {
	var out []*Service
	for _, s := range c.Services {
		if s.Status == StatusAccepted {
			out = append(out, s)
		}
	}
	return out
}

// Usable reports whether the configuration can be served at all: no
// fatal diagnostic.
func (c *Config) Usable() bool { return !c.Diags.HasFatal() }

// Lookup returns the accepted service with the given id, compared
// case-insensitively as xinetd does.
func (c *Config) Lookup(id string) *Service {
	for _, s := range c.Services {
		if s.Status == StatusAccepted && strings.EqualFold(s.ID, id) {
			return s
		}
	}
	return nil
}

// Builtins lists the internal services gxinetd answers itself, with the
// socket types each supports. It is data, shared by the parser ("No such
// internal service") and the daemon (which handler to run).
var Builtins = map[string][]SocketType{
	"echo":    {SockStream, SockDgram},
	"discard": {SockStream, SockDgram},
	"daytime": {SockStream, SockDgram},
	"time":    {SockStream, SockDgram},
	"chargen": {SockStream, SockDgram},
	"tcpmux":  {SockStream},
	"auth":    {SockStream},
	"sensor":  {SockStream, SockDgram},
}

// HasBuiltin reports whether name (case-insensitive) is a builtin for socket type st.
func HasBuiltin(name string, st SocketType) bool {
	for _, t := range Builtins[strings.ToLower(name)] {
		if t == st {
			return true
		}
	}
	return false
}
