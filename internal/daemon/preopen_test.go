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

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestPreopenFailureAndLeftovers opens enough sockets to take the
// parallel path while one address is held by someone else: that service
// alone fails, with bind's reason, and nothing opened ahead is left open.
func TestPreopenFailureAndLeftovers(t *testing.T) {
	const n = 2 * minParallelOpen
	dir := t.TempDir()
	base := freeBlock(t, n)
	held, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", base+5))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
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
	o := &Options{ConfigFile: path, DontFork: true, FileLog: filepath.Join(dir, "daemon.log")}
	before := openFDs()
	dl, err := newDaemonLog(o)
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemon(o, dl)
	cfg := loadWith(o, d.db)
	if len(cfg.Accepted()) != n {
		t.Fatalf("%d services accepted, want %d: %v", len(cfg.Accepted()), n, cfg.Diags)
	}
	// e005 counts: an address in use is retried, as in xinetd.
	if got := d.startServing(cfg); got != n {
		t.Errorf("%d services available, want %d", got, n)
	}
	d.mu.Lock()
	if r := d.byID["e005"]; r == nil || len(r.socks) != 0 || !r.pending {
		t.Errorf("e005 must have no socket: %v", r)
	}
	if r := d.byID["e127"]; r == nil || len(r.socks) != 1 {
		t.Errorf("e127 must have its socket: %v", r)
	}
	if d.pre != nil {
		t.Errorf("%d sockets opened ahead were kept", len(d.pre))
	}
	d.mu.Unlock()
	d.shutdown(false)
	d.rec.Close()
	dl.Close()
	log, _ := os.ReadFile(o.FileLog)
	if !strings.Contains(string(log), "bind failed (Address already in use (errno = 98)). service = e005") {
		t.Errorf("no bind failure for e005 in the log:\n%s", log)
	}
	if strings.Contains(string(log), "service = e00") && strings.Count(string(log), "bind failed") != 1 {
		t.Errorf("other services failed:\n%s", log)
	}
	if after := openFDs(); after > before {
		t.Errorf("%d descriptors open after shutdown, %d before", after, before)
	}
}

// TestPreopenLeavesContestedPorts: two listeners on one port with
// different addresses may exclude each other, so neither is opened
// ahead; openRunLocked then serves them in configuration order.
func TestPreopenLeavesContestedPorts(t *testing.T) {
	base := freeBlock(t, minParallelOpen+2)
	d := &Daemon{o: &Options{}}
	var runs []*svcRun
	add := func(s *service.Service) {
		r := &svcRun{d: d}
		r.svc.Store(s)
		runs = append(runs, r)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	for i := 0; i < minParallelOpen+1; i++ {
		add(&service.Service{ID: fmt.Sprint(i), SocketType: service.SockStream, Port: base + i, Bind: service.Bind{Addr: lo}})
	}
	add(&service.Service{ID: "wild", SocketType: service.SockStream, Port: base, Family: service.FamilyIPv4})
	d.preopenLocked(runs, nil)
	defer d.closePreopenedLocked()
	if len(d.pre) != minParallelOpen {
		t.Errorf("%d sockets opened ahead, want %d", len(d.pre), minParallelOpen)
	}
	for k := range d.pre {
		if k.port == base {
			t.Errorf("contested %v was opened ahead", k)
		}
	}
}

// TestAcceptorMakesUsedSocketNonblocking: the acceptor skips asking the
// flags of a socket openSock has just made (non-blocking, one system call
// per socket at start-up), but a socket a wait=yes server has had may be
// blocking, and accepting on it would then hang the acceptor.
func TestAcceptorMakesUsedSocketNonblocking(t *testing.T) {
	dir := t.TempDir()
	port := freeBlock(t, 1)
	o := &Options{DontFork: true, FileLog: filepath.Join(dir, "daemon.log")}
	dl, err := newDaemonLog(o)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	d := newDaemon(o, dl)
	svc := &service.Service{ID: "daytime", Type: service.TypeInternal | service.TypeUnlisted, Builtin: "daytime",
		SocketType: service.SockStream, Protocol: "tcp", Family: service.FamilyIPv4, Port: port,
		Bind: service.Bind{Text: "127.0.0.1", Addr: netip.MustParseAddr("127.0.0.1")}}
	for _, used := range []bool{false, true} {
		sk, err := openSock(svc, keyFor(svc, svc.Bind.Addr), 16)
		if err != nil {
			t.Fatal(err)
		}
		if used {
			// As a wait=yes server's stdio: blocking, shared with the daemon.
			if err := setBlocking(sk.osFile(), true); err != nil {
				t.Fatal(err)
			}
		}
		r := &svcRun{d: d}
		r.svc.Store(svc)
		sr := &sockRun{s: sk, stop: make(chan struct{}), done: make(chan struct{})}
		if err := d.acc.add(r, sr); err != nil {
			t.Fatal(err)
		}
		fl, err := unix.FcntlInt(uintptr(sk.fd()), unix.F_GETFL, 0)
		if err != nil || fl&unix.O_NONBLOCK == 0 {
			t.Errorf("used=%v: the acceptor's socket is blocking (flags %#x, %v)", used, fl, err)
		}
		d.acc.remove(sr)
		sk.Close()
	}
}

// TestDeferAcceptForProxyProtocol: a service that takes a PROXY header
// listens with TCP_DEFER_ACCEPT (the header is there when the connection
// is accepted), and a socket kept for a service that no longer takes one
// (a reload, a socket from systemd or a predecessor) loses it.
func TestDeferAcceptForProxyProtocol(t *testing.T) {
	dir := t.TempDir()
	port := freeBlock(t, 2)
	conf := fmt.Sprintf(`defaults
{
	log_type = FILE %s
}
service pp
{
	type           = UNLISTED
	socket_type    = stream
	wait           = no
	user           = root
	server         = /bin/cat
	bind           = 127.0.0.1
	port           = %d
	proxy_protocol = v2
	proxy_from     = 127.0.0.1
	proxy_timeout  = 2
}
service plain
{
	type        = UNLISTED
	socket_type = stream
	wait        = no
	user        = root
	server      = /bin/cat
	bind        = 127.0.0.1
	port        = %d
}
`, filepath.Join(dir, "service.log"), port, port+1)
	path := filepath.Join(dir, "xinetd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	o := &Options{ConfigFile: path, DontFork: true, FileLog: filepath.Join(dir, "daemon.log")}
	dl, err := newDaemonLog(o)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	d := newDaemon(o, dl)
	cfg := loadWith(o, d.db)
	if got := d.startServing(cfg); got != 2 {
		t.Fatalf("%d services available: %v", got, cfg.Diags)
	}
	defer func() { d.shutdown(false); d.rec.Close() }()
	deferOf := func(id string) int {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, sr := range d.byID[id].socks.all() {
			v, err := unix.GetsockoptInt(sr.s.fd(), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		t.Fatalf("%s has no socket", id)
		return 0
	}
	// proxy_timeout = 2: the kernel can hold a silent connection 1 or 3
	// seconds (its SYN-ACK schedule); 3 would exceed the timeout.
	if v := deferOf("pp"); v != 1 {
		t.Errorf("proxy_protocol service with proxy_timeout 2: TCP_DEFER_ACCEPT %d, want 1", v)
	}
	if v := deferOf("plain"); v != 0 {
		t.Errorf("plain service: TCP_DEFER_ACCEPT %d", v)
	}
	// The same socket for a service that no longer takes a header, as a
	// reload or a socket inherited with the option would give it.
	d.mu.Lock()
	var sk *sock
	for _, sr := range d.byID["pp"].socks.all() {
		sk = sr.s
	}
	plain := *d.byID["pp"].svc.Load()
	plain.ProxyProtocol = 0
	sk.deferKnown, sk.deferAccept = false, 0
	setDeferAccept(sk, &plain)
	d.mu.Unlock()
	if v := deferOf("pp"); v != 0 {
		t.Errorf("after proxy_protocol went: TCP_DEFER_ACCEPT %d", v)
	}
}

// TestDeferSecs: the deferral is the longest span of the kernel's SYN-ACK
// schedule (1, 3, 7, 15, 31, 63, 127 s, then 120 s more each) within
// proxy_timeout.
func TestDeferSecs(t *testing.T) {
	for _, c := range []struct{ timeout, want int }{
		{0, 3}, // the default, 3 s
		{1, 1}, {2, 1}, {3, 3}, {4, 3}, {6, 3}, {7, 7}, {14, 7}, {15, 15},
		{126, 63}, {127, 127}, {246, 127}, {247, 247}, {3600, 3487},
	} {
		if got := deferSecs(&service.Service{ProxyTimeout: c.timeout}); got != c.want {
			t.Errorf("proxy_timeout %d: deferral %d s, want %d", c.timeout, got, c.want)
		}
	}
}
