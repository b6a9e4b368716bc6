package access

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestUnsafeWrapTable: when running as root, a hosts.allow that anyone
// but root could change (here: in a world-writable directory) is not
// read; every wrapped service is refused instead, and the log says why.
// Its spawn commands would otherwise run as root.
func TestUnsafeWrapTable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tables must be root's for the safe case")
	}
	dir := t.TempDir()
	ww := filepath.Join(dir, "ww")
	if err := os.Mkdir(ww, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ww, 0o777); err != nil {
		t.Fatal(err)
	}
	unsafe := writeFile(t, filepath.Join(ww, "hosts.allow"), "ALL: ALL\n")
	safe := writeFile(t, filepath.Join(dir, "hosts.allow"), "ALL: ALL\n")
	deny := writeFile(t, filepath.Join(dir, "hosts.deny"), "")
	wrapped := svc("wrapped")
	wrapped.Flags = 0
	unwrapped := svc("unwrapped")
	tests := []struct {
		name           string
		allow          string
		check          bool
		wrapped, other bool // allowed?
		note           int
	}{
		{"unsafe table, root", unsafe, true, false, true, 1},
		{"safe table, root", safe, true, true, true, 0},
		{"unsafe table, not root", unsafe, false, true, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, n := newEngine(t, Global{HostsAllow: tc.allow, HostsDeny: deny, CheckOwnership: tc.check}, wrapped, unwrapped)
			for _, c := range []struct {
				s    *service.Service
				want bool
			}{{wrapped, tc.wrapped}, {unwrapped, tc.other}} {
				d := e.Decide(context.Background(), Request{Service: c.s, Peer: ap("127.0.0.1"), Now: t0})
				if d.Allow != c.want {
					t.Errorf("%s: Allow=%v (%v), want %v", c.s.ID, d.Allow, d.Reason, c.want)
				}
				d.Lease.Release()
			}
			if got := n.count("tcp_wrappers table " + tc.allow + ": " + ww + " is writable by everyone (mode 0777, owner uid 0); fix: chmod o-w " + ww); got != tc.note {
				t.Errorf("%d refusal notes, want %d: %q", got, tc.note, n.all())
			}
		})
	}
}
