package logging

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func src(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)})
}

func TestLimiterPerSource(t *testing.T) {
	l := &Limiter{PerSource: Rate{Burst: 3, Every: time.Second}, Interval: time.Hour}
	t0 := time.Unix(1000, 0)
	a, b := src(1), src(2)
	for i := 0; i < 3; i++ {
		if !l.Allow(a, t0) {
			t.Fatalf("message %d of a's burst held back", i)
		}
	}
	if l.Allow(a, t0) {
		t.Fatal("a's fourth message allowed within its burst")
	}
	if !l.Allow(b, t0) {
		t.Fatal("b held back for a's messages")
	}
	// v4-mapped and zoned forms are the same source.
	if l.Allow(netip.AddrFrom16(a.As16()), t0) {
		t.Fatal("a in v4-mapped form allowed")
	}
	if !l.Allow(a, t0.Add(time.Second)) || l.Allow(a, t0.Add(time.Second)) {
		t.Fatal("after one interval exactly one more of a's messages may pass")
	}
	// A clock that goes back grows no budget.
	if l.Allow(a, t0.Add(-time.Hour)) {
		t.Fatal("clock going back refilled the budget")
	}
	if got := l.HeldTotal(); got != 4 {
		t.Errorf("HeldTotal = %d, want 4", got)
	}
}

func TestLimiterGlobal(t *testing.T) {
	l := &Limiter{PerSource: DefaultPerSource, Global: Rate{Burst: 100, Every: 100 * time.Millisecond}, Interval: time.Hour}
	t0 := time.Unix(1000, 0)
	allowed := 0
	for i := 0; i < 100000; i++ {
		if l.Allow(src(i), t0) {
			allowed++
		}
	}
	if allowed != 100 {
		t.Fatalf("a flood from 100,000 sources wrote %d lines, want the global burst of 100", allowed)
	}
	allowed = 0
	for i := 0; i < 1000; i++ {
		if l.Allow(src(200000+i), t0.Add(time.Second)) {
			allowed++
		}
	}
	if allowed != 10 {
		t.Fatalf("one second later %d lines passed, want 10", allowed)
	}
	if n := len(l.sources); n > defaultMaxSources {
		t.Errorf("source table holds %d entries, bound %d", n, defaultMaxSources)
	}
	// No source address: only the global budget applies.
	if l.Allow(netip.Addr{}, t0.Add(time.Second)) {
		t.Error("message without source passed an empty global budget")
	}
}

func TestLimiterSourceTableBounded(t *testing.T) {
	l := &Limiter{PerSource: Rate{Burst: 1, Every: time.Hour}, MaxSources: 64, Interval: time.Hour}
	t0 := time.Unix(1000, 0)
	for i := 0; i < 10000; i++ {
		l.Allow(src(i), t0)
		if n := len(l.sources); n > 64 {
			t.Fatalf("after %d sources the table holds %d, bound 64", i+1, n)
		}
	}
}

func TestLimiterReport(t *testing.T) {
	got := make(chan Held, 4)
	l := &Limiter{PerSource: Rate{Burst: 1, Every: time.Hour}, Global: Rate{Burst: 2, Every: time.Hour},
		// The report comes an Interval after the first message held
		// back; the five calls below must all come before it, with a
		// second to spare however slow the host.
		Interval: time.Second, Report: func(h Held) { got <- h }}
	now := time.Now()
	l.Allow(src(1), now) // allowed
	l.Allow(src(1), now) // source
	l.Allow(src(2), now) // allowed: global now empty
	l.Allow(src(3), now) // global
	l.Allow(src(4), now) // global
	l.Hold(now)          // other
	var h Held
	select {
	case h = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no report")
	}
	if h.BySource != 1 || h.ByGlobal != 2 || h.Other != 1 || h.Total() != 4 {
		t.Errorf("report %+v", h)
	}
	if s := h.String(); s != "4 (1 over a source's budget, 2 over the global budget, 1 other)" {
		t.Errorf("String() = %q", s)
	}
	// Nothing held back since: no second report.
	select {
	case h := <-got:
		t.Errorf("second report %+v with nothing held back", h)
	case <-time.After(200 * time.Millisecond):
	}
	// A new episode is reported again.
	l.Allow(src(5), now)
	select {
	case h = <-got:
		if h.Total() != 1 {
			t.Errorf("second episode %+v", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no report for the second episode")
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := &Limiter{PerSource: DefaultPerSource, Global: DefaultGlobal, Interval: time.Hour}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	now := time.Now()
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			n := 0
			for i := 0; i < 5000; i++ {
				if l.Allow(src(g*5000+i), now) {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	if allowed != DefaultGlobal.Burst {
		t.Errorf("%d allowed, want %d", allowed, DefaultGlobal.Burst)
	}
	if l.HeldTotal() != uint64(40000-allowed) {
		t.Errorf("held %d, want %d", l.HeldTotal(), 40000-allowed)
	}
}

func TestEpisode(t *testing.T) {
	lines := make(chan string, 16)
	// The 499 hits below must all fall in the first interval, with a
	// second to spare however slow the host.
	e := &Episode{Interval: time.Second, Log: func(m string) { lines <- m }, End: "over"}
	next := func() string {
		t.Helper()
		select {
		case m := <-lines:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no line")
			return ""
		}
	}
	if !e.Hit("out of descriptors (1)") {
		t.Fatal("first occurrence not written")
	}
	if got := next(); got != "out of descriptors (1)" {
		t.Errorf("first line %q", got)
	}
	for i := 2; i <= 500; i++ {
		if e.Hit("out of descriptors") {
			t.Fatalf("occurrence %d written at once", i)
		}
	}
	if got := next(); got != "out of descriptors (499 times in the last 1s)" {
		t.Errorf("summary %q", got)
	}
	if got := next(); got != "over" {
		t.Errorf("end %q", got)
	}
	if e.Active() {
		t.Error("still active after the end line")
	}
	if e.Total() != 500 {
		t.Errorf("Total = %d", e.Total())
	}
	// A new episode starts with a line of its own.
	if !e.Hit("again") || next() != "again" {
		t.Error("second episode not written at once")
	}
	if got := next(); got != "over" {
		t.Errorf("end of second episode %q", got)
	}
}

func TestIdentGate(t *testing.T) {
	reports := make(chan Held, 4)
	g := &IdentGate{Max: 2, PerSource: time.Hour, Report: func(h Held) { reports <- h }}
	now := time.Now()
	r1, ok1 := g.Acquire(src(1), now)
	r2, ok2 := g.Acquire(src(2), now)
	if !ok1 || !ok2 {
		t.Fatal("first two lookups refused")
	}
	if _, ok := g.Acquire(src(3), now); ok {
		t.Fatal("third concurrent lookup allowed with Max 2")
	}
	r1()
	r1() // twice is harmless
	if _, ok := g.Acquire(src(1), now); ok {
		t.Fatal("second lookup for the same source within PerSource allowed")
	}
	r3, ok := g.Acquire(src(3), now)
	if !ok {
		t.Fatal("a free slot and a new source refused")
	}
	r2()
	r3()
	if g.Skipped() != 2 {
		t.Errorf("Skipped = %d, want 2", g.Skipped())
	}
	g.lim.Flush()
	select {
	case h := <-reports:
		if h.Total() != 2 || h.Other != 1 || h.BySource != 1 {
			t.Errorf("report %+v", h)
		}
		if !strings.HasPrefix(h.String(), "2") {
			t.Errorf("report text %q", h.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no report")
	}
}
