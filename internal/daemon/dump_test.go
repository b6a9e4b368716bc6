package daemon

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/access"
	"github.com/gxinetd/gxinetd/internal/service"
)

// TestLeaseMismatches: the consistency check accounts for every lease
// the engine counts (a server holding it, or a request admitted whose
// server has not started yet) and reports only leases nobody accounts for.
func TestLeaseMismatches(t *testing.T) {
	ext := &service.Service{ID: "Ext", Name: "ext", Server: "/bin/true", SocketType: service.SockStream,
		Instances: service.Unlimited, PerSource: service.Unlimited}
	builtin := &service.Service{ID: "dt", Name: "daytime", Type: service.TypeInternal, Builtin: "daytime",
		SocketType: service.SockStream, Instances: service.Unlimited, PerSource: service.Unlimited}
	eng := access.New(access.Global{})
	eng.Configure([]*service.Service{ext, builtin})
	d := &Daemon{eng: eng, counters: map[string]*counters{}}
	rExt := &svcRun{d: d, cnt: d.countersLocked(ext.ID)}
	rExt.svc.Store(ext)
	rDt := &svcRun{d: d, cnt: d.countersLocked(builtin.ID)}
	rDt.svc.Store(builtin)
	d.runs = []*svcRun{rExt, rDt}

	admit := func(s *service.Service) *access.Lease {
		t.Helper()
		dec := eng.Decide(context.Background(), access.Request{Service: s, Peer: netip.MustParseAddrPort("127.0.0.1:4000"), Now: time.Now()})
		if !dec.Allow {
			t.Fatalf("%s refused: %v", s.ID, dec.Reason)
		}
		return dec.Lease
	}
	check := func(step string, want map[string][2]int) {
		t.Helper()
		got := d.leaseMismatches()
		if len(got) != len(want) {
			t.Fatalf("%s: mismatches %+v, want %v", step, got, want)
		}
		for id, w := range want {
			if m := got[id]; m.actual != w[0] || m.known != w[1] {
				t.Errorf("%s: %s = %+v, want actual %d known %d", step, id, m, w[0], w[1])
			}
		}
	}

	check("idle", nil)
	// A builtin session holds a lease with no process: not compared.
	bl := admit(builtin)
	check("builtin running", nil)
	// An admitted request waiting for its ident answer.
	l1 := admit(ext)
	rExt.cnt.inflight.Add(1)
	check("ident in flight", nil)
	// Its server started: the child holds the lease now. Servers are
	// counted by their service's id, whichever run they belong to.
	rExt.cnt.inflight.Add(-1)
	other := &svcRun{d: d, cnt: rExt.cnt}
	other.svc.Store(ext)
	c100 := &child{pid: 100, run: other, svc: ext, lease: l1}
	d.kids.add(c100)
	check("server running", nil)
	// A leaked lease: counted by the engine, held by nobody.
	leaked := admit(ext)
	check("leaked lease", map[string][2]int{"ext": {1, 2}})
	leaked.Release()
	// A server whose lease was already released (a twist for a refused
	// client has none) is not counted against the engine.
	d.kids.add(&child{pid: 101, run: &svcRun{}, svc: ext})
	check("server without lease", nil)
	// A tracked server the engine no longer counts.
	l1.Release()
	check("released early", map[string][2]int{"ext": {1, 0}})
	d.kids.remove(c100)
	bl.Release()
	check("all done", nil)
	if n := leasedServers(d.kids.list())["ext"]; n != 0 {
		t.Errorf("leased servers after the end = %d", n)
	}
}

func TestAddrListAllowsMappedEntries(t *testing.T) {
	l := service.AddrList{Set: true, Entries: []service.AddrEntry{
		{Kind: service.AddrNet, Prefix: netip.MustParsePrefix("::ffff:127.0.0.0/104")},
		{Kind: service.AddrNumeric, Prefix: netip.MustParsePrefix("::1/128")},
	}}
	for _, c := range []struct {
		addr string
		want bool
	}{{"127.0.0.2", true}, {"10.0.0.1", false}, {"::1", true}, {"::2", false}} {
		if got := addrListAllows(l, netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("%s: allowed = %v, want %v", c.addr, got, c.want)
		}
	}
}
