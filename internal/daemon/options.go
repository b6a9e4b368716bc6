package daemon

import "time"

// Version is set at build time (-ldflags -X).
var Version = "2.3.15-gxinetd-dev"

// Options is everything the command line can say. The zero value is not
// useful; cmd/gxinetd fills it from flags.
type Options struct {
	ConfigFile string // -f; default /etc/xinetd.conf
	// InetdFile runs an inetd.conf alone (-inetd FILE, or -f FILE when
	// the file is recognisably inetd.conf).
	InetdFile string
	// InetdCompat also reads InetdCompatFile after the xinetd configuration.
	InetdCompat     bool
	InetdCompatFile string // default /etc/inetd.conf
	Dialect         string // inetd.conf dialect

	Debug       bool // -d: foreground, debug messages and config dump on stderr
	DontFork    bool // -dontfork
	StayAlive   bool // -stayalive
	PidFile     string
	Syslog      string // -syslog FACILITY
	FileLog     string // -filelog FILE
	LogIdent    string // syslog identity; "" is logging.DefaultIdent ("xinetd")
	SyslogPath  string // where /dev/log is (tests)
	DumpFile    string // -dumpfile; default /var/run/xinetd.dump
	Limit       int    // -limit N
	LogProcs    int    // -logprocs N (accepted; see docs)
	CC          int    // -cc N seconds
	KillServers bool   // -killservers: SIGTERM also ends external servers
	NoLibwrap   bool   // -nolibwrap
	HostsAllow  string
	HostsDeny   string
	Backlog     int // listen backlog default

	// FreeBSD inetd limits (-c -C -R -s -a) and switches (-l -w -W).
	// PerMinute < 0 is FreeBSD's -R 0: no rate limit at all.
	MaxChild       int
	PerIPPerMinute int
	PerMinute      int
	MaxChildPerIP  int
	BindAddr       string
	LogConnections bool // -l
	WrapExternal   bool // -w
	WrapInternal   bool // -W

	// Grace is how long a server gets between SIGTERM and SIGKILL.
	Grace time.Duration

	// Foreground is set by the daemonising parent for the detached child.
	Foreground bool
	// ReadyFD, when >0, is a pipe the detached child closes once serving.
	ReadyFD int
	// HandoverFD, when >0, is the channel from the daemon that started
	// this one for -upgrade (handover.go); HandoverDetached says that one
	// had detached, as this one then has.
	HandoverFD       int
	HandoverDetached bool

	// SysRoot points every /etc lookup elsewhere (tests).
	SysRoot string
	// CheckOwnership refuses files writable by non-root (set when root).
	CheckOwnership bool
	// CheckFatalOnly makes Check fail only for what stops the daemon from
	// starting (an unreadable or fatal configuration), not for one
	// rejected entry: the start gate of a unit (-t -fatal-only).
	CheckFatalOnly bool
}
