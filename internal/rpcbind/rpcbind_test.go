package rpcbind

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUniversalAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"127.0.0.1:111", "127.0.0.1.0.111"},
		{"0.0.0.0:2049", "0.0.0.0.8.1"},
		{"[::]:65535", "::.255.255"},
		{"[::1]:256", "::1.1.0"},
		{"[::ffff:10.0.0.1]:1", "10.0.0.1.0.1"},
		{"[fe80::1%eth0]:600", "fe80::1.2.88"},
	} {
		if got := UniversalAddr(netip.MustParseAddrPort(tc.in)); got != tc.want {
			t.Errorf("UniversalAddr(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := UniversalAddr(netip.AddrPort{}); got != "0.0.0.0.0.0" {
		t.Errorf("UniversalAddr(zero) = %q", got)
	}
}

// The exact bytes of a version 4 SET: call header with AUTH_NONE, then
// struct rpcb with XDR strings padded to four bytes.
func TestEncodeSet(t *testing.T) {
	m := Mapping{Prog: 300999, Vers: 2, Netid: "tcp6", Addr: netip.MustParseAddrPort("[::1]:4660")}
	got := encodeCall(7, rpcbVers4, procSet, rpcbArgs(m))
	want := be32(nil, 7, 0, 2, 100000, 4, 1, 0, 0, 0, 0, 300999, 2, 4)
	want = append(want, "tcp6"...)
	want = be32(want, 9)
	want = append(want, "::1.18.52\x00\x00\x00"...)
	want = be32(want, 0)
	if !bytes.Equal(got, want) {
		t.Fatalf("SET call\n got %x\nwant %x", got, want)
	}
}

func reply(id uint32, words ...uint32) []byte { return be32(be32(nil, id, msgReply), words...) }

func TestDecodeReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
		err  string
	}{
		{"true", reply(9, 0, 0, 0, 0, 1), true, ""},
		{"false", reply(9, 0, 0, 0, 0, 0), false, ""},
		{"verifier skipped", append(reply(9, 0, 1, 5), append([]byte("abcde\x00\x00\x00"), be32(nil, 0, 1)...)...), true, ""},
		{"other xid", reply(8, 0, 0, 0, 0, 1), false, "reply to call 8"},
		{"a call", be32(nil, 9, msgCall), false, "not a reply"},
		{"denied", reply(9, 1, 1), false, "denied"},
		{"version mismatch", reply(9, 0, 0, 0, 2, 2, 4), false, "supported 2-4"},
		{"procedure unavailable", reply(9, 0, 0, 0, 3), false, "procedure unavailable"},
		{"short", reply(9, 0, 0, 0, 0), false, "short"},
		{"verifier past the end", reply(9, 0, 0, 400), false, "short"},
	} {
		ok, err := decodeReply(9, tc.b)
		if tc.err == "" {
			if err != nil || ok != tc.ok {
				t.Errorf("%s: got %v, %v; want %v", tc.name, ok, err, tc.ok)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.err)
		}
	}
}

func FuzzDecodeReply(f *testing.F) {
	f.Add(reply(1, 0, 0, 0, 0, 1))
	f.Add(reply(1, 0, 1, 5, 0, 0))
	f.Add(reply(1, 1, 0, 2, 4))
	f.Fuzz(func(t *testing.T, b []byte) {
		ok, err := decodeReply(1, b)
		if err != nil && ok {
			t.Fatalf("error %v with a true result", err)
		}
	})
}

// fakeRpcbind answers every record on a unix socket with result and
// keeps the calls it got.
type fakeRpcbind struct {
	path  string
	calls chan []byte
}

func newFake(t *testing.T, result uint32) *fakeRpcbind {
	t.Helper()
	f := &fakeRpcbind{path: filepath.Join(t.TempDir(), "rpcbind.sock"), calls: make(chan []byte, 16)}
	l, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var hdr [4]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				body := make([]byte, binary.BigEndian.Uint32(hdr[:])&^lastFragBit)
				if _, err := io.ReadFull(c, body); err != nil {
					return
				}
				f.calls <- body
				// The reply in two fragments: the client must join them.
				r := reply(binary.BigEndian.Uint32(body), 0, 0, 0, 0, result)
				out := be32(nil, 8)
				out = append(out, r[:8]...)
				out = be32(out, lastFragBit|uint32(len(r)-8))
				c.Write(append(out, r[8:]...))
			}()
		}
	}()
	return f
}

func (f *fakeRpcbind) next(t *testing.T) (proc uint32, args []byte) {
	t.Helper()
	select {
	case b := <-f.calls:
		if len(b) < 40 || binary.BigEndian.Uint32(b[12:]) != rpcbProg || binary.BigEndian.Uint32(b[16:]) != rpcbVers4 {
			t.Fatalf("not an rpcbind v4 call: %x", b)
		}
		return binary.BigEndian.Uint32(b[20:]), b[40:]
	case <-time.After(5 * time.Second):
		t.Fatal("no call reached the fake rpcbind")
	}
	return 0, nil
}

func TestSetUnsetsFirstThenSets(t *testing.T) {
	f := newFake(t, 1)
	c := &Client{Sockets: []string{filepath.Join(t.TempDir(), "absent.sock"), f.path}}
	m := Mapping{Prog: 300999, Vers: 1, Netid: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:700")}
	if err := c.Set(m); err != nil {
		t.Fatal(err)
	}
	want := rpcbArgs(m)
	for _, proc := range []uint32{procUnset, procSet} {
		p, args := f.next(t)
		if p != proc || !bytes.Equal(args, want) {
			t.Errorf("call: procedure %d args %x, want %d %x", p, args, proc, want)
		}
	}
	if err := c.Unset(m); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.next(t); p != procUnset {
		t.Errorf("Unset made procedure %d", p)
	}
}

func TestSetRefused(t *testing.T) {
	f := newFake(t, 0)
	c := &Client{Sockets: []string{f.path}}
	err := c.Set(Mapping{Prog: 1, Vers: 1, Netid: "tcp"})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Set answered false: error %v, want ErrRefused", err)
	}
	// An UNSET answered false had nothing to withdraw: not an error.
	if err := c.Unset(Mapping{Prog: 1, Vers: 1, Netid: "tcp"}); err != nil {
		t.Fatalf("Unset: %v", err)
	}
}

func TestBadNetid(t *testing.T) {
	c := &Client{Sockets: []string{}}
	if err := c.Set(Mapping{Prog: 1, Vers: 1, Netid: "sctp"}); err == nil || !strings.Contains(err.Error(), "netid") {
		t.Fatalf("Set with netid sctp: %v", err)
	}
}

// A portmapper that only speaks version 2 over UDP: the client falls back
// to it when no local socket answers, and says it cannot register IPv6.
func TestPortmapV2Fallback(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan []byte, 4)
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			got <- append([]byte(nil), buf[:n]...)
			pc.WriteToUDP(reply(binary.BigEndian.Uint32(buf), 0, 0, 0, 0, 1), from)
		}
	}()
	c := &Client{Sockets: []string{filepath.Join(t.TempDir(), "none.sock")}, UDP: pc.LocalAddr().(*net.UDPAddr).AddrPort(), Timeout: time.Second}
	if err := c.Set(Mapping{Prog: 300999, Vers: 3, Netid: "udp", Addr: netip.MustParseAddrPort("0.0.0.0:4242")}); err != nil {
		t.Fatal(err)
	}
	for _, proc := range []uint32{procUnset, procSet} {
		b := <-got
		if v, p := binary.BigEndian.Uint32(b[16:]), binary.BigEndian.Uint32(b[20:]); v != pmapVers || p != proc {
			t.Fatalf("call version %d procedure %d, want 2 and %d", v, p, proc)
		}
		if args := b[40:]; !bytes.Equal(args, be32(nil, 300999, 3, ipprotoUDP, 4242)) {
			t.Fatalf("pmap args %x", args)
		}
	}
	err = c.Set(Mapping{Prog: 300999, Vers: 3, Netid: "tcp6", Addr: netip.MustParseAddrPort("[::]:4242")})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "tcp6") {
		t.Fatalf("tcp6 through a v2 portmapper: %v", err)
	}
}

func TestNothingAnswering(t *testing.T) {
	pc, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close() // a closed port: ECONNREFUSED, not a timeout
	c := &Client{Sockets: []string{filepath.Join(t.TempDir(), "none.sock")}, UDP: addr, Timeout: time.Second}
	if err := c.Set(Mapping{Prog: 1, Vers: 1, Netid: "tcp"}); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Set with nothing listening: %v", err)
	}
}

// The real rpcbind (and rpcinfo reading back what was registered) is
// exercised end to end in e2e/rpc_test.go, the one package that starts
// or uses the machine's rpcbind: packages' tests run concurrently.

// record frames b as one RPC record of the given fragment sizes.
func record(b []byte, sizes ...int) []byte {
	var out []byte
	for i, n := range sizes {
		h := uint32(n)
		if i == len(sizes)-1 {
			h |= lastFragBit
		}
		out = binary.BigEndian.AppendUint32(out, h)
		out = append(out, b[:n]...)
		b = b[n:]
	}
	return out
}

func TestReadRecord(t *testing.T) {
	msg := reply(1, 0, 0, 0, 0, 1)
	for _, sizes := range [][]int{{len(msg)}, {4, len(msg) - 4}, {0, 0, len(msg)}} {
		got, err := readRecord(bytes.NewReader(record(msg, sizes...)))
		if err != nil || !bytes.Equal(got, msg) {
			t.Errorf("fragments %v: %x, %v", sizes, got, err)
		}
	}
	long := binary.BigEndian.AppendUint32(nil, lastFragBit|(maxReply+1))
	for name, in := range map[string][]byte{"empty": nil, "short header": {0, 0}, "short body": record(msg, len(msg))[:10],
		"too long": long} {
		if b, err := readRecord(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: %x, want an error", name, b)
		}
	}
	// A peer that sends empty fragments for ever, none the last, is cut
	// off (it used to keep the call reading until its deadline).
	if b, err := readRecord(zeros{}); err == nil || !strings.Contains(err.Error(), "fragments") {
		t.Errorf("endless empty fragments: %x, %v", b, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func FuzzReadRecord(f *testing.F) {
	msg := reply(1, 0, 0, 0, 0, 1)
	f.Add(record(msg, len(msg)))
	f.Add(record(msg, 4, len(msg)-4))
	f.Add(binary.BigEndian.AppendUint32(nil, lastFragBit|0xffffff))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		b, err := readRecord(r)
		if err == nil && len(b) > maxReply {
			t.Fatalf("record of %d bytes, limit %d", len(b), maxReply)
		}
		if used := len(in) - r.Len(); err == nil && used > maxReply+4*maxFragments {
			t.Fatalf("read %d bytes for one record", used)
		}
	})
}
