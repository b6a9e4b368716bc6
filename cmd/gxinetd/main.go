// Command gxinetd is the extended Internet super-server: a drop-in
// successor to xinetd that also runs inetd.conf files. This file only
// turns the command line into daemon.Options; internal/daemon does the work.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gxinetd/gxinetd/internal/daemon"
	"github.com/gxinetd/gxinetd/internal/sysdb"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/spawn"
)

func main() {
	// The exec helper (umask, nice, rlimits before exec) is this same
	// binary; it must take over before anything else runs.
	if spawn.HelperMain() {
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `Usage: gxinetd [-d] [-f config_file] [-filelog filename | -syslog facility | -log-stderr] [-reuse] [-limit proc_limit] [-pidfile filename] [-logprocs limit] [-cc interval]
       gxinetd -t [-json] [-fatal-only] [-d] [-f config_file | -inetd file]
       gxinetd -inetd file [-dialect freebsd|openbsd|netbsd|linux] [-l] [-w] [-W] [-c N] [-C N] [-R N] [-s N] [-a addr] [-p pidfile]
       gxinetd -dump [-pidfile filename] [-dumpfile filename]
       gxinetd -upgrade [-pidfile filename] [-drain duration]
       gxinetd -version | -h
`

// bsdCombined matches FreeBSD-style clustered switches such as -wW or -dl.
var bsdCombined = regexp.MustCompile(`^-[dlwW]{2,}$`)

// bsdValue matches what FreeBSD's getopt also accepts: switches followed
// by one option that takes a value, the value attached or not (-R0,
// -wWC60, -a127.0.0.1, -p/var/run/inetd.pid, -wWC).
var bsdValue = regexp.MustCompile(`^-([dlwW]*)([RacCps])(.*)$`)

// splitClustered rewrites FreeBSD inetd's getopt forms into separate
// flags. A word that names one of our own flags (-cc, -stayalive,
// -pidfile, -dontfork ...) is never split: the long names win.
func splitClustered(args []string, known func(string) bool) []string {
	var out []string
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		name := strings.TrimLeft(a, "-")
		if j := strings.IndexByte(name, '='); j >= 0 {
			name = name[:j]
		}
		switch {
		case known != nil && known(name):
			out = append(out, a)
		case bsdCombined.MatchString(a):
			for _, c := range a[1:] {
				out = append(out, "-"+string(c))
			}
		case bsdValue.MatchString(a):
			m := bsdValue.FindStringSubmatch(a)
			for _, c := range m[1] {
				out = append(out, "-"+string(c))
			}
			out = append(out, "-"+m[2])
			if m[3] != "" {
				out = append(out, m[3])
			}
		default:
			out = append(out, a)
		}
	}
	return out
}

// cmdline is what the command line sets besides daemon.Options.
type cmdline struct {
	check, asJSON, fatalOnly, version, dump, reuse, logStderr, inetdIPv6 bool
	upgrade                                                              bool
	drain                                                                time.Duration
	shutdownProcs, pidP                                                  string
}

// flagGroups orders -h: xinetd's own options first, then gxinetd's, then
// FreeBSD inetd's. A flag missing here is listed last, so -h can never
// leave one out.
var flagGroups = []struct {
	title string
	names []string
}{
	{"xinetd options", []string{"d", "f", "filelog", "syslog", "pidfile", "dontfork", "stayalive", "limit", "cc",
		"inetd_compat", "inetd_ipv6", "reuse", "logprocs", "shutdownprocs", "version"}},
	{"gxinetd options", []string{"t", "json", "fatal-only", "dump", "dumpfile", "upgrade", "drain", "log-stderr", "syslog-ident",
		"syslog-socket", "inetd_compat_file", "killservers", "grace", "nolibwrap", "hosts-allow", "hosts-deny",
		"backlog", "sysroot", "inetd", "dialect", "h"}},
	{"FreeBSD inetd options (with -inetd)", []string{"l", "w", "W", "c", "C", "R", "s", "a", "p"}},
}

// newFlags defines every flag on a fresh FlagSet.
func newFlags(o *daemon.Options, c *cmdline) *flag.FlagSet {
	fs := flag.NewFlagSet("gxinetd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.ConfigFile, "f", "", "configuration `file` (default /etc/xinetd.conf)")
	fs.BoolVar(&o.Debug, "d", false, "debug: foreground, messages and configuration dump on stderr; SIGINT stops")
	fs.BoolVar(&o.DontFork, "dontfork", false, "stay in the foreground (implies -stayalive); SIGINT stops")
	fs.BoolVar(&o.StayAlive, "stayalive", false, "keep running with zero services")
	fs.StringVar(&o.PidFile, "pidfile", "", "write the daemon's pid to this `file`")
	fs.StringVar(&c.pidP, "p", "", "FreeBSD inetd: pidfile `file`")
	fs.StringVar(&o.Syslog, "syslog", "", "daemon messages to syslog with this `facility` (default daemon)")
	fs.StringVar(&o.FileLog, "filelog", "", "daemon messages to this `file`")
	fs.BoolVar(&c.logStderr, "log-stderr", false, "daemon messages to standard error (containers; same as -filelog /dev/stderr)")
	fs.StringVar(&o.LogIdent, "syslog-ident", logging.DefaultIdent, "syslog identity `name` of every line (xinetd's, which fail2ban filters expect)")
	fs.StringVar(&o.SyslogPath, "syslog-socket", "", "syslog socket `path` (default /dev/log)")
	fs.IntVar(&o.Limit, "limit", 0, "at most `n` servers running at once, all services")
	fs.IntVar(&o.LogProcs, "logprocs", 0, "accepted for xinetd compatibility (xinetd never checks `n`)")
	fs.StringVar(&c.shutdownProcs, "shutdownprocs", "", "deprecated in xinetd: `n` is accepted with a message")
	fs.BoolVar(&c.reuse, "reuse", false, "accepted for xinetd compatibility (SO_REUSEADDR is always set)")
	fs.BoolVar(&o.InetdCompat, "inetd_compat", false, "also read /etc/inetd.conf (also -inetd_compat=yes|no, as /etc/default/xinetd's INETD_COMPAT)")
	fs.BoolVar(&c.inetdIPv6, "inetd_ipv6", false, "Debian's xinetd option: accepted; inetd.conf tcp/udp entries already take IPv6")
	fs.StringVar(&o.InetdCompatFile, "inetd_compat_file", "", "the inetd.conf `file` -inetd_compat reads")
	fs.IntVar(&o.CC, "cc", 0, "run the consistency check every `seconds`")
	fs.BoolVar(&c.version, "version", false, "print the version")
	fs.BoolVar(&c.check, "t", false, "check the configuration and exit (1 if any entry has an error)")
	fs.BoolVar(&c.asJSON, "json", false, "with -t: print the resolved configuration as JSON")
	fs.BoolVar(&c.fatalOnly, "fatal-only", false, "with -t: exit 1 only when the daemon could not start at all")
	fs.StringVar(&o.DumpFile, "dumpfile", "", "state dump `file` (default /var/run/xinetd.dump)")
	fs.BoolVar(&c.dump, "dump", false, "ask the running daemon (by its pidfile) for a state dump and print it")
	fs.BoolVar(&c.upgrade, "upgrade", false, "replace the running daemon (by its pidfile) with a fresh copy of its binary, keeping every listening socket")
	fs.DurationVar(&c.drain, "drain", 30*time.Second, "with -upgrade: `time` the old daemon lets its builtin and redirect sessions finish (30s)")
	fs.BoolVar(&o.KillServers, "killservers", false, "on SIGTERM also terminate external servers")
	fs.BoolVar(&o.NoLibwrap, "nolibwrap", false, "never consult hosts.allow/hosts.deny")
	fs.StringVar(&o.HostsAllow, "hosts-allow", "", "hosts.allow `path` (default /etc/hosts.allow)")
	fs.StringVar(&o.HostsDeny, "hosts-deny", "", "hosts.deny `path` (default /etc/hosts.deny)")
	fs.StringVar(&o.InetdFile, "inetd", "", "run this inetd.conf `file`")
	fs.StringVar(&o.Dialect, "dialect", "", "inetd.conf dialect `name`: freebsd, openbsd, netbsd or linux (default)")
	fs.IntVar(&o.Backlog, "backlog", 0, "listen backlog `n` (default 1024)")
	fs.DurationVar(&o.Grace, "grace", 5*time.Second, "`time` between SIGTERM and SIGKILL for servers being stopped (5s)")
	fs.StringVar(&o.SysRoot, "sysroot", "", "read /etc databases as files under this `dir` (testing)")
	fs.Bool("h", false, "print this help")
	// FreeBSD inetd's switches.
	fs.BoolVar(&o.LogConnections, "l", false, "FreeBSD inetd: log every connection")
	fs.BoolVar(&o.WrapExternal, "w", false, "FreeBSD inetd: tcp_wrappers for external services")
	fs.BoolVar(&o.WrapInternal, "W", false, "FreeBSD inetd: tcp_wrappers for internal services")
	fs.IntVar(&o.MaxChild, "c", 0, "FreeBSD inetd: default max children `n` per service")
	fs.IntVar(&o.PerIPPerMinute, "C", 0, "FreeBSD inetd: default connections `n` per IP per minute")
	fs.IntVar(&o.PerMinute, "R", 0, "FreeBSD inetd: default invocations `n` per minute (256; 0 = no limit)")
	fs.IntVar(&o.MaxChildPerIP, "s", 0, "FreeBSD inetd: default max children `n` per IP")
	fs.StringVar(&o.BindAddr, "a", "", "FreeBSD inetd: bind inetd.conf services to this `addr`")
	return fs
}

// yesNoFlag is a boolean flag that also takes the words of shell
// configuration files (yes, no, Yes, y ...) and an empty value (false),
// so a unit can pass -inetd_compat=${INETD_COMPAT} from /etc/default/xinetd
// whether or not the variable is set.
type yesNoFlag struct{ v *bool }

func (f yesNoFlag) IsBoolFlag() bool { return true }
func (f yesNoFlag) String() string {
	if f.v == nil {
		return "false"
	}
	return strconv.FormatBool(*f.v)
}
func (f yesNoFlag) Set(s string) error {
	// Debian's init script tests INETD_COMPAT with the pattern [Yy]*.
	switch l := strings.ToLower(s); {
	case l == "", l == "off", strings.HasPrefix(l, "n"):
		*f.v = false
		return nil
	case l == "on", strings.HasPrefix(l, "y"):
		*f.v = true
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want yes, no, true or false")
	}
	*f.v = b
	return nil
}

// writeHelp prints every flag on one line, grouped.
func writeHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usage)
	listed := map[string]bool{}
	line := func(f *flag.Flag) {
		name, text := flag.UnquoteUsage(f)
		left := "-" + f.Name
		if name != "" {
			left += " " + name
		}
		fmt.Fprintf(w, "  %-26s %s\n", left, text)
		listed[f.Name] = true
	}
	for _, g := range flagGroups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, n := range g.names {
			if f := fs.Lookup(n); f != nil {
				line(f)
			}
		}
	}
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if listed[f.Name] {
			return
		}
		if first {
			fmt.Fprint(w, "\nother options:\n")
			first = false
		}
		line(f)
	})
	if !nssBuild {
		fmt.Fprint(w, "\nThis gxinetd was built without cgo: users and groups come from /etc/passwd and /etc/group only.\n")
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	o := &daemon.Options{}
	c := &cmdline{}
	fs := newFlags(o, c)
	// -inetd_compat also takes yes/no (see yesNoFlag).
	fs.Lookup("inetd_compat").Value = yesNoFlag{&o.InetdCompat}
	known := func(name string) bool { return fs.Lookup(name) != nil }
	if err := fs.Parse(splitClustered(args, known)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeHelp(stdout, fs)
			return 0
		}
		fmt.Fprintf(stderr, "gxinetd: %v\n%s", err, usage)
		return 1
	}
	if fs.Lookup("h").Value.String() == "true" {
		writeHelp(stdout, fs)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gxinetd: unexpected argument %q\n%s", fs.Arg(0), usage)
		return 1
	}
	if c.logStderr {
		if o.FileLog != "" && !isStderr(o.FileLog) {
			fmt.Fprintf(stderr, "gxinetd: -log-stderr and -filelog cannot be used together\n%s", usage)
			return 1
		}
		o.FileLog = "/dev/stderr"
	}
	if o.FileLog != "" && o.Syslog != "" {
		fmt.Fprintf(stderr, "gxinetd: -%s and -syslog cannot be used together\n%s", map[bool]string{true: "log-stderr", false: "filelog"}[c.logStderr], usage)
		return 1
	}
	if c.shutdownProcs != "" {
		fmt.Fprintln(stderr, "The shutdownprocs option has been deprecated.")
	}
	if c.inetdIPv6 && !c.check && !c.version && !c.dump {
		// Debian's init script passes it whenever the machine has IPv6.
		fmt.Fprintln(stderr, "gxinetd: -inetd_ipv6 changes nothing: inetd.conf tcp and udp entries already accept IPv6 as well as IPv4")
	}
	if c.pidP != "" && o.PidFile == "" {
		o.PidFile = c.pidP
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"limit", o.Limit}, {"cc", o.CC}, {"c", o.MaxChild}, {"C", o.PerIPPerMinute}, {"R", o.PerMinute}, {"s", o.MaxChildPerIP}, {"backlog", o.Backlog}} {
		if v.n < 0 {
			fmt.Fprintf(stderr, "gxinetd: -%s must not be negative\n%s", v.name, usage)
			return 1
		}
	}
	// FreeBSD's -R 0 lifts the rate limit; an absent -R keeps the
	// dialect's default, so the two must not look alike.
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "R" && o.PerMinute == 0 {
			o.PerMinute = -1
		}
	})
	switch o.Dialect {
	case "", "freebsd", "openbsd", "netbsd", "linux":
	default:
		fmt.Fprintf(stderr, "gxinetd: unknown dialect %q (want freebsd, openbsd, netbsd or linux)\n", o.Dialect)
		return 1
	}
	if o.DontFork {
		o.StayAlive = true
	}
	if c.version {
		fmt.Fprintf(stderr, "%s libwrap loadavg\n", daemon.Version)
		if !nssBuild {
			fmt.Fprintln(stderr, "built without cgo: users and groups come from /etc/passwd and /etc/group only, not from NSS (LDAP, SSSD, extrausers)")
		}
		return 0
	}
	o.CheckOwnership = os.Geteuid() == 0
	if c.check {
		o.CheckFatalOnly = c.fatalOnly
		return daemon.Check(o, stdout, stderr, c.asJSON)
	}
	if c.dump {
		return requestDump(o, stdout, stderr)
	}
	if c.upgrade {
		return daemon.RequestUpgrade(o.PidFile, c.drain, stdout, stderr)
	}
	if fd := daemon.DetachedReadyFD(); fd > 0 {
		o.Foreground, o.ReadyFD = true, fd
	}
	if fd, detached := daemon.HandoverFromEnv(); fd > 0 {
		// Started by a running daemon for -upgrade: that one has
		// detached already (or runs in the foreground), so this one
		// stays where it is started.
		o.Foreground, o.HandoverFD, o.HandoverDetached = true, fd, detached
	}
	return daemon.Run(o)
}

// nssBuild: users and groups are resolved through the C library's NSS
// (cgo); without cgo gxinetd reads the files alone.
var nssBuild = sysdb.NSS

func isStderr(p string) bool { return p == "-" || p == "/dev/stderr" }

// requestDump signals the daemon named by the pidfile and prints the dump
// it appends, waiting a bounded time for it.
func requestDump(o *daemon.Options, stdout, stderr io.Writer) int {
	pidfile := o.PidFile
	if pidfile == "" {
		pidfile = "/run/gxinetd.pid"
	}
	pid, err := daemon.ReadPidFile(pidfile)
	if err != nil {
		fmt.Fprintf(stderr, "gxinetd: -dump: %v\n", err)
		return 1
	}
	path := o.DumpFile
	if path == "" {
		path = daemon.DefaultDumpFile
	}
	// Read the file the daemon writes, which its own command line says.
	if own, err := daemon.DumpFileOf(pid); err == nil {
		if abs, _ := filepath.Abs(path); o.DumpFile != "" && abs != own {
			fmt.Fprintf(stderr, "gxinetd: -dump: the daemon (pid %d) appends its dumps to %s, not %s: reading %s\n", pid, own, path, own)
		}
		path = own
	}
	var start int64
	if fi, err := os.Stat(path); err == nil {
		start = fi.Size()
	}
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		fmt.Fprintf(stderr, "gxinetd: -dump: signalling pid %d: %v\n", pid, err)
		return 1
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if err == nil && int64(len(b)) > start {
			part := string(b[start:])
			if strings.Contains(part, "END OF DUMP") {
				fmt.Fprint(stdout, part)
				return 0
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(stderr, "gxinetd: -dump: no dump appeared in %s within 10s\n", path)
	return 1
}
