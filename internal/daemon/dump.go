package daemon

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/access"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
)

// DefaultDumpFile is where SIGUSR1 appends the state dump, as xinetd.
const DefaultDumpFile = "/var/run/xinetd.dump"

func (d *Daemon) dumpPath() string {
	if d.o.DumpFile != "" {
		return d.o.DumpFile
	}
	return DefaultDumpFile
}

// snapshot gathers the plain data the dump, the consistency check and
// the metrics are written from.
func (d *Daemon) snapshot() *logging.DumpState {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &logging.DumpState{Version: Version, Now: time.Now(), ConfigFile: d.cfg.Main, Config: d.cfg,
		ProcessLimit: d.o.Limit}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
		st.MaxDescriptors = int(rl.Cur)
	}
	kids := d.kids.list()
	running := map[*svcRun]int{}
	for _, c := range kids {
		running[c.run]++
	}
	byID := leasedServers(kids)
	for _, r := range d.runs {
		s := r.svc.Load()
		ds := logging.DumpService{ID: s.ID, Running: running[r], FD: -1}
		state, _ := r.state.Load().(string)
		switch {
		case s.IsTCPMuxClient():
			ds.State = "Not started"
		case r.suspended || (len(r.socks) == 0 && !r.pending):
			ds.State = "Disabled"
		case state != "":
			ds.State = state
		default:
			ds.State = "Active"
		}
		for _, sr := range r.socks.all() {
			ds.FD = sr.s.fd()
			st.SocketFDs = append(st.SocketFDs, ds.FD)
		}
		if ds.State == "Active" || ds.State == "Suspended" {
			st.ActiveServices++
		}
		st.Services = append(st.Services, ds)
	}
	st.AvailableServices = len(d.runs)
	sort.Ints(st.SocketFDs)
	for _, c := range kids {
		if c.silent {
			continue
		}
		sv := logging.DumpServer{ID: c.svc.ID, PID: c.pid, Start: c.start, FD: c.fd}
		if c.known {
			sv.Remote = c.remote
		}
		st.Servers = append(st.Servers, sv)
	}
	sort.Slice(st.Servers, func(i, j int) bool { return st.Servers[i].PID < st.Servers[j].PID })
	st.RunningServers = len(st.Servers)
	st.DescriptorsFree = st.MaxDescriptors - openFDs()

	snap := d.eng.Snapshot()
	for _, r := range d.runs {
		s := r.svc.Load()
		sc := logging.ServiceCounters{ID: s.ID, Served: r.cnt.served.Load(), ExecFailures: r.cnt.execFail.Load(),
			BytesIn: r.cnt.bytesIn.Load(), BytesOut: r.cnt.bytesOut.Load(), Running: byID[strings.ToLower(s.ID)],
			Refused: map[string]uint64{}}
		if ss, ok := snap.Services[strings.ToLower(s.ID)]; ok {
			for reason, n := range ss.Refused {
				sc.Refused[reason.Code()] += n
			}
		}
		if n := r.cnt.noid.Load(); n > 0 {
			sc.Refused[access.ReasonNoID.Code()] += n
		}
		if n := r.cnt.noFD.Load(); n > 0 {
			sc.Refused[access.ReasonDescriptors.Code()] += n
		}
		st.Counters = append(st.Counters, sc)
	}
	for _, e := range snap.Deny {
		st.DenyList = append(st.DenyList, logging.DenyEntry{Addr: e.Addr.String(), Expires: e.Expires})
	}
	st.LogDrops = d.rec.Stats().Drops()
	st.AccessTables = map[string]int{"sources": snap.Tables.Sources, "rates": snap.Tables.Rates, "quiet": snap.Tables.Quiet,
		"cps": snap.Tables.CPS, "names": snap.Tables.Names, "deny": snap.Tables.Deny}
	st.AccessTableFull = snap.CapHits
	st.LogHeldBack = d.bnd.refusals.HeldTotal()
	st.IdentSkipped = d.bnd.ident.Skipped()
	st.Goroutines = runtime.NumGoroutine()
	st.HeapLive = heapLive()
	st.OpenDescriptors = openFDs()
	return st
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

// dump is SIGUSR1: append the state dump to the dump file.
func (d *Daemon) dump() {
	path := d.dumpPath()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		d.log.Logf(logging.LevelError, "dump", "failed to open %s: %s", path, logging.Errno(err))
		return
	}
	logging.WriteStateDump(f, d.snapshot())
	f.Close()
	d.log.Logf(logging.LevelInfo, "dump", "generated state dump in file %s", path)
}

// consistencyCheck is SIGABRT and -cc: compare what the daemon believes
// with what is true, and report every difference.
func (d *Daemon) consistencyCheck(report bool) {
	var problems []string
	d.mu.Lock()
	running := map[*svcRun]int{}
	for _, c := range d.kids.list() {
		running[c.run]++
		if err := unix.Kill(c.pid, 0); err != nil && err != unix.EPERM {
			problems = append(problems, fmt.Sprintf("service %s: server %d is tracked but does not exist", c.svc.ID, c.pid))
		}
	}
	for _, r := range d.runs {
		s := r.svc.Load()
		if s.IsTCPMuxClient() {
			continue
		}
		state, _ := r.state.Load().(string)
		if s.Wait && !s.IsInternal() {
			if running[r] > 0 && state == "Active" {
				problems = append(problems, fmt.Sprintf("Active single-threaded service %s: server running, descriptor set", s.ID))
			}
			if running[r] == 0 && state == "Suspended" && !d.stopping.Load() && !r.forkWait.Load() {
				problems = append(problems, fmt.Sprintf("service %s: suspended with no server running", s.ID))
			}
		}
		if len(r.socks) == 0 && !r.pending && !r.suspended {
			problems = append(problems, fmt.Sprintf("service %s not started", s.ID))
		}
		for k, sr := range r.socks.all() {
			if fd := sr.s.fd(); fd >= 0 {
				if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
					problems = append(problems, fmt.Sprintf("file descriptor of service %s has been closed (%s)", s.ID, k))
				}
			}
		}
	}
	d.unlock()
	if diff := d.leaseMismatches(); len(diff) > 0 {
		// A request passes from "admitted" to "server started" (and a
		// server from "exited" to "released") without one lock over both
		// counts: only a difference that is still there a moment later is real.
		time.Sleep(consistencyRecheck)
		again := d.leaseMismatches()
		for _, id := range sortedIDs(diff) {
			if m, ok := again[id]; ok {
				problems = append(problems, fmt.Sprintf("service %s: actual running servers = %d, known running servers = %d", m.id, m.actual, m.known))
			}
		}
	}
	for _, p := range problems {
		d.log.Logf(logging.LevelError, "check", "%s", p)
	}
	if len(problems) > 0 {
		d.log.Logf(logging.LevelWarning, "check", "Consistency check detected %d errors", len(problems))
	} else if report {
		d.log.Logf(logging.LevelInfo, "check", "Consistency check passed")
	}
}

// consistencyRecheck is how long the check waits before it believes a
// difference between the engine's running counts and the servers.
const consistencyRecheck = 100 * time.Millisecond

// leasedServers counts, per lower-case service id, the servers that
// hold an access lease. Services are keyed by id, not by run, as the
// engine keeps one count per id.
func leasedServers(kids []*child) map[string]int {
	n := map[string]int{}
	for _, c := range kids {
		if c.lease != nil && c.svc != nil {
			n[strings.ToLower(c.svc.ID)]++
		}
	}
	return n
}

type leaseMismatch struct {
	id            string
	actual, known int
}

// leaseMismatches compares, for every external service, the engine's
// running count with what the daemon can account for: servers holding a
// lease plus requests admitted whose server has not started yet (banners,
// ident lookups). Builtins and redirects hold leases without a process
// and are not compared.
func (d *Daemon) leaseMismatches() map[string]leaseMismatch {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]leaseMismatch{}
	if d.stopping.Load() {
		return out
	}
	held := leasedServers(d.kids.list())
	snap := d.eng.Snapshot()
	for _, r := range d.runs {
		s := r.svc.Load()
		if s.IsInternal() || s.IsRedirect() {
			continue
		}
		id := strings.ToLower(s.ID)
		ss, ok := snap.Services[id]
		if !ok {
			continue
		}
		actual := held[id] + int(r.cnt.inflight.Load())
		if ss.Running != actual {
			out[id] = leaseMismatch{id: s.ID, actual: actual, known: ss.Running}
		}
	}
	return out
}

func sortedIDs(m map[string]leaseMismatch) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// metricsServer serves the counters in Prometheus' text format on the
// address of `metrics` in defaults, to the clients metrics_only_from allows.
type metricsServer struct {
	addr string
	srv  *http.Server
	ln   net.Listener
	// allow is metrics_only_from; a reload replaces it under the same
	// listener.
	allow atomic.Pointer[service.AddrList]
}

func (d *Daemon) startMetrics(cfg *service.Config) {
	addr := cfg.Defaults.Metrics
	if addr == "" {
		return
	}
	ln := d.up.takeMetricsListener(addr) // a predecessor's (handover.go)
	var err error
	if ln == nil {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		d.log.Logf(logging.LevelError, "metrics", "metrics listener %s: %v", addr, err)
		return
	}
	m := &metricsServer{addr: addr, ln: ln}
	allow := cfg.Defaults.MetricsOnlyFrom
	m.allow.Store(&allow)
	h := logging.MetricsHandler(func(a netip.Addr) bool { return addrListAllows(*m.allow.Load(), a) }, d.snapshot)
	m.srv = logging.NewMetricsServer(h)
	d.metrics = m
	go m.srv.Serve(logging.LimitListener(ln, logging.MetricsMaxConns))
}

// addrListAllows applies a metrics_only_from list: numeric entries only
// (names would need lookups on the metrics path); no list allows all. An
// IPv4 client also matches IPv6 entries in its v4-mapped form, as in
// only_from.
func addrListAllows(l service.AddrList, a netip.Addr) bool {
	if !l.Set {
		return true
	}
	mapped := netip.AddrFrom16(a.As16())
	for _, e := range l.Entries {
		if e.Kind != service.AddrNumeric && e.Kind != service.AddrNet {
			continue
		}
		if e.Prefix.Contains(a) || (a.Is4() && e.Prefix.Contains(mapped)) {
			return true
		}
	}
	return false
}

func (d *Daemon) stopMetrics() {
	if d.metrics != nil {
		d.metrics.srv.Close()
		d.metrics = nil
	}
}

func (d *Daemon) restartMetrics(cfg *service.Config) {
	if d.metrics != nil && d.metrics.addr == cfg.Defaults.Metrics {
		allow := cfg.Defaults.MetricsOnlyFrom
		d.metrics.allow.Store(&allow)
		return
	}
	d.stopMetrics()
	d.startMetrics(cfg)
}
