package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
)

// DefaultBacklog is the listen(2) backlog when neither the service nor the
// command line says otherwise; the kernel caps it at somaxconn.
const DefaultBacklog = 1024

// sockKey identifies a listening socket independently of the service that
// uses it, so that a reload can hand an unchanged socket to the new
// configuration without closing it.
type sockKey struct {
	sotype int // unix.SOCK_STREAM, SOCK_DGRAM, ...
	family int // unix.AF_INET, AF_INET6, AF_UNIX
	addr   netip.Addr
	port   int
	v6only int // -1 when not applicable
	path   string
	// rpc is the (lower-case) id of the RPC service that owns a socket on
	// a kernel-chosen port: two RPC services both ask for port 0, and a
	// reload must give each its own socket back, whose port rpcbind has.
	rpc string
}

func (k sockKey) String() string {
	if k.family == unix.AF_UNIX {
		return "unix:" + k.path
	}
	proto := "tcp"
	if k.sotype == unix.SOCK_DGRAM {
		proto = "udp"
	}
	a := "*"
	if k.addr.IsValid() {
		a = k.addr.String()
	} else if k.family == unix.AF_INET6 {
		a = "[::]"
	}
	if k.addr.Is6() {
		a = "[" + a + "]"
	}
	return proto + "/" + a + ":" + strconv.Itoa(k.port)
}

func sotypeOf(s *service.Service) int {
	switch s.SocketType {
	case service.SockDgram:
		return unix.SOCK_DGRAM
	case service.SockRaw:
		return unix.SOCK_RAW
	case service.SockSeqPacket:
		return unix.SOCK_SEQPACKET
	case service.SockRDM:
		return unix.SOCK_RDM
	}
	return unix.SOCK_STREAM
}

// keyFor computes the socket a service wants when bound to addr (zero
// addr = every address).
func keyFor(s *service.Service, addr netip.Addr) sockKey {
	k := sockKey{sotype: sotypeOf(s), port: s.Port, v6only: -1}
	if s.Type.Has(service.TypeRPC) && s.Port == 0 {
		k.rpc = strings.ToLower(s.ID)
	}
	if s.Family == service.FamilyUnix {
		k.family = unix.AF_UNIX
		k.path = s.UnixPath
		return k
	}
	switch {
	case addr.Is4():
		k.family = unix.AF_INET
		k.addr = addr
	case addr.IsValid():
		k.family = unix.AF_INET6
		k.addr = addr
	case s.Family == service.FamilyIPv4:
		k.family = unix.AF_INET
	default:
		k.family = unix.AF_INET6
	}
	if k.family == unix.AF_INET6 {
		// gxinetd follows the v6only value; xinetd sets V6ONLY whenever
		// the line exists, even for "v6only = no".
		k.v6only = 0
		if s.V6Only != nil && *s.V6Only {
			k.v6only = 1
		}
	}
	return k
}

// sock is one open listening (stream) or bound (datagram) socket.
type sock struct {
	key sockKey
	pc  net.PacketConn // datagram
	// fdNum is the descriptor. file wraps it for the runtime's poller,
	// readiness waits and wait=yes servers, made on first use: listeners
	// on the raw accept path need neither, and 1,000 of them otherwise
	// cost 1,000 poller registrations at start-up.
	fdNum  int
	fileMu sync.Mutex
	file   *os.File
	// ln is the net package's view of a stream socket, made on first use:
	// services served by the raw accept path never need it, and it costs a
	// descriptor and a poller registration per socket (1,000 services, 1,000
	// descriptors).
	lnMu sync.Mutex
	ln   net.Listener
	// activated marks a socket that systemd passed in: it is never closed
	// on reload (systemd owns its lifetime).
	activated bool
	// holder is the wait=yes server that has this socket on its stdio, or
	// nil. It outlives the serving goroutine when a reload halts that
	// goroutine, so the next one waits for the server instead of starting
	// a second one on the same socket.
	holder *child
	// owner is told when the socket closes (fdstore.go); gate, when set,
	// holds back serving a socket a predecessor's server may still hold
	// (handover.go).
	owner *fdStore
	gate  *sockGate
	// fresh marks a socket openSock made (non-blocking) that nothing has
	// had since: the acceptor takes it without asking its flags. Anything
	// that takes its *os.File (a wait=yes server's stdio) clears it.
	fresh atomic.Bool
	// deferAccept is the socket's TCP_DEFER_ACCEPT in seconds, known
	// once deferKnown (setDeferAccept); only the daemon's lock holder
	// touches them.
	deferAccept int
	deferKnown  bool
}

// osFile returns the socket's *os.File, making it on first use.
func (s *sock) osFile() *os.File {
	s.fresh.Store(false)
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	if s.file == nil {
		s.file = os.NewFile(uintptr(s.fdNum), s.key.String())
	}
	return s.file
}

// existingFile returns the *os.File if one was made.
func (s *sock) existingFile() *os.File {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	return s.file
}

// stream reports whether the socket is a listening stream socket.
func (s *sock) stream() bool { return s.key.sotype == unix.SOCK_STREAM }

// listener returns the socket as a net.Listener, creating it on first use.
func (s *sock) listener() (net.Listener, error) {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.ln == nil {
		ln, err := net.FileListener(s.osFile())
		if err != nil {
			return nil, fmt.Errorf("wrapping %s: %w", s.key, err)
		}
		s.ln = ln
	}
	return s.ln, nil
}

// existingListener returns the net.Listener if one was made.
func (s *sock) existingListener() net.Listener {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return s.ln
}

func (s *sock) Close() error {
	var errs []error
	if ln := s.existingListener(); ln != nil {
		errs = append(errs, ln.Close())
	}
	if s.pc != nil {
		errs = append(errs, s.pc.Close())
	}
	if f := s.existingFile(); f != nil {
		errs = append(errs, f.Close())
	} else if s.fdNum >= 0 {
		errs = append(errs, unix.Close(s.fdNum))
	}
	keepPath := s.activated
	if s.owner != nil && s.owner.closing(s) {
		keepPath = true // another daemon serves it
	}
	s.fdNum = -1
	if s.key.family == unix.AF_UNIX && s.key.path != "" && !keepPath {
		os.Remove(s.key.path)
	}
	return errors.Join(errs...)
}

func (s *sock) fd() int { return s.fdNum }

// openSock creates, configures, binds and (for stream) listens a socket
// with raw system calls, because net.Listen can set neither the backlog
// nor V6ONLY=0 on a specific address, nor SO_RCVBUF before bind.
func openSock(s *service.Service, k sockKey, backlog int) (*sock, error) {
	fd, err := unix.Socket(k.family, k.sotype|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, protoFor(s, k))
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if k.family != unix.AF_UNIX {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return nil, fmt.Errorf("setsockopt SO_REUSEADDR: %w", err)
		}
	}
	if k.family == unix.AF_INET6 && k.v6only >= 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, k.v6only); err != nil {
			return nil, fmt.Errorf("setsockopt IPV6_V6ONLY: %w", err)
		}
	}
	if k.sotype == unix.SOCK_STREAM && k.family != unix.AF_UNIX {
		if s.Flags.Has(service.FlagNoDelay) {
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		}
		if s.Flags.Has(service.FlagKeepAlive) {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
		}
	}
	if s.SndBuf > 0 {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, s.SndBuf)
	}
	if s.RcvBuf > 0 {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, s.RcvBuf)
	}
	var sa unix.Sockaddr
	switch k.family {
	case unix.AF_INET:
		a := &unix.SockaddrInet4{Port: k.port}
		if k.addr.IsValid() {
			a.Addr = k.addr.As4()
		}
		sa = a
	case unix.AF_INET6:
		a := &unix.SockaddrInet6{Port: k.port}
		if k.addr.IsValid() {
			a.Addr = k.addr.As16()
			if z := k.addr.Zone(); z != "" {
				if ifi, err := net.InterfaceByName(z); err == nil {
					a.ZoneId = uint32(ifi.Index)
				}
			}
		}
		sa = a
	case unix.AF_UNIX:
		os.Remove(k.path)
		sa = &unix.SockaddrUnix{Name: k.path}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind %s: %w", k, err)
	}
	if k.family == unix.AF_UNIX {
		if s.UnixMode != 0 {
			os.Chmod(k.path, os.FileMode(s.UnixMode))
		}
		if s.UnixOwner != nil || s.UnixGroup != nil {
			uid, gid := -1, -1
			if s.UnixOwner != nil {
				uid = s.UnixOwner.ID
			}
			if s.UnixGroup != nil {
				gid = s.UnixGroup.ID
			}
			os.Lchown(k.path, uid, gid)
		}
	}
	if k.sotype == unix.SOCK_STREAM || k.sotype == unix.SOCK_SEQPACKET {
		if backlog <= 0 {
			backlog = DefaultBacklog
		}
		if err := unix.Listen(fd, backlog); err != nil {
			return nil, fmt.Errorf("listen %s: %w", k, err)
		}
	}
	ok = true
	s2, err := wrapSock(fd, k)
	if s2 != nil {
		s2.fresh.Store(true)
		s2.deferKnown = true // a new socket has none
	}
	return s2, err
}

func protoFor(s *service.Service, k sockKey) int {
	if k.family == unix.AF_UNIX {
		return 0
	}
	if k.sotype == unix.SOCK_RAW {
		return s.ProtoNum
	}
	return 0
}

// wrapSock turns a bound descriptor into the *os.File the daemon polls and
// wait=yes servers receive, plus a PacketConn for datagram sockets. The
// net package gets its own duplicate, so closing one never pulls the
// other's descriptor away.
func wrapSock(fd int, k sockKey) (*sock, error) {
	s := &sock{key: k, fdNum: fd}
	var err error
	switch k.sotype {
	case unix.SOCK_STREAM:
		// *os.File and net.Listener made on first use.
	case unix.SOCK_DGRAM:
		s.pc, err = net.FilePacketConn(s.osFile())
	default:
		// raw / seqpacket / rdm: only handed to external wait servers;
		// readiness is polled on the file itself.
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("wrapping %s: %w", k, err)
	}
	return s, nil
}

// sockKeyOfFD reads back what a systemd-passed descriptor is bound to.
func sockKeyOfFD(fd int) (sockKey, error) {
	k := sockKey{v6only: -1}
	t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return k, err
	}
	k.sotype = t
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return k, err
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		k.family = unix.AF_INET
		k.port = a.Port
		if ad := netip.AddrFrom4(a.Addr); !ad.IsUnspecified() {
			k.addr = ad
		}
	case *unix.SockaddrInet6:
		k.family = unix.AF_INET6
		k.port = a.Port
		if ad := netip.AddrFrom16(a.Addr); !ad.IsUnspecified() {
			k.addr = ad
		}
		if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); err == nil {
			k.v6only = v
		}
	case *unix.SockaddrUnix:
		k.family = unix.AF_UNIX
		k.path = a.Name
	default:
		return k, fmt.Errorf("unsupported socket address %T", sa)
	}
	return k, nil
}

// waitReadable blocks until fd has something to read (a pending
// connection or datagram) or done is closed. It uses the runtime poller,
// so it costs no thread while waiting.
func waitReadable(rc syscall.RawConn, done <-chan struct{}) error {
	var perr error
	err := rc.Read(func(fd uintptr) bool {
		select {
		case <-done:
			perr = net.ErrClosed
			return true
		default:
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 0)
		if err != nil && err != unix.EINTR {
			perr = err
			return true
		}
		return n > 0
	})
	if err != nil {
		return err
	}
	return perr
}

// setBlocking switches the socket's shared open file description between
// blocking (what a wait=yes server expects) and non-blocking (what the
// runtime poller needs once the server is gone).
func setBlocking(f *os.File, blocking bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) { serr = unix.SetNonblock(int(fd), !blocking) })
	if err != nil {
		return err
	}
	return serr
}

// enableDstInfo asks the kernel to report the destination address of each
// datagram (IP_PKTINFO, IPV6_RECVPKTINFO) on a datagram socket bound to
// every address, so an answer can leave from the address the client sent
// to: from any other address, a connected client socket (and most
// firewalls) drops it. A socket bound to one address needs nothing.
func enableDstInfo(s *sock) bool {
	if s.pc == nil || s.key.addr.IsValid() {
		return false
	}
	sc, ok := s.pc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		switch s.key.family {
		case unix.AF_INET:
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		case unix.AF_INET6:
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		default:
			serr = unix.EAFNOSUPPORT
		}
	})
	return err == nil && serr == nil
}

// cmsgHdrLen is the size of a control message's length field: a size_t.
const cmsgHdrLen = unix.SizeofCmsghdr - 8

// replySourceControl turns the control messages received with a datagram
// into the one that makes the answer leave from the address the datagram
// was sent to, appended to dst (which it returns; unchanged when the
// destination is unknown or not a unicast address). It does not allocate
// when dst has room (64 bytes are enough).
func replySourceControl(dst, oob []byte) []byte {
	ne := binary.NativeEndian
	for len(oob) >= unix.SizeofCmsghdr {
		var l int
		if cmsgHdrLen == 8 {
			l = int(ne.Uint64(oob))
		} else {
			l = int(ne.Uint32(oob))
		}
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return dst
		}
		level := int32(ne.Uint32(oob[cmsgHdrLen:]))
		typ := int32(ne.Uint32(oob[cmsgHdrLen+4:]))
		data := oob[unix.CmsgLen(0):l]
		switch {
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst (the local address the
			// kernel matched), addr (the header's destination).
			local := netip.AddrFrom4([4]byte(data[4:8]))
			if !local.IsValid() || local.IsUnspecified() || local.IsMulticast() {
				return dst
			}
			var info [unix.SizeofInet4Pktinfo]byte
			copy(info[4:8], data[4:8])
			return appendCmsg(dst, unix.IPPROTO_IP, unix.IP_PKTINFO, info[:])
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: addr (v4-mapped for an IPv4 datagram on
			// a dual-stack socket, which Linux accepts back), ifindex.
			a := netip.AddrFrom16([16]byte(data[0:16]))
			if a.IsUnspecified() || a.IsMulticast() || (a.Is4In6() && a.Unmap().IsMulticast()) {
				return dst
			}
			var info [unix.SizeofInet6Pktinfo]byte
			copy(info[0:16], data[0:16])
			if a.IsLinkLocalUnicast() {
				// A link-local source means nothing without its link.
				copy(info[16:20], data[16:20])
			}
			return appendCmsg(dst, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, info[:])
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next >= len(oob) {
			return dst
		}
		oob = oob[next:]
	}
	return dst
}

func appendCmsg(dst []byte, level, typ int32, data []byte) []byte {
	ne := binary.NativeEndian
	start := len(dst)
	dst = append(dst, make([]byte, unix.CmsgSpace(len(data)))...)
	h := dst[start:]
	if cmsgHdrLen == 8 {
		ne.PutUint64(h, uint64(unix.CmsgLen(len(data))))
	} else {
		ne.PutUint32(h, uint32(unix.CmsgLen(len(data))))
	}
	ne.PutUint32(h[cmsgHdrLen:], uint32(level))
	ne.PutUint32(h[cmsgHdrLen+4:], uint32(typ))
	copy(h[unix.CmsgLen(0):], data)
	return dst
}

// sockSet is a service's open sockets by key. A service has one or two,
// and a Go map for each of 1,000 services cost 850 bytes apiece (a group
// of eight slots of this large key): a fifth of the daemon's live heap.
type sockSet []sockEntry

type sockEntry struct {
	key sockKey
	run *sockRun
}

func (s sockSet) has(k sockKey) bool {
	for _, e := range s {
		if e.key == k {
			return true
		}
	}
	return false
}

// put adds or replaces the socket under k.
func (s *sockSet) put(k sockKey, sr *sockRun) {
	for i, e := range *s {
		if e.key == k {
			(*s)[i].run = sr
			return
		}
	}
	*s = append(*s, sockEntry{k, sr})
}

// del removes k. It may be called while ranging over all(), which walks
// a copy.
func (s *sockSet) del(k sockKey) {
	for i, e := range *s {
		if e.key == k {
			*s = append((*s)[:i:i], (*s)[i+1:]...)
			return
		}
	}
}

// all yields every key and socket, from a snapshot: the loop body may
// add or remove sockets.
func (s sockSet) all() iter.Seq2[sockKey, *sockRun] {
	return func(yield func(sockKey, *sockRun) bool) {
		if len(s) == 0 {
			return
		}
		var buf [2]sockEntry
		snap := append(buf[:0], s...)
		for _, e := range snap {
			if !yield(e.key, e.run) {
				return
			}
		}
	}
}
