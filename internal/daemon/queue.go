package daemon

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/gxinetd/gxinetd/access"
	"github.com/gxinetd/gxinetd/internal/service"
)

// The inetd.conf limit on children (FreeBSD's max-child, `nowait/N`, and
// -c; NetBSD's accept-max) means what it means in FreeBSD's inetd: at the
// limit the daemon stops accepting on the service's sockets, new clients
// wait in the listen backlog, and accepting resumes when a child exits.
// xinetd's `instances` is different: xinetd accepts the connection and
// closes it with a FAIL record (service_limit), and xinetd.conf services
// keep that (docs/access.md).
//
// acceptGate counts the accepted requests of one such service that are
// not over yet. An accept loop takes a slot before it accepts and pauses
// its listener when there is none; a request gives its slot back when it
// is refused, or when its lease is released (its server exited, its
// builtin or redirect session ended, its start failed). A paused listener
// is re-armed by that release, never by polling. The per-connection cost
// is two atomic operations; nothing takes a lock unless a listener is
// paused.
type acceptGate struct {
	limit  atomic.Int64
	used   atomic.Int64
	paused atomic.Int32 // waiters registered, read without the lock

	mu      sync.Mutex
	waiters []func()
	// releaseFn is release as a func value, made once: a method value
	// made per request would be an allocation per connection.
	releaseFn func()
}

func newAcceptGate(limit int) *acceptGate {
	g := &acceptGate{}
	g.limit.Store(int64(limit))
	g.releaseFn = g.release
	return g
}

// queuesAtLimit reports whether s's concurrent-children limit queues
// clients (inetd.conf) rather than refusing them (xinetd's instances).
func queuesAtLimit(s *service.Service) bool {
	return s.Language == service.LangInetd && s.Instances >= 0 && !s.Wait &&
		s.SocketType == service.SockStream
}

// setGate gives the run the gate its service asks for, keeping the
// current one (and the slots its requests hold) when the service stays
// queued: a reload only changes the limit. Called with change held.
func (r *svcRun) setGate(s *service.Service) {
	g := r.gate.Load()
	if !queuesAtLimit(s) {
		if g != nil {
			// Requests in flight keep their pointer and give their
			// slots back to it; nobody waits on it any more.
			r.gate.Store(nil)
			g.limit.Store(math.MaxInt64)
			g.wake()
		}
		return
	}
	if g == nil {
		r.gate.Store(newAcceptGate(int(s.Instances)))
		return
	}
	g.limit.Store(int64(s.Instances))
	g.wake()
}

// take reserves a slot for one accept; false at the limit.
func (g *acceptGate) take() bool {
	for {
		n := g.used.Load()
		if n >= g.limit.Load() {
			return false
		}
		if g.used.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives a slot back and wakes the paused listeners.
func (g *acceptGate) release() {
	if g.used.Add(-1) < g.limit.Load() && g.paused.Load() > 0 {
		g.wake()
	}
}

// pause registers resume, to run once a slot may be free. It runs at
// once if one was freed meanwhile: a release that came between the
// failed take and the registration saw no waiter.
func (g *acceptGate) pause(resume func()) {
	g.mu.Lock()
	g.waiters = append(g.waiters, resume)
	g.paused.Add(1)
	g.mu.Unlock()
	if g.used.Load() < g.limit.Load() {
		g.wake()
	}
}

func (g *acceptGate) wake() {
	g.mu.Lock()
	ws := g.waiters
	g.waiters = nil
	g.paused.Add(-int32(len(ws)))
	g.mu.Unlock()
	for _, f := range ws {
		f()
	}
}

// admit ties the slot a gated request holds to its decision: a refusal
// gives it back now, an admitted request when its lease is released.
func (g *acceptGate) admit(dec *access.Decision) {
	if g == nil {
		return
	}
	if dec.Allow && dec.Lease != nil {
		dec.Lease.OnRelease(g.releaseFn)
		return
	}
	g.release()
}

// done gives back the slot of a request that ended before its decision.
func (g *acceptGate) done() {
	if g != nil {
		g.release()
	}
}
