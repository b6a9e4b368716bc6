package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSplitClusteredBSDSwitches(t *testing.T) {
	got := splitClustered([]string{"-wW", "-C", "60", "-dl", "-dontfork", "-f", "x"})
	want := []string{"-w", "-W", "-C", "60", "-d", "-l", "-dontfork", "-f", "x"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
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
