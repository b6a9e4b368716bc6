package proxyproto

import (
	"bytes"
	"errors"
	"hash/crc32"
	"net/netip"
	"strings"
	"testing"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// v2 builds a version 2 header: verCmd, famTr, then the body as given.
func v2(verCmd, famTr byte, body ...[]byte) []byte {
	var b bytes.Buffer
	b.Write(v2Sig[:])
	b.WriteByte(verCmd)
	b.WriteByte(famTr)
	n := 0
	for _, p := range body {
		n += len(p)
	}
	b.WriteByte(byte(n >> 8))
	b.WriteByte(byte(n))
	for _, p := range body {
		b.Write(p)
	}
	return b.Bytes()
}

func addr4(src, dst string, sp, dp uint16) []byte {
	a, b := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	out := append(a[:], b[:]...)
	return append(out, byte(sp>>8), byte(sp), byte(dp>>8), byte(dp))
}

func addr6(src, dst string, sp, dp uint16) []byte {
	a, b := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	out := append(a[:], b[:]...)
	return append(out, byte(sp>>8), byte(sp), byte(dp>>8), byte(dp))
}

func tlv(typ byte, val []byte) []byte {
	return append([]byte{typ, byte(len(val) >> 8), byte(len(val))}, val...)
}

// withCRC appends a CRC32C record to a v2 header and fills it in.
func withCRC(h []byte) []byte {
	h = append(h, tlv(tlvCRC32C, []byte{0, 0, 0, 0})...)
	n := len(h) - 16
	h[14], h[15] = byte(n>>8), byte(n)
	sum := crc32.Checksum(h, castagnoli())
	h[len(h)-4], h[len(h)-3], h[len(h)-2], h[len(h)-1] = byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum)
	return h
}

func TestParseValid(t *testing.T) {
	both := V1 | V2
	for _, tc := range []struct {
		name string
		in   []byte
		want Header
	}{
		{"v1 tcp4", []byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
			Header{Version: 1, Command: CmdProxy, Transport: TransportStream, Src: ap("192.0.2.1:56324"), Dst: ap("198.51.100.2:443"), Len: 45}},
		{"v1 tcp4 extremes", []byte("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n"),
			Header{Version: 1, Transport: TransportStream, Src: ap("255.255.255.255:65535"), Dst: ap("0.0.0.0:0"), Len: 44}},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"),
			Header{Version: 1, Transport: TransportStream, Src: ap("[2001:db8::1]:1"), Dst: ap("[2001:db8::2]:2"), Len: 40}},
		{"v1 tcp6 full and upper case", []byte("PROXY TCP6 FFFF:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
			Header{Version: 1, Transport: TransportStream, Src: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), Dst: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), Len: 104}},
		{"v1 tcp6 mapped", []byte("PROXY TCP6 ::ffff:192.0.2.1 :: 10 20\r\n"),
			Header{Version: 1, Transport: TransportStream, Src: ap("[::ffff:192.0.2.1]:10"), Dst: ap("[::]:20"), Len: 38}},
		{"v1 unknown short", []byte("PROXY UNKNOWN\r\n"), Header{Version: 1, Command: CmdUnknown, Transport: TransportStream, Len: 15}},
		{"v1 unknown long", []byte("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"),
			Header{Version: 1, Command: CmdUnknown, Transport: TransportStream, Len: 59}},
		{"v1 with data after", []byte("PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\nGET / HTTP/1.0\r\n\r\n"),
			Header{Version: 1, Transport: TransportStream, Src: ap("10.0.0.1:1"), Dst: ap("10.0.0.2:2"), Len: 34}},
		{"v2 tcp4", v2(0x21, 0x11, addr4("192.0.2.1", "198.51.100.2", 56324, 443)),
			Header{Version: 2, Transport: TransportStream, Src: ap("192.0.2.1:56324"), Dst: ap("198.51.100.2:443"), Len: 28}},
		{"v2 tcp6", v2(0x21, 0x21, addr6("2001:db8::1", "2001:db8::2", 1, 65535)),
			Header{Version: 2, Transport: TransportStream, Src: ap("[2001:db8::1]:1"), Dst: ap("[2001:db8::2]:65535"), Len: 52}},
		{"v2 local", v2(0x20, 0x00), Header{Version: 2, Command: CmdLocal, Len: 16}},
		{"v2 local with addresses ignored", v2(0x20, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2)),
			Header{Version: 2, Command: CmdLocal, Transport: TransportStream, Len: 28}},
		{"v2 local with garbage ignored", v2(0x20, 0x00, []byte{1, 2, 3, 4, 5}), Header{Version: 2, Command: CmdLocal, Len: 21}},
		{"v2 proxy unspec", v2(0x21, 0x00), Header{Version: 2, Len: 16}},
		{"v2 unix stream", v2(0x21, 0x31, make([]byte, 216)), Header{Version: 2, Transport: TransportStream, Len: 232}},
		{"v2 inet unspec transport", v2(0x21, 0x10, addr4("1.2.3.4", "5.6.7.8", 1, 2)), Header{Version: 2, Len: 28}},
		{"v2 tlvs", v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2), tlv(0x04, nil), tlv(0x05, []byte("unique-id")), tlv(0xE0, make([]byte, 100))),
			Header{Version: 2, Transport: TransportStream, Src: ap("1.2.3.4:1"), Dst: ap("5.6.7.8:2"), Len: 28 + 3 + 12 + 103, TLVs: 3}},
		{"v2 crc32c", withCRC(v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2), tlv(0x02, []byte("example.com")))),
			Header{Version: 2, Transport: TransportStream, Src: ap("1.2.3.4:1"), Dst: ap("5.6.7.8:2"), Len: 28 + 14 + 7, TLVs: 2}},
		{"v2 at the size limit", v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2), tlv(0xE1, make([]byte, MaxLen-28-3))),
			Header{Version: 2, Transport: TransportStream, Src: ap("1.2.3.4:1"), Dst: ap("5.6.7.8:2"), Len: MaxLen, TLVs: 1}},
		{"v2 with data after", append(v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2)), "hello"...),
			Header{Version: 2, Transport: TransportStream, Src: ap("1.2.3.4:1"), Dst: ap("5.6.7.8:2"), Len: 28}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Parse(tc.in, both)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if h != tc.want {
				t.Fatalf("got  %+v\nwant %+v", h, tc.want)
			}
			// Arriving in pieces: every shorter prefix asks for more.
			for i := 0; i < h.Len; i++ {
				if _, err := Parse(tc.in[:i], both); err != ErrIncomplete {
					t.Fatalf("prefix of %d bytes: %v, want ErrIncomplete", i, err)
				}
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	both := V1 | V2
	long := "PROXY TCP6 " + strings.Repeat("f", 100) + "\r\n"
	for _, tc := range []struct {
		name   string
		in     []byte
		accept Versions
		want   error
	}{
		{"http", []byte("GET / HTTP/1.0\r\n"), both, errNotHeader},
		{"tls", []byte{0x16, 0x03, 0x01, 0x00}, both, errNotHeader},
		{"lower case", []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), both, errNotHeader},
		{"PROXY without space", []byte("PROXYTCP4"), both, errNotHeader},
		{"one byte off the v2 signature", []byte("\r\n\r\n\x00\r\nQUIT\r"), both, errNotHeader},
		{"v1 not accepted", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), V2, errV1Disabled},
		{"v1 not accepted, early", []byte("PRO"), V2, errV1Disabled},
		{"v2 not accepted", v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2)), V1, errV2Disabled},
		{"v1 too long", []byte(long), both, errNoCRLF},
		{"v1 107 bytes without CRLF", []byte("PROXY UNKNOWN " + strings.Repeat("x", 93)), both, errNoCRLF},
		{"v1 CRLF as bytes 107 and 108", []byte("PROXY UNKNOWN " + strings.Repeat("x", 92) + "\r\n"), both, errNoCRLF},
		{"v1 missing CRLF, LF only", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), both, errLoneLF},
		{"v1 CR only", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), both, errLoneCR},
		{"v1 bad family", []byte("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), both, errV1Proto},
		{"v1 udp", []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), both, errV1Proto},
		{"v1 unknown glued", []byte("PROXY UNKNOWNX\r\n"), both, errV1Proto},
		{"v1 empty", []byte("PROXY \r\n"), both, errV1Proto},
		{"v1 family only", []byte("PROXY TCP4\r\n"), both, errV1Fields},
		{"v1 three fields", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), both, errV1Fields},
		{"v1 five fields", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), both, errV1Fields},
		{"v1 double space", []byte("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), both, errV1Fields},
		{"v1 trailing space", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), both, errV1Fields},
		{"v1 tab", []byte("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"), both, errV1Fields},
		{"v1 ipv6 in TCP4", []byte("PROXY TCP4 ::1 ::1 1 2\r\n"), both, errV1Addr4},
		{"v1 ipv4 in TCP6", []byte("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), both, errV1Addr6},
		{"v1 octet too big", []byte("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), both, errV1Addr4},
		{"v1 leading zero octet", []byte("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n"), both, errV1Addr4},
		{"v1 three octets", []byte("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), both, errV1Addr4},
		{"v1 five octets", []byte("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"), both, errV1Addr4},
		{"v1 empty octet", []byte("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n"), both, errV1Addr4},
		{"v1 host name", []byte("PROXY TCP4 localhost 5.6.7.8 1 2\r\n"), both, errV1Addr4},
		{"v1 ipv6 zone", []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), both, errV1Addr6},
		{"v1 ipv6 two ellipses", []byte("PROXY TCP6 1::2::3 ::1 1 2\r\n"), both, errV1Addr6},
		{"v1 ipv6 group of five", []byte("PROXY TCP6 12345::1 ::1 1 2\r\n"), both, errV1Addr6},
		{"v1 ipv6 nine groups", []byte("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n"), both, errV1Addr6},
		{"v1 ipv6 seven groups", []byte("PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n"), both, errV1Addr6},
		{"v1 ipv6 trailing colon", []byte("PROXY TCP6 1:: ::1: 1 2\r\n"), both, errV1Addr6},
		{"v1 ipv6 empty ellipsis", []byte("PROXY TCP6 1:2:3:4:5:6:7::8 ::1 1 2\r\n"), both, errV1Addr6},
		{"v1 port too big", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), both, errV1Port},
		{"v1 port far too big", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 999999\r\n"), both, errV1Port},
		{"v1 port leading zero", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n"), both, errV1Port},
		{"v1 negative port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"), both, errV1Port},
		{"v1 hex port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n"), both, errV1Port},
		{"v2 version 1", v2(0x11, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2)), both, errV2Version},
		{"v2 version 3", v2(0x31, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2)), both, errV2Version},
		{"v2 command 2", v2(0x22, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2)), both, errV2Command},
		{"v2 command 15", v2(0x2F, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2)), both, errV2Command},
		{"v2 family 4", v2(0x21, 0x41, addr4("1.2.3.4", "5.6.7.8", 1, 2)), both, errV2Family},
		{"v2 transport 3", v2(0x21, 0x13, addr4("1.2.3.4", "5.6.7.8", 1, 2)), both, errV2Trans},
		{"v2 length beyond the limit", v2(0x21, 0x11, make([]byte, 600)), both, errV2TooLong},
		{"v2 length 65535", []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff"), both, errV2TooLong},
		{"v2 ipv4 family, ipv6 length short", v2(0x21, 0x21, addr4("1.2.3.4", "5.6.7.8", 1, 2)), both, errV2Short},
		{"v2 ipv4 family, 11 bytes", v2(0x21, 0x11, make([]byte, 11)), both, errV2Short},
		{"v2 unix family, short", v2(0x21, 0x31, make([]byte, 200)), both, errV2Short},
		{"v2 tlv header cut", v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2), []byte{0x04, 0x00}), both, errV2TLV},
		{"v2 tlv value cut", v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2), []byte{0x04, 0x00, 0x05, 1, 2}), both, errV2TLV},
		{"v2 tlv length huge", v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2), []byte{0x20, 0xff, 0xff}), both, errV2TLV},
		{"v2 crc wrong length", v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2), tlv(tlvCRC32C, []byte{1, 2})), both, errV2CRCLen},
		{"v2 crc mismatch", v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2), tlv(tlvCRC32C, []byte{1, 2, 3, 4})), both, errV2CRC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in, tc.accept)
			if err != tc.want {
				t.Fatalf("Parse(%q) = %v, want %v", tc.in, err, tc.want)
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Truncated {
				t.Fatalf("error %v is not a plain *Error", err)
			}
		})
	}
	// A header whose CRC was right fails once a byte of it changes.
	h := withCRC(v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2)))
	if _, err := Parse(h, V2); err != nil {
		t.Fatal(err)
	}
	h[20] ^= 1
	if _, err := Parse(h, V2); err != errV2CRC {
		t.Fatalf("altered header: %v, want the checksum error", err)
	}
}

func TestAppendRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		src, dst string
		v1, v2   string // the header's Src as parsed back ("" = none)
	}{
		{"192.0.2.1:5000", "198.51.100.2:443", "192.0.2.1:5000", "192.0.2.1:5000"},
		{"[2001:db8::1]:1", "[2001:db8::2]:2", "[2001:db8::1]:1", "[2001:db8::1]:1"},
		{"[::ffff:192.0.2.1]:7", "192.0.2.2:8", "192.0.2.1:7", "192.0.2.1:7"},
		{"192.0.2.1:7", "[2001:db8::2]:8", "[::ffff:192.0.2.1]:7", "[::ffff:192.0.2.1]:7"},
		{"[fe80::1%eth0]:7", "[fe80::2%eth0]:8", "[fe80::1]:7", "[fe80::1]:7"},
		{"", "192.0.2.2:8", "", ""},
	} {
		var src, dst netip.AddrPort
		if tc.src != "" {
			src = ap(tc.src)
		}
		dst = ap(tc.dst)
		for _, v := range []struct {
			b    []byte
			want string
		}{{AppendV1(nil, src, dst), tc.v1}, {AppendV2(nil, src, dst), tc.v2}} {
			h, err := Parse(v.b, V1|V2)
			if err != nil {
				t.Fatalf("%s -> %s: %q: %v", tc.src, tc.dst, v.b, err)
			}
			if h.Len != len(v.b) {
				t.Fatalf("%q: Len %d of %d", v.b, h.Len, len(v.b))
			}
			got := ""
			if h.Src.IsValid() {
				got = h.Src.String()
			}
			if got != v.want {
				t.Fatalf("%q: source %q, want %q", v.b, got, v.want)
			}
		}
	}
}

func TestParseAllocations(t *testing.T) {
	inputs := [][]byte{
		[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
		[]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"),
		v2(0x21, 0x21, addr6("2001:db8::1", "2001:db8::2", 1, 65535)),
		withCRC(v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2))),
		[]byte("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"),
	}
	n := testing.AllocsPerRun(100, func() {
		for _, in := range inputs {
			Parse(in, V1|V2)
		}
	})
	if n != 0 {
		t.Fatalf("Parse allocates %.1f times per run", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhello"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN whatever\r\n"))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"))
	f.Add(v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2), tlv(0x05, []byte("id"))))
	f.Add(withCRC(v2(0x21, 0x21, addr6("::1", "::2", 1, 2))))
	f.Add(v2(0x20, 0x00))
	f.Add(v2(0x21, 0x31, make([]byte, 216)))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b, V1|V2)
		if err == ErrIncomplete {
			if len(b) >= MaxLen {
				t.Fatalf("%d bytes still incomplete", len(b))
			}
			return
		}
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if h.Len <= 0 || h.Len > len(b) || h.Len > MaxLen {
			t.Fatalf("Len %d of %d bytes", h.Len, len(b))
		}
		if h.Version != 1 && h.Version != 2 {
			t.Fatalf("version %d", h.Version)
		}
		// The header alone parses the same, and every prefix of it asks
		// for more: a header that arrives in pieces is read whole.
		h2, err := Parse(b[:h.Len], V1|V2)
		if err != nil || h2 != h {
			t.Fatalf("header alone: %+v %v, with more: %+v", h2, err, h)
		}
		for i := 0; i < h.Len; i++ {
			if _, err := Parse(b[:i], V1|V2); err != ErrIncomplete {
				t.Fatalf("prefix %d: %v", i, err)
			}
		}
		if (h.Src.IsValid()) != (h.Command == CmdProxy && h.Dst.IsValid()) && h.Src.IsValid() {
			t.Fatalf("inconsistent header %+v", h)
		}
		// What was read writes back to a header naming the same client.
		if h.Src.IsValid() {
			for _, out := range [][]byte{AppendV1(nil, h.Src, h.Dst), AppendV2(nil, h.Src, h.Dst)} {
				h3, err := Parse(out, V1|V2)
				if err != nil || h3.Src.Addr().Unmap() != h.Src.Addr().Unmap() || h3.Src.Port() != h.Src.Port() {
					t.Fatalf("%+v written as %q reads back as %+v, %v", h, out, h3, err)
				}
			}
		}
	})
}
