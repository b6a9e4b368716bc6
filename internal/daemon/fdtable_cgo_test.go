//go:build cgo && linux

package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEarlyConfPath: the process start-up finds the configuration file
// in the command line as the flag package does (-f, --f, -f=, -inetd),
// and stops at "--".
func TestEarlyConfPath(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"gxinetd", "/etc/xinetd.conf"},
		{"gxinetd -f /x.conf -dontfork", "/x.conf"},
		{"gxinetd -d --f /y.conf", "/y.conf"},
		{"gxinetd -f=/z.conf", "/z.conf"},
		{"gxinetd --inetd=/i.conf", "/i.conf"},
		{"gxinetd -inetd /j.conf -l", "/j.conf"},
		{"gxinetd -pidfile /run/p -f /a -f /b", "/b"},
		{"gxinetd -- -f /not", "/etc/xinetd.conf"},
		{"gxinetd -f", "/etc/xinetd.conf"},
	} {
		cmdline := []byte(strings.ReplaceAll(tc.args, " ", "\x00") + "\x00")
		if got := earlyConfPath(cmdline); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestEarlyGrowFor: a large file grows the table to a slot per 100
// bytes; a small one leaves it alone.
func TestEarlyGrowFor(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.conf")
	os.WriteFile(small, bytes.Repeat([]byte("#\n"), 100), 0o644)
	before := fdSize(t)
	earlyGrowFor(small)
	if got := fdSize(t); got != before {
		t.Errorf("a 200-byte file grew the table from %d to %d", before, got)
	}
	want := 4*before + 100
	big := filepath.Join(dir, "big.conf")
	os.WriteFile(big, bytes.Repeat([]byte("#\n"), want*50), 0o644)
	earlyGrowFor(big)
	if got := fdSize(t); got < want {
		t.Errorf("after a %d-byte file the table has %d slots, want at least %d", want*100, got, want)
	}
	earlyGrowFor(filepath.Join(dir, "missing.conf")) // nothing to do, nothing fails
}
