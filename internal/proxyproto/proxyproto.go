package proxyproto

import (
	"errors"
	"hash/crc32"
	"net/netip"
	"strconv"
	"sync"
)

// Versions is a set of header versions a receiver accepts.
type Versions uint8

const (
	V1 Versions = 1 << iota
	V2
)

// Has reports whether every version in x is in v.
func (v Versions) Has(x Versions) bool { return v&x == x && x != 0 }

// String lists the versions as the configuration writes them ("v1 v2").
func (v Versions) String() string {
	switch v {
	case V1:
		return "v1"
	case V2:
		return "v2"
	case V1 | V2:
		return "v1 v2"
	}
	return ""
}

// MaxLen is the largest header accepted, in bytes: the specification's
// bound ("fits in the smallest TCP segment any host must accept", 536).
const MaxLen = 536

// maxV1 is the longest v1 line including CRLF.
const maxV1 = 107

// Command says what kind of connection a header describes.
type Command uint8

const (
	// CmdProxy relays a client's connection (v1 TCP4/TCP6, v2 PROXY).
	CmdProxy Command = iota
	// CmdLocal is the balancer's own connection, a health check (v2 LOCAL).
	CmdLocal
	// CmdUnknown is v1 UNKNOWN: the sender could not say who the client is.
	CmdUnknown
)

func (c Command) String() string {
	switch c {
	case CmdProxy:
		return "PROXY"
	case CmdLocal:
		return "LOCAL"
	case CmdUnknown:
		return "UNKNOWN"
	}
	return "?"
}

// Transport is the relayed connection's transport (v2; v1 is always TCP).
type Transport uint8

const (
	TransportUnspec Transport = iota
	TransportStream
	TransportDgram
)

// Header is one parsed header.
type Header struct {
	Version   uint8 // 1 or 2
	Command   Command
	Transport Transport
	// Src and Dst are the relayed connection's client and server ends.
	// They are valid only when the header names an IPv4 or IPv6
	// connection; otherwise (LOCAL, UNKNOWN, the unspecified or the unix
	// family) the receiver keeps the connection's own addresses.
	Src, Dst netip.AddrPort
	// Len is the header's length in bytes.
	Len int
	// TLVs counts the type-length-value records of a v2 header.
	TLVs int
}

// ErrIncomplete says that the bytes seen so far are a valid beginning of
// a header and more must come.
var ErrIncomplete = errors.New("proxyproto: incomplete header")

// Error is a header that is not valid, or a connection that ended before
// its header did.
type Error struct {
	Msg string
	// Truncated is set when the connection ended (or failed) before a
	// complete header arrived.
	Truncated bool
}

func (e *Error) Error() string { return "proxyproto: " + e.Msg }

func bad(msg string) error { return &Error{Msg: msg} }

// Errors that need no detail are made once: Parse never allocates.
var (
	errNotHeader  = bad("not a PROXY protocol header")
	errV1Disabled = bad("a version 1 header, but only version 2 is accepted")
	errV2Disabled = bad("a version 2 header, but only version 1 is accepted")
	errNoCRLF     = bad("v1: no CRLF within 107 bytes")
	errLoneCR     = bad("v1: CR not followed by LF")
	errLoneLF     = bad("v1: LF without CR")
	errV1Proto    = bad("v1: protocol is not TCP4, TCP6 or UNKNOWN")
	errV1Fields   = bad("v1: want exactly source, destination, source port, destination port separated by single spaces")
	errV1Addr4    = bad("v1: bad IPv4 address")
	errV1Addr6    = bad("v1: bad IPv6 address")
	errV1Port     = bad("v1: bad port (0 to 65535, no leading zeros)")
	errV2Version  = bad("v2: version is not 2")
	errV2Command  = bad("v2: command is neither LOCAL nor PROXY")
	errV2Family   = bad("v2: unknown address family")
	errV2Trans    = bad("v2: unknown transport protocol")
	errV2TooLong  = bad("v2: header longer than 536 bytes")
	errV2Short    = bad("v2: address block shorter than its family needs")
	errV2TLV      = bad("v2: a type-length-value record runs past the end of the header")
	errV2CRCLen   = bad("v2: CRC32C record is not 4 bytes")
	errV2CRC      = bad("v2: CRC32C checksum does not match")
)

var (
	v1Prefix = [6]byte{'P', 'R', 'O', 'X', 'Y', ' '}
	v2Sig    = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}
)

// Parse reads the header at the start of b. It returns the header (with
// Len set) when b holds a complete, valid one of an accepted version;
// ErrIncomplete when b is a valid beginning and more bytes must come; or
// an *Error. Bytes after the header are not looked at.
func Parse(b []byte, accept Versions) (Header, error) {
	if len(b) == 0 {
		return Header{}, ErrIncomplete
	}
	switch b[0] {
	case v2Sig[0]:
		if !prefixOf(b, v2Sig[:]) {
			return Header{}, errNotHeader
		}
		if !accept.Has(V2) {
			return Header{}, errV2Disabled
		}
		if len(b) < len(v2Sig) {
			return Header{}, ErrIncomplete
		}
		return parseV2(b)
	case v1Prefix[0]:
		if !prefixOf(b, v1Prefix[:]) {
			return Header{}, errNotHeader
		}
		if !accept.Has(V1) {
			return Header{}, errV1Disabled
		}
		if len(b) < len(v1Prefix) {
			return Header{}, ErrIncomplete
		}
		return parseV1(b)
	}
	return Header{}, errNotHeader
}

// prefixOf reports whether b and sig agree on their common length.
func prefixOf(b, sig []byte) bool {
	n := min(len(b), len(sig))
	for i := 0; i < n; i++ {
		if b[i] != sig[i] {
			return false
		}
	}
	return true
}

func parseV1(b []byte) (Header, error) {
	end := -1
	for i := 0; i < len(b) && i < maxV1; i++ {
		switch b[i] {
		case '\r':
			if i+1 >= maxV1 {
				return Header{}, errNoCRLF
			}
			if i+1 == len(b) {
				return Header{}, ErrIncomplete
			}
			if b[i+1] != '\n' {
				return Header{}, errLoneCR
			}
			end = i
		case '\n':
			return Header{}, errLoneLF
		}
		if end >= 0 {
			break
		}
	}
	if end < 0 {
		if len(b) >= maxV1 {
			return Header{}, errNoCRLF
		}
		return Header{}, ErrIncomplete
	}
	h := Header{Version: 1, Transport: TransportStream, Len: end + 2}
	line := b[len(v1Prefix):end]
	proto, rest, more := cut(line)
	switch string(proto) { // no allocation: the compiler compares in place
	case "UNKNOWN":
		// Anything may follow; the receiver ignores it.
		h.Command = CmdUnknown
		return h, nil
	case "TCP4", "TCP6":
	default:
		return Header{}, errV1Proto
	}
	if !more {
		return Header{}, errV1Fields
	}
	var f [4][]byte
	for i := range f {
		var ok bool
		f[i], rest, ok = cut(rest)
		if len(f[i]) == 0 || ok != (i < 3) {
			return Header{}, errV1Fields
		}
	}
	var src, dst netip.Addr
	var ok1, ok2 bool
	if proto[3] == '4' {
		src, ok1 = parseIPv4(f[0])
		dst, ok2 = parseIPv4(f[1])
		if !ok1 || !ok2 {
			return Header{}, errV1Addr4
		}
	} else {
		src, ok1 = parseIPv6(f[0])
		dst, ok2 = parseIPv6(f[1])
		if !ok1 || !ok2 {
			return Header{}, errV1Addr6
		}
	}
	sp, ok1 := parsePort(f[2])
	dp, ok2 := parsePort(f[3])
	if !ok1 || !ok2 {
		return Header{}, errV1Port
	}
	h.Command = CmdProxy
	h.Src, h.Dst = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	return h, nil
}

// cut splits b at its first space; more reports whether there was one.
func cut(b []byte) (head, rest []byte, more bool) {
	for i, c := range b {
		if c == ' ' {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// parsePort reads a decimal port without leading zeros.
func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// parseIPv4 reads four decimal numbers 0-255 without leading zeros.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var a [4]byte
	part, digits, val := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || part > 3 {
				return netip.Addr{}, false
			}
			a[part] = byte(val)
			part, digits, val = part+1, 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || (digits == 1 && val == 0) {
			return netip.Addr{}, false
		}
		val = val*10 + int(c-'0')
		digits++
		if val > 255 {
			return netip.Addr{}, false
		}
	}
	if part != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(a), true
}

// parseIPv6 reads an IPv6 address as inet_pton does: groups of one to four
// hex digits, at most one "::", optionally ending in a dotted IPv4
// address. No zone.
func parseIPv6(b []byte) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1 // byte index in ip where "::" stands
	i := 0         // next byte of ip to fill
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis = 0
		b = b[2:]
		if len(b) == 0 {
			return netip.AddrFrom16(ip), true
		}
	}
	for i < 16 {
		// A group, or a trailing IPv4 address.
		n, val := 0, 0
		for n < len(b) && n < 5 {
			c := b[n]
			var d int
			switch {
			case c >= '0' && c <= '9':
				d = int(c - '0')
			case c >= 'a' && c <= 'f':
				d = int(c-'a') + 10
			case c >= 'A' && c <= 'F':
				d = int(c-'A') + 10
			default:
				d = -1
			}
			if d < 0 {
				break
			}
			val = val<<4 | d
			n++
		}
		if n < len(b) && b[n] == '.' {
			// Dotted IPv4 in the last 32 bits.
			if (ellipsis < 0 && i != 12) || i > 12 {
				return netip.Addr{}, false
			}
			v4, ok := parseIPv4(b)
			if !ok {
				return netip.Addr{}, false
			}
			a4 := v4.As4()
			copy(ip[i:], a4[:])
			i += 4
			b = nil
			break
		}
		if n == 0 || n > 4 {
			return netip.Addr{}, false
		}
		ip[i], ip[i+1] = byte(val>>8), byte(val)
		i += 2
		b = b[n:]
		if len(b) == 0 {
			break
		}
		if b[0] != ':' || len(b) == 1 {
			return netip.Addr{}, false
		}
		b = b[1:]
		if b[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = i
			b = b[1:]
			if len(b) == 0 {
				break
			}
		}
	}
	if len(b) != 0 {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		copy(ip[ellipsis+n:], ip[ellipsis:i])
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 && ellipsis != 16 {
		// "::" must stand for at least one group.
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(ip), true
}

// castagnoli is made on first use: crc32 builds its CRC-32C tables when
// the first one is asked for, about 0.2-0.8 ms that every start paid at
// package initialisation though only a v2 header with a checksum TLV
// needs it.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// zero4 stands for the checksum field while the checksum is computed.
var zero4 [4]byte

// crc32c is crc32.Update with the Castagnoli table, byte by byte. Not
// crc32.Update itself: it hands b to an assembly routine through a
// function value, so escape analysis makes every buffer Parse is given
// escape, and the caller's header buffer (536 bytes) was allocated on the
// heap for every connection. A header is at most 536 bytes and rarely
// carries a checksum: speed does not matter here.
func crc32c(crc uint32, b []byte) uint32 {
	tab := castagnoli()
	crc = ^crc
	for _, c := range b {
		crc = tab[byte(crc)^c] ^ (crc >> 8)
	}
	return ^crc
}

const (
	tlvCRC32C = 0x03
)

func parseV2(b []byte) (Header, error) {
	if len(b) < 16 {
		return Header{}, ErrIncomplete
	}
	if b[12]>>4 != 2 {
		return Header{}, errV2Version
	}
	h := Header{Version: 2}
	switch b[12] & 0x0F {
	case 0:
		h.Command = CmdLocal
	case 1:
		h.Command = CmdProxy
	default:
		return Header{}, errV2Command
	}
	fam, tr := b[13]>>4, b[13]&0x0F
	if fam > 3 {
		return Header{}, errV2Family
	}
	if tr > 2 {
		return Header{}, errV2Trans
	}
	h.Transport = Transport(tr)
	total := 16 + (int(b[14])<<8 | int(b[15]))
	if total > MaxLen {
		return Header{}, errV2TooLong
	}
	if len(b) < total {
		return Header{}, ErrIncomplete
	}
	h.Len = total
	if h.Command == CmdLocal {
		// The receiver must discard the block, addresses and family alike.
		return h, nil
	}
	body := b[16:total]
	var alen int
	switch fam {
	case 1:
		alen = 12
	case 2:
		alen = 36
	case 3:
		alen = 216
	}
	if len(body) < alen {
		return Header{}, errV2Short
	}
	if tr != 0 {
		switch fam {
		case 1:
			src, dst := netip.AddrFrom4([4]byte(body[0:4])), netip.AddrFrom4([4]byte(body[4:8]))
			h.Src = netip.AddrPortFrom(src, be16(body[8:]))
			h.Dst = netip.AddrPortFrom(dst, be16(body[10:]))
		case 2:
			src, dst := netip.AddrFrom16([16]byte(body[0:16])), netip.AddrFrom16([16]byte(body[16:32]))
			h.Src = netip.AddrPortFrom(src, be16(body[32:]))
			h.Dst = netip.AddrPortFrom(dst, be16(body[34:]))
		}
	}
	if fam == 0 {
		// The unspecified family has no address block to skip: nothing
		// after it can be told from an address.
		return h, nil
	}
	// Type-length-value records fill the rest exactly.
	off := 16 + alen
	for off < total {
		if total-off < 3 {
			return Header{}, errV2TLV
		}
		typ, l := b[off], int(b[off+1])<<8|int(b[off+2])
		if off+3+l > total {
			return Header{}, errV2TLV
		}
		if typ == tlvCRC32C {
			if l != 4 {
				return Header{}, errV2CRCLen
			}
			v := off + 3
			want := uint32(b[v])<<24 | uint32(b[v+1])<<16 | uint32(b[v+2])<<8 | uint32(b[v+3])
			sum := crc32c(0, b[:v])
			sum = crc32c(sum, zero4[:])
			sum = crc32c(sum, b[v+4:total])
			if sum != want {
				return Header{}, errV2CRC
			}
		}
		h.TLVs++
		off += 3 + l
	}
	return h, nil
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// AppendV1 appends a version 1 header announcing a TCP connection from src
// to dst; invalid addresses give "PROXY UNKNOWN". Addresses of different
// families are both written as IPv6 (the IPv4 one v4-mapped).
func AppendV1(b []byte, src, dst netip.AddrPort) []byte {
	s, d, ok, v4 := pair(src, dst)
	if !ok {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	if v4 {
		b = append(b, "PROXY TCP4 "...)
	} else {
		b = append(b, "PROXY TCP6 "...)
	}
	b = s.Addr().AppendTo(b)
	b = append(b, ' ')
	b = d.Addr().AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(s.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(d.Port()), 10)
	return append(b, '\r', '\n')
}

// AppendV2 appends a version 2 PROXY header announcing a TCP connection
// from src to dst; invalid addresses give the unspecified family.
func AppendV2(b []byte, src, dst netip.AddrPort) []byte {
	s, d, ok, v4 := pair(src, dst)
	b = append(b, v2Sig[:]...)
	b = append(b, 0x21) // version 2, PROXY
	switch {
	case !ok:
		return append(b, 0x00, 0, 0)
	case v4:
		b = append(b, 0x11, 0, 12)
		a, c := s.Addr().As4(), d.Addr().As4()
		b = append(b, a[:]...)
		b = append(b, c[:]...)
	default:
		b = append(b, 0x21, 0, 36)
		a, c := s.Addr().As16(), d.Addr().As16()
		b = append(b, a[:]...)
		b = append(b, c[:]...)
	}
	return append(b, byte(s.Port()>>8), byte(s.Port()), byte(d.Port()>>8), byte(d.Port()))
}

// pair puts both ends in one family without zones: IPv4 when both are
// IPv4 (or v4-mapped), IPv6 otherwise.
func pair(src, dst netip.AddrPort) (s, d netip.AddrPort, ok, v4 bool) {
	if !src.Addr().IsValid() || !dst.Addr().IsValid() {
		return s, d, false, false
	}
	sa, da := src.Addr().Unmap().WithZone(""), dst.Addr().Unmap().WithZone("")
	if sa.Is4() && da.Is4() {
		return netip.AddrPortFrom(sa, src.Port()), netip.AddrPortFrom(da, dst.Port()), true, true
	}
	if sa.Is4() {
		sa = netip.AddrFrom16(sa.As16())
	}
	if da.Is4() {
		da = netip.AddrFrom16(da.As16())
	}
	return netip.AddrPortFrom(sa, src.Port()), netip.AddrPortFrom(da, dst.Port()), true, false
}
