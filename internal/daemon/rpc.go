package daemon

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/rpcbind"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
)

// rpcReg keeps the local rpcbind's mappings in step with the sockets of
// the RPC services: every version of the service's range, on every socket
// it listens on, at the port the kernel gave it. It reconciles after each
// change of sockets (start-up, reload, a suspension's reopen, an interface
// address coming or going) and withdraws everything at exit.
//
// Unlike xinetd it does not sleep a second after each registration, and
// an rpcbind that is not there yet (started after gxinetd) or that
// refuses is tried again every rpcRetry instead of failing the service:
// the socket serves meanwhile, and the log says so once.
type rpcReg struct {
	d      *Daemon
	client rpcbind.Client

	once  sync.Once
	kickC chan struct{}
	stopC chan chan struct{}
	// An upgrade pauses the loop (upgrade.go): the mappings stay as they
	// are for the new daemon, which starts with them as its own
	// (inherit), so nothing is withdrawn and made again.
	pauseC  chan chan map[rpcbind.Mapping]bool
	resumeC chan bool
	inherit map[rpcbind.Mapping]bool

	// Owned by the loop goroutine.
	have   map[rpcbind.Mapping]bool
	failed map[rpcbind.Mapping]string // the error last logged for a mapping
	down   bool                       // no rpcbind answered last time (logged)
}

const rpcRetry = 10 * time.Second

// kick asks for a reconciliation soon. It never blocks, and does nothing
// until a configuration has RPC services.
func (g *rpcReg) kick() {
	if g.kickC != nil {
		select {
		case g.kickC <- struct{}{}:
		default:
		}
	}
}

// startIfNeeded starts the loop the first time a configuration has an RPC
// service, so a daemon without any never talks to rpcbind.
func (g *rpcReg) startIfNeeded(svcs []*service.Service) {
	need := len(g.inherit) > 0 // withdrawn if no service wants them now
	for _, s := range svcs {
		if s.Type.Has(service.TypeRPC) {
			need = true
			break
		}
	}
	if !need {
		return
	}
	g.once.Do(func() {
		g.kickC = make(chan struct{}, 1)
		g.stopC = make(chan chan struct{})
		g.pauseC = make(chan chan map[rpcbind.Mapping]bool)
		g.resumeC = make(chan bool)
		g.have = map[rpcbind.Mapping]bool{}
		for m := range g.inherit {
			g.have[m] = true
		}
		g.failed = map[rpcbind.Mapping]string{}
		go g.loop()
	})
}

// stop withdraws every mapping and ends the loop; it returns when done
// or after the client's timeout per pending call.
func (g *rpcReg) stop() {
	if g.stopC == nil {
		return
	}
	done := make(chan struct{})
	g.stopC <- done
	<-done
}

func (g *rpcReg) loop() {
	// The timer runs only while a mapping waits for a retry.
	t := time.NewTimer(rpcRetry)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-g.kickC:
		case <-t.C:
		case done := <-g.stopC:
			g.sync(nil)
			close(done)
			return
		case reply := <-g.pauseC:
			reply <- maps.Clone(g.have)
			if reset := <-g.resumeC; reset {
				g.have = map[rpcbind.Mapping]bool{}
			}
		}
		g.sync(g.d.rpcWanted())
		if len(g.failed) > 0 {
			t.Reset(rpcRetry)
		} else {
			t.Stop()
		}
	}
}

// sync withdraws the mappings no longer wanted and makes the missing ones.
func (g *rpcReg) sync(want map[rpcbind.Mapping]string) {
	var gone []rpcbind.Mapping
	for m := range g.have {
		if _, ok := want[m]; !ok {
			gone = append(gone, m)
		}
	}
	sortMappings(gone)
	for _, m := range gone {
		if err := g.client.Unset(m); err != nil {
			g.d.log.Logf(logging.LevelWarning, "rpc", "pmap_unset failed. program=%d version=%d %s: %v", m.Prog, m.Vers, m.Netid, err)
		}
		delete(g.have, m)
	}
	for m := range g.failed {
		if _, ok := want[m]; !ok {
			delete(g.failed, m)
		}
	}
	var missing []rpcbind.Mapping
	for m := range want {
		if !g.have[m] {
			missing = append(missing, m)
		}
	}
	sortMappings(missing)
	for i, m := range missing {
		id := want[m]
		err := g.client.Set(m)
		if errors.Is(err, rpcbind.ErrUnreachable) {
			// Nothing answers: one line for the whole outage, and no
			// more calls this round.
			if !g.down {
				g.down = true
				g.d.log.Logf(logging.LevelError, "rpc", "pmap_set failed: %v; %s not registered with rpcbind, retrying every %s",
					err, fmt.Sprintf("%d %s", len(missing)-i, plural(len(missing)-i, "mapping")), rpcRetry)
			}
			for _, m := range missing[i:] {
				g.failed[m] = "unreachable"
			}
			return
		}
		g.down = false
		if err != nil {
			// Logged once per mapping and error, then retried quietly.
			if g.failed[m] != err.Error() {
				g.failed[m] = err.Error()
				g.d.log.Logf(logging.LevelError, "rpc", "pmap_set failed. service=%s program=%d version=%d %s: %v; retrying every %s",
					id, m.Prog, m.Vers, m.Netid, err, rpcRetry)
			}
			continue
		}
		if _, was := g.failed[m]; was {
			delete(g.failed, m)
			g.d.log.Logf(logging.LevelNotice, "rpc", "service %s: registered %s with rpcbind", id, m)
		}
		g.have[m] = true
	}
}

func sortMappings(ms []rpcbind.Mapping) {
	sort.Slice(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if a.Prog != b.Prog {
			return a.Prog < b.Prog
		}
		if a.Vers != b.Vers {
			return a.Vers < b.Vers
		}
		return a.Netid < b.Netid
	})
}

// rpcWanted lists the mappings the RPC services' open sockets need, with
// the id of the service each is for.
func (d *Daemon) rpcWanted() map[rpcbind.Mapping]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := map[rpcbind.Mapping]string{}
	if d.stopping.Load() {
		return want
	}
	for _, r := range d.runs {
		s := r.svc.Load()
		if !s.Type.Has(service.TypeRPC) || r.removed.Load() || s.RPCNumber <= 0 {
			continue
		}
		for _, sr := range r.socks.all() {
			for _, ep := range socketEndpoints(sr.s) {
				for v := s.RPCLow; v <= s.RPCHigh; v++ {
					want[rpcbind.Mapping{Prog: uint32(s.RPCNumber), Vers: uint32(v), Netid: ep.netid, Addr: ep.addr}] = s.ID
				}
			}
		}
	}
	return want
}

type endpoint struct {
	netid string
	addr  netip.AddrPort
}

// socketEndpoints is what a bound socket can be reached as: its own
// family's netid at its address, plus IPv4 for a dual-stack IPv6
// wildcard socket, which takes IPv4 clients too.
func socketEndpoints(sk *sock) []endpoint {
	proto := "tcp"
	switch sk.key.sotype {
	case unix.SOCK_STREAM:
	case unix.SOCK_DGRAM:
		proto = "udp"
	default:
		return nil // rpcbind knows no netid for these
	}
	sa, err := unix.Getsockname(sk.fd())
	if err != nil {
		return nil
	}
	ap := sockaddrToAddrPort(sa)
	switch {
	case !ap.IsValid():
		return nil
	case ap.Addr().Is4():
		return []endpoint{{proto, ap}}
	}
	eps := []endpoint{{proto + "6", ap}}
	if ap.Addr().IsUnspecified() {
		if v6only, err := unix.GetsockoptInt(sk.fd(), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); err == nil && v6only == 0 {
			eps = append(eps, endpoint{proto, netip.AddrPortFrom(netip.IPv4Unspecified(), ap.Port())})
		}
	}
	return eps
}

// pause stops the loop between two rounds and returns the mappings
// registered; nothing changes in rpcbind until resume. It reports false
// when the loop does not run.
func (g *rpcReg) pause() (map[rpcbind.Mapping]bool, bool) {
	if g.pauseC == nil {
		return nil, false
	}
	reply := make(chan map[rpcbind.Mapping]bool, 1)
	g.pauseC <- reply
	return <-reply, true
}

// resume lets a paused loop go on; with reset it makes every mapping
// again (someone else may have changed them meanwhile).
func (g *rpcReg) resume(reset bool) {
	g.resumeC <- reset
	g.kick()
}
