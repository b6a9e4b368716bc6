package rpcbind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
)

// Mapping is one registration: program Prog version Vers is reachable over
// Netid ("tcp", "udp", "tcp6" or "udp6") at Addr. An unspecified address
// means every address of the host.
type Mapping struct {
	Prog, Vers uint32
	Netid      string
	Addr       netip.AddrPort
}

func (m Mapping) String() string {
	return fmt.Sprintf("program %d version %d %s %s", m.Prog, m.Vers, m.Netid, UniversalAddr(m.Addr))
}

// UniversalAddr is RFC 5665's text form of a TCP or UDP address:
// "h1.h2.h3.h4.p1.p2" for IPv4 and "x:x::x.p1.p2" for IPv6.
func UniversalAddr(a netip.AddrPort) string {
	ip := a.Addr().Unmap().WithZone("")
	if !ip.IsValid() {
		ip = netip.IPv4Unspecified()
	}
	p := a.Port()
	return ip.String() + "." + strconv.Itoa(int(p>>8)) + "." + strconv.Itoa(int(p&0xff))
}

// Client talks to the local rpcbind. The zero value uses the standard
// places and a two-second timeout per call.
type Client struct {
	// Sockets are the local stream sockets tried first, in order.
	Sockets []string
	// UDP is the version 2 portmapper tried when no socket answers;
	// invalid means 127.0.0.1:111.
	UDP netip.AddrPort
	// Timeout bounds each call; zero means 2 s.
	Timeout time.Duration
}

// DefaultSockets are where rpcbind listens locally on Linux.
var DefaultSockets = []string{"/run/rpcbind.sock", "/var/run/rpcbind.sock"}

// Program and procedure numbers (RFC 1833).
const (
	rpcbProg    = 100000
	rpcbVers4   = 4
	pmapVers    = 2
	procSet     = 1
	procUnset   = 2
	ipprotoTCP  = 6
	ipprotoUDP  = 17
	msgCall     = 0
	msgReply    = 1
	rpcVersion  = 2
	lastFragBit = 0x80000000
)

// ErrRefused is rpcbind answering "no": a SET for a mapping that someone
// else already holds, or an UNSET of one that is not the caller's.
var ErrRefused = errors.New("rpcbind refused the request")

// ErrUnreachable means no rpcbind or portmapper answered on any transport.
var ErrUnreachable = errors.New("no rpcbind or portmapper answering")

// Set registers m. A mapping of the same program, version and netid that
// is already there (left by an earlier run, say) is withdrawn first, as
// the RPC library's svc_reg does: SET never replaces.
func (c *Client) Set(m Mapping) error {
	if err := checkMapping(m); err != nil {
		return err
	}
	_, _ = c.call(procUnset, m)
	ok, err := c.call(procSet, m)
	if err != nil {
		return fmt.Errorf("rpcbind: set %v: %w", m, err)
	}
	if !ok {
		return fmt.Errorf("rpcbind: set %v: %w", m, ErrRefused)
	}
	return nil
}

// Unset withdraws the mapping of m's program, version and netid. rpcbind
// answers "no" when there was nothing to withdraw, which Unset does not
// count as an error.
func (c *Client) Unset(m Mapping) error {
	if err := checkMapping(m); err != nil {
		return err
	}
	if _, err := c.call(procUnset, m); err != nil {
		return fmt.Errorf("rpcbind: unset %v: %w", m, err)
	}
	return nil
}

func checkMapping(m Mapping) error {
	switch m.Netid {
	case "tcp", "udp", "tcp6", "udp6":
		return nil
	}
	return fmt.Errorf("rpcbind: %v: netid must be tcp, udp, tcp6 or udp6", m)
}

// call makes one SET or UNSET on the first transport that answers.
func (c *Client) call(proc uint32, m Mapping) (bool, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	socks := c.Sockets
	if socks == nil {
		socks = DefaultSockets
	}
	var firstErr error
	for _, path := range socks {
		ok, err := callStream(path, timeout, encodeCall(nextXID(), rpcbVers4, proc, rpcbArgs(m)))
		if err == nil {
			return ok, nil
		}
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" {
			continue // no rpcbind there
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return false, firstErr
	}
	// Version 2 carries a protocol number and a port, no address: only an
	// IPv4 mapping (on any or one address) can be said in it.
	proto := uint32(ipprotoTCP)
	switch m.Netid {
	case "udp":
		proto = ipprotoUDP
	case "tcp6", "udp6":
		return false, fmt.Errorf("%w (a version 2 portmapper cannot register %s)", ErrUnreachable, m.Netid)
	}
	udp := c.UDP
	if !udp.IsValid() {
		udp = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 111)
	}
	args := be32(nil, m.Prog, m.Vers, proto, uint32(m.Addr.Port()))
	ok, err := callUDP(udp, timeout, encodeCall(nextXID(), pmapVers, proc, args))
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return ok, nil
}

var xid atomic.Uint32

func init() { xid.Store(uint32(time.Now().UnixNano())) }

func nextXID() uint32 { return xid.Add(1) }

func be32(b []byte, vs ...uint32) []byte {
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// xdrString appends an XDR string: length, bytes, zero padding to four.
func xdrString(b []byte, s string) []byte {
	b = be32(b, uint32(len(s)))
	b = append(b, s...)
	return append(b, make([]byte, (4-len(s)%4)%4)...)
}

// rpcbArgs is struct rpcb: program, version, netid, address, owner. The
// owner is filled in by rpcbind from the caller's credentials.
func rpcbArgs(m Mapping) []byte {
	b := be32(nil, m.Prog, m.Vers)
	b = xdrString(b, m.Netid)
	b = xdrString(b, UniversalAddr(m.Addr))
	return xdrString(b, "")
}

// encodeCall is an RPC call message with AUTH_NONE credentials.
func encodeCall(id, vers, proc uint32, args []byte) []byte {
	b := be32(make([]byte, 0, 40+len(args)), id, msgCall, rpcVersion, rpcbProg, vers, proc, 0, 0, 0, 0)
	return append(b, args...)
}

// decodeReply checks that b answers call id and returns its boolean
// result: what SET and UNSET return in every version.
func decodeReply(id uint32, b []byte) (bool, error) {
	r := reader{b: b}
	if x := r.u32(); x != id {
		return false, fmt.Errorf("reply to call %d, want %d", x, id)
	}
	if t := r.u32(); t != msgReply {
		return false, fmt.Errorf("message type %d is not a reply", t)
	}
	switch stat := r.u32(); stat {
	case 0: // MSG_ACCEPTED
	case 1: // MSG_DENIED
		return false, fmt.Errorf("call denied (reject status %d)", r.u32())
	default:
		return false, fmt.Errorf("bad reply status %d", stat)
	}
	r.u32() // verifier flavour
	r.skip(r.u32())
	switch as := r.u32(); as {
	case 0: // SUCCESS
	case 1:
		return false, errors.New("program unavailable")
	case 2:
		return false, fmt.Errorf("program version mismatch (supported %d-%d)", r.u32(), r.u32())
	case 3:
		return false, errors.New("procedure unavailable")
	case 4:
		return false, errors.New("garbage arguments")
	default:
		return false, fmt.Errorf("call failed (accept status %d)", as)
	}
	res := r.u32()
	if r.err {
		return false, errors.New("short reply")
	}
	return res != 0, nil
}

type reader struct {
	b   []byte
	err bool
}

func (r *reader) u32() uint32 {
	if len(r.b) < 4 {
		r.err, r.b = true, nil
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) skip(n uint32) {
	n = (n + 3) &^ 3
	if uint64(len(r.b)) < uint64(n) {
		r.err, r.b = true, nil
		return
	}
	r.b = r.b[n:]
}

// maxReply bounds what is read back: a SET or UNSET reply is 28 bytes
// plus a verifier of at most 400.
const maxReply = 1024

func callStream(path string, timeout time.Duration, msg []byte) (bool, error) {
	conn, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	// One record of one fragment (RFC 5531 §11).
	rec := be32(make([]byte, 0, 4+len(msg)), lastFragBit|uint32(len(msg)))
	if _, err := conn.Write(append(rec, msg...)); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	body, err := readRecord(conn)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	ok, err := decodeReply(binary.BigEndian.Uint32(msg), body)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return ok, nil
}

// maxFragments bounds the fragments of one reply record: a peer sending
// empty fragments for ever is cut off before the connection's deadline.
const maxFragments = 64

// readRecord reads one RPC record (RFC 5531 §11: fragments, each with a
// length word whose top bit marks the last) of at most maxReply bytes.
func readRecord(r io.Reader) ([]byte, error) {
	var body []byte
	for i := 0; ; i++ {
		if i == maxFragments {
			return nil, fmt.Errorf("reply in more than %d fragments", maxFragments)
		}
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, fmt.Errorf("reading reply: %w", err)
		}
		h := binary.BigEndian.Uint32(hdr[:])
		n := h &^ lastFragBit
		if uint64(len(body))+uint64(n) > maxReply {
			return nil, fmt.Errorf("reply longer than %d bytes", maxReply)
		}
		frag := make([]byte, n)
		if _, err := io.ReadFull(r, frag); err != nil {
			return nil, fmt.Errorf("reading reply: %w", err)
		}
		body = append(body, frag...)
		if h&lastFragBit != 0 {
			return body, nil
		}
	}
}

// callUDP sends msg once and waits for the reply with its xid; a reply
// to some other call (a late answer to an earlier one) is skipped.
func callUDP(to netip.AddrPort, timeout time.Duration, msg []byte) (bool, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		return false, err
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(msg); err != nil {
		return false, err
	}
	id := binary.BigEndian.Uint32(msg)
	buf := make([]byte, maxReply)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return false, err
		}
		if n >= 4 && binary.BigEndian.Uint32(buf) != id {
			continue
		}
		return decodeReply(id, buf[:n])
	}
}
