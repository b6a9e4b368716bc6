package parser

import (
	"runtime"
	"strings"
	"testing"
)

func TestFirstFields(t *testing.T) {
	for _, s := range []string{
		"", "   ", "service", "service a", "  service\ta  b c d ", "defaults x",
		"service\u00a0a", "service\u2003a\u2003b", "service\va\fb", "s \xff a", "\xffservice a b",
	} {
		var buf [3]string
		got := firstFields(s, buf[:0])
		want := strings.Fields(s)
		if len(want) > 3 {
			want = want[:3]
		}
		if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Errorf("firstFields(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestInetAton(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // "" = refused
	}{
		{"1.2.3.4", "1.2.3.4"},
		{"10", "0.0.0.10"},
		{"10.1", "10.0.0.1"},
		{"10.1.2", "10.1.0.2"},
		{"10.65535", "10.0.255.255"},
		{"10.65536", "10.1.0.0"},
		{"10.16777215", "10.255.255.255"},
		{"10.16777216", ""},
		{"010.0.0.1", "8.0.0.1"},
		{"0x1.2.3.4", ""},
		{"09.1.1.1", ""},
		{"256.1.1.1", ""},
		{"1.2.3.256", ""},
		{"1.2.3.4.5", ""},
		{"1..2", ""},
		{"1.2.", ""},
		{".1", ""},
		{"", ""},
		{"4294967295", "255.255.255.255"},
		{"4294967296", ""},
	} {
		ip, ok := inetAton(c.in)
		got := ""
		if ok {
			got = ip.String()
		}
		if got != c.want {
			t.Errorf("inetAton(%q) = %q, want %q", c.in, got, c.want)
		}
		if ok && !ip.Is4() {
			t.Errorf("inetAton(%q) is not IPv4: %v", c.in, ip)
		}
	}
}

// TestParseMemory holds the goal of issue 3: a 10,000-service file parses
// with less than 50 MB allocated in all. Allocation is counted, not time,
// so the machine's load does not matter.
func TestParseMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("large input")
	}
	data := genConfig(10000)
	opt := testOptions()
	Parse("warm.conf", genConfig(10), opt) // one-time tables
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cfg := Parse("mem.conf", data, opt)
	runtime.ReadMemStats(&after)
	if len(cfg.Accepted()) != 10000 {
		t.Fatalf("%d accepted: %v", len(cfg.Accepted()), cfg.Diags)
	}
	const limit = 50 << 20
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Errorf("parsing 10,000 services allocated %.1f MB, the goal is under %d MB", float64(got)/(1<<20), limit>>20)
	}
}
