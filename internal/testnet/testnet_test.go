package testnet

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPortsOutsideEphemeralRangeAndDistinct(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skip("no /proc/sys/net/ipv4/ip_local_port_range")
	}
	f := strings.Fields(string(b))
	elo, _ := strconv.Atoi(f[0])
	ehi, _ := strconv.Atoi(f[1])
	seen := map[int]bool{}
	for i := 0; i < 5; i++ {
		for _, p := range Ports(t, 8) {
			if p >= elo && p <= ehi {
				t.Fatalf("port %d is in the ephemeral range %d-%d", p, elo, ehi)
			}
			if seen[p] {
				t.Fatalf("port %d handed out twice while still held", p)
			}
			seen[p] = true
		}
	}
}

func TestBlockIsConsecutive(t *testing.T) {
	base := Block(t, 20)
	for p := base; p < base+20; p++ {
		if !Free(p) {
			t.Fatalf("port %d of the block is not free", p)
		}
	}
}

func TestBusyPortNotHandedOut(t *testing.T) {
	p := Ports(t, 1)[0]
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if Free(p) {
		t.Fatalf("port %d reported free while a listener holds it", p)
	}
}

// TestLocksExcludeOtherProcesses: a second test process on the host
// never gets a port this one holds. The child is this test binary,
// asked (through the environment) to print the ports it is given while
// this process holds a whole block.
func TestLocksExcludeOtherProcesses(t *testing.T) {
	if os.Getenv("TESTNET_CHILD") != "" {
		for _, p := range Ports(t, 200) {
			fmt.Println(p)
		}
		return
	}
	lo, hi := Span()
	held := map[int]bool{}
	// Hold a good share of the span so a collision would be likely.
	for _, p := range Ports(t, min(2000, (hi-lo)/2)) {
		held[p] = true
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestLocksExcludeOtherProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTNET_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	n := 0
	for _, l := range strings.Fields(string(out)) {
		p, err := strconv.Atoi(l)
		if err != nil {
			continue
		}
		n++
		if held[p] {
			t.Fatalf("the other process was given port %d, which this one holds", p)
		}
	}
	if n != 200 {
		t.Fatalf("child printed %d ports, want 200:\n%s", n, out)
	}
}

func TestLockWaitsForHolder(t *testing.T) {
	dir, err := lockDir()
	if err != nil {
		t.Fatal(err)
	}
	// The name is this process's own: a test run beside this one takes
	// the same self-test lock, which is what the lock is for.
	name := fmt.Sprintf("testnet-selftest-%d", os.Getpid())
	holder, err := tryLock(dir, "res-"+name)
	t.Cleanup(func() { os.Remove(filepath.Join(dir, "res-"+name)) })
	if err != nil || holder == nil {
		t.Fatalf("could not take the lock first: %v", err)
	}
	got := make(chan struct{})
	go func() {
		t.Run("waiter", func(t *testing.T) { Lock(t, name) })
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("Lock returned while another holder had the lock")
	case <-time.After(time.Second):
	}
	holder.Close()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("Lock did not return after the holder let go")
	}
}
