package access

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

func TestAccessTimes(t *testing.T) {
	day := func(h, m, s int) time.Time { return time.Date(2026, 1, 2, h, m, s, 0, time.UTC) }
	tests := []struct {
		name   string
		ranges []service.TimeRange
		now    time.Time
		allow  bool
	}{
		{"inside", []service.TimeRange{{Start: 540, End: 1020}}, day(12, 0, 0), true},
		{"start bound inclusive", []service.TimeRange{{Start: 540, End: 1020}}, day(9, 0, 0), true},
		{"end minute inclusive to its last second", []service.TimeRange{{Start: 540, End: 1020}}, day(17, 0, 59), true},
		{"after end", []service.TimeRange{{Start: 540, End: 1020}}, day(17, 1, 0), false},
		{"before start", []service.TimeRange{{Start: 540, End: 1020}}, day(8, 59, 59), false},
		{"24:00 end admits 23:59", []service.TimeRange{{Start: 720, End: 1440}}, day(23, 59, 30), true},
		{"wrap past midnight, late", []service.TimeRange{{Start: 1320, End: 360}}, day(23, 0, 0), true},
		{"wrap past midnight, early", []service.TimeRange{{Start: 1320, End: 360}}, day(5, 59, 0), true},
		{"wrap past midnight, midday refused", []service.TimeRange{{Start: 1320, End: 360}}, day(12, 0, 0), false},
		{"second interval", []service.TimeRange{{Start: 0, End: 60}, {Start: 150, End: 255}}, day(2, 30, 0), true},
		{"xinetd sample 13: 2:00-3:00 at 00:36", []service.TimeRange{{Start: 120, End: 180}}, day(0, 36, 46), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := svc("t")
			s.AccessTimes = tc.ranges
			e, _ := newEngine(t, Global{}, s)
			d := e.Decide(context.Background(), Request{Service: s, Peer: ap("127.0.0.1"), Now: tc.now})
			if d.Allow != tc.allow || (!d.Allow && d.Reason != ReasonTime) {
				t.Fatalf("Allow=%v reason=%v, want %v", d.Allow, d.Reason, tc.allow)
			}
			d.Lease.Release()
		})
	}
}

func TestCPS(t *testing.T) {
	s := svc("c1")
	s.CPS = service.CPS{Rate: 2, Wait: 5}
	e, _ := newEngine(t, Global{}, s)
	ctx := context.Background()
	at := func(d time.Duration) Decision {
		r := e.Decide(ctx, Request{Service: s, Peer: ap("127.0.0.1"), Now: t0.Add(d)})
		r.Lease.Release()
		return r
	}
	// xinetd sample 13: cps = 2 5, three within one second trip.
	if !at(0).Allow || !at(100*time.Millisecond).Allow {
		t.Fatal("first two refused")
	}
	d := at(200 * time.Millisecond)
	if d.Allow || d.Reason != ReasonCPS || d.SuspendFor != 5*time.Second {
		t.Fatalf("third: %+v", d)
	}
	if d := at(time.Second); d.Allow || d.Reason != ReasonCPS || d.SuspendFor != 0 {
		t.Fatalf("during suspension: %+v", d)
	}
	if d := at(5*time.Second + 300*time.Millisecond); !d.Allow {
		t.Fatalf("after WAIT: %+v", d)
	}
	// The window is any one second, not a calendar second.
	s2 := svc("c2")
	s2.CPS = service.CPS{Rate: 2, Wait: 1}
	e.Configure([]*service.Service{s, s2})
	base := t0.Add(time.Hour)
	for i, off := range []time.Duration{900 * time.Millisecond, 1100 * time.Millisecond} {
		d := e.Decide(ctx, Request{Service: s2, Peer: ap("127.0.0.1"), Now: base.Add(off)})
		if !d.Allow {
			t.Fatalf("request %d refused", i)
		}
		d.Lease.Release()
	}
	if d := e.Decide(ctx, Request{Service: s2, Peer: ap("127.0.0.1"), Now: base.Add(1500 * time.Millisecond)}); d.Allow {
		t.Fatal("three connections within 0.6 s across a second boundary were not tripped")
	}
	if d := e.Decide(ctx, Request{Service: s2, Peer: ap("127.0.0.1"), Now: base.Add(4 * time.Second)}); !d.Allow {
		t.Fatal("spaced connection refused")
	}
}

func TestCPSKeepsRunningCounts(t *testing.T) {
	s := svc("c")
	s.CPS = service.CPS{Rate: 1, Wait: 1}
	s.Instances = 2
	e, _ := newEngine(t, Global{}, s)
	ctx := context.Background()
	d1 := e.Decide(ctx, Request{Service: s, Peer: ap("127.0.0.1"), Now: t0})
	d2 := e.Decide(ctx, Request{Service: s, Peer: ap("127.0.0.1"), Now: t0.Add(10 * time.Millisecond)})
	if !d1.Allow || d2.Allow || d2.SuspendFor != time.Second {
		t.Fatalf("d1=%+v d2=%+v", d1, d2)
	}
	d3 := e.Decide(ctx, Request{Service: s, Peer: ap("127.0.0.1"), Now: t0.Add(3 * time.Second)})
	d4 := e.Decide(ctx, Request{Service: s, Peer: ap("127.0.0.1"), Now: t0.Add(5 * time.Second)})
	if !d3.Allow || d4.Allow || d4.Reason != ReasonServiceLimit {
		t.Fatalf("instances not enforced after re-open: d3=%v d4=%v %v", d3.Allow, d4.Allow, d4.Reason)
	}
	d1.Lease.Release()
	d3.Lease.Release()
}

// TestLimitsConcurrent drives each limit with many goroutines holding
// leases and checks the exact numbers admitted and refused.
func TestLimitsConcurrent(t *testing.T) {
	const workers = 64
	tests := []struct {
		name    string
		setup   func(s *service.Service, g *Global)
		peer    func(i int) string
		allowed int
		reason  Reason
	}{
		{"instances", func(s *service.Service, g *Global) { s.Instances = 5 }, func(int) string { return "127.0.0.1" }, 5, ReasonServiceLimit},
		{"instances 0 refuses all", func(s *service.Service, g *Global) { s.Instances = 0 }, func(int) string { return "127.0.0.1" }, 0, ReasonServiceLimit},
		{"per_source", func(s *service.Service, g *Global) { s.PerSource = 3 }, func(i int) string { return fmt.Sprintf("127.0.0.%d", 1+i%4) }, 12, ReasonPerSourceLimit},
		{"per_source by /24", func(s *service.Service, g *Global) { s.PerSource = 2; s.PerSourcePrefix4 = 24 },
			func(i int) string { return fmt.Sprintf("10.0.%d.%d", i%3, 1+i) }, 6, ReasonPerSourceLimit},
		{"per_source v4-mapped same as IPv4", func(s *service.Service, g *Global) { s.PerSource = 1 },
			func(i int) string {
				if i%2 == 0 {
					return "::ffff:127.0.0.1"
				}
				return "127.0.0.1"
			}, 1, ReasonPerSourceLimit},
		{"process limit", func(s *service.Service, g *Global) { g.ProcessLimit = 7 }, func(int) string { return "127.0.0.1" }, 7, ReasonProcessLimit},
		{"inetd max-child", func(s *service.Service, g *Global) { s.Instances = 4; s.Inetd.Dialect = "freebsd" }, func(int) string { return "127.0.0.1" }, 4, ReasonServiceLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := svc("lim")
			s.CPS = service.CPS{}
			var g Global
			tc.setup(s, &g)
			e, _ := newEngine(t, g, s)
			var allowed, refused atomic.Int64
			var mu sync.Mutex
			var leases []*Lease
			var wg sync.WaitGroup
			for i := 0; i < workers; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					d := e.Decide(context.Background(), Request{Service: s, Peer: ap(tc.peer(i)), Now: t0})
					if d.Allow {
						allowed.Add(1)
						mu.Lock()
						leases = append(leases, d.Lease)
						mu.Unlock()
						return
					}
					if d.Reason != tc.reason {
						t.Errorf("reason %v, want %v", d.Reason, tc.reason)
					}
					refused.Add(1)
				}(i)
			}
			wg.Wait()
			if int(allowed.Load()) != tc.allowed || int(refused.Load()) != workers-tc.allowed {
				t.Fatalf("allowed %d refused %d, want %d/%d", allowed.Load(), refused.Load(), tc.allowed, workers-tc.allowed)
			}
			snap := e.Snapshot()
			if snap.Services["lim"].Running != tc.allowed || snap.Running != tc.allowed {
				t.Fatalf("running %d / %d, want %d", snap.Services["lim"].Running, snap.Running, tc.allowed)
			}
			if got := snap.Services["lim"].Refused[tc.reason]; int(got) != workers-tc.allowed {
				t.Fatalf("refused[%v] = %d", tc.reason, got)
			}
			// Release twice (idempotent) from many goroutines, then everything is free again.
			for _, l := range leases {
				wg.Add(2)
				go func(l *Lease) { defer wg.Done(); l.Release() }(l)
				go func(l *Lease) { defer wg.Done(); l.Release() }(l)
			}
			wg.Wait()
			snap = e.Snapshot()
			if snap.Services["lim"].Running != 0 || snap.Running != 0 || snap.Tables.Sources != 0 {
				t.Fatalf("after release: %+v", snap)
			}
			if tc.allowed > 0 {
				d := e.Decide(context.Background(), Request{Service: s, Peer: ap(tc.peer(0)), Now: t0})
				if !d.Allow {
					t.Fatalf("refused after release: %v", d.Reason)
				}
				d.Lease.Release()
			}
		})
	}
}

func TestLoad(t *testing.T) {
	s := svc("c4")
	s.MaxLoad = 0.5
	load, loadErr := 0.2, error(nil)
	e, n := newEngine(t, Global{Load: func() (float64, error) { return load, loadErr }}, s)
	dec := func() Decision {
		d := e.Decide(context.Background(), Request{Service: s, Peer: ap("127.0.0.1"), Now: t0})
		d.Lease.Release()
		return d
	}
	if !dec().Allow {
		t.Fatal("refused under low load")
	}
	load = 0.5
	if d := dec(); d.Allow || d.Reason != ReasonLoad {
		t.Fatalf("load == max_load: %+v", d)
	}
	if n.count("error: refused connect from 127.0.0.1 due to excessive load") != 1 {
		t.Fatalf("notes %q", n.all())
	}
	loadErr = errors.New("unreadable")
	if !dec().Allow {
		t.Fatal("unreadable load must not refuse")
	}
	if l, err := sysLoad(); err != nil || l < 0 {
		t.Fatalf("sysLoad = %v, %v", l, err)
	}
}

func TestInetdRates(t *testing.T) {
	ctx := context.Background()
	t.Run("per-minute invocations trip looping", func(t *testing.T) {
		s := svc("loop")
		s.Inetd.PerMinute = 3
		e, _ := newEngine(t, Global{}, s)
		for i := 0; i < 3; i++ {
			d := e.Decide(ctx, Request{Service: s, Peer: ap("127.0.0.1"), Now: t0.Add(time.Duration(i) * time.Second)})
			if !d.Allow {
				t.Fatalf("invocation %d refused: %v", i, d.Reason)
			}
			d.Lease.Release()
		}
		d := e.Decide(ctx, Request{Service: s, Peer: ap("127.0.0.2"), Now: t0.Add(5 * time.Second)})
		if d.Allow || d.Reason != ReasonLooping || d.SuspendFor != LoopingSuspend || !strings.Contains(d.Detail, "server failing (looping)") {
			t.Fatalf("4th: %+v", d)
		}
		if d := e.Decide(ctx, Request{Service: s, Peer: ap("127.0.0.2"), Now: t0.Add(9 * time.Minute)}); d.Reason != ReasonLooping {
			t.Fatalf("still suspended: %+v", d)
		}
		d = e.Decide(ctx, Request{Service: s, Peer: ap("127.0.0.2"), Now: t0.Add(11 * time.Minute)})
		if !d.Allow {
			t.Fatalf("after 10 min: %+v", d)
		}
		d.Lease.Release()
	})
	t.Run("per-IP per-minute", func(t *testing.T) {
		s := svc("rate")
		s.Inetd.PerIPPerMinute = 2
		e, _ := newEngine(t, Global{}, s)
		got := ""
		for i, p := range []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.1"} {
			now := t0.Add(time.Duration(i) * 5 * time.Second)
			d := e.Decide(ctx, Request{Service: s, Peer: ap(p), Now: now})
			if d.Allow {
				got += "A"
			} else {
				got += d.Reason.Code()[:1]
			}
			d.Lease.Release()
		}
		if got != "AApAp" {
			t.Fatalf("sequence %q, want AApAp", got)
		}
		d := e.Decide(ctx, Request{Service: s, Peer: ap("127.0.0.1"), Now: t0.Add(2 * time.Minute)})
		if !d.Allow {
			t.Fatalf("a minute later: %+v", d)
		}
		d.Lease.Release()
	})
}

func TestReasonWords(t *testing.T) {
	want := map[Reason][2]string{
		ReasonAddress:        {"address", "address"},
		ReasonLibwrap:        {"libwrap", "libwrap"},
		ReasonTime:           {"time", "time"},
		ReasonCPS:            {"connections per second", "cps"},
		ReasonServiceLimit:   {"service_limit", "service_limit"},
		ReasonPerSourceLimit: {"per_source_limit", "per_source_limit"},
		ReasonProcessLimit:   {"process_limit", "process_limit"},
		ReasonLoad:           {"load", "load"},
		ReasonFork:           {"fork", "fork"},
	}
	for r, w := range want {
		if r.String() != w[0] || r.Code() != w[1] {
			t.Errorf("%d: %q/%q, want %q/%q", r, r.String(), r.Code(), w[0], w[1])
		}
	}
	if Reason(99).String() != "UNKNOWN" {
		t.Error("unknown reason word")
	}
	seen := map[string]bool{}
	for _, r := range Reasons() {
		if seen[r.Code()] || strings.ContainsAny(r.Code(), " -") {
			t.Errorf("code %q duplicate or not snake_case", r.Code())
		}
		seen[r.Code()] = true
	}
}

func TestConfigureKeepsState(t *testing.T) {
	s := svc("Keep")
	s.Instances = 1
	gone := svc("gone")
	e, _ := newEngine(t, Global{}, s, gone)
	ctx := context.Background()
	d := e.Decide(ctx, Request{Service: s, Peer: ap("127.0.0.1"), Now: t0})
	if !d.Allow {
		t.Fatal(d.Reason)
	}
	dg := e.Decide(ctx, Request{Service: gone, Peer: ap("127.0.0.1"), Now: t0})
	// Reload: same id in another case, new pointer.
	s2 := svc("keep")
	s2.Instances = 1
	e.Configure([]*service.Service{s2})
	if d2 := e.Decide(ctx, Request{Service: s2, Peer: ap("127.0.0.1"), Now: t0}); d2.Allow {
		t.Fatal("running count lost across Configure")
	}
	snap := e.Snapshot()
	if len(snap.Services) != 1 || snap.Services["keep"].Served != 1 || snap.Services["keep"].ID != "keep" || snap.Running != 2 {
		t.Fatalf("snapshot %+v", snap)
	}
	dg.Lease.Release() // lease of a dropped service still frees the global count
	d.Lease.Release()
	if e.Snapshot().Running != 0 {
		t.Fatal("global count not released")
	}
	d3 := e.Decide(ctx, Request{Service: s2, Peer: ap("127.0.0.1"), Now: t0})
	if !d3.Allow {
		t.Fatal(d3.Reason)
	}
	e.ReleaseAll("KEEP")
	if snap := e.Snapshot(); snap.Running != 0 || snap.Services["keep"].Running != 0 {
		t.Fatalf("ReleaseAll: %+v", snap)
	}
	d3.Lease.Release() // now a no-op
	if snap := e.Snapshot(); snap.Running != 0 || snap.Services["keep"].Running != 0 {
		t.Fatalf("stale lease changed counts: %+v", snap)
	}
}

// TestDatagramCPS: for datagram services a source over the rate is
// refused on its own before anything service-wide happens, and a
// datagram builtin is held to the rate but never switched off (on the
// old code 51 forged datagrams from 51 sources suspended it for 10 s).
func TestDatagramCPS(t *testing.T) {
	ctx := context.Background()
	builtin := svc("udp-daytime")
	builtin.SocketType, builtin.Protocol = service.SockDgram, "udp"
	builtin.Type = service.TypeInternal
	builtin.Builtin = "daytime"
	builtin.CPS = service.CPS{Rate: 50, Wait: 10}
	external := svc("tftp")
	external.SocketType, external.Protocol, external.Wait = service.SockDgram, "udp", true
	external.CPS = service.CPS{Rate: 5, Wait: 10}
	e, _ := newEngine(t, Global{}, builtin, external)
	from := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), 40000)
	}
	decide := func(s *service.Service, p netip.AddrPort, at time.Duration) Decision {
		d := e.Decide(ctx, Request{Service: s, Peer: p, Now: t0.Add(at)})
		d.Lease.Release()
		return d
	}

	t.Run("builtin, one source", func(t *testing.T) {
		base := time.Hour
		for i := 0; i < 50; i++ {
			if d := decide(builtin, from(1), base); !d.Allow {
				t.Fatalf("datagram %d refused: %+v", i, d)
			}
		}
		d := decide(builtin, from(1), base)
		if d.Allow || d.Reason != ReasonCPS || d.SuspendFor != 0 {
			t.Fatalf("51st datagram from one source: %+v", d)
		}
		if !strings.Contains(d.Detail, "from 127.1.0.1") {
			t.Errorf("refusal does not name the source: %q", d.Detail)
		}
		// A second later the service answers again.
		if d := decide(builtin, from(2), base+1001*time.Millisecond); !d.Allow {
			t.Fatalf("next second, another source: %+v", d)
		}
	})
	t.Run("builtin, forged sources", func(t *testing.T) {
		base := 2 * time.Hour
		allowed := 0
		for i := 0; i < 1000; i++ {
			d := decide(builtin, from(i), base+time.Duration(i)*time.Microsecond)
			if d.SuspendFor != 0 {
				t.Fatalf("datagram %d switched the builtin off: %+v", i, d)
			}
			if d.Allow {
				allowed++
			}
		}
		if allowed != 50 {
			t.Errorf("%d of 1000 datagrams within a second answered, want the rate, 50", allowed)
		}
		if d := decide(builtin, from(5000), base+1100*time.Millisecond); !d.Allow {
			t.Fatalf("a second later: %+v", d)
		}
	})
	t.Run("external, one source then many", func(t *testing.T) {
		base := 3 * time.Hour
		for i := 0; i < 5; i++ {
			if d := decide(external, from(1), base); !d.Allow {
				t.Fatalf("datagram %d refused: %+v", i, d)
			}
		}
		// The sixth from the same source is refused on its own account
		// (the old code suspended the service here).
		d := decide(external, from(1), base)
		if d.Allow || d.Reason != ReasonCPS || d.SuspendFor != 0 {
			t.Fatalf("one source over the rate: %+v", d)
		}
		// A sixth datagram from elsewhere within the second is the
		// service's own excess: xinetd's cps for a program started per
		// datagram stays.
		d = decide(external, from(2), base)
		if d.Allow || d.Reason != ReasonCPS || d.SuspendFor != 10*time.Second {
			t.Fatalf("service over the rate: %+v", d)
		}
	})
}

// TestRefusalHook: a message about one refused request goes, with the
// client's address, to Global.Refusal when it is set (the daemon's
// refusal budget), not to Notify.
func TestRefusalHook(t *testing.T) {
	s := svc("hook")
	s.MaxLoad = 0.5
	type note struct {
		level string
		peer  netip.Addr
		msg   string
	}
	var got []note
	e, n := newEngine(t, Global{Load: func() (float64, error) { return 9, nil },
		Refusal: func(level string, peer netip.Addr, msg string) { got = append(got, note{level, peer, msg}) }}, s)
	d := e.Decide(context.Background(), Request{Service: s, Peer: ap("127.0.0.7"), Now: t0})
	if d.Allow || d.Reason != ReasonLoad {
		t.Fatalf("%+v", d)
	}
	if len(got) != 1 || got[0].peer != netip.MustParseAddr("127.0.0.7") || got[0].level != "error" ||
		got[0].msg != "refused connect from 127.0.0.7 due to excessive load" {
		t.Errorf("Refusal got %+v", got)
	}
	if len(n.all()) != 0 {
		t.Errorf("Notify got %q as well", n.all())
	}
}
