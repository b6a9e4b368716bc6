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
	"strings"
	"syscall"
	"time"

	"github.com/gxinetd/gxinetd/internal/daemon"
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

const usage = `Usage: gxinetd [-d] [-f config_file] [-filelog filename] [-syslog facility] [-reuse] [-limit proc_limit] [-pidfile filename] [-logprocs limit] [-cc interval]
       gxinetd -t [-json] [-d] [-f config_file | -inetd file]
       gxinetd -inetd file [-dialect freebsd|openbsd|netbsd|linux] [-l] [-w] [-W] [-c N] [-C N] [-R N] [-s N] [-a addr] [-p pidfile]
       gxinetd -dump [-pidfile filename] [-dumpfile filename]
       gxinetd -version
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

func run(args []string, stdout, stderr io.Writer) int {
	o := &daemon.Options{}
	fs := flag.NewFlagSet("gxinetd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		check, asJSON, version, dump, reuse bool
		shutdownProcs                       string
		pidP                                string
	)
	fs.StringVar(&o.ConfigFile, "f", "", "configuration file (default /etc/xinetd.conf)")
	fs.BoolVar(&o.Debug, "d", false, "debug: foreground, messages and configuration dump on stderr")
	fs.BoolVar(&o.DontFork, "dontfork", false, "stay in the foreground (implies -stayalive)")
	fs.BoolVar(&o.StayAlive, "stayalive", false, "keep running with zero services")
	fs.StringVar(&o.PidFile, "pidfile", "", "write the daemon's pid to this file")
	fs.StringVar(&pidP, "p", "", "FreeBSD inetd: pidfile")
	fs.StringVar(&o.Syslog, "syslog", "", "daemon messages to syslog with this facility")
	fs.StringVar(&o.FileLog, "filelog", "", "daemon messages to this file")
	fs.StringVar(&o.LogIdent, "syslog-ident", "gxinetd", "syslog identity (use xinetd for filters that expect it)")
	fs.StringVar(&o.SyslogPath, "syslog-socket", "", "syslog socket (default /dev/log)")
	fs.IntVar(&o.Limit, "limit", 0, "maximum number of servers running at once, all services")
	fs.IntVar(&o.LogProcs, "logprocs", 0, "accepted for xinetd compatibility")
	fs.StringVar(&shutdownProcs, "shutdownprocs", "", "deprecated")
	fs.BoolVar(&reuse, "reuse", false, "accepted for xinetd compatibility (SO_REUSEADDR is always set)")
	fs.BoolVar(&o.InetdCompat, "inetd_compat", false, "also read /etc/inetd.conf")
	fs.StringVar(&o.InetdCompatFile, "inetd_compat_file", "", "the inetd.conf -inetd_compat reads")
	fs.IntVar(&o.CC, "cc", 0, "run the consistency check every N seconds")
	fs.BoolVar(&version, "version", false, "print the version")
	fs.BoolVar(&check, "t", false, "check the configuration and exit")
	fs.BoolVar(&asJSON, "json", false, "with -t: print the resolved configuration as JSON")
	fs.StringVar(&o.DumpFile, "dumpfile", "", "state dump file (default /var/run/xinetd.dump)")
	fs.BoolVar(&dump, "dump", false, "ask the running daemon (by its pidfile) for a state dump and print it")
	fs.BoolVar(&o.KillServers, "killservers", false, "on SIGTERM also terminate external servers")
	fs.BoolVar(&o.NoLibwrap, "nolibwrap", false, "never consult hosts.allow/hosts.deny")
	fs.StringVar(&o.HostsAllow, "hosts-allow", "", "hosts.allow path (default /etc/hosts.allow)")
	fs.StringVar(&o.HostsDeny, "hosts-deny", "", "hosts.deny path (default /etc/hosts.deny)")
	fs.StringVar(&o.InetdFile, "inetd", "", "run this inetd.conf")
	fs.StringVar(&o.Dialect, "dialect", "", "inetd.conf dialect: freebsd, openbsd, netbsd or linux")
	fs.IntVar(&o.Backlog, "backlog", 0, "listen backlog (default 1024)")
	fs.DurationVar(&o.Grace, "grace", 5*time.Second, "time between SIGTERM and SIGKILL for servers being stopped")
	fs.StringVar(&o.SysRoot, "sysroot", "", "read /etc databases under this directory (testing)")
	// FreeBSD inetd's switches.
	fs.BoolVar(&o.LogConnections, "l", false, "FreeBSD inetd: log every connection")
	fs.BoolVar(&o.WrapExternal, "w", false, "FreeBSD inetd: tcp_wrappers for external services")
	fs.BoolVar(&o.WrapInternal, "W", false, "FreeBSD inetd: tcp_wrappers for internal services")
	fs.IntVar(&o.MaxChild, "c", 0, "FreeBSD inetd: default max children per service")
	fs.IntVar(&o.PerIPPerMinute, "C", 0, "FreeBSD inetd: default connections per IP per minute")
	fs.IntVar(&o.PerMinute, "R", 0, "FreeBSD inetd: default invocations per minute (256; 0 = no limit)")
	fs.IntVar(&o.MaxChildPerIP, "s", 0, "FreeBSD inetd: default max children per IP")
	fs.StringVar(&o.BindAddr, "a", "", "FreeBSD inetd: bind inetd.conf services to this address")

	known := func(name string) bool { return fs.Lookup(name) != nil }
	if err := fs.Parse(splitClustered(args, known)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "gxinetd: %v\n%s", err, usage)
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gxinetd: unexpected argument %q\n%s", fs.Arg(0), usage)
		return 1
	}
	if o.FileLog != "" && o.Syslog != "" {
		fmt.Fprintf(stderr, "gxinetd: -filelog and -syslog cannot be used together\n%s", usage)
		return 1
	}
	if shutdownProcs != "" {
		fmt.Fprintln(stderr, "The shutdownprocs option has been deprecated.")
	}
	if pidP != "" && o.PidFile == "" {
		o.PidFile = pidP
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
	if version {
		fmt.Fprintf(stderr, "%s libwrap loadavg\n", daemon.Version)
		return 0
	}
	o.CheckOwnership = os.Geteuid() == 0
	if check {
		return daemon.Check(o, stdout, stderr, asJSON)
	}
	if dump {
		return requestDump(o, stdout, stderr)
	}
	if fd := daemon.DetachedReadyFD(); fd > 0 {
		o.Foreground, o.ReadyFD = true, fd
	}
	return daemon.Run(o)
}

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
