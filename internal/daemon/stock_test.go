package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/sysdb"
)

// TestStockPlan: the guess counts service blocks and IPv4 binds, leaves
// datagram services and comments out, and makes the family most
// services need first.
func TestStockPlan(t *testing.T) {
	in4 := stockKind{unix.AF_INET, unix.SOCK_STREAM}
	in6 := stockKind{unix.AF_INET6, unix.SOCK_STREAM}
	block := func(extra string) string {
		return "service s\n{\n\tsocket_type = stream\n" + extra + "\tport = 1\n}\n"
	}
	for _, tc := range []struct {
		name string
		conf string
		want []stockPart
	}{
		{"empty", "", []stockPart{{in4, 0}, {in6, 0}}},
		{"v4 binds", strings.Repeat(block("\tbind = 127.0.0.1\n"), 3), []stockPart{{in4, 3}, {in6, 0}}},
		{"no bind is v6", strings.Repeat(block(""), 2) + block("\tbind=10.0.0.1\n"), []stockPart{{in6, 2}, {in4, 1}}},
		{"v6 bind", block("\tbind = ::1\n") + block("\tbind = 127.0.0.1\n"), []stockPart{{in4, 1}, {in6, 1}}},
		{"dgram not counted", block("") + "service u\n{\n\tsocket_type = dgram\n}\n", []stockPart{{in6, 1}, {in4, 0}}},
		{"comments and defaults", "# service x\ndefaults\n{\n\tbind = 127.0.0.1\n}\n" + block(""), []stockPart{{in4, 1}, {in6, 0}}},
		{"services word alone", "service\nservicex y\n", []stockPart{{in4, 0}, {in6, 0}}},
		{"inetd.conf", "echo stream tcp nowait root internal\n", []stockPart{{in4, 0}, {in6, 0}}},
	} {
		got := stockPlan([]byte(tc.conf))
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: plan %v, want %v", tc.name, got, tc.want)
		}
	}
}

// writeStockConf writes n stream services bound to 127.0.0.1 from base.
func writeStockConf(t *testing.T, dir string, base, n int) (string, int64) {
	t.Helper()
	var conf strings.Builder
	fmt.Fprintf(&conf, "defaults\n{\n\tlog_type = FILE %s\n\tcps = 0 0\n}\n", filepath.Join(dir, "service.log"))
	for i := 0; i < n; i++ {
		fmt.Fprintf(&conf, "service echo\n{\n\ttype = UNLISTED INTERNAL\n\tid = e%03d\n\tsocket_type = stream\n\twait = no\n\tbind = 127.0.0.1\n\tport = %d\n}\n",
			i, base+i)
	}
	path := filepath.Join(dir, "xinetd.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, int64(conf.Len())
}

// TestStockSocketsAreLikeFresh: a socket from the stock is set up as one
// openSock makes itself (non-blocking, close-on-exec, SO_REUSEADDR,
// listening on the address), an address in use fails with the same
// message, the stock is used only for the family it holds, and release
// closes every socket not taken.
func TestStockSocketsAreLikeFresh(t *testing.T) {
	const n = 300
	dir := t.TempDir()
	base := freeBlock(t, n+1)
	path, size := writeStockConf(t, dir, base, n)
	before := openFDs()
	var fdt fdTable
	st := startStock(path, size, &fdt)
	if st == nil {
		t.Fatalf("no stock for a %d-byte file", size)
	}
	<-st.done
	if st.made != n {
		t.Fatalf("%d sockets made, want %d", st.made, n)
	}
	o := &Options{ConfigFile: path}
	cfg := loadWith(o, &sysdb.DB{})
	svcs := cfg.Accepted()
	if len(svcs) != n {
		t.Fatalf("%d services accepted: %v", len(svcs), cfg.Diags)
	}
	held, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", base+1))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// The same failure with and without the stock.
	s1 := svcs[1]
	_, errFresh := openSock(s1, keyFor(s1, s1.Bind.Addr), 4)
	_, errStock := openSockFrom(st, s1, keyFor(s1, s1.Bind.Addr), 4)
	if errFresh == nil || errStock == nil || errFresh.Error() != errStock.Error() {
		t.Errorf("address in use: %v from a fresh socket, %v from the stock", errFresh, errStock)
	}
	s0 := svcs[0]
	sk, err := openSockFrom(st, s0, keyFor(s0, s0.Bind.Addr), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	if st.taken != 2 {
		t.Errorf("%d sockets taken from the stock, want 2", st.taken)
	}
	fl, err := unix.FcntlInt(uintptr(sk.fdNum), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("stocked socket not non-blocking: %#x %v", fl, err)
	}
	fd, err := unix.FcntlInt(uintptr(sk.fdNum), unix.F_GETFD, 0)
	if err != nil || fd&unix.FD_CLOEXEC == 0 {
		t.Errorf("stocked socket not close-on-exec: %#x %v", fd, err)
	}
	if v, err := unix.GetsockoptInt(sk.fdNum, unix.SOL_SOCKET, unix.SO_REUSEADDR); err != nil || v != 1 {
		t.Errorf("SO_REUSEADDR = %d, %v", v, err)
	}
	if v, err := unix.GetsockoptInt(sk.fdNum, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		t.Errorf("stocked socket not listening: %d, %v", v, err)
	}
	c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", base))
	if err != nil {
		t.Errorf("connect to the stocked listener: %v", err)
	} else {
		c.Close()
	}
	// Another family is made fresh, not taken.
	k6 := keyFor(s0, s0.Bind.Addr)
	k6.family, k6.addr, k6.v6only, k6.port = unix.AF_INET6, netip.IPv6Loopback(), 1, base+n
	if sk6, err := openSockFrom(st, s0, k6, 4); err == nil {
		sk6.Close()
	}
	if st.taken != 2 {
		t.Errorf("an AF_INET6 socket was taken from an AF_INET stock")
	}
	st.release(true)
	if fd := st.take(unix.AF_INET, unix.SOCK_STREAM); fd >= 0 {
		t.Errorf("take after release gave %d", fd)
	}
	sk.Close()
	held.Close()
	if after := openFDs(); after > before {
		t.Errorf("%d descriptors open after release, %d before", after, before)
	}
}

// TestStockOnlyForLargeFiles: a small file gets no stock, and a nil
// stock gives nothing.
func TestStockOnlyForLargeFiles(t *testing.T) {
	dir := t.TempDir()
	path, size := writeStockConf(t, dir, 20000, 3)
	var fdt fdTable
	if st := startStock(path, size, &fdt); st != nil {
		st.release(true)
		t.Errorf("a stock for a %d-byte file", size)
	}
	var st *sockStock
	if fd := st.take(unix.AF_INET, unix.SOCK_STREAM); fd >= 0 {
		t.Errorf("nil stock gave %d", fd)
	}
	st.release(true)
}

// TestStartServingWithStock is TestPreopenFailureAndLeftovers's start-up
// with the stock run.go sets up: every service but the one whose address
// is taken listens, bind's message is the same, and nothing is left open
// after shutdown and release.
func TestStartServingWithStock(t *testing.T) {
	const n = 2 * minParallelOpen * 2
	dir := t.TempDir()
	base := freeBlock(t, n)
	held, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", base+5))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	path, size := writeStockConf(t, dir, base, n)
	o := &Options{ConfigFile: path, DontFork: true, FileLog: filepath.Join(dir, "daemon.log")}
	before := openFDs()
	dl, err := newDaemonLog(o)
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemon(o, dl)
	d.stock = startStock(path, size, &d.fdt)
	if d.stock == nil {
		t.Fatal("no stock")
	}
	cfg := loadWith(o, d.db)
	<-d.stock.done // every socket taken from the stock, for the test's sake
	if got := d.startServing(cfg); got != n {
		t.Errorf("%d services available, want %d", got, n)
	}
	st := d.stock
	d.stock = nil
	if st.taken < n-1 {
		t.Errorf("%d of %d sockets taken from the stock", st.taken, n-1)
	}
	st.release(true)
	d.mu.Lock()
	if r := d.byID["e005"]; r == nil || len(r.socks) != 0 || !r.pending {
		t.Errorf("e005 must have no socket: %v", r)
	}
	for i := 0; i < n; i++ {
		if i == 5 {
			continue
		}
		if r := d.byID[fmt.Sprintf("e%03d", i)]; r == nil || len(r.socks) != 1 {
			t.Errorf("e%03d must have its socket: %v", i, r)
		}
	}
	d.mu.Unlock()
	c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", base+n-1))
	if err != nil {
		t.Errorf("connect to the last service: %v", err)
	} else {
		c.Close()
	}
	d.shutdown(false)
	d.rec.Close()
	dl.Close()
	log, _ := os.ReadFile(o.FileLog)
	if !strings.Contains(string(log), "bind failed (Address already in use (errno = 98)). service = e005") {
		t.Errorf("no bind failure for e005 in the log:\n%s", log)
	}
	if strings.Count(string(log), "bind failed") != 1 {
		t.Errorf("other services failed:\n%s", log)
	}
	if after := openFDs(); after > before {
		t.Errorf("%d descriptors open after shutdown, %d before", after, before)
	}
}
