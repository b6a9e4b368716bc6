package daemon

import (
	"encoding/binary"
	"net/netip"
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

// acceptRaw is accept4(fd, SOCK_CLOEXEC) for a non-blocking listener.
func acceptRaw(fd int) (int, netip.AddrPort, error) {
	var rsa unix.RawSockaddrAny
	l := uint32(unix.SizeofSockaddrAny)
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)),
			uintptr(unsafe.Pointer(&l)), unix.SOCK_CLOEXEC, 0, 0)
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
		return netip.AddrPortFrom(netip.AddrFrom16(p.Addr), port)
	}
	return netip.AddrPort{}
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
