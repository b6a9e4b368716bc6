package daemon

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAcceptRaw: the raw accept4 gives the peer's address exactly as the
// client sees its own, for IPv4 and IPv6, and EAGAIN when nothing waits.
func TestAcceptRaw(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "::1"} {
		a := netip.MustParseAddr(addr)
		fam, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Addr: a.As16()})
		if a.Is4() {
			fam, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: a.As4()}
		}
		fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Skipf("%s: %v", addr, err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, sa); err != nil {
			t.Skipf("%s: %v", addr, err)
		}
		if err := unix.Listen(fd, 8); err != nil {
			t.Fatal(err)
		}
		if _, _, err := acceptRaw(fd, false); !errors.Is(err, unix.EAGAIN) {
			t.Errorf("%s: empty queue: %v, want EAGAIN", addr, err)
		}
		lsa, _ := unix.Getsockname(fd)
		c, err := net.Dial("tcp", sockaddrToAddrPort(lsa).String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var nfd int
		var remote netip.AddrPort
		for deadline := time.Now().Add(5 * time.Second); ; {
			nfd, remote, err = acceptRaw(fd, false)
			if err == nil || !errors.Is(err, unix.EAGAIN) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if want := c.LocalAddr().(*net.TCPAddr).AddrPort(); remote != want {
			t.Errorf("%s: remote %v, want %v", addr, remote, want)
		}
		if flags, _ := unix.FcntlInt(uintptr(nfd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("%s: accepted descriptor is not close-on-exec", addr)
		}
		if n, err := writeRaw(nfd, []byte("hi")); n != 2 || err != nil {
			t.Errorf("writeRaw = %d, %v", n, err)
		}
		if err := closeRaw(nfd); err != nil {
			t.Errorf("closeRaw: %v", err)
		}
		buf := make([]byte, 8)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _ := c.Read(buf); string(buf[:n]) != "hi" {
			t.Errorf("client read %q", buf[:n])
		}
	}
}

// TestDatagramRaw: recvfromRaw gives the sender's address as the sender
// sees its own, and sendtoRaw answers it, for IPv4 and IPv6.
func TestDatagramRaw(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "::1"} {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(addr, "0"))
		if err != nil {
			t.Skipf("%s: %v", addr, err)
		}
		defer pc.Close()
		rc, err := pc.(*net.UDPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		u := &dgramRaw{rc: rc}
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		c, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, from, err := u.recv(buf)
		if err != nil || string(buf[:n]) != "ping" {
			t.Fatalf("%s: recv %q %v", addr, buf[:n], err)
		}
		if want := c.LocalAddr().(*net.UDPAddr).AddrPort(); from != want {
			t.Errorf("%s: from %v, want %v", addr, from, want)
		}
		if err := u.send([]byte("pong"), from); err != nil {
			t.Fatalf("%s: send: %v", addr, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "pong" {
			t.Errorf("%s: client got %q %v", addr, buf[:n], err)
		}
		// A deadline in the past (what halt sets) ends a waiting recv.
		pc.SetReadDeadline(time.Unix(1, 0))
		if _, _, err := u.recv(buf); err == nil {
			t.Errorf("%s: recv returned without data or error past its deadline", addr)
		}
	}
}
