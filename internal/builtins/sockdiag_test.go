package builtins

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
	"github.com/gxinetd/gxinetd/internal/testnet"
)

func addrPorts(t testing.TB, c net.Conn) (local, remote netip.AddrPort) {
	t.Helper()
	return c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
}

// heldAddr is host with a port from outside the kernel's ephemeral range,
// held for the test (internal/testnet): the lookups name the port, and a
// port from that range could be another process's by the time they ask.
func heldAddr(t testing.TB, host string) string {
	return testnet.Addr(host, testnet.Ports(t, 1)[0])
}

// TestSockDiagLookup asks the kernel about real loopback connections,
// IPv4, IPv6 and IPv4 through a dual-stack listener, from both ends, and
// checks the answer against /proc/net.
func TestSockDiagLookup(t *testing.T) {
	cases := []struct{ name, network, listen, dial string }{
		{"ipv4", "tcp4", "127.0.0.1", ""},
		{"ipv6", "tcp6", "::1", ""},
		{"dual-stack", "tcp", "::", "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen(tc.network, heldAddr(t, tc.listen))
			if err != nil {
				t.Skipf("listen %s: %v", tc.listen, err)
			}
			defer ln.Close()
			addr := ln.Addr().String()
			if tc.dial != "" {
				addr = net.JoinHostPort(tc.dial, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
			}
			client, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			for _, c := range []net.Conn{server, client} {
				l, r := addrPorts(t, c)
				got, err := lookupSockDiag(unmapAP(l), unmapAP(r))
				if err != nil {
					t.Fatalf("lookupSockDiag(%v, %v): %v", l, r, err)
				}
				want, err := LookupConnUID(DefaultProcNet, l, r)
				if err != nil {
					t.Fatalf("LookupConnUID(%v, %v): %v", l, r, err)
				}
				if got != want || got != os.Geteuid() {
					t.Errorf("%v -> %v: sock_diag says uid %d, /proc/net %d, we are %d", l, r, got, want, os.Geteuid())
				}
			}
		})
	}
}

// TestSockDiagOwner checks that the uid is the socket's owner, not ours:
// a socket made with another file-system uid (root only).
func TestSockDiagOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a socket owned by another uid (CI runs as root)")
	}
	ln, err := net.Listen("tcp4", heldAddr(t, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const nobody = 65534
	fd := func() int {
		// The socket's owner is the creating thread's fsuid.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		unix.Setfsuid(nobody)
		defer unix.Setfsuid(0)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}()
	f := os.NewFile(uintptr(fd), "client")
	defer f.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	// The client side is nobody's, the accepted side ours.
	l, r := addrPorts(t, server)
	if uid, err := lookupSockDiag(r, l); err != nil || uid != nobody {
		t.Errorf("client side: uid %d, %v; want %d", uid, err, nobody)
	}
	if uid, err := lookupSockDiag(l, r); err != nil || uid != 0 {
		t.Errorf("server side: uid %d, %v; want 0", uid, err)
	}
}

// TestSockDiagNoConn: a pair nobody has open is not found, even though a
// listener holds the local port (the kernel's lookup falls back to it),
// and neither is a connection in TIME_WAIT.
func TestSockDiagNoConn(t *testing.T) {
	ln, err := net.Listen("tcp4", heldAddr(t, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lap := ln.Addr().(*net.TCPAddr).AddrPort()
	if uid, err := lookupSockDiag(lap, netip.MustParseAddrPort("127.0.0.1:1")); !errors.Is(err, ErrNoConn) {
		t.Errorf("listener only: uid %d, %v; want ErrNoConn", uid, err)
	}
	if uid, err := lookupSockDiag(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")); !errors.Is(err, ErrNoConn) {
		t.Errorf("nothing: uid %d, %v; want ErrNoConn", uid, err)
	}
	if uid, err := lookupSockDiag(lap, netip.MustParseAddrPort("[::1]:2")); !errors.Is(err, ErrNoConn) {
		t.Errorf("mixed families: uid %d, %v; want ErrNoConn", uid, err)
	}

	// TIME_WAIT: the side that closes first keeps the four-tuple.
	client, err := net.Dial("tcp4", lap.String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	l, r := addrPorts(t, server)
	server.Close()
	buf := make([]byte, 1)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	client.Read(buf) // EOF: the server's FIN arrived
	client.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		uid, err := lookupSockDiag(l, r)
		if errors.Is(err, ErrNoConn) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("closed connection: uid %d, %v; want ErrNoConn", uid, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAuthWithoutProcNet: auth -r answers from the kernel without reading
// /proc/net (on the old code, which scanned it, hiding it made every
// query fail).
func TestAuthWithoutProcNet(t *testing.T) {
	me, ok := sysdb.System.LookupUID(os.Geteuid())
	if !ok {
		t.Skipf("uid %d is not in /etc/passwd", os.Geteuid())
	}
	old := defaultProcNet
	defaultProcNet = t.TempDir()
	defer func() { defaultProcNet = old }()
	svcSide, _ := tcpPair(t, "tcp4", heldAddr(t, "127.0.0.1"))
	l, r := addrPorts(t, svcSide)
	server, client := tcpPair(t, "tcp4", heldAddr(t, "127.0.0.1"))
	done := serve(t, context.Background(), mustStream(t, "auth"), server,
		&service.Service{Name: "auth", ServerArgs: []string{"-r"}}, &Env{})
	fmt.Fprintf(client, "%d , %d\r\n", l.Port(), r.Port())
	got := string(readAll(t, client, 5*time.Second))
	if want := fmt.Sprintf("%d , %d : USERID : UNIX : %s\r\n", l.Port(), r.Port(), me.Name); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	_ = wait(t, done, 5*time.Second)
}

// TestAuthFallsBackToProcNet: without sock_diag, the lookup reads
// /proc/net as before.
func TestAuthFallsBackToProcNet(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	sockDiagBroken.Store(true)
	defer sockDiagBroken.Store(false)
	server, _ := tcpPair(t, "tcp4", heldAddr(t, "127.0.0.1"))
	l, r := addrPorts(t, server)
	if _, err := lookupSockDiag(l, r); !errors.Is(err, errNoSockDiag) {
		t.Fatalf("lookupSockDiag after breaking: %v", err)
	}
	uid, err := (&Env{}).connUID(l, r)
	if err != nil || uid != os.Geteuid() {
		t.Fatalf("connUID = %d, %v; want %d", uid, err, os.Geteuid())
	}
}

// diagMsg builds one netlink message as the kernel would send it.
func diagMsg(typ uint16, seq uint32, body []byte) []byte {
	ne := binary.NativeEndian
	b := ne.AppendUint32(nil, uint32(unix.SizeofNlMsghdr+len(body)))
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, 0)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0)
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func diagBody(state byte, uid uint32) []byte {
	b := make([]byte, diagMsgLen)
	b[0], b[1] = unix.AF_INET, state
	binary.NativeEndian.PutUint32(b[diagUIDOff:], uid)
	return b
}

func diagErr(errno unix.Errno) []byte {
	return binary.NativeEndian.AppendUint32(make([]byte, 0, 20), uint32(-int32(errno)))
}

func TestParseDiagReply(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		uid  int
		err  error // nil: success; else errors.Is
	}{
		{"established", diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagBody(1, 1000)), 1000, nil},
		{"close-wait", diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagBody(8, 7)), 7, nil},
		{"listener", diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagBody(tcpListen, 0)), -1, ErrNoConn},
		{"time-wait", diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagBody(tcpTimeWait, 0)), -1, ErrNoConn},
		{"syn-recv", diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagBody(tcpNewSynRecv, 0)), -1, ErrNoConn},
		{"enoent", diagMsg(nlmsgError, 1, diagErr(unix.ENOENT)), -1, ErrNoConn},
		{"einval", diagMsg(nlmsgError, 1, diagErr(unix.EINVAL)), -1, errDiagUnsupported},
		{"eperm", diagMsg(nlmsgError, 1, diagErr(unix.EPERM)), -1, unix.EPERM},
		{"done", diagMsg(nlmsgDone, 1, nil), -1, ErrNoConn},
		{"other seq first", append(diagMsg(unix.SOCK_DIAG_BY_FAMILY, 9, diagBody(1, 5)),
			diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagBody(1, 6))...), 6, nil},
		{"ack then answer", append(diagMsg(nlmsgError, 1, diagErr(0)),
			diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagBody(1, 8))...), 8, nil},
	}
	for _, tc := range cases {
		uid, err := parseDiagReply(tc.in, 1)
		if tc.err == nil && (err != nil || uid != tc.uid) || tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("%s: got %d, %v; want %d, %v", tc.name, uid, err, tc.uid, tc.err)
		}
	}
	bad := [][]byte{
		nil,
		{1, 2, 3},
		diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagBody(1, 1))[:40],             // length beyond the data
		diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, []byte{2, 1}),                    // short body
		diagMsg(nlmsgError, 1, []byte{1}),                                     // short error
		diagMsg(99, 1, nil),                                                   // unknown type
		binary.NativeEndian.AppendUint32(make([]byte, 0, 16), 3),              // length below the header
		append(binary.NativeEndian.AppendUint32(nil, 3), make([]byte, 12)...), // ditto, full header
		diagMsg(unix.SOCK_DIAG_BY_FAMILY, 2, diagBody(1, 1)),                  // only another seq
	}
	for i, b := range bad {
		if uid, err := parseDiagReply(b, 1); err == nil || errors.Is(err, ErrNoConn) {
			t.Errorf("bad reply %d (%x): got %d, %v; want an error", i, b, uid, err)
		}
	}
}

func TestDiagRequestLayout(t *testing.T) {
	local := netip.MustParseAddrPort("127.0.0.1:113")
	remote := netip.MustParseAddrPort("10.1.2.3:40000")
	b := appendDiagRequest(nil, 7, local, remote, 0)
	if len(b) != unix.SizeofNlMsghdr+diagReqLen || binary.NativeEndian.Uint32(b) != uint32(len(b)) {
		t.Fatalf("length %d, header says %d", len(b), binary.NativeEndian.Uint32(b))
	}
	id := b[unix.SizeofNlMsghdr+8:]
	if binary.BigEndian.Uint16(id[0:]) != 113 || binary.BigEndian.Uint16(id[2:]) != 40000 {
		t.Errorf("ports %x", id[:4])
	}
	if netip.AddrFrom4([4]byte(id[4:8])) != local.Addr() || netip.AddrFrom4([4]byte(id[20:24])) != remote.Addr() {
		t.Errorf("addresses %x", id[4:36])
	}
	if b[unix.SizeofNlMsghdr] != unix.AF_INET || b[unix.SizeofNlMsghdr+1] != unix.IPPROTO_TCP {
		t.Errorf("family/protocol %x", b[unix.SizeofNlMsghdr:unix.SizeofNlMsghdr+2])
	}
}

func FuzzDiagReply(f *testing.F) {
	f.Add(diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagBody(1, 1000)))
	f.Add(diagMsg(nlmsgError, 1, diagErr(unix.ENOENT)))
	f.Add(append(diagMsg(nlmsgError, 1, diagErr(0)), diagMsg(nlmsgDone, 1, nil)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		uid, err := parseDiagReply(b, 1)
		if (err == nil) != (uid >= 0) {
			t.Fatalf("uid %d with error %v", uid, err)
		}
	})
}

// BenchmarkAuthLookup measures what one auth -r query costs the daemon
// on a host with many TCP connections: the /proc/net scan auth used to
// make against the sock_diag lookup it makes now.
func BenchmarkAuthLookup(b *testing.B) {
	for _, conns := range []int{10, 1000, 5000} {
		pairs := openPairs(b, conns)
		l, r := addrPorts(b, pairs[len(pairs)-1])
		b.Run(fmt.Sprintf("procnet/conns=%d", conns), func(b *testing.B) {
			cpu := processCPU()
			for b.Loop() {
				if _, err := LookupConnUID(DefaultProcNet, l, r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
		b.Run(fmt.Sprintf("sockdiag/conns=%d", conns), func(b *testing.B) {
			cpu := processCPU()
			for b.Loop() {
				if _, err := lookupSockDiag(l, r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
		for _, c := range pairs {
			c.Close()
		}
	}
}

// openPairs opens n loopback connections and returns their accepted
// ends (the dialled ends are closed at cleanup).
func openPairs(b *testing.B, n int) []net.Conn {
	ln, err := net.Listen("tcp4", heldAddr(b, "127.0.0.1"))
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var out []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		b.Cleanup(func() { c.Close() })
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// processCPU is the CPU time (user and system, kernel work for our
// system calls included) the test process has used, in nanoseconds.
func processCPU() int64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
