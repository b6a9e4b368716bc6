package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/daemon"
)

func TestSplitClusteredBSDSwitches(t *testing.T) {
	known := map[string]bool{"cc": true, "stayalive": true, "pidfile": true, "dontfork": true, "d": true,
		"syslog": true, "f": true, "C": true, "R": true, "p": true}
	cases := []struct{ in, want []string }{
		{[]string{"-wW", "-C", "60", "-dl", "-dontfork", "-f", "x"}, []string{"-w", "-W", "-C", "60", "-d", "-l", "-dontfork", "-f", "x"}},
		{[]string{"-R0", "-c5", "-s2"}, []string{"-R", "0", "-c", "5", "-s", "2"}},
		{[]string{"-wWC60"}, []string{"-w", "-W", "-C", "60"}},
		{[]string{"-wWC", "60"}, []string{"-w", "-W", "-C", "60"}},
		{[]string{"-a127.0.0.1", "-p/run/inetd.pid"}, []string{"-a", "127.0.0.1", "-p", "/run/inetd.pid"}},
		// Our own long flags are never split.
		{[]string{"-cc", "5", "-stayalive", "-pidfile", "p", "-syslog", "daemon", "--pidfile=q"}, []string{"-cc", "5", "-stayalive", "-pidfile", "p", "-syslog", "daemon", "--pidfile=q"}},
		{[]string{"--", "-R0"}, []string{"--", "-R0"}},
	}
	for _, c := range cases {
		if got := splitClustered(c.in, func(n string) bool { return known[n] }); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRateZeroMeansNoLimit(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "inetd.conf")
	os.WriteFile(conf, []byte("10999\tstream\ttcp\tnowait\troot\t/bin/echo\techo x\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, `"per_minute": 256`},
		{[]string{"-R", "0"}, `"origin": "flag"`},
		{[]string{"-R7"}, `"per_minute": 7`},
	} {
		var out, errb bytes.Buffer
		run(append([]string{"-t", "-json", "-dialect", "freebsd", "-inetd", conf}, c.args...), &out, &errb)
		if !strings.Contains(out.String(), c.want) {
			t.Errorf("%v: want %s in\n%s%s", c.args, c.want, out.String(), errb.String())
		}
		if len(c.args) > 0 && c.args[0] == "-R" && regexp.MustCompile(`"per_minute": \d`).MatchString(out.String()) {
			t.Errorf("-R 0 still sets a per-minute limit:\n%s", out.String())
		}
	}
}

func TestCommandLineErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"-limit"}, "flag needs an argument"},
		{[]string{"-limit", "x"}, "invalid value"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-filelog", "a", "-syslog", "daemon"}, "cannot be used together"},
		{[]string{"-dialect", "sunos"}, "unknown dialect"},
		{[]string{"-c", "-1"}, "must not be negative"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if st := run(c.args, &out, &errb); st != 1 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: status %d, stderr %q; want 1 and %q", c.args, st, errb.String(), c.want)
		}
	}
}

func TestVersionAndCheck(t *testing.T) {
	var out, errb bytes.Buffer
	if st := run([]string{"-version"}, &out, &errb); st != 0 || !strings.Contains(errb.String(), "libwrap loadavg") {
		t.Errorf("-version: %d %q", st, errb.String())
	}
	conf := filepath.Join(t.TempDir(), "x.conf")
	os.WriteFile(conf, []byte("service echo\n{\n\ttype = INTERNAL UNLISTED\n\tid = e\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = 10007\n\twait = no\n}\n"), 0o644)
	out.Reset()
	if st := run([]string{"-t", "-f", conf}, &out, &errb); st != 0 || !strings.Contains(out.String(), "configuration OK") {
		t.Errorf("-t: %d %q", st, out.String())
	}
	// The deprecated option still needs its value and says it is deprecated.
	errb.Reset()
	if st := run([]string{"-shutdownprocs", "3", "-t", "-f", conf}, &out, &errb); st != 0 || !strings.Contains(errb.String(), "deprecated") {
		t.Errorf("-shutdownprocs: %d %q", st, errb.String())
	}
}

// TestHelpListsEveryFlag: -h (and -help) print every flag the command
// line accepts, each on exactly one line.
func TestHelpListsEveryFlag(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var out, errb bytes.Buffer
		if st := run([]string{arg}, &out, &errb); st != 0 {
			t.Fatalf("%s: status %d %s", arg, st, errb.String())
		}
		fs := newFlags(&daemon.Options{}, &cmdline{})
		n := 0
		fs.VisitAll(func(f *flag.Flag) {
			n++
			re := regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(f.Name) + `( \S+)? +\S.*$`)
			if got := re.FindAllString(out.String(), -1); len(got) != 1 {
				t.Errorf("%s: -%s appears on %d lines, want 1:\n%s", arg, f.Name, len(got), out.String())
			}
		})
		if got := strings.Count(out.String(), "\n  -"); got != n {
			t.Errorf("%s: %d flag lines for %d flags", arg, got, n)
		}
	}
}

// TestDistributionOptions: what Debian's and Red Hat's xinetd packages
// pass is accepted: -inetd_ipv6 (a no-op, with a notice), -stayalive,
// -pidfile, -reuse, and -inetd_compat=${INETD_COMPAT} from a unit with
// the words of /etc/default/xinetd.
func TestDistributionOptions(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "x.conf")
	os.WriteFile(conf, []byte("service echo\n{\n\ttype = INTERNAL UNLISTED\n\tid = e\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = 10007\n\twait = no\n}\n"), 0o644)
	for _, c := range []struct {
		args   []string
		compat bool
	}{
		{[]string{"-stayalive", "-pidfile", "/run/xinetd.pid", "-inetd_compat", "-inetd_ipv6"}, true},
		{[]string{"-stayalive", "-reuse", "-inetd_compat=Yes"}, true},
		{[]string{"-inetd_compat=yes"}, true},
		{[]string{"-inetd_compat=No"}, false},
		{[]string{"-inetd_compat="}, false},
		{[]string{"-inetd_compat=true"}, true},
	} {
		var out, errb bytes.Buffer
		st := run(append([]string{"-t", "-json", "-f", conf, "-inetd_compat_file", "/nonexistent"}, c.args...), &out, &errb)
		if st != 0 {
			t.Errorf("%v: status %d: %s", c.args, st, errb.String())
		}
		o := &daemon.Options{}
		fs := newFlags(o, &cmdline{})
		fs.Lookup("inetd_compat").Value = yesNoFlag{&o.InetdCompat}
		if err := fs.Parse(c.args); err != nil || o.InetdCompat != c.compat {
			t.Errorf("%v: inetd_compat %v (%v), want %v", c.args, o.InetdCompat, err, c.compat)
		}
	}
	var out, errb bytes.Buffer
	if st := run([]string{"-t", "-f", conf, "-inetd_compat=maybe"}, &out, &errb); st != 1 || !strings.Contains(errb.String(), "want yes, no") {
		t.Errorf("-inetd_compat=maybe: %d %q", st, errb.String())
	}
}

// TestCheckFatalOnly: -t fails for one rejected entry; -t -fatal-only,
// the unit's start gate, fails only when the daemon could not start.
func TestCheckFatalOnly(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "x.conf")
	os.WriteFile(conf, []byte("service echo\n{\n\ttype = INTERNAL UNLISTED\n\tid = e\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = 10007\n\twait = no\n}\n"+
		"service bad\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = 10008\n\twait = no\n\tserver = /no/such/server\n}\n"), 0o644)
	var out, errb bytes.Buffer
	if st := run([]string{"-t", "-f", conf}, &out, &errb); st != 1 {
		t.Errorf("-t with a rejected entry: status %d, want 1", st)
	}
	out.Reset()
	if st := run([]string{"-t", "-fatal-only", "-f", conf}, &out, &errb); st != 0 || !strings.Contains(out.String(), "/no/such/server") || !strings.Contains(out.String(), "configuration has errors") {
		t.Errorf("-t -fatal-only: status %d, want 0 with the error still shown:\n%s", st, out.String())
	}
	if st := run([]string{"-t", "-fatal-only", "-f", filepath.Join(dir, "missing.conf")}, &out, &errb); st != 1 {
		t.Errorf("-t -fatal-only on a missing file: status %d, want 1", st)
	}
}

func TestLogStderrConflicts(t *testing.T) {
	for _, args := range [][]string{{"-log-stderr", "-syslog", "daemon"}, {"-log-stderr", "-filelog", "/tmp/x"}} {
		var out, errb bytes.Buffer
		if st := run(args, &out, &errb); st != 1 || !strings.Contains(errb.String(), "cannot be used together") {
			t.Errorf("%v: %d %q", args, st, errb.String())
		}
	}
}
