package daemon

import (
	"os"
	"testing"
)

func TestFlagValue(t *testing.T) {
	cases := []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"gxinetd", "-dumpfile", "/x"}, "/x", true},
		{[]string{"gxinetd", "--dumpfile=/y"}, "/y", true},
		{[]string{"gxinetd", "-dumpfile=/a", "-f", "c", "-dumpfile", "b"}, "b", true},
		{[]string{"gxinetd", "-f", "-dumpfile"}, "", false},
		{[]string{"gxinetd", "--", "-dumpfile", "/z"}, "", false},
		{[]string{"gxinetd", "-dumpfiles", "/z"}, "", false},
	}
	for _, c := range cases {
		if got, ok := flagValue(c.args, "dumpfile"); got != c.want || ok != c.ok {
			t.Errorf("%q: %q %v, want %q %v", c.args, got, ok, c.want, c.ok)
		}
	}
}

// TestDumpFileOfSelf: a process without -dumpfile writes to the default.
func TestDumpFileOfSelf(t *testing.T) {
	if got, err := DumpFileOf(os.Getpid()); err != nil || got != DefaultDumpFile {
		t.Errorf("DumpFileOf(self) = %q, %v", got, err)
	}
}
