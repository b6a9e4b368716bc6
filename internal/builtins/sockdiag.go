package builtins

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// auth -r used to scan all of /proc/net/tcp and tcp6 for every query:
// the kernel formats every socket of the host as text and we parse it
// back, about 9 ms of CPU per query on a host with a few thousand
// connections, which a client can ask for as often as cps allows. The
// kernel's sock_diag netlink interface answers an exact lookup instead:
// one request naming the four-tuple, one reply, a hash-table lookup in
// the kernel, independent of how many sockets the host has.

// Layout of the kernel's inet_diag structures (linux/inet_diag.h); the
// x/sys module does not define them.
const (
	diagSockIDLen = 48 // inet_diag_sockid
	diagReqLen    = 8 + diagSockIDLen
	diagMsgLen    = 4 + diagSockIDLen + 20 // inet_diag_msg
	diagUIDOff    = 4 + diagSockIDLen + 12
	// Reply types of the netlink header.
	nlmsgError = 0x2
	nlmsgDone  = 0x3
	// tcpNewSynRecv is a request socket: a handshake not yet accepted.
	tcpNewSynRecv = 12
)

// errNoSockDiag means the kernel gave no usable sock_diag answer at all
// (no netlink in a sandbox, a module missing): the caller falls back to
// reading /proc/net.
var errNoSockDiag = errors.New("sock_diag not available")

// sockDiagBroken is set once sock_diag turned out unusable, so that the
// fallback does not pay for a failing socket(2) on every query.
var sockDiagBroken atomic.Bool

// lookupSockDiag asks the kernel for the owner of the TCP connection
// between local and remote (both already unmapped). It returns ErrNoConn
// when no such connection exists (or only a listener, a TIME_WAIT entry
// or a half-open handshake does), and an error wrapping errNoSockDiag
// when the interface cannot be used.
func lookupSockDiag(local, remote netip.AddrPort) (int, error) {
	if sockDiagBroken.Load() {
		return -1, errNoSockDiag
	}
	if local.Addr().Is4() != remote.Addr().Is4() {
		return -1, ErrNoConn
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) || errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM) {
			return -1, fmt.Errorf("builtins: auth: sock_diag: %w", os.NewSyscallError("socket", err))
		}
		sockDiagBroken.Store(true)
		return -1, fmt.Errorf("%w: %w", errNoSockDiag, os.NewSyscallError("socket", err))
	}
	defer unix.Close(fd)
	// An exact lookup is answered before sendto returns; the timeout only
	// guards against a kernel that never answers.
	tv := unix.NsecToTimeval(int64(time.Second))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	const seq = 1
	req := appendDiagRequest(make([]byte, 0, unix.SizeofNlMsghdr+diagReqLen), seq, local, remote, zoneIndex(local.Addr()))
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		sockDiagBroken.Store(true)
		return -1, fmt.Errorf("%w: %w", errNoSockDiag, os.NewSyscallError("sendto", err))
	}
	var buf [1024]byte
	for {
		n, _, err := unix.Recvfrom(fd, buf[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("builtins: auth: sock_diag: %w", os.NewSyscallError("recvfrom", err))
		}
		uid, err := parseDiagReply(buf[:n], seq)
		if errors.Is(err, errDiagUnsupported) {
			sockDiagBroken.Store(true)
			return -1, fmt.Errorf("%w: %w", errNoSockDiag, err)
		}
		return uid, err
	}
}

// appendDiagRequest appends a SOCK_DIAG_BY_FAMILY request for the one TCP
// socket with the given four-tuple: no NLM_F_DUMP, so the kernel looks it
// up by hash instead of walking every socket.
func appendDiagRequest(b []byte, seq uint32, local, remote netip.AddrPort, ifindex uint32) []byte {
	ne := binary.NativeEndian
	family := byte(unix.AF_INET6)
	if local.Addr().Is4() {
		family = unix.AF_INET
	}
	b = ne.AppendUint32(b, uint32(unix.SizeofNlMsghdr+diagReqLen))
	b = ne.AppendUint16(b, unix.SOCK_DIAG_BY_FAMILY)
	b = ne.AppendUint16(b, unix.NLM_F_REQUEST)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0) // pid: the kernel
	// inet_diag_req_v2: family, protocol, extensions, pad, states.
	b = append(b, family, unix.IPPROTO_TCP, 0, 0)
	b = ne.AppendUint32(b, 0xffffffff)
	return appendSockID(b, local, remote, ifindex)
}

// appendSockID appends an inet_diag_sockid: ports and addresses in
// network order, the interface, and "no cookie".
func appendSockID(b []byte, local, remote netip.AddrPort, ifindex uint32) []byte {
	b = binary.BigEndian.AppendUint16(b, local.Port())
	b = binary.BigEndian.AppendUint16(b, remote.Port())
	for _, a := range []netip.Addr{local.Addr(), remote.Addr()} {
		var w [16]byte
		if a.Is4() {
			v4 := a.As4()
			copy(w[:], v4[:])
		} else {
			w = a.As16()
		}
		b = append(b, w[:]...)
	}
	b = binary.NativeEndian.AppendUint32(b, ifindex)
	return append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
}

// errDiagUnsupported: the kernel has no handler for the request (no
// inet_diag, or no TCP in it).
var errDiagUnsupported = errors.New("sock_diag: TCP lookups not supported by the kernel")

// parseDiagReply reads the kernel's answer to one exact lookup: an
// inet_diag_msg, or an error message. It is the one place that reads
// bytes from the netlink socket, and it checks every length it uses.
func parseDiagReply(b []byte, seq uint32) (int, error) {
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofNlMsghdr {
		l := ne.Uint32(b[0:4])
		typ := ne.Uint16(b[4:6])
		mseq := ne.Uint32(b[8:12])
		if l < unix.SizeofNlMsghdr || uint64(l) > uint64(len(b)) {
			return -1, fmt.Errorf("builtins: auth: sock_diag: malformed reply (length %d of %d)", l, len(b))
		}
		body := b[unix.SizeofNlMsghdr:l]
		b = b[min(len(b), int(nlAlign(l))):]
		if mseq != seq {
			continue // not ours
		}
		switch typ {
		case nlmsgError:
			if len(body) < 4 {
				return -1, errors.New("builtins: auth: sock_diag: short error reply")
			}
			errno := -int32(ne.Uint32(body[0:4]))
			switch unix.Errno(errno) {
			case 0:
				continue // an acknowledgement
			case unix.ENOENT:
				return -1, ErrNoConn
			case unix.EINVAL, unix.EOPNOTSUPP, unix.ENOSYS, unix.EPROTONOSUPPORT, unix.EAFNOSUPPORT:
				return -1, fmt.Errorf("%w (%w)", errDiagUnsupported, unix.Errno(errno))
			}
			return -1, fmt.Errorf("builtins: auth: sock_diag: %w", unix.Errno(errno))
		case nlmsgDone:
			return -1, ErrNoConn
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(body) < diagMsgLen {
				return -1, fmt.Errorf("builtins: auth: sock_diag: short reply (%d bytes)", len(body))
			}
			// The kernel falls back to a listener on the local port when
			// no connection matches; a TIME_WAIT or half-open socket
			// reports uid 0 whoever owns the service: none of them is
			// the connection asked about.
			switch body[1] {
			case tcpListen, tcpTimeWait, tcpNewSynRecv:
				return -1, ErrNoConn
			}
			return int(ne.Uint32(body[diagUIDOff : diagUIDOff+4])), nil
		default:
			return -1, fmt.Errorf("builtins: auth: sock_diag: unexpected reply type %d", typ)
		}
	}
	return -1, errors.New("builtins: auth: sock_diag: no reply")
}

func nlAlign(n uint32) uint64 { return (uint64(n) + 3) &^ 3 }

// zoneIndex is the interface index of a link-local address's zone: the
// kernel matches a connection bound to an interface only when asked
// with that interface.
func zoneIndex(a netip.Addr) uint32 {
	z := a.Zone()
	if z == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(z); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}
