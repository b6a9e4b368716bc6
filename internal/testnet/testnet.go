package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// lockDir is where every test process on the host keeps its locks. It is
// world-writable and sticky so that root and unprivileged runs share it.
func lockDir() (string, error) {
	dir := filepath.Join(os.TempDir(), "gxinetd-test-locks")
	if err := os.Mkdir(dir, 0o777); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("testnet: %w", err)
	}
	// Mkdir's mode is cut by the umask; set it exactly (may fail when
	// another user made it, which is fine: they set the same mode).
	_ = os.Chmod(dir, 0o1777)
	return dir, nil
}

// tryLock takes the host-wide lock called name without waiting. It
// returns the open lock file, or nil when another holder has it. flock
// locks belong to the open file, so two tests of one process exclude
// each other as two processes do; the kernel drops a lock when its
// holder dies, so a killed test never leaves one behind.
func tryLock(dir, name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("testnet: lock %s: %w", name, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if err == unix.EWOULDBLOCK {
			return nil, nil
		}
		return nil, fmt.Errorf("testnet: lock %s: %w", name, err)
	}
	return f, nil
}

// Lock holds the host-wide lock called name until the test ends, waiting
// for whoever holds it (another test, here or in another process). Use it
// for resources with fixed names: a well-known port on a fixed address
// ("127.0.0.6:113"), a network namespace, the host's rpcbind.
func Lock(tb testing.TB, name string) {
	tb.Helper()
	dir, err := lockDir()
	if err != nil {
		tb.Fatal(err)
	}
	name = "res-" + strings.NewReplacer("/", "_", ":", "_").Replace(name)
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		tb.Fatalf("testnet: lock %s: %v", name, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		tb.Fatalf("testnet: lock %s: %v", name, err)
	}
	tb.Cleanup(func() { f.Close() })
}

// span is the port range tests draw from: below the kernel's ephemeral
// range when there is room there, else above it.
var span = sync.OnceValues(func() (int, int) {
	lo, hi := 32768, 60999 // the kernel's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			l, err1 := strconv.Atoi(f[0])
			h, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && l <= h {
				lo, hi = l, h
			}
		}
	}
	const first = 12000 // above the registered ports daemons commonly use
	switch {
	case lo-1-first >= 2000:
		return first, lo - 1
	case 65535-hi >= 2000:
		return hi + 1, 65535
	}
	// A host whose ephemeral range covers nearly everything: take what
	// is below it, however little.
	return 1024, max(lo-1, 1025)
})

// Span returns the range Ports draws from (inclusive).
func Span() (int, int) { return span() }

// Ports returns n distinct ports, free for TCP and UDP on every local
// address right now, from outside the kernel's ephemeral range, and held
// for this test alone until it ends.
func Ports(tb testing.TB, n int) []int {
	tb.Helper()
	ports, release, err := take(n, 1)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(release)
	return ports
}

// Block returns the first of n consecutive ports, each as Ports gives.
func Block(tb testing.TB, n int) int {
	tb.Helper()
	ports, release, err := take(n, n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(release)
	return ports[0]
}

// PortsFor is Ports outside a test (TestMain, a benchmark helper): the
// caller calls release when done with the ports.
func PortsFor(n int) (ports []int, release func(), err error) { return take(n, 1) }

// take finds n ports in runs of run consecutive ones.
func take(n, run int) ([]int, func(), error) {
	dir, err := lockDir()
	if err != nil {
		return nil, nil, err
	}
	lo, hi := span()
	width := hi - lo + 1
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
	}
	var ports []int
	start := rand.IntN(width)
	for i := 0; i < width && len(ports) < n; i++ {
		base := lo + (start+i)%width
		if base+run-1 > hi {
			continue
		}
		var got []*os.File
		ok := true
		for p := base; p < base+run && ok; p++ {
			f, err := tryLock(dir, "port-"+strconv.Itoa(p))
			if err != nil {
				release()
				return nil, nil, err
			}
			if f == nil || !Free(p) {
				if f != nil {
					f.Close()
				}
				ok = false
				break
			}
			got = append(got, f)
		}
		if !ok {
			for _, f := range got {
				f.Close()
			}
			continue
		}
		held = append(held, got...)
		for p := base; p < base+run; p++ {
			ports = append(ports, p)
		}
		i += run - 1
	}
	if len(ports) < n {
		release()
		return nil, nil, fmt.Errorf("testnet: no %d free ports in %d-%d", n, lo, hi)
	}
	return ports[:n], release, nil
}

// Free reports whether port can be bound for TCP (listening) and UDP on
// the wildcard address (which covers every local address), dual-stack
// where the host has IPv6.
func Free(port int) bool {
	for _, network := range []string{"tcp", "udp"} {
		if !bindable(network, port) {
			return false
		}
	}
	return true
}

func bindable(network string, port int) bool {
	st := unix.SOCK_STREAM
	if network == "udp" {
		st = unix.SOCK_DGRAM
	}
	try := func(family int, sa unix.Sockaddr) (bool, bool) {
		fd, err := unix.Socket(family, st|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return false, false // family not available
		}
		defer unix.Close(fd)
		// As the daemon does: a connection of an earlier test still in
		// TIME_WAIT on this port does not keep a listener off it.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if family == unix.AF_INET6 {
			unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
		}
		if err := unix.Bind(fd, sa); err != nil {
			return true, false
		}
		if st == unix.SOCK_STREAM {
			if err := unix.Listen(fd, 1); err != nil {
				return true, false
			}
		}
		return true, true
	}
	if avail, ok := try(unix.AF_INET6, &unix.SockaddrInet6{Port: port}); avail {
		return ok
	}
	_, ok := try(unix.AF_INET, &unix.SockaddrInet4{Port: port})
	return ok
}

// Addr joins a loopback host and port, for tests that print addresses.
func Addr(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
