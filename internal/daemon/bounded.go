package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/metrics"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/access"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
)

// One attacker, one budget: what a client can make the daemon write,
// look up or hold is bounded here, and what is held back is counted and
// said once per interval (see logging.Limiter, Episode, IdentGate).
type bounds struct {
	// refusals is the budget of messages about refused requests: FAIL
	// records, reflection-guard refusals, the access engine's refusal
	// messages, failed ident lookups.
	refusals *logging.Limiter
	// fdOut is descriptors running out (accept, spawn, redirect);
	// reserve is sessions reaching the descriptor reserve.
	fdOut, reserve *logging.Episode
	// ident bounds the lookups made for refused connections.
	ident *logging.IdentGate
	// limit caches RLIMIT_NOFILE (it can be changed from outside, with
	// prlimit): the value and when it was read, in Unix nanoseconds.
	limit, limitAt atomic.Int64
}

func (d *Daemon) initBounds() {
	b := &d.bnd
	b.refusals = &logging.Limiter{PerSource: logging.DefaultPerSource, Global: logging.DefaultGlobal,
		Report: func(h logging.Held) {
			d.log.Logf(logging.LevelWarning, "access", "refusal logging: held back %d messages%s since %s (budget: %d per source, then one every %v; %d in all, then %d a second)",
				h.Total(), h.Breakdown(), h.Since.Format(time.TimeOnly), logging.DefaultPerSource.Burst, logging.DefaultPerSource.Every,
				logging.DefaultGlobal.Burst, int(time.Second/logging.DefaultGlobal.Every))
		}}
	b.fdOut = &logging.Episode{End: "descriptors available again; accepting connections",
		Log: func(msg string) { d.log.Logf(episodeLevel(msg, b.fdOut), "accept", "%s", msg) }}
	b.reserve = &logging.Episode{End: "sessions below the descriptor reserve again",
		Log: func(msg string) { d.log.Logf(episodeLevel(msg, b.reserve), "access", "%s", msg) }}
	b.ident = &logging.IdentGate{Report: func(h logging.Held) {
		d.log.Logf(logging.LevelWarning, "ident", "ident lookups for refused connections: skipped %d since %s (%d with %d running already, %d for a source asked about within the minute)",
			h.Total(), h.Since.Format(time.TimeOnly), h.Other, logging.DefaultIdentMax, h.BySource)
	}}
}

func episodeLevel(msg string, e *logging.Episode) logging.Level {
	if msg == e.End {
		return logging.LevelNotice
	}
	return logging.LevelError
}

// mayLogRefusal reports whether a message about a refused request from
// peer may be written now.
func (d *Daemon) mayLogRefusal(peer netip.Addr) bool {
	return d.bnd.refusals == nil || d.bnd.refusals.Allow(peer, time.Now())
}

// isFDShortage reports the errors that mean the process (or the system)
// is out of descriptors or of the memory to make one.
func isFDShortage(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) || errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM)
}

// fdShortage notes err when it is a descriptor shortage and reports
// whether it was: the caller then writes nothing of its own, and the
// episode says it once per interval with a count, instead of a few
// lines for every connection refused meanwhile.
func (d *Daemon) fdShortage(err error, svcID string) bool {
	if err == nil || !isFDShortage(err) {
		return false
	}
	d.bnd.fdOut.Hit(fmt.Sprintf("no available descriptors: refusing new connections to %s until some are free (%v)", svcID, unwrapErrno(err)))
	return true
}

// The descriptor reserve. Every in-process session holds descriptors
// for as long as its client likes: a redirect two, a builtin one.
// 10,100 idle redirect sessions once took all 20,000 descriptors, and
// then no service could start a server. A session whose connection got
// a descriptor number in the top reserve of the table is therefore
// refused: descriptors are handed out lowest first, so all below it are
// in use. What sessions cannot take stays for starting servers (the
// connection, the status pipe, the pidfd) and for the daemon itself.
const (
	minFDReserve = 16
	maxFDReserve = 4096
)

// fdReserve is the reserve for a descriptor limit: an eighth of the
// table, at least 16 and at most 4,096.
func fdReserve(limit int) int {
	return min(max(limit/8, minFDReserve), maxFDReserve)
}

// fdLimit is RLIMIT_NOFILE's soft value, read at most once a second.
func (d *Daemon) fdLimit() int {
	now := time.Now().UnixNano()
	if lim := d.bnd.limit.Load(); lim > 0 && now-d.bnd.limitAt.Load() < int64(time.Second) {
		return int(lim)
	}
	var rl unix.Rlimit
	lim := int64(1 << 20)
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < uint64(lim) {
		lim = int64(rl.Cur)
	}
	d.bnd.limit.Store(lim)
	d.bnd.limitAt.Store(now)
	return int(lim)
}

// inReserve reports whether a session on descriptor fd would eat into
// the reserve, and notes it if so.
func (d *Daemon) inReserve(fd int, svcID string) bool {
	if fd < 0 {
		return false
	}
	lim := d.fdLimit()
	if fd < lim-fdReserve(lim) {
		return false
	}
	d.bnd.reserve.Hit(fmt.Sprintf("descriptor reserve reached: refusing sessions of %s (descriptor %d of %d; the last %d are kept for starting servers)",
		svcID, fd, lim, fdReserve(lim)))
	return true
}

// errInReserve refuses a redirect's upstream socket that landed in the
// reserve: the client's descriptor was below it, but other sessions
// admitted at the same moment took the rest.
var errInReserve = errors.New("descriptor reserve reached")

// reserveControl is the redirect's check of its upstream socket.
func (d *Daemon) reserveControl(fd int, svcID string) error {
	if d.inReserve(fd, svcID) {
		return errInReserve
	}
	return nil
}

// heapLive is the heap the last collection found live: what a leak
// grows, unlike the resident size, which follows the collector's slack.
func heapLive() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// connFD is the descriptor of a connection, or -1.
func connFD(c net.Conn) int {
	fd := -1
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(f uintptr) { fd = int(f) })
		}
	}
	return fd
}

// holdsSession reports whether a service's connections stay with the
// daemon for as long as the client likes: redirects and the stream
// builtins that read from the client (daytime and time write and close).
func holdsSession(s *service.Service) bool {
	if s.IsRedirect() {
		return true
	}
	if !s.IsInternal() {
		return false
	}
	switch s.Builtin {
	case "echo", "discard", "chargen", "tcpmux", "auth":
		return true
	}
	return false
}

// refuseSession refuses an admitted session that would eat into the
// descriptor reserve: a FAIL record (within the refusal budget), the
// lease released, the refusal counted. The caller closes the connection.
func (d *Daemon) refuseSession(r *svcRun, svc *service.Service, remote, local netip.AddrPort, lease *access.Lease) {
	releaseLease(lease)
	r.cnt.noFD.Add(1)
	if d.mayLogRefusal(remote.Addr()) {
		d.record(logging.Record{Event: logging.EventFail, Service: svc, Remote: remote, Local: local,
			Reason: access.ReasonDescriptors.String(), ReasonCode: access.ReasonDescriptors.Code()})
	}
}
