package daemon

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// System calls on the raw accept path that cannot block (accept4 on a
// non-blocking listener, epoll_wait with no timeout, a line written to a
// fresh connection, close) are made raw. Go's ordinary Syscall tells the
// scheduler the thread may block, which on a daemon that goes idle
// between connections also wakes the runtime's monitor thread every
// time: profiled on daytime, those hand-offs cost a sixth of the daemon's
// CPU, more than the calls themselves.

// acceptConn is the acceptor's accept: acceptRaw, but for tests that act
// between a drain's check and its accept.
var acceptConn = acceptRaw

// acceptRaw is accept4(fd, SOCK_CLOEXEC) for a non-blocking listener;
// with nonblock the connection is non-blocking too (SOCK_NONBLOCK), as
// the redirect relay wants it, which spares it two fcntl calls.
func acceptRaw(fd int, nonblock bool) (int, netip.AddrPort, error) {
	var rsa unix.RawSockaddrAny
	l := uint32(unix.SizeofSockaddrAny)
	flags := uintptr(unix.SOCK_CLOEXEC)
	if nonblock {
		flags |= unix.SOCK_NONBLOCK
	}
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)),
			uintptr(unsafe.Pointer(&l)), flags, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, netip.AddrPort{}, e
		}
		return int(r), rawToAddrPort(&rsa), nil
	}
}

// rawToAddrPort reads an AF_INET or AF_INET6 address as the kernel wrote
// it (port in network byte order); anything else is the zero AddrPort.
func rawToAddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), port)
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.Port))[:])
		a := netip.AddrFrom16(p.Addr)
		if p.Scope_id != 0 {
			a = a.WithZone(zoneName(p.Scope_id))
		}
		return netip.AddrPortFrom(a, port)
	}
	return netip.AddrPort{}
}

// zoneName names a link-local address's interface, as the net package
// does; only link-local peers have one, so the lookup is rare.
func zoneName(index uint32) string {
	if ifi, err := net.InterfaceByIndex(int(index)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(index), 10)
}

// zoneIndex is zoneName's inverse; "" is no zone.
func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n)
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// epollPoll is epoll_wait with a zero timeout.
func epollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
			uintptr(len(events)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// writeRaw writes to a descriptor whose send buffer is known to take b.
func writeRaw(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// closeRaw closes a socket without SO_LINGER, which never waits.
func closeRaw(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// recvfromRaw is recvfrom on a non-blocking datagram socket.
func recvfromRaw(fd int, buf []byte) (int, netip.AddrPort, error) {
	var rsa unix.RawSockaddrAny
	l := uint32(unix.SizeofSockaddrAny)
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
			0, uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&l)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, netip.AddrPort{}, e
		}
		return int(r), rawToAddrPort(&rsa), nil
	}
}

// sendtoRaw is sendto on a non-blocking datagram socket; to is in the
// socket's family (as recvfromRaw gave it).
func sendtoRaw(fd int, b []byte, to netip.AddrPort) error {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	var (
		sa4 unix.RawSockaddrInet4
		sa6 unix.RawSockaddrInet6
		sa  unsafe.Pointer
		sl  uintptr
	)
	port := to.Port()
	if a := to.Addr(); a.Is4() {
		sa4.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], port)
		sa4.Addr = a.As4()
		sa, sl = unsafe.Pointer(&sa4), unix.SizeofSockaddrInet4
	} else {
		sa6.Family = unix.AF_INET6
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa6.Port))[:], port)
		sa6.Addr = a.As16()
		sa6.Scope_id = zoneIndex(a.Zone())
		sa, sl = unsafe.Pointer(&sa6), unix.SizeofSockaddrInet6
	}
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(p), uintptr(len(b)), 0, uintptr(sa), sl)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}
