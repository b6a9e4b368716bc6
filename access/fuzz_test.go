package access

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// FuzzPrefixMatch checks the compiled longest-prefix match against a
// brute-force scan of every entry. The input bytes are cut into entries
// (5 bytes: which list, IPv4 address, prefix length; or 18 for IPv6) and
// a final client address.
func FuzzPrefixMatch(f *testing.F) {
	f.Add([]byte{0, 10, 0, 0, 0, 8, 1, 10, 1, 0, 0, 16, 10, 1, 2, 3})
	f.Add([]byte{1, 127, 0, 0, 2, 32, 0, 127, 0, 0, 0, 8, 127, 0, 0, 2})
	f.Add([]byte{0x80, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		var only, no service.AddrList
		only.Set = true
		for len(data) > 4 {
			isNo := data[0]&1 == 1
			var p netip.Prefix
			if data[0]&0x80 != 0 {
				if len(data) < 18+4 {
					break
				}
				a := netip.AddrFrom16([16]byte(data[1:17]))
				p = netip.PrefixFrom(a, int(data[17])%129)
				data = data[18:]
			} else {
				if len(data) < 6+4 {
					break
				}
				a := netip.AddrFrom4([4]byte(data[1:5]))
				p = netip.PrefixFrom(a, int(data[5])%33)
				data = data[6:]
			}
			e := service.AddrEntry{Kind: service.AddrNet, Prefix: p, Text: p.String()}
			if isNo {
				no.Entries = append(no.Entries, e)
			} else {
				only.Entries = append(only.Entries, e)
			}
		}
		var client netip.Addr
		switch {
		case len(data) >= 16:
			client = netip.AddrFrom16([16]byte(data[:16]))
		case len(data) >= 4:
			client = netip.AddrFrom4([4]byte(data[:4]))
		default:
			v := binary.BigEndian.Uint16(append([]byte{0, 0}, data...)[len(data):])
			client = netip.AddrFrom4([4]byte{10, 0, byte(v >> 8), byte(v)})
		}
		tab := compileLists(only, no)
		o, n := tab.matchPrefixes(normAddr(client.Unmap()))
		best := func(l service.AddrList) int {
			b := -1
			c := client.Unmap()
			for _, e := range l.Entries {
				p := e.Prefix.Masked()
				var hit bool
				bits := p.Bits()
				if p.Addr().Is4() {
					hit = c.Is4() && p.Contains(c)
					bits += 96
				} else {
					hit = p.Contains(netip.AddrFrom16(c.As16()))
				}
				if hit && bits > b {
					b = bits
				}
			}
			return b
		}
		if bo, bn := best(only), best(no); o.pLen != bo || n.pLen != bn {
			t.Fatalf("client %s: table says only=%d no=%d, scan says %d %d", client, o.pLen, n.pLen, bo, bn)
		}
		// The verdict follows from the two lengths.
		v := tab.decide(o, n)
		want := vAllow
		switch {
		case o.pLen < 0 && n.pLen < 0:
			want = vNotInOnly
		case n.pLen > o.pLen:
			want = vNoAccess
		case n.pLen == o.pLen:
			want = vTie
		}
		if v != want {
			t.Fatalf("client %s: verdict %d, want %d (only %d, no %d)", client, v, want, o.pLen, n.pLen)
		}
	})
}
