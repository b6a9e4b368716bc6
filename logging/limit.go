package logging

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// What an attacker can make the daemon write is bounded here. A refusal
// costs the attacker a datagram (possibly forged, from any address) and
// cost the daemon a log line: 100,000 datagrams from random loopback
// sources wrote 89,709 lines (13 MB) in a second, because the only limit
// was per source. A Limiter gives each source a small budget and all
// sources together a larger one, and says once per interval how much it
// held back. An Episode does the same for a condition that is not about
// a source at all (descriptors running out).

// Rate is a token bucket: Burst messages at once, then one per Every.
// A zero Burst means no limit.
type Rate struct {
	Burst int
	Every time.Duration
}

// Default budgets for refusal messages (FAIL records, guard refusals,
// failed failure-path ident lookups): per source, ten at once and then
// one every six seconds; in total, a hundred at once and then ten a
// second. A flood therefore writes at most about ten lines a second,
// plus one summary line per DefaultReportInterval.
var (
	DefaultPerSource = Rate{Burst: 10, Every: 6 * time.Second}
	DefaultGlobal    = Rate{Burst: 100, Every: 100 * time.Millisecond}
)

// DefaultReportInterval is how often, at most, a Limiter or an Episode
// writes its summary line.
const DefaultReportInterval = 10 * time.Second

// defaultMaxSources bounds a Limiter's per-source table.
const defaultMaxSources = 4096

// Held is what a Limiter held back since its last report.
type Held struct {
	// BySource were over their source's budget, ByGlobal over the
	// global one, Other held back by the caller for a reason of its own
	// (Limiter.Hold).
	BySource, ByGlobal, Other uint64
	// Since is when the first of them was held back.
	Since time.Time
}

// Total is the number of messages held back.
func (h Held) Total() uint64 { return h.BySource + h.ByGlobal + h.Other }

// String is the summary's wording: "123 (100 over a source's budget, 23
// over the global budget)".
func (h Held) String() string {
	return fmt.Sprint(h.Total()) + h.Breakdown()
}

// Breakdown is String without the total: " (100 over a source's budget,
// 23 over the global budget)", or "" when there is one kind only.
func (h Held) Breakdown() string {
	s := ""
	var parts []string
	if h.BySource > 0 {
		parts = append(parts, fmt.Sprintf("%d over a source's budget", h.BySource))
	}
	if h.ByGlobal > 0 {
		parts = append(parts, fmt.Sprintf("%d over the global budget", h.ByGlobal))
	}
	if h.Other > 0 && len(parts) > 0 {
		parts = append(parts, fmt.Sprintf("%d other", h.Other))
	}
	if len(parts) > 0 {
		s += " ("
		for i, p := range parts {
			if i > 0 {
				s += ", "
			}
			s += p
		}
		s += ")"
	}
	return s
}

// Limiter decides whether one more message may be written. Its methods
// are safe for concurrent use; the zero value has no limits (set the
// fields before first use).
type Limiter struct {
	PerSource Rate
	Global    Rate
	// MaxSources bounds the per-source table (default 4096). When it is
	// full, sources whose budget has grown back are forgotten first;
	// a flood of distinct sources can only make it forget, never grow.
	MaxSources int
	// Interval is how often, at most, Report is called (default
	// DefaultReportInterval). Report is called, on a goroutine of its
	// own, an Interval after the first message held back, with what was
	// held back meanwhile; nil discards the counts.
	Interval time.Duration
	Report   func(Held)

	mu      sync.Mutex
	global  bucket
	sources map[netip.Addr]bucket
	held    Held
	armed   bool
	total   uint64 // held back since the start, for the dump and metrics
}

type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b at r up to now and takes a token if there is one.
// A clock that went back refills nothing.
func (b *bucket) take(r Rate, now time.Time, fresh bool) bool {
	if fresh {
		b.tokens, b.last = float64(r.Burst), now
	} else if el := now.Sub(b.last); el > 0 {
		if r.Every > 0 {
			b.tokens += float64(el) / float64(r.Every)
		} else {
			b.tokens = float64(r.Burst)
		}
		b.tokens = min(b.tokens, float64(r.Burst))
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *bucket) full(r Rate, now time.Time) bool {
	return r.Every <= 0 || b.tokens+float64(now.Sub(b.last))/float64(r.Every) >= float64(r.Burst)
}

// Allow reports whether a message about src (the zero Addr when it has
// no source) may be written at now, and counts it as held back if not.
func (l *Limiter) Allow(src netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	src = src.Unmap().WithZone("")
	var sb bucket
	fresh := true
	perSource := l.PerSource.Burst > 0 && src.IsValid()
	if perSource {
		sb, fresh = l.sources[src]
		fresh = !fresh
		probe := sb
		if !probe.take(l.PerSource, now, fresh) {
			l.sources[src] = probe
			l.holdLocked(&l.held.BySource, now)
			return false
		}
	}
	if l.Global.Burst > 0 {
		if !l.global.take(l.Global, now, l.global.last.IsZero()) {
			l.holdLocked(&l.held.ByGlobal, now)
			return false
		}
	}
	if perSource {
		sb.take(l.PerSource, now, fresh)
		l.putLocked(src, sb, now)
	}
	return true
}

// Hold counts a message the caller held back itself (a lookup skipped
// because too many are running), so that it shows in the next report.
func (l *Limiter) Hold(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holdLocked(&l.held.Other, now)
}

// HeldTotal is how many messages were held back since the start.
func (l *Limiter) HeldTotal() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

func (l *Limiter) holdLocked(n *uint64, now time.Time) {
	if l.held.Total() == 0 {
		l.held.Since = now
	}
	*n++
	l.total++
	if !l.armed {
		l.armed = true
		every := l.Interval
		if every <= 0 {
			every = DefaultReportInterval
		}
		time.AfterFunc(every, l.Flush)
	}
}

func (l *Limiter) putLocked(src netip.Addr, b bucket, now time.Time) {
	if l.sources == nil {
		l.sources = make(map[netip.Addr]bucket)
	}
	if _, ok := l.sources[src]; !ok {
		max := l.MaxSources
		if max <= 0 {
			max = defaultMaxSources
		}
		if len(l.sources) >= max {
			for k, v := range l.sources {
				if v.full(l.PerSource, now) {
					delete(l.sources, k)
				}
			}
			if len(l.sources) >= max {
				clear(l.sources)
			}
		}
	}
	l.sources[src] = b
}

// Flush reports what was held back since the last report, now.
func (l *Limiter) Flush() {
	l.mu.Lock()
	h := l.held
	l.held = Held{}
	l.armed = false
	l.mu.Unlock()
	if h.Total() > 0 && l.Report != nil {
		l.Report(h)
	}
}

// Episode reports a condition that comes and goes, such as descriptors
// running out: its first occurrence at once, then at most one line per
// Interval with the number of occurrences meanwhile, and its end once a
// whole Interval has passed without one. Without it, a daemon out of
// descriptors wrote three lines per refused connection (5,628 in 5 s).
type Episode struct {
	// Interval defaults to DefaultReportInterval.
	Interval time.Duration
	// Log writes a line: the first occurrence's message as given, the
	// repeats as "MSG (N times in the last INTERVAL)" with the latest
	// message, and End when it is over.
	Log func(msg string)
	End string

	mu     sync.Mutex
	active bool
	n      uint64
	latest string
	total  uint64
}

// Hit records one occurrence described by msg. It reports whether msg
// was written now (the first of an episode).
func (e *Episode) Hit(msg string) bool {
	e.mu.Lock()
	e.total++
	if e.active {
		e.n++
		e.latest = msg
		e.mu.Unlock()
		return false
	}
	e.active, e.n, e.latest = true, 0, msg
	e.mu.Unlock()
	e.Log(msg)
	time.AfterFunc(e.interval(), e.tick)
	return true
}

// Active reports whether an episode is under way.
func (e *Episode) Active() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.active
}

// Total is the number of occurrences since the start.
func (e *Episode) Total() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total
}

func (e *Episode) interval() time.Duration {
	if e.Interval > 0 {
		return e.Interval
	}
	return DefaultReportInterval
}

func (e *Episode) tick() {
	e.mu.Lock()
	n, latest := e.n, e.latest
	e.n = 0
	if n == 0 {
		e.active = false
	}
	e.mu.Unlock()
	if n == 0 {
		if e.End != "" {
			e.Log(e.End)
		}
		return
	}
	e.Log(fmt.Sprintf("%s (%d times in the last %v)", latest, n, e.interval()))
	time.AfterFunc(e.interval(), e.tick)
}

// DefaultIdentMax is how many failure-path ident lookups may run at once.
const DefaultIdentMax = 16

// IdentGate bounds the ident lookups made for refused connections
// (log_on_failure USERID). Each one is an outgoing connection to a port
// the client chooses to answer slowly, held for the ident timeout, and
// a refused client can cause one per connection: with cps off, without
// bound. The gate lets at most Max run at once and one per source
// address per PerSource; what it skips is counted and reported through
// Report, once per DefaultReportInterval.
type IdentGate struct {
	// Max defaults to DefaultIdentMax concurrent lookups; PerSource to
	// a minute.
	Max       int
	PerSource time.Duration
	Report    func(Held)

	once    sync.Once
	lim     *Limiter
	mu      sync.Mutex
	running int
}

func (g *IdentGate) init() {
	g.once.Do(func() {
		every := g.PerSource
		if every <= 0 {
			every = time.Minute
		}
		g.lim = &Limiter{PerSource: Rate{Burst: 1, Every: every}, Report: g.Report}
	})
}

// Acquire asks for a lookup about src at now. When it may run, release
// must be called when it ends.
func (g *IdentGate) Acquire(src netip.Addr, now time.Time) (release func(), ok bool) {
	g.init()
	max := g.Max
	if max <= 0 {
		max = DefaultIdentMax
	}
	g.mu.Lock()
	if g.running >= max {
		g.mu.Unlock()
		g.lim.Hold(now)
		return nil, false
	}
	g.running++
	g.mu.Unlock()
	if !g.lim.Allow(src, now) {
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
		return nil, false
	}
	var done sync.Once
	return func() {
		done.Do(func() {
			g.mu.Lock()
			g.running--
			g.mu.Unlock()
		})
	}, true
}

// Skipped is how many lookups the gate skipped since the start.
func (g *IdentGate) Skipped() uint64 {
	g.init()
	return g.lim.HeldTotal()
}
