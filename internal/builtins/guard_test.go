package builtins

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestGuard(t *testing.T) {
	own := map[uint16]bool{7777: true, 19: true}
	env := &Env{OwnPorts: func(p uint16) bool { return own[p] }}
	tests := []struct {
		from string
		ok   bool
		why  string // substring of the reason
	}{
		{"127.0.0.1:40000", true, ""},
		{"[::1]:40000", true, ""},
		{"192.0.2.10:1024", true, ""},
		{"[2001:db8::1]:65535", true, ""},
		{"[::ffff:127.0.0.1]:40000", true, ""},
		{"127.0.0.1:0", false, "port 0"},
		{"127.0.0.1:53", false, "privileged"},
		{"127.0.0.1:1023", false, "privileged"},
		{"[::1]:19", false, "privileged"},
		{"[::ffff:127.0.0.1]:123", false, "privileged"},
		{"127.0.0.1:2049", false, "nfs"},
		{"127.0.0.1:7777", false, "own builtin"},
		{"[::1]:7777", false, "own builtin"},
		{"0.0.0.0:40000", false, "unspecified"},
		{"[::]:40000", false, "unspecified"},
		{"[::ffff:0.0.0.0]:40000", false, "unspecified"},
		{"0.1.2.3:40000", false, "0.0.0.0/8"},
		{"255.255.255.255:40000", false, "broadcast"},
		{"[::ffff:255.255.255.255]:40000", false, "broadcast"},
		{"255.1.2.3:40000", false, "broadcast"},
		{"224.0.0.1:40000", false, "multicast"},
		{"239.255.255.250:40000", false, "multicast"},
		{"[::ffff:224.0.0.251]:40000", false, "multicast"},
		{"[ff02::1]:40000", false, "multicast"},
		{"[ff05::fb]:40000", false, "multicast"},
	}
	for _, tc := range tests {
		ok, why := Guard(netip.MustParseAddrPort(tc.from), env)
		if ok != tc.ok || !strings.Contains(why, tc.why) {
			t.Errorf("Guard(%s) = %v, %q; want %v, %q", tc.from, ok, why, tc.ok, tc.why)
		}
	}
	if ok, _ := Guard(netip.AddrPort{}, nil); ok {
		t.Error("the zero AddrPort passed")
	}
	if ok, _ := Guard(netip.MustParseAddrPort("127.0.0.1:7777"), nil); !ok {
		t.Error("a nil Env refused an ordinary port")
	}
}

func TestGuardLogRateLimit(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	env := &Env{LogInterval: time.Hour, Logf: func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}}
	for i := 0; i < 5; i++ {
		Guard(netip.MustParseAddrPort("127.0.0.1:53"), env)
		Guard(netip.MustParseAddrPort(fmt.Sprintf("127.0.0.2:%d", 100+i)), env)
		Guard(netip.MustParseAddrPort("127.0.0.3:40000"), env) // allowed: never logged
	}
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want one per source:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if want := "builtins: udp reflection guard: refused datagram from 127.0.0.1:53: privileged source port"; lines[0] != want {
		t.Errorf("got %q, want %q", lines[0], want)
	}

	// After the interval the same source is logged again.
	e := &Env{LogInterval: time.Minute}
	a := netip.MustParseAddr("127.0.0.1")
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at   time.Duration
		want bool
	}{{0, true}, {30 * time.Second, false}, {59 * time.Second, false}, {61 * time.Second, true}, {62 * time.Second, false}}
	for _, s := range steps {
		if got := e.shouldLog(a, t0.Add(s.at)); got != s.want {
			t.Errorf("at +%v: shouldLog = %v, want %v", s.at, got, s.want)
		}
	}
}

func TestGuardLogMemoryBounded(t *testing.T) {
	e := &Env{}
	now := time.Unix(1000, 0)
	for i := 0; i < 3*maxLogged; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if !e.shouldLog(a, now) {
			t.Fatalf("first refusal from %v not logged", a)
		}
		if len(e.logged) > maxLogged {
			t.Fatalf("remembers %d sources, bound %d", len(e.logged), maxLogged)
		}
	}
}

// TestGuardAllowLog: with AllowLog set, the daemon's budget has the last
// word on first refusals, and is told of repeats (to count them); it is
// never asked about an allowed datagram.
func TestGuardAllowLog(t *testing.T) {
	type ask struct {
		a      netip.Addr
		repeat bool
	}
	var asked []ask
	firsts := 0
	logged := 0
	env := &Env{
		LogInterval: time.Hour,
		AllowLog: func(a netip.Addr, repeat bool) bool {
			asked = append(asked, ask{a, repeat})
			if !repeat {
				firsts++
			}
			return firsts <= 2 || repeat
		},
		Logf: func(string, ...any) { logged++ },
	}
	for i := 0; i < 5; i++ {
		Guard(netip.MustParseAddrPort(fmt.Sprintf("127.0.0.%d:53", i+1)), env)
		Guard(netip.MustParseAddrPort("127.0.0.9:40000"), env)
	}
	Guard(netip.MustParseAddrPort("127.0.0.1:53"), env) // a repeat: never logged
	if len(asked) != 6 || asked[4] != (ask{netip.MustParseAddr("127.0.0.5"), false}) ||
		asked[5] != (ask{netip.MustParseAddr("127.0.0.1"), true}) {
		t.Errorf("AllowLog asked %v, want the five refused sources, then one repeat", asked)
	}
	if logged != 2 {
		t.Errorf("logged %d lines, want the 2 AllowLog allowed", logged)
	}
}
