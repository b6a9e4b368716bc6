package proxyproto

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

var (
	errClosed   = &Error{Msg: "connection closed before a complete header", Truncated: true}
	errDgram    = bad("the header describes a datagram connection, on a stream socket")
	errConsumed = bad("the header could not be consumed whole")
	errTooLong  = bad("no complete header within 536 bytes")
)

// Take takes one header off the connected stream socket fd if all of it
// has arrived, without waiting: it peeks at what is there and consumes
// exactly the header, leaving everything after it for whoever reads
// next. It returns ErrIncomplete (nothing consumed) when more bytes must
// come first; an *Error with Truncated set when the peer has closed or
// reset the connection before a complete header; any other *Error for a
// header that is not valid. buf is scratch space.
func Take(fd int, buf *[MaxLen]byte, accept Versions) (Header, error) {
	n, err := recvSome(fd, buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil {
		return Header{}, err
	}
	h, perr := Parse(buf[:n], accept)
	if perr == ErrIncomplete {
		// A peek cannot tell "no more yet" from "no more ever" while
		// bytes are queued: ask whether the peer has shut down.
		if peerClosed(fd) {
			return Header{}, errClosed
		}
		return Header{}, ErrIncomplete
	}
	if perr != nil {
		return Header{}, perr
	}
	if h.Transport == TransportDgram {
		return Header{}, errDgram
	}
	m, err := recvRaw(fd, buf[:h.Len], unix.MSG_DONTWAIT)
	if err != nil || m != h.Len {
		return Header{}, errConsumed
	}
	return h, nil
}

// Read is Take waiting in the runtime's poller until a whole header has
// arrived, it is known to be invalid, or rc's read deadline passes (the
// error is then the poller's, os.ErrDeadlineExceeded). The caller sets
// the deadline; a sender that trickles one byte at a time is bounded by
// it, not by each byte.
func Read(rc syscall.RawConn, buf *[MaxLen]byte, accept Versions) (Header, error) {
	var (
		h    Header
		herr error
	)
	err := rc.Read(func(fd uintptr) bool {
		h, herr = Take(int(fd), buf, accept)
		return herr != ErrIncomplete
	})
	if err != nil {
		return Header{}, err
	}
	return h, herr
}

// TakeBuffered is Take for a reader that serves the connection itself
// (a builtin service in the daemon, never one that hands the descriptor
// on): instead of peeking and then reading exactly the header, it reads
// whatever has arrived into buf[*n:], adds it to *n, and looks for a
// header in buf[:*n]. One system call where Take makes two. On success,
// buf[h.Len:*n] are the client's first bytes, read past the header: the
// caller must deliver them before anything else from the socket. On
// ErrIncomplete the bytes stay counted in *n for the next call.
//
// ErrIncomplete is returned only after the socket said it has nothing
// more (EAGAIN), so that a caller waiting for readiness in the runtime's
// edge-triggered poller is woken by the next bytes or the peer's close,
// never left waiting for an event that has already passed.
func TakeBuffered(fd int, buf *[MaxLen]byte, n *int, accept Versions) (Header, error) {
	for {
		if *n == len(buf) {
			// Parse decides within MaxLen bytes; this is only a
			// safeguard against waiting for nothing.
			return Header{}, errTooLong
		}
		m, err := recvSome(fd, buf[*n:], unix.MSG_DONTWAIT)
		if err != nil {
			return Header{}, err
		}
		*n += m
		h, err := Parse(buf[:*n], accept)
		switch {
		case err == ErrIncomplete:
			continue // read again: more, EAGAIN or the end
		case err != nil:
			return Header{}, err
		case h.Transport == TransportDgram:
			return Header{}, errDgram
		}
		return h, nil
	}
}

// ReadBuffered is TakeBuffered waiting in the runtime's poller, as Read
// is Take.
func ReadBuffered(rc syscall.RawConn, buf *[MaxLen]byte, n *int, accept Versions) (Header, error) {
	var (
		h    Header
		herr error
	)
	err := rc.Read(func(fd uintptr) bool {
		h, herr = TakeBuffered(int(fd), buf, n, accept)
		return herr != ErrIncomplete
	})
	if err != nil {
		return Header{}, err
	}
	return h, herr
}

// recvSome is recvRaw with the answers a header reader gives: nothing
// there yet is ErrIncomplete, the peer's end or an error a truncated
// header.
func recvSome(fd int, p []byte, flags int) (int, error) {
	n, err := recvRaw(fd, p, flags)
	switch {
	case err == unix.EAGAIN:
		return 0, ErrIncomplete
	case err != nil:
		return 0, &Error{Msg: "receive: " + err.Error(), Truncated: true}
	case n == 0:
		return 0, errClosed
	}
	return n, nil
}

// recvRaw is recvfrom without a source address. It is only ever called
// with MSG_DONTWAIT, so it cannot block and needs no scheduler hand-off.
func recvRaw(fd int, p []byte, flags int) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
			uintptr(flags), 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// peerClosed reports whether the peer has shut down its sending side or
// the connection has failed.
func peerClosed(fd int) bool {
	pfd := unix.PollFd{Fd: int32(fd), Events: unix.POLLRDHUP}
	r, _, e := unix.RawSyscall(unix.SYS_POLL, uintptr(unsafe.Pointer(&pfd)), 1, 0)
	return e == 0 && r == 1 && pfd.Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}
