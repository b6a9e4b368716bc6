package access

import (
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// denyList is the process-wide list SENSOR services fill (xinetd's
// global_no_access list). A zero expiry time means forever.
type denyList struct {
	mu        sync.RWMutex
	m         map[netip.Addr]time.Time
	n         atomic.Int64
	lastScrub atomic.Int64
}

// add lists a for deny minutes (service.DenyForever = forever); a repeat
// hit moves the deadline later, never earlier. When the list is full the
// address is not added: evicting would let a flood of spoofed sources
// flush out the addresses that earned their place.
func (d *denyList) add(e *Engine, a netip.Addr, raw netip.AddrPort, now time.Time, deny int) {
	var exp time.Time
	if deny != service.DenyForever {
		exp = now.Add(time.Duration(deny) * time.Minute)
	}
	d.mu.Lock()
	old, listed := d.m[a]
	switch {
	case listed:
		if !old.IsZero() && (exp.IsZero() || exp.After(old)) {
			d.m[a] = exp
		}
		d.mu.Unlock()
		return
	case len(d.m) >= e.g.MaxDeny:
		d.mu.Unlock()
		e.capHit("deny", now, "Maximum global_no_access count reached.")
		return
	}
	d.m[a] = exp
	d.n.Store(int64(len(d.m)))
	d.mu.Unlock()
	e.refusal("crit", raw, "Adding "+addrText(raw)+" to the global_no_access list for "+strconv.Itoa(deny)+" minutes")
}

// listed reports whether a is on the list and not expired.
func (d *denyList) listed(a netip.Addr, now time.Time) bool {
	if d.n.Load() == 0 {
		return false
	}
	d.mu.RLock()
	exp, ok := d.m[a]
	d.mu.RUnlock()
	return ok && (exp.IsZero() || now.Before(exp))
}

// maybeScrub runs Scrub at most once per scrubInterval of request time.
func (d *denyList) maybeScrub(e *Engine, now time.Time) {
	if d.n.Load() == 0 {
		return
	}
	last := d.lastScrub.Load()
	t := now.UnixNano()
	if t-last < int64(scrubInterval) && t >= last {
		return
	}
	if d.lastScrub.CompareAndSwap(last, t) {
		e.ScrubDenyList(now)
	}
}

// ScrubDenyList removes expired entries from the SENSOR deny list and
// logs xinetd's messages about it. Decide also does this lazily, at most
// once a minute; a daemon may call it from a timer as xinetd does.
func (e *Engine) ScrubDenyList(now time.Time) {
	d := &e.deny
	d.mu.Lock()
	removed := 0
	for a, exp := range d.m {
		if !exp.IsZero() && !now.Before(exp) {
			delete(d.m, a)
			removed++
		}
	}
	left := len(d.m)
	d.n.Store(int64(left))
	d.mu.Unlock()
	if removed > 0 {
		e.notify("info", "At least 1 DENY_TIME has expired, global_no_access list updated")
		if left == 0 {
			e.notify("info", "global_no_access list is empty.")
		}
	}
}

func (d *denyList) entries() []DenyEntry {
	d.mu.RLock()
	out := make([]DenyEntry, 0, len(d.m))
	for a, exp := range d.m {
		out = append(out, DenyEntry{Addr: a, Expires: exp, Forever: exp.IsZero()})
	}
	d.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out
}
