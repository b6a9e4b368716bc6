package access

import (
	"context"
	"fmt"
	"math/rand"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// benchEngine builds a service with 1,000-entry only_from and no_access
// lists and a 300-rule hosts.allow / hosts.deny, and a client it admits.
func benchEngine(b testing.TB) (*Engine, *service.Service, netip.AddrPort) {
	rng := rand.New(rand.NewSource(1))
	var only, no []string
	for i := 0; i < 1000; i++ {
		bits := []int{8, 16, 24, 28, 32}[rng.Intn(5)]
		a := netip.AddrFrom4([4]byte{byte(11 + rng.Intn(100)), byte(rng.Intn(256)), byte(rng.Intn(256)), byte(rng.Intn(256))})
		p, _ := a.Prefix(bits)
		only = append(only, p.String())
		no = append(no, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(150 + rng.Intn(50)), byte(rng.Intn(256)), byte(rng.Intn(256)), 0}), 24).String())
	}
	only = append(only, "10.0.0.0/8")
	s := svc("bench")
	s.Flags = 0
	s.Instances, s.PerSource = 1000000, 1000
	s.CPS = service.CPS{}
	s.OnlyFrom = list(b, true, only...)
	s.NoAccess = list(b, true, no...)
	var allow, deny strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&allow, "daemon%d: 192.168.%d.0/255.255.255.0 10.%d. EXCEPT 10.%d.1.1\n", i, i%256, i%256, i%256)
		fmt.Fprintf(&deny, "other%d: ALL EXCEPT 172.16.%d.\n", i, i%256)
	}
	allow.WriteString("echo: 10.0.0.0/8 172.16.0.0/12 [2001:db8::]/32\n")
	deny.WriteString("ALL: 198.51.100.0/24\n")
	dir := b.TempDir()
	g := Global{
		HostsAllow: writeFile(b, filepath.Join(dir, "hosts.allow"), allow.String()),
		HostsDeny:  writeFile(b, filepath.Join(dir, "hosts.deny"), deny.String()),
	}
	e, _ := newEngine(b, g, s)
	return e, s, netip.MustParseAddrPort("10.20.30.40:40000")
}

func BenchmarkDecide(b *testing.B) {
	e, s, peer := benchEngine(b)
	ctx := context.Background()
	r := Request{Service: s, Peer: peer, Now: t0}
	if d := e.Decide(ctx, r); !d.Allow {
		b.Fatalf("bench client refused: %v %s", d.Reason, d.Detail)
	} else {
		d.Lease.Release()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := e.Decide(ctx, r)
		d.Lease.Release()
	}
}

func BenchmarkDecideParallel(b *testing.B) {
	e, s, peer := benchEngine(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := Request{Service: s, Peer: peer, Now: t0}
		for pb.Next() {
			d := e.Decide(ctx, r)
			d.Lease.Release()
		}
	})
}

func TestDecideAllowPathAllocations(t *testing.T) {
	e, s, peer := benchEngine(t)
	ctx := context.Background()
	r := Request{Service: s, Peer: peer, Now: t0}
	avg := testing.AllocsPerRun(1000, func() {
		d := e.Decide(ctx, r)
		if !d.Allow {
			t.Fatal(d.Reason)
		}
		d.Lease.Release()
	})
	// Leases come from 32-entry slabs: one allocation per 32 admissions.
	if avg > 0.1 {
		t.Fatalf("allow path allocates %.2f times per call", avg)
	}
}
