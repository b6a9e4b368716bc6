package access

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

func sensorSvc(id string, deny int) *service.Service {
	s := svc(id)
	s.Type = service.TypeInternal
	s.Flags |= service.FlagSensor
	s.Builtin = "sensor"
	s.DenyTime = deny
	return s
}

func TestSensor(t *testing.T) {
	ctx := context.Background()
	trap := sensorSvc("trap", 1)
	forever := sensorSvc("trapu", service.DenyForever)
	forever.SocketType = service.SockDgram
	never := sensorSvc("never", service.DenyNever)
	day := svc("daytime")
	e, n := newEngine(t, Global{}, trap, forever, never, day)
	dec := func(s *service.Service, peer string, now time.Time) Decision {
		d := e.Decide(ctx, Request{Service: s, Peer: ap(peer), Now: now})
		d.Lease.Release()
		return d
	}
	if d := dec(trap, "127.0.0.3", t0); d.Allow || d.Reason != ReasonAddress {
		t.Fatalf("sensor admitted: %+v", d)
	}
	if n.count("crit: Adding 127.0.0.3 to the global_no_access list for 1 minutes") != 1 {
		t.Fatalf("notes %q", n.all())
	}
	if d := dec(day, "127.0.0.3", t0.Add(30*time.Second)); d.Allow || d.Reason != ReasonAddress {
		t.Fatalf("listed address admitted by another service: %+v", d)
	}
	// A repeat hit extends the deadline.
	dec(trap, "127.0.0.3", t0.Add(50*time.Second))
	if d := dec(day, "127.0.0.3", t0.Add(90*time.Second)); d.Allow {
		t.Fatal("repeat hit did not extend the listing")
	}
	if n.count("Adding 127.0.0.3") != 1 {
		t.Fatal("repeat hit logged as a new listing")
	}
	// Expiry, with xinetd's messages.
	if d := dec(day, "127.0.0.3", t0.Add(111*time.Second)); !d.Allow {
		t.Fatalf("expired listing still refuses: %+v", d)
	}
	// The scrub itself runs at most once a minute of request time.
	dec(day, "127.0.0.1", t0.Add(151*time.Second))
	if n.count("info: At least 1 DENY_TIME has expired, global_no_access list updated") != 1 ||
		n.count("info: global_no_access list is empty.") != 1 {
		t.Fatalf("notes %q", n.all())
	}
	// FOREVER never expires and survives Configure.
	dec(forever, "127.0.0.4", t0)
	if n.count("Adding 127.0.0.4 to the global_no_access list for -1 minutes") != 1 {
		t.Fatalf("notes %q", n.all())
	}
	e.Configure([]*service.Service{day})
	e.ScrubDenyList(t0.Add(1000 * time.Hour))
	if d := dec(day, "127.0.0.4", t0.Add(1000*time.Hour)); d.Allow {
		t.Fatal("FOREVER listing lost")
	}
	// NEVER only refuses.
	e.Configure([]*service.Service{day, never})
	dec(never, "127.0.0.9", t0)
	if d := dec(day, "127.0.0.9", t0); !d.Allow {
		t.Fatal("deny_time NEVER listed the address")
	}
	snap := e.Snapshot()
	if len(snap.Deny) != 1 || !snap.Deny[0].Forever || snap.Deny[0].Addr != mustAddr("127.0.0.4") {
		t.Fatalf("deny list %+v", snap.Deny)
	}
	// v4-mapped clients are the same address.
	if d := dec(day, "::ffff:127.0.0.4", t0); d.Allow {
		t.Fatal("v4-mapped form escaped the deny list")
	}
}

func TestSensorCap(t *testing.T) {
	trap := sensorSvc("trap", service.DenyForever)
	e, n := newEngine(t, Global{MaxDeny: 10}, trap)
	for i := 0; i < 50; i++ {
		d := e.Decide(context.Background(), Request{Service: trap, Peer: netipAddrFrom(uint32(0xc0000200 + i)), Now: t0})
		if d.Allow {
			t.Fatal("sensor admitted")
		}
	}
	snap := e.Snapshot()
	if len(snap.Deny) != 10 || snap.CapHits["deny"] != 40 {
		t.Fatalf("deny list %d entries, cap hits %d", len(snap.Deny), snap.CapHits["deny"])
	}
	if n.count("Maximum global_no_access count reached.") != 1 {
		t.Fatalf("cap notice count: %q", n.all())
	}
}

func TestUDPQuiet(t *testing.T) {
	s := svc("u")
	s.SocketType = service.SockDgram
	s.OnlyFrom = list(t, true, "127.0.0.1")
	e, _ := newEngine(t, Global{}, s)
	dec := func(peer string, now time.Time) Decision {
		return e.Decide(context.Background(), Request{Service: s, Peer: ap(peer), Now: now})
	}
	if d := dec("127.0.0.2:5000", t0); d.Allow || d.Quiet {
		t.Fatalf("first refusal: %+v", d)
	}
	if d := dec("127.0.0.2:5000", t0.Add(30*time.Second)); !d.Quiet {
		t.Fatal("repeat within 60 s not quiet")
	}
	if d := dec("127.0.0.2:5001", t0.Add(31*time.Second)); d.Quiet {
		t.Fatal("other source port quiet")
	}
	if d := dec("127.0.0.2:5000", t0.Add(91*time.Second)); d.Quiet {
		t.Fatal("quiet beyond 60 s")
	}
	st := svc("tcp")
	st.OnlyFrom = s.OnlyFrom
	e.Configure([]*service.Service{s, st})
	for i := 0; i < 2; i++ {
		if d := e.Decide(context.Background(), Request{Service: st, Peer: ap("127.0.0.2:5000"), Now: t0}); d.Quiet {
			t.Fatal("stream refusal quiet")
		}
	}
}

// TestFloodBounded sends 200k distinct sources through every table that
// is keyed by source and checks that memory stays bounded.
func TestFloodBounded(t *testing.T) {
	const n = 200_000
	const capN = 1000
	rate := svc("rate")
	rate.Inetd.PerIPPerMinute = 5
	rate.PerSource = 2
	udp := svc("udp")
	udp.SocketType = service.SockDgram
	udp.OnlyFrom = list(t, true, "192.0.2.1")
	trap := sensorSvc("trap", 5)
	e, notes := newEngine(t, Global{MaxSources: capN, MaxDeny: capN}, rate, udp, trap)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ctx := context.Background()
	var held []*Lease
	for i := 0; i < n; i++ {
		p := netipAddrFrom(uint32(0x0a000000 + i))
		now := t0.Add(time.Duration(i) * time.Millisecond)
		d := e.Decide(ctx, Request{Service: rate, Peer: p, Now: now})
		if d.Allow && len(held) < 2*capN {
			held = append(held, d.Lease) // keep some running so per-source entries stay
		} else {
			d.Lease.Release()
		}
		e.Decide(ctx, Request{Service: udp, Peer: p, Now: now})
		e.Decide(ctx, Request{Service: trap, Peer: p, Now: now})
	}
	snap := e.Snapshot()
	if snap.Tables.Sources > capN || snap.Tables.Rates > capN || snap.Tables.Quiet > capN || snap.Tables.Deny > capN {
		t.Fatalf("tables grew past the cap: %+v", snap.Tables)
	}
	for _, k := range []string{"sources", "rates", "quiet", "deny"} {
		if snap.CapHits[k] == 0 {
			t.Errorf("cap hits for %s not counted", k)
		}
	}
	if c := notes.count("per-client rate table for rate full"); c == 0 || c > n/60000+2 {
		t.Errorf("rate cap notices %d, want about one per minute of request time", c)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 16<<20 {
		t.Fatalf("heap grew by %d bytes", grow)
	}
	for _, l := range held {
		l.Release()
	}
	if s := e.Snapshot(); s.Running != 0 || s.Tables.Sources != 0 {
		t.Fatalf("after release: running %d, sources %d", s.Running, s.Tables.Sources)
	}
}

func TestLibwrapIntegration(t *testing.T) {
	dir := t.TempDir()
	allow := writeFile(t, filepath.Join(dir, "hosts.allow"), "echo: 127.0.0.5 : severity auth.notice : spawn /bin/log %a %d\n")
	deny := writeFile(t, filepath.Join(dir, "hosts.deny"), "echo: 127.0.0.2\ncustomname: ALL\nlw: 127.0.0.3 : twist /bin/echo go away %h\n")
	lw := svc("lw")
	lw.Flags = 0
	lw.Server, lw.Argv = "/bin/echo", []string{"echo", "lw"}
	lw2 := svc("lw2")
	lw2.Flags = 0
	lw2.Libwrap = "customname"
	lw3 := svc("lw3")
	lw3.Flags = service.FlagNoLibwrap
	echo := svc("echo")
	echo.Flags = 0
	echo.Type = service.TypeInternal
	echo.Server = ""
	named := svc("named")
	named.Flags = service.FlagNameInArgs
	named.Server, named.Argv = "/usr/sbin/tcpd", []string{"/usr/sbin/in.lw"}
	e, n := newEngine(t, Global{HostsAllow: allow, HostsDeny: deny}, lw, lw2, lw3, echo, named)
	if DaemonName(named) != "in.lw" || DaemonName(echo) != "echo" || DaemonName(lw) != "echo" || DaemonName(lw2) != "customname" {
		t.Fatalf("daemon names %q %q %q %q", DaemonName(named), DaemonName(echo), DaemonName(lw), DaemonName(lw2))
	}
	// xinetd sample 17: lw (server /bin/echo) is checked as "echo".
	tests := []struct {
		s     *service.Service
		peer  string
		allow bool
	}{
		{lw, "127.0.0.1", true}, {lw, "127.0.0.2", false}, {lw, "127.0.0.3", true},
		{lw2, "127.0.0.1", false}, {lw2, "127.0.0.2", false}, {lw2, "127.0.0.3", false},
		{lw3, "127.0.0.1", true}, {lw3, "127.0.0.2", true}, {lw3, "127.0.0.3", true},
		{echo, "127.0.0.1", true}, {echo, "127.0.0.2", false}, {echo, "127.0.0.3", true},
	}
	for _, tc := range tests {
		d := e.Decide(context.Background(), Request{Service: tc.s, Peer: ap(tc.peer), Now: t0})
		if d.Allow != tc.allow || (!d.Allow && d.Reason != ReasonLibwrap) {
			t.Errorf("%s from %s: Allow=%v %v, want %v", tc.s.ID, tc.peer, d.Allow, d.Reason, tc.allow)
		}
		d.Lease.Release()
	}
	if n.count("info: libwrap refused connection to lw (libwrap=echo) from 127.0.0.2") != 1 ||
		n.count("libwrap refused connection to lw2 (libwrap=customname) from 127.0.0.1") != 1 {
		t.Fatalf("notes %q", n.all())
	}
	d := e.Decide(context.Background(), Request{Service: echo, Peer: ap("127.0.0.5"), Now: t0})
	if !d.Allow || d.Wrap == nil || d.Wrap.Severity != "auth.notice" || d.Wrap.Spawn != "/bin/log 127.0.0.5 echo" {
		t.Fatalf("allow action: %+v %+v", d, d.Wrap)
	}
	d.Lease.Release()
	e.g.NoLibwrap = true
	e.Configure([]*service.Service{lw})
	if d := e.Decide(context.Background(), Request{Service: lw, Peer: ap("127.0.0.2"), Now: t0}); !d.Allow {
		t.Fatal("-nolibwrap still checks")
	}
}
