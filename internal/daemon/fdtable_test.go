package daemon

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fdSize is the kernel's descriptor-table size of this process.
func fdSize(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "FDSize:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no FDSize in /proc/self/status")
	return 0
}

// TestFDTableReserve: reserve grows the table in one step to hold the
// descriptors asked for, opens nothing that stays open, and does nothing
// when the table is already large enough.
func TestFDTableReserve(t *testing.T) {
	var tb fdTable
	before, open := fdSize(t), openFDs()
	extra := before + 1000
	want := extra
	// reserve stops at the soft descriptor limit.
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && uint64(want) > rl.Cur {
		want = int(rl.Cur)
	}
	if want <= before {
		t.Skipf("the descriptor limit (%d) leaves no room to grow the table (%d)", rl.Cur, before)
	}
	tb.reserve(extra)
	if got := fdSize(t); got < want {
		t.Errorf("FDSize %d after reserve(%d) from %d, want at least %d", got, extra, before, want)
	}
	if n := openFDs(); n != open {
		t.Errorf("%d descriptors open after reserve, %d before", n, open)
	}
	grown := fdSize(t)
	tb.reserve(10)
	if got := fdSize(t); got != grown {
		t.Errorf("a small reserve changed FDSize from %d to %d", grown, got)
	}
}
