package daemon

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/rpcbind"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/testnet"
)

func TestFDNames(t *testing.T) {
	a := netip.MustParseAddr
	long := "/run/" + strings.Repeat("deep/", 40) + "x.sock"
	cases := []struct {
		key    sockKey
		want   string // "" when only the properties are checked
		v6only int
	}{
		{sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET, addr: a("127.0.0.1"), port: 13, v6only: -1},
			"gxinetd/tcp/127.0.0.1%3A13", -1},
		{sockKey{sotype: unix.SOCK_DGRAM, family: unix.AF_INET, port: 69, v6only: -1}, "gxinetd/udp/*%3A69", -1},
		{sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET6, port: 13, v6only: 0},
			"gxinetd/tcp/[%3A%3A]%3A13/v6only=0", 0},
		{sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET6, port: 13, v6only: 1},
			"gxinetd/tcp/[%3A%3A]%3A13/v6only=1", 1},
		{sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET6, addr: a("fe80::1%eth0"), port: 13, v6only: 0},
			"gxinetd/tcp/[fe80%3A%3A1%25eth0]%3A13/v6only=0", 0},
		{sockKey{sotype: unix.SOCK_DGRAM, family: unix.AF_INET, port: 0, v6only: -1, rpc: "rstatd"},
			"gxinetd/udp/*%3A0/rpc=rstatd", -1},
		{sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET6, port: 0, v6only: 0, rpc: "a/rpc=b:c"},
			"gxinetd/tcp/[%3A%3A]%3A0/v6only=0/rpc=a%2Frpc=b%3Ac", 0},
		{sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_UNIX, path: "/run/a b:c.sock", v6only: -1},
			"gxinetd/unix%3A/run/a%20b%3Ac.sock", -1},
		{sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_UNIX, path: long, v6only: -1}, "", -1},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		n := fdName(c.key)
		if c.want != "" && n != c.want {
			t.Errorf("fdName(%v) = %q, want %q", c.key, n, c.want)
		}
		if len(n) > fdNameMax || seen[n] {
			t.Errorf("fdName(%v) = %q: too long or not unique", c.key, n)
		}
		seen[n] = true
		for _, r := range n {
			if r <= ' ' || r >= 0x7f || r == ':' {
				t.Errorf("fdName(%v) = %q: %q is not allowed in LISTEN_FDNAMES", c.key, n, r)
			}
		}
		info, err := parseFDName(n)
		if err != nil || !info.ours || info.rpc != c.key.rpc || info.v6only != c.v6only {
			t.Errorf("parseFDName(%q) = %+v, %v; want ours, rpc %q, v6only %d", n, info, err, c.key.rpc, c.v6only)
		}
	}
	for _, other := range []string{"gxinetd.socket", "stored", "gxinetd", ""} {
		if info, err := parseFDName(other); info.ours || err != nil {
			t.Errorf("parseFDName(%q) = %+v, %v: not gxinetd's", other, info, err)
		}
	}
	for _, bad := range []string{"gxinetd/tcp/x/rpc=", "gxinetd/tcp/x/rpc=%zz", "gxinetd/tcp/x/v6only=2", "gxinetd/tcp/x/rpc=%4"} {
		if _, err := parseFDName(bad); err == nil {
			t.Errorf("parseFDName(%q) accepted", bad)
		}
	}
}

// FuzzParseFDName: LISTEN_FDNAMES comes from the environment. Whatever a
// name says, parsing it never panics, and what it accepts makes a name
// that says the same again.
func FuzzParseFDName(f *testing.F) {
	for _, s := range []string{"gxinetd/tcp/127.0.0.1%3A13", "gxinetd/udp/*%3A0/rpc=rstatd", "gxinetd/tcp/[%3A%3A]%3A13/v6only=1",
		"gxinetd.socket", "gxinetd/x/rpc=%41%", "gxinetd/sha256=00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		info, err := parseFDName(name)
		if err != nil || !info.ours {
			return
		}
		if info.v6only < -1 || info.v6only > 1 {
			t.Fatalf("v6only %d", info.v6only)
		}
		if info.rpc == "" {
			return
		}
		k := sockKey{sotype: unix.SOCK_STREAM, family: unix.AF_INET6, v6only: max(info.v6only, 0), rpc: info.rpc}
		n := fdName(k)
		if strings.HasPrefix(n, fdNamePrefix+"sha256=") {
			return
		}
		again, err := parseFDName(n)
		if err != nil || again.rpc != info.rpc || again.v6only != k.v6only {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", name, info, n, again, err)
		}
	})
}

func TestControlPath(t *testing.T) {
	for in, want := range map[string]string{
		"/run/gxinetd.pid": "/run/gxinetd.ctl",
		"/run/gxinetd":     "/run/gxinetd.ctl",
		"x.pid":            "x.ctl",
		"/run/.pid":        "/run/.pid.ctl",
		"/run/a.pid.d":     "/run/a.pid.d.ctl",
	} {
		if got := controlPath(in); got != want {
			t.Errorf("controlPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseControlRequest(t *testing.T) {
	cases := []struct {
		line  string
		drain time.Duration
		ok    bool
	}{
		{"upgrade", defaultDrain, true},
		{"upgrade drain=0s", 0, true},
		{"upgrade  drain=90s ", 90 * time.Second, true},
		{"upgrade drain=25h", 0, false},
		{"upgrade drain=-1s", 0, false},
		{"upgrade drain=soon", 0, false},
		{"upgrade now", 0, false},
		{"reload", 0, false},
		{"", 0, false},
		{"upgrade drain=1s " + strings.Repeat("x", maxRequest), 0, false},
	}
	for _, c := range cases {
		got, err := parseControlRequest(c.line)
		if (err == nil) != c.ok || (c.ok && got.drain != c.drain) {
			t.Errorf("parseControlRequest(%q) = %v, %v", c.line, got.drain, err)
		}
	}
}

// FuzzParseControlRequest: the control socket's requests come from a
// client; none makes the parser panic or accept a drain out of bounds.
func FuzzParseControlRequest(f *testing.F) {
	for _, s := range []string{"upgrade", "upgrade drain=30s", "upgrade drain=1h2m", "upgrade drain=", "x y=z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := parseControlRequest(line)
		if err == nil && (c.drain < 0 || c.drain > maxDrain) {
			t.Fatalf("%q: drain %v accepted", line, c.drain)
		}
	})
}

func inode(t *testing.T, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestHandoverChannelPassesSockets: more sockets than one message
// carries reach the other end as the same sockets (same inode), with
// their keys intact, and the state message ends them.
func TestHandoverChannelPassesSockets(t *testing.T) {
	old, theirs, err := hoPair()
	if err != nil {
		t.Fatal(err)
	}
	defer old.close()
	fd, _ := unix.FcntlInt(theirs.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	theirs.Close()
	nw, err := newHoConn(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.close()

	const n = 2*maxFDsPerMsg + 7
	var metas []hoSock
	var fds []int
	var inos []uint64
	for i := 0; i < n; i++ {
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(s)
		dup, _ := unix.FcntlInt(uintptr(s), unix.F_DUPFD_CLOEXEC, 0)
		k := sockKey{sotype: unix.SOCK_DGRAM, family: unix.AF_INET6, addr: netip.MustParseAddr("fe80::1%lo"), port: i, v6only: 0, rpc: fmt.Sprint("r", i)}
		metas = append(metas, hoSock{ID: i, Use: "service", Key: hoKeyOf(k), Wait: i%2 == 0})
		fds = append(fds, dup)
		inos = append(inos, inode(t, s))
	}
	errc := make(chan error, 1)
	go func() {
		err := old.sendSocks(metas, fds)
		if err == nil {
			err = old.send(&hoMsg{Type: "state", Serving: []string{"a"}}, nil)
		}
		errc <- err
	}()
	got, gotFDs, state, err := nw.recvSocks(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	defer closeFDs(gotFDs)
	if len(got) != n || len(gotFDs) != n || len(state.Serving) != 1 {
		t.Fatalf("got %d sockets, %d descriptors, state %+v; want %d", len(got), len(gotFDs), state, n)
	}
	for i := range got {
		k, err := got[i].Key.key()
		want, _ := metas[i].Key.key()
		if err != nil || k != want || got[i].Wait != metas[i].Wait {
			t.Errorf("socket %d: %+v %v, want %+v", i, k, err, want)
		}
		if inode(t, gotFDs[i]) != inos[i] {
			t.Errorf("socket %d is another socket", i)
		}
		if f, _ := unix.FcntlInt(uintptr(gotFDs[i]), unix.F_GETFD, 0); f&unix.FD_CLOEXEC == 0 {
			t.Errorf("socket %d came without close-on-exec: a server would inherit it", i)
		}
	}
}

// notifySocket listens where $NOTIFY_SOCKET will point, for messages
// with descriptors.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

func readNotify(t *testing.T, c *net.UnixConn) (string, []int) {
	t.Helper()
	buf, oob := make([]byte, 1024), make([]byte, unix.CmsgSpace(16))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatalf("no message to systemd: %v", err)
	}
	var fds []int
	if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, cm := range cms {
			got, _ := unix.ParseUnixRights(&cm)
			fds = append(fds, got...)
		}
	}
	return string(buf[:n]), fds
}

func upTestDaemon(t *testing.T) *Daemon {
	t.Helper()
	o := &Options{DontFork: true, FileLog: filepath.Join(t.TempDir(), "daemon.log")}
	dl, err := newDaemonLog(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	return newDaemon(o, dl)
}

// TestFDStoreMessages: the daemon stores each socket it serves (up to
// $FDSTORE), removes one it closes for good, sends nothing while it is not
// systemd's main process yet, and keeps everything (path included) when
// it stops or has handed over.
func TestFDStoreMessages(t *testing.T) {
	nc := notifySocket(t)
	t.Setenv("FDSTORE", "3")
	d := upTestDaemon(t)
	ports := testnet.Ports(t, 4)
	svc := &service.Service{ID: "t", SocketType: service.SockStream, Protocol: "tcp", Family: service.FamilyIPv4}
	open := func(i int) *sock {
		t.Helper()
		s := *svc
		s.Port = ports[i]
		sk, err := openSock(&s, keyFor(&s, netip.MustParseAddr("127.0.0.1")), 4)
		if err != nil {
			t.Fatal(err)
		}
		return sk
	}
	expect := func(sk *sock, remove bool) {
		t.Helper()
		msg, fds := readNotify(t, nc)
		defer closeFDs(fds)
		want := "FDSTORE=1\nFDNAME=" + fdName(sk.key)
		if remove {
			want = "FDSTOREREMOVE=1\nFDNAME=" + fdName(sk.key)
		}
		if msg != want || len(fds) != map[bool]int{false: 1, true: 0}[remove] {
			t.Fatalf("systemd got %q with %d descriptors, want %q", msg, len(fds), want)
		}
		if !remove && inode(t, fds[0]) != inode(t, sk.fd()) {
			t.Fatalf("the stored descriptor is another socket")
		}
	}
	st0 := &d.up.store
	// track is called with the daemon's lock held; its log lines are
	// written when the lock is released.
	st := trackLocked{d, st0}
	a, b := open(0), open(1)
	st.track(a)
	expect(a, false)
	st.track(b)
	expect(b, false)

	// Not the main process yet: the removal waits.
	st.hold()
	a.Close()
	c := open(2)
	st.track(c)
	st.release()
	expect(a, true)
	expect(c, false)

	// A stop keeps them; so does a hand-over, with a unix socket's path.
	d.stopping.Store(true)
	b.Close()
	d.stopping.Store(false)
	upath := filepath.Join(t.TempDir(), "u.sock")
	us := &service.Service{ID: "u", SocketType: service.SockStream, Family: service.FamilyUnix, UnixPath: upath}
	u, err := openSock(us, keyFor(us, netip.Addr{}), 4)
	if err != nil {
		t.Fatal(err)
	}
	st.track(u)
	expect(u, false)
	st0.handedOver.Store(true)
	u.Close()
	if _, err := os.Lstat(upath); err != nil {
		t.Errorf("a handed-over unix socket's path was removed: %v", err)
	}
	st0.handedOver.Store(false)
	// Nothing was sent for b or u: the next message is c's removal.
	c.Close()
	expect(c, true)

	// The store's limit: b and u count still (a stopping daemon exits).
	x, y := open(0), open(1)
	defer y.Close()
	st.track(x)
	expect(x, false)
	st.track(y) // a fourth: one more than FDSTORE=3
	x.Close()
	expect(x, true)
	if log := waitFileText(t, d.o.FileLog); !strings.Contains(log, "store is full (FDSTORE=3)") {
		t.Errorf("no warning about the full store:\n%s", log)
	}
}

type trackLocked struct {
	d  *Daemon
	st *fdStore
}

func (t trackLocked) track(sk *sock) {
	t.d.mu.Lock()
	t.st.track(sk)
	t.d.unlock()
}
func (t trackLocked) hold()    { t.st.hold() }
func (t trackLocked) release() { t.st.release() }

func waitFileText(t *testing.T, p string) string {
	t.Helper()
	for i := 0; i < 100; i++ {
		b, _ := os.ReadFile(p)
		if len(b) > 0 {
			return string(b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ""
}

// TestStoredKey: a socket systemd passes back is keyed as the service
// that opened it asked: what it is bound to, the V6ONLY its name says
// (the kernel reports 1 for any socket bound to one IPv6 address), and
// the RPC service a kernel-chosen port belongs to.
func TestStoredKey(t *testing.T) {
	port := testnet.Ports(t, 1)[0]
	s := &service.Service{ID: "t", SocketType: service.SockStream, Protocol: "tcp", Port: port}
	k := keyFor(s, netip.MustParseAddr("::1"))
	sk, err := openSock(s, k, 4)
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer sk.Close()
	info, err := parseFDName(fdName(k))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := storedKey(sk.fd(), info); err != nil || got != k {
		t.Errorf("storedKey = %+v, %v; want %+v", got, err, k)
	}
	r := &service.Service{ID: "Rstat", SocketType: service.SockDgram, Protocol: "udp", Family: service.FamilyIPv4,
		Type: service.TypeRPC}
	rk := keyFor(r, netip.MustParseAddr("127.0.0.1"))
	rs, err := openSock(r, rk, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	info, _ = parseFDName(fdName(rk))
	if got, err := storedKey(rs.fd(), info); err != nil || got != rk {
		t.Errorf("RPC storedKey = %+v, %v; want %+v", got, err, rk)
	}
}

// TestHolderPidfdAndGate: a running server that holds a wait=yes socket
// gets a pidfd; one that has exited (reaped or not) gets none. A gate
// waiting for a holder opens when it exits, and passes it on meanwhile.
func TestHolderPidfdAndGate(t *testing.T) {
	p, err := os.StartProcess("/bin/sleep", []string{"sleep", "30"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	ch := &child{pid: p.Pid, done: make(chan struct{})}
	fd, ok := holderPidfd(ch)
	if !ok {
		p.Kill()
		p.Wait()
		t.Fatal("no pidfd for a running server")
	}
	g := newSockGate()
	g.waitFor([]int{fd})
	if g.isOpen() {
		t.Fatal("the gate opened while the holder runs")
	}
	pend := g.pending()
	if len(pend) != 1 {
		t.Fatalf("pending = %v, want the holder's pidfd", pend)
	}
	closeFDs(pend)
	p.Signal(os.Kill)
	// Exited, not yet reaped: no longer a holder.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, ok := holderPidfd(ch); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an exited server still counts as holding")
		}
	}
	select {
	case <-g.open:
	case <-time.After(5 * time.Second):
		t.Fatal("the gate did not open when the holder exited")
	}
	p.Wait()
	close(ch.done)
	if _, ok := holderPidfd(ch); ok {
		t.Error("a reaped server counts as holding")
	}
	if g.pending() != nil {
		t.Error("an open gate has pending holders")
	}
}

// fakeRpcbind counts the calls it answers (all with "yes").
func fakeRpcbind(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rpcbind.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var calls atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var hdr [4]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				body := make([]byte, binary.BigEndian.Uint32(hdr[:])&0x7fffffff)
				if _, err := io.ReadFull(c, body); err != nil || len(body) < 4 {
					return
				}
				calls.Add(1)
				// xid, REPLY, MSG_ACCEPTED, null verifier, SUCCESS, true.
				r := binary.BigEndian.AppendUint32(nil, 0x80000000|24)
				for _, w := range []uint32{binary.BigEndian.Uint32(body), 1, 0, 0, 0, 0, 1} {
					r = binary.BigEndian.AppendUint32(r, w)
				}
				binary.BigEndian.PutUint32(r, 0x80000000|uint32(len(r)-4))
				c.Write(r)
			}()
		}
	}()
	return path, &calls
}

// TestRPCMappingsTakenOverAsRegistered: a daemon that takes over an RPC
// service's socket with the predecessor's mappings makes no rpcbind call
// for them (a SET is an UNSET first, and a client asking meanwhile would
// not find the service); one it no longer wants it withdraws.
func TestRPCMappingsTakenOverAsRegistered(t *testing.T) {
	path, calls := fakeRpcbind(t)
	port := testnet.Ports(t, 1)[0]
	dir := t.TempDir()
	conf := fmt.Sprintf("defaults\n{\n\tcps = 0 0\n}\nservice rpcx\n{\n\ttype = RPC UNLISTED\n\trpc_number = 399876\n"+
		"\trpc_version = 1\n\tsocket_type = stream\n\tprotocol = tcp\n\twait = no\n\tuser = root\n\tserver = /bin/true\n"+
		"\tbind = 127.0.0.1\n}\nservice plain\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tprotocol = tcp\n\twait = no\n"+
		"\tuser = root\n\tserver = /bin/true\n\tbind = 127.0.0.1\n\tport = %d\n}\n", port)
	cpath := filepath.Join(dir, "xinetd.conf")
	if err := os.WriteFile(cpath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	o := &Options{ConfigFile: cpath, DontFork: true, FileLog: filepath.Join(dir, "daemon.log")}
	dl, err := newDaemonLog(o)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	d := newDaemon(o, dl)
	d.rpc.client.Sockets = []string{path}
	// The predecessor's socket for rpcx, and its mappings (one stale).
	svc := &service.Service{ID: "rpcx", SocketType: service.SockStream, Protocol: "tcp", Type: service.TypeRPC, Family: service.FamilyIPv4}
	k := keyFor(svc, netip.MustParseAddr("127.0.0.1"))
	sk, err := openSock(svc, k, 4)
	if err != nil {
		t.Fatal(err)
	}
	d.up.inherited = map[sockKey]*sock{k: sk}
	got := sockLocal(sk)
	stale := rpcbind.Mapping{Prog: 399876, Vers: 2, Netid: "tcp", Addr: got}
	d.rpc.inherit = map[rpcbind.Mapping]bool{{Prog: 399876, Vers: 1, Netid: "tcp", Addr: got}: true, stale: true}
	if n := d.startServing(loadWith(o, d.db)); n != 2 {
		t.Fatalf("%d services", n)
	}
	defer d.shutdown(false)
	if sockLocal(d.byID["rpcx"].socks[0].run.s) != got {
		t.Fatal("the service did not take the predecessor's socket")
	}
	// A round of the loop is done once a pause is answered after it.
	d.rpc.pause()
	d.rpc.resume(false)
	have, _ := d.rpc.pause()
	d.rpc.resume(false)
	if n := calls.Load(); n != 1 {
		t.Errorf("%d rpcbind calls; want 1 (withdrawing version 2)", n)
	}
	if len(have) != 1 || have[stale] {
		t.Errorf("mappings afterwards: %v", have)
	}
}

// BenchmarkSessionCounting is what every accepted connection now pays so
// that an upgrade can wait for the sessions it serves: a count up and
// down, from every core at once.
func BenchmarkSessionCounting(b *testing.B) {
	var u upgradeState
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u.sessionStart()
			u.sessionEnd()
		}
	})
}
