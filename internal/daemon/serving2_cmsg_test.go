package daemon

import (
	"bytes"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func pktinfo4(spec, addr string, ifindex byte) []byte {
	var info [unix.SizeofInet4Pktinfo]byte
	info[0] = ifindex
	s, a := netip.MustParseAddr(spec).As4(), netip.MustParseAddr(addr).As4()
	copy(info[4:8], s[:])
	copy(info[8:12], a[:])
	return appendCmsg(nil, unix.IPPROTO_IP, unix.IP_PKTINFO, info[:])
}

func pktinfo6(addr string, ifindex byte) []byte {
	var info [unix.SizeofInet6Pktinfo]byte
	a := netip.MustParseAddr(addr).As16()
	copy(info[0:16], a[:])
	info[16] = ifindex
	return appendCmsg(nil, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, info[:])
}

func TestReplySourceControl(t *testing.T) {
	other := appendCmsg(nil, unix.SOL_SOCKET, unix.SO_TIMESTAMP, make([]byte, 16))
	cases := []struct {
		name string
		oob  []byte
		want []byte
	}{
		{"none", nil, nil},
		{"v4 unicast", pktinfo4("10.0.0.2", "10.0.0.2", 7), pktinfo4("10.0.0.2", "0.0.0.0", 0)},
		{"v4 broadcast uses the local address", pktinfo4("10.0.0.2", "10.0.0.255", 7), pktinfo4("10.0.0.2", "0.0.0.0", 0)},
		{"v4 multicast", pktinfo4("224.0.0.1", "224.0.0.1", 7), nil},
		{"v6 global drops the ifindex", pktinfo6("fd00::2", 3), pktinfo6("fd00::2", 0)},
		{"v6 link-local keeps the ifindex", pktinfo6("fe80::1", 3), pktinfo6("fe80::1", 3)},
		{"v4-mapped", pktinfo6("::ffff:10.0.0.2", 3), pktinfo6("::ffff:10.0.0.2", 0)},
		{"v6 multicast", pktinfo6("ff02::1", 3), nil},
		{"after another message", append(append([]byte{}, other...), pktinfo6("fd00::2", 0)...), pktinfo6("fd00::2", 0)},
		{"truncated", pktinfo6("fd00::2", 0)[:20], nil},
	}
	for _, c := range cases {
		got := replySourceControl(make([]byte, 0, 64), c.oob)
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s: got %x, want %x", c.name, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { replySourceControl(make([]byte, 0, 64), cases[4].oob) }); n > 1 {
		t.Errorf("replySourceControl allocates %v times per datagram", n)
	}
}

func FuzzReplySourceControl(f *testing.F) {
	f.Add(pktinfo4("10.0.0.2", "10.0.0.2", 7))
	f.Add(pktinfo6("fe80::1", 3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 8, 0, 0, 0})
	f.Fuzz(func(t *testing.T, oob []byte) {
		out := replySourceControl(nil, oob)
		if len(out) != 0 && len(out) != unix.CmsgSpace(unix.SizeofInet4Pktinfo) && len(out) != unix.CmsgSpace(unix.SizeofInet6Pktinfo) {
			t.Fatalf("answer control of %d bytes", len(out))
		}
	})
}
