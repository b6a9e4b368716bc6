package access

import (
	"context"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gxinetd/gxinetd/access/tcpwrap"
	"github.com/gxinetd/gxinetd/internal/service"
)

// Defaults for the Global knobs left at zero.
const (
	DefaultMaxSources    = 65536
	DefaultMaxDeny       = 10240
	DefaultLookupTimeout = 2 * time.Second
	DefaultNameCacheSize = 4096
	DefaultNameTTL       = 5 * time.Minute
	DefaultNegativeTTL   = time.Minute

	// LoopingSuspend is how long a service that exceeded its invocations
	// per minute stays closed (inetd's RETRYTIME).
	LoopingSuspend = 10 * time.Minute
	// dgramQuietTime is xinetd's DGRAM_IGNORE_TIME.
	dgramQuietTime = 60 * time.Second
	// capNoticeInterval spaces out the "table full" messages.
	capNoticeInterval = time.Minute
	// scrubInterval is how often expired deny-list entries are removed.
	scrubInterval = time.Minute
	// maxCPSRing bounds the per-service cps ring; larger rates fall back
	// to counting whole seconds.
	maxCPSRing = 1 << 16
)

// Global is the engine's process-wide configuration.
type Global struct {
	// ProcessLimit caps running servers across all services (-limit N); 0 = none.
	ProcessLimit int
	// NoLibwrap turns tcp_wrappers off for every service (-nolibwrap).
	NoLibwrap bool
	// HostsAllow and HostsDeny are the tcp_wrappers tables; "" means
	// /etc/hosts.allow and /etc/hosts.deny. A missing file has no rules.
	HostsAllow, HostsDeny string
	// Resolver answers name lookups; nil uses net.DefaultResolver.
	Resolver Resolver
	// Load returns the 1-minute load average; nil reads it with sysinfo(2).
	Load func() (float64, error)
	// Notify receives the engine's own messages (level is one of crit,
	// error, warning, notice, info); nil discards them.
	Notify func(level string, msg string)
	// Refusal, when set, receives the messages the engine writes about
	// one refused request (excessive load, tcp_wrappers, lists that
	// match equally, a SENSOR hit) with the client's address, so that
	// the daemon can hold them to its refusal budget; nil sends them to
	// Notify.
	Refusal func(level string, peer netip.Addr, msg string)
	// MaxSources caps each per-source table (running counts per client,
	// per-client rate windows, UDP duplicate suppression); 0 = DefaultMaxSources.
	MaxSources int
	// MaxDeny caps the SENSOR deny list; 0 = DefaultMaxDeny.
	MaxDeny int
	// LookupTimeout bounds one reverse+forward name lookup; 0 = 2 s.
	LookupTimeout time.Duration
	// NameCacheSize caps the name cache; 0 = DefaultNameCacheSize.
	NameCacheSize int
	// NameTTL and NegativeTTL are how long confirmed names and "no name"
	// answers are kept; 0 = 5 min and 1 min. Failures are kept 10 s.
	NameTTL, NegativeTTL time.Duration
	// CheckOwnership (set when running as root) refuses a tcp_wrappers
	// table that anyone but root could change (ownership.go).
	CheckOwnership bool
}

// Request is one incoming request to decide on.
type Request struct {
	Service *service.Service
	Peer    netip.AddrPort // zero when unknown (wait=yes stream)
	Local   netip.AddrPort
	Now     time.Time // zero = time.Now()
	User    string    // ident answer when already known
	// PeerCred is the peer of a unix-domain connection (SO_PEERCRED);
	// nil when unknown. only_users and only_groups are checked on it.
	PeerCred *service.PeerCred
}

// Decision is the engine's answer.
type Decision struct {
	Allow  bool
	Reason Reason
	Detail string
	// SuspendFor > 0 asks the daemon to close the service's listener for
	// this long (cps trip: WAIT seconds; looping: 10 minutes).
	SuspendFor time.Duration
	// Quiet asks the daemon not to write a FAIL record (repeated UDP
	// address refusals from the same source within 60 s).
	Quiet bool
	// Lease, on Allow, counts the request as running until Released.
	Lease *Lease
	// Wrap holds the tcp_wrappers options of the deciding rule, if any
	// (also on refusals: a hosts.deny `twist` or `banners`).
	Wrap *tcpwrap.Action
}

// WrapAction is tcpwrap.Action, named here so the daemon need not import tcpwrap.
type WrapAction = tcpwrap.Action

// WrapProc is tcpwrap.ProcOptions (hosts_options(5) nice, umask, user,
// setenv), for the same reason.
type WrapProc = tcpwrap.ProcOptions

// Engine decides requests; it is safe for concurrent use.
type Engine struct {
	g       Global
	notify  func(level, msg string)
	load    func() (float64, error)
	names   *nameCache
	cfg     atomic.Pointer[config]
	mu      sync.Mutex // serialises Configure and lazy additions
	procs   atomic.Int64
	deny    denyList
	capMu   sync.Mutex
	capLast map[string]time.Time
	capHits map[string]uint64

	// wrapSeen is what the tcp_wrappers tables were read from (guarded
	// by mu); wrapNext is when, in request time, to look at the files
	// again. libwrap reads them for every request, and tools such as
	// DenyHosts append to hosts.deny expecting the next connection to
	// obey, so an edit must not wait for a reload.
	wrapSeen [2]fileStamp
	// patFiles are the pattern files (/path patterns) the tables named
	// and what they were read from: a change to one re-reads everything.
	patFiles     []string
	patFilesSeen []fileStamp
	wrapNext     atomic.Int64
}

// wrapCheckInterval is how often, at most, Decide looks at the
// tcp_wrappers files for changes.
const wrapCheckInterval = time.Second

// fileStamp identifies one version of a file; the zero value is "missing".
type fileStamp struct {
	mod, size int64
	fi        os.FileInfo
}

func (a fileStamp) same(b fileStamp) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == nil && b.fi == nil
	}
	return a.mod == b.mod && a.size == b.size && os.SameFile(a.fi, b.fi)
}

type config struct {
	byPtr  map[*service.Service]*svcState
	byID   map[string]*svcState
	policy *tcpwrap.Policy
}

// compiled is the per-service data built once per Configure.
type compiled struct {
	svc       *service.Service
	lists     *addrTable
	daemon    string
	policy    *tcpwrap.Policy // narrowed to daemon; nil = libwrap off
	wrapNames bool
	proxyFrom *addrTable // proxy_from; nil without proxy_protocol
}

// svcState is the per-service state kept across reloads.
type svcState struct {
	key  string
	comp atomic.Pointer[compiled]

	mu             sync.Mutex
	running        int
	epoch          uint64
	perSrc         *boundedMap[netip.Addr, int32]
	cps            cpsWindow
	suspendedUntil time.Time
	suspendReason  Reason
	minute         minuteWindow
	ipRate         *boundedMap[netip.Addr, minuteWindow]
	quiet          *boundedMap[netip.AddrPort, int64]
	srcCPS         *boundedMap[netip.Addr, srcSecond] // datagram services: cps per source
	slab           []Lease
	slabNext       int

	served  atomic.Uint64
	refused [numReasons]atomic.Uint64
}

// New returns an engine with no services; call Configure.
func New(g Global) *Engine {
	if g.MaxSources <= 0 {
		g.MaxSources = DefaultMaxSources
	}
	if g.MaxDeny <= 0 {
		g.MaxDeny = DefaultMaxDeny
	}
	if g.LookupTimeout <= 0 {
		g.LookupTimeout = DefaultLookupTimeout
	}
	if g.NameCacheSize <= 0 {
		g.NameCacheSize = DefaultNameCacheSize
	}
	if g.NameTTL <= 0 {
		g.NameTTL = DefaultNameTTL
	}
	if g.NegativeTTL <= 0 {
		g.NegativeTTL = DefaultNegativeTTL
	}
	if g.HostsAllow == "" {
		g.HostsAllow = "/etc/hosts.allow"
	}
	if g.HostsDeny == "" {
		g.HostsDeny = "/etc/hosts.deny"
	}
	e := &Engine{g: g, notify: g.Notify, load: g.Load, capLast: map[string]time.Time{}, capHits: map[string]uint64{}}
	if e.notify == nil {
		e.notify = func(string, string) {}
	}
	if e.load == nil {
		e.load = sysLoad
	}
	res := g.Resolver
	if res == nil {
		res = netResolver{}
	}
	e.names = &nameCache{res: res, timeout: g.LookupTimeout, posTTL: g.NameTTL, negTTL: g.NegativeTTL,
		failTTL: 10 * time.Second, max: g.NameCacheSize, m: map[netip.Addr]*nameEntry{}, maxNames: 4}
	e.names.onEvict = func(now time.Time) { e.capHit("names", now, "name cache full: evicting oldest entries") }
	e.deny.m = map[netip.Addr]time.Time{}
	e.cfg.Store(&config{byPtr: map[*service.Service]*svcState{}, byID: map[string]*svcState{}})
	return e
}

// Configure installs a new set of services. State (running counts,
// windows, per-source tables, counters) is kept for ids that remain,
// compared case-insensitively, and dropped for the others; the SENSOR
// deny list is always kept. hosts.allow and hosts.deny are read again.
func (e *Engine) Configure(svcs []*service.Service) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var policy *tcpwrap.Policy
	if !e.g.NoLibwrap {
		// Stamp first: a write that races the read is seen next time.
		e.wrapSeen = [2]fileStamp{stampOf(e.g.HostsAllow), stampOf(e.g.HostsDeny)}
		e.wrapNext.Store(time.Now().Add(wrapCheckInterval).UnixNano())
		policy = &tcpwrap.Policy{Allow: e.loadTable(e.g.HostsAllow), Deny: e.loadTable(e.g.HostsDeny)}
		e.stampPatternFiles(policy)
	}
	old := e.cfg.Load()
	nc := &config{byPtr: map[*service.Service]*svcState{}, byID: map[string]*svcState{}, policy: policy}
	for _, s := range svcs {
		if s == nil {
			continue
		}
		key := strings.ToLower(s.ID)
		st := nc.byID[key]
		if st == nil {
			st = old.byID[key]
		}
		if st == nil {
			st = e.newState(key)
		}
		st.comp.Store(e.compile(s, policy))
		nc.byID[key] = st
		nc.byPtr[s] = st
	}
	e.cfg.Store(nc)
}

// maybeRereadWrap re-reads hosts.allow and hosts.deny when either file
// changed since it was read, at most once per wrapCheckInterval of
// request time (a clock that jumps back also triggers a look), and
// recompiles every service's rules. Requests decided meanwhile use the
// tables they started with.
func (e *Engine) maybeRereadWrap(now time.Time) {
	t := now.UnixNano()
	next := e.wrapNext.Load()
	if t < next && t >= next-2*int64(wrapCheckInterval) {
		return
	}
	if !e.wrapNext.CompareAndSwap(next, t+int64(wrapCheckInterval)) {
		return // another request is looking
	}
	seen := [2]fileStamp{stampOf(e.g.HostsAllow), stampOf(e.g.HostsDeny)}
	e.mu.Lock()
	defer e.mu.Unlock()
	if seen[0].same(e.wrapSeen[0]) && seen[1].same(e.wrapSeen[1]) && !e.patternFilesChanged() {
		return
	}
	e.wrapSeen = seen
	policy := &tcpwrap.Policy{Allow: e.loadTable(e.g.HostsAllow), Deny: e.loadTable(e.g.HostsDeny)}
	e.stampPatternFiles(policy)
	old := e.cfg.Load()
	for _, st := range old.byID {
		st.comp.Store(e.compile(st.comp.Load().svc, policy))
	}
	e.cfg.Store(&config{byPtr: old.byPtr, byID: old.byID, policy: policy})
	e.notify("notice", "tcp_wrappers tables changed: re-read "+e.g.HostsAllow+" and "+e.g.HostsDeny)
}

// stampPatternFiles remembers the pattern files of a new policy (under e.mu).
func (e *Engine) stampPatternFiles(p *tcpwrap.Policy) {
	e.patFiles = p.Files()
	e.patFilesSeen = e.patFilesSeen[:0]
	for _, f := range e.patFiles {
		e.patFilesSeen = append(e.patFilesSeen, stampOf(f))
	}
}

// patternFilesChanged reports whether a pattern file changed (under e.mu).
func (e *Engine) patternFilesChanged() bool {
	for i, f := range e.patFiles {
		if !stampOf(f).same(e.patFilesSeen[i]) {
			return true
		}
	}
	return false
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime().UnixNano(), size: fi.Size(), fi: fi}
}

func (e *Engine) loadTable(p string) *tcpwrap.Rules {
	if rs := e.unsafeTable(p); rs != nil {
		return rs
	}
	rs, errs := tcpwrap.Load(p)
	for _, err := range errs {
		lvl := "error"
		if pe, ok := err.(*tcpwrap.ParseError); ok && pe.Warning {
			lvl = "warning"
		}
		e.notify(lvl, err.Error())
	}
	return rs
}

func (e *Engine) newState(key string) *svcState {
	return &svcState{
		key:    key,
		perSrc: newBoundedMap[netip.Addr, int32](e.g.MaxSources),
		ipRate: newBoundedMap[netip.Addr, minuteWindow](e.g.MaxSources),
		quiet:  newBoundedMap[netip.AddrPort, int64](e.g.MaxSources),
		srcCPS: newBoundedMap[netip.Addr, srcSecond](e.g.MaxSources),
	}
}

func (e *Engine) compile(s *service.Service, policy *tcpwrap.Policy) *compiled {
	c := &compiled{svc: s, lists: compileLists(s.OnlyFrom, s.NoAccess), daemon: DaemonName(s)}
	if s.ProxyProtocol != 0 {
		c.proxyFrom = compileLists(service.AddrList{Set: true, Entries: s.ProxyFrom.Entries}, service.AddrList{})
	}
	if policy != nil && !s.Flags.Has(service.FlagNoLibwrap) && !policy.Empty() {
		c.policy = policy.Select(c.daemon)
		c.wrapNames = c.policy.NeedsNames()
		if c.policy.Empty() && c.daemon != "" {
			c.policy = nil
		}
	}
	return c
}

// DaemonName is the name a service is checked under in hosts.allow and
// hosts.deny: the libwrap attribute; else the service name for internal
// and redirected services; else the basename of argv[0] with NAMEINARGS;
// else the basename of the server path.
func DaemonName(s *service.Service) string {
	switch {
	case s.Libwrap != "":
		return s.Libwrap
	case s.IsInternal() || s.IsRedirect():
		return s.Name
	case s.Flags.Has(service.FlagNameInArgs):
		if len(s.Argv) > 0 && s.Argv[0] != "" {
			return path.Base(s.Argv[0])
		}
		return ""
	case s.Server != "":
		return path.Base(s.Server)
	}
	return ""
}

// state finds (or, for a service never configured, adds) the state of s.
func (e *Engine) state(s *service.Service) (*svcState, *compiled) {
	cfg := e.cfg.Load()
	if st, ok := cfg.byPtr[s]; ok {
		return st, st.comp.Load()
	}
	key := strings.ToLower(s.ID)
	if st, ok := cfg.byID[key]; ok {
		return st, st.comp.Load()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cfg = e.cfg.Load()
	if st, ok := cfg.byID[key]; ok {
		return st, st.comp.Load()
	}
	nc := &config{byPtr: make(map[*service.Service]*svcState, len(cfg.byPtr)+1),
		byID: make(map[string]*svcState, len(cfg.byID)+1), policy: cfg.policy}
	for k, v := range cfg.byPtr {
		nc.byPtr[k] = v
	}
	for k, v := range cfg.byID {
		nc.byID[k] = v
	}
	st := e.newState(key)
	st.comp.Store(e.compile(s, cfg.policy))
	nc.byPtr[s], nc.byID[key] = st, st
	e.cfg.Store(nc)
	return st, st.comp.Load()
}

// Instant reports whether Decide for s can neither wait on the network
// nor lead to a tcp_wrappers action: no host names in its address lists
// and no hosts.allow/deny rules that apply to it. A caller may then
// decide on a goroutine that must not block.
func (e *Engine) Instant(s *service.Service) bool {
	_, c := e.state(s)
	return c != nil && c.policy == nil && !c.wrapNames && !c.lists.onlyNames && !c.lists.noNames
}

// Decide runs every check on r, in xinetd's order: cps, load, time,
// instances, per_source, process limit, the inetd per-minute rates, then
// the address checks and tcp_wrappers. It may block on a name lookup for
// at most the lookup timeout.
func (e *Engine) Decide(ctx context.Context, r Request) Decision {
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	if !e.g.NoLibwrap {
		e.maybeRereadWrap(now)
	}
	st, c := e.state(r.Service)
	s := c.svc
	known := r.Peer.IsValid()
	peer := r.Peer.Addr().Unmap().WithZone("")

	// 1. cps; a service already suspended refuses what slipped through.
	if d, refused := e.checkCPS(st, s, known, peer, now); refused {
		return e.refuse(st, d)
	}
	// 2. load
	if s.MaxLoad > 0 {
		if l, err := e.load(); err == nil && l >= s.MaxLoad {
			e.refusal("error", r.Peer, "refused connect from "+addrText(r.Peer)+" due to excessive load")
			return e.refuse(st, Decision{Reason: ReasonLoad, Detail: "load " + strconv.FormatFloat(l, 'f', 2, 64) + " >= max_load " + strconv.FormatFloat(s.MaxLoad, 'f', 2, 64)})
		}
	}
	// 3. access_times
	if len(s.AccessTimes) > 0 {
		m := now.Hour()*60 + now.Minute()
		in := false
		for _, tr := range s.AccessTimes {
			if tr.Contains(m) {
				in = true
				break
			}
		}
		if !in {
			return e.refuse(st, Decision{Reason: ReasonTime, Detail: "outside access_times"})
		}
	}
	// 4-8: limits, reserving the slot the request will occupy.
	lease, d, ok := e.reserve(st, s, known, peer, now)
	if !ok {
		return e.refuse(st, d)
	}

	// 9. address: sensor, global deny list, only_from / no_access.
	detail := ""
	if s.Flags.Has(service.FlagSensor) {
		if known && s.DenyTime != service.DenyNever {
			e.deny.add(e, peer, r.Peer, now, s.DenyTime)
		}
		lease.Release()
		return e.refuse(st, e.quiet(st, s, r.Peer, now, Decision{Reason: ReasonAddress, Detail: "sensor"}))
	}
	if known {
		e.deny.maybeScrub(e, now)
		if e.deny.listed(peer, now) {
			lease.Release()
			return e.refuse(st, e.quiet(st, s, r.Peer, now, Decision{Reason: ReasonAddress, Detail: "global_no_access list"}))
		}
		var refused bool
		detail, refused = e.checkLists(ctx, c, s, r.Peer, peer, now)
		if refused {
			lease.Release()
			return e.refuse(st, e.quiet(st, s, r.Peer, now, Decision{Reason: ReasonAddress, Detail: detail}))
		}
	}

	// 9b. unix-domain peers: only_users / only_groups.
	if d, refused := checkPeerCred(s, r.PeerCred); refused {
		lease.Release()
		return e.refuse(st, d)
	}

	// 10. tcp_wrappers.
	var wrap *tcpwrap.Action
	if c.policy != nil && known {
		if c.daemon == "" {
			e.refusal("info", r.Peer, "server param not provided to libwrap refusing connection to "+s.ID+" from "+addrText(r.Peer))
			lease.Release()
			return e.refuse(st, Decision{Reason: ReasonLibwrap, Detail: "no daemon name for tcp_wrappers"})
		}
		cl := tcpwrap.Client{Addr: peer, Port: r.Peer.Port(), Local: r.Local.Addr(), LocalPort: r.Local.Port(), User: r.User}
		if c.wrapNames {
			cl.Lookup = func(a netip.Addr) (string, tcpwrap.NameState) {
				n, ns := e.names.lookup(ctx, a, now)
				switch ns {
				case nameOK:
					return n, tcpwrap.NameKnown
				case nameParanoid:
					return "", tcpwrap.NameParanoid
				}
				return "", tcpwrap.NameUnknown
			}
		}
		allow, rule := c.policy.Check(c.daemon, cl)
		if rule != nil && len(rule.Options) > 0 {
			wrap = rule.Action(c.daemon, cl)
		}
		if !allow {
			e.refusal("info", r.Peer, "libwrap refused connection to "+s.ID+" (libwrap="+c.daemon+") from "+addrText(r.Peer))
			lease.Release()
			d := Decision{Reason: ReasonLibwrap, Detail: "tcp_wrappers " + rule.Where(), Wrap: wrap}
			if rule != nil && rule.Broken != nil {
				d.Detail += " (unreadable rule: " + rule.Broken.Error() + ")"
			}
			return e.refuse(st, d)
		}
	}
	st.served.Add(1)
	return Decision{Allow: true, Detail: detail, Lease: lease, Wrap: wrap}
}

func (e *Engine) refuse(st *svcState, d Decision) Decision {
	d.Allow = false
	d.Lease = nil
	if d.Reason > OK && d.Reason < numReasons {
		st.refused[d.Reason].Add(1)
	}
	return d
}

// quiet marks repeated UDP address refusals from one source (address and
// port) within 60 s, which xinetd does not log again.
func (e *Engine) quiet(st *svcState, s *service.Service, p netip.AddrPort, now time.Time, d Decision) Decision {
	if s.SocketType != service.SockDgram || !p.IsValid() {
		return d
	}
	key := netip.AddrPortFrom(p.Addr().WithZone(""), p.Port())
	t := now.UnixNano()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.quiet.pruneHead(4, func(v int64) bool { return t-v >= int64(dgramQuietTime) })
	if last, ok := st.quiet.get(key); ok && t-last < int64(dgramQuietTime) && t >= last {
		d.Quiet = true
		return d
	}
	if st.quiet.put(key, t) > 0 {
		e.capHit("quiet", now, "UDP duplicate-suppression table for "+s.ID+" full: evicting oldest entries")
	}
	return d
}

// checkCPS applies cps. A datagram's source can be forged, so for
// datagram services a source over the rate is refused on its own first,
// and only what passes counts toward the service-wide limit; a datagram
// builtin, answered in-process, is then held to the rate (excess refused)
// rather than switched off, which was all that 51 forged datagrams
// needed to achieve (xinetd does the same).
func (e *Engine) checkCPS(st *svcState, s *service.Service, known bool, peer netip.Addr, now time.Time) (Decision, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if now.Before(st.suspendedUntil) {
		return Decision{Reason: st.suspendReason, Detail: "service suspended until " + st.suspendedUntil.Format(time.TimeOnly)}, true
	}
	if s.CPS.Rate <= 0 {
		return Decision{}, false
	}
	dgram := s.SocketType == service.SockDgram
	if dgram && known {
		src := sourceKey(s, peer)
		sec := now.Unix()
		// Sources quiet for a second are of no more use: drop a few per
		// datagram, so the table holds only the current flood.
		st.srcCPS.pruneHead(4, func(w srcSecond) bool { return sec-w.sec >= 2 || sec < w.sec })
		w, _ := st.srcCPS.get(src)
		if w.sec != sec {
			w = srcSecond{sec: sec}
		}
		w.n++
		if st.srcCPS.put(src, w) > 0 {
			e.capHit("cps", now, "per-source cps table for "+s.ID+" full: evicting oldest entries")
		}
		if w.n > int64(s.CPS.Rate) {
			return Decision{Reason: ReasonCPS,
				Detail: "more than " + strconv.Itoa(s.CPS.Rate) + " datagrams within one second from " + src.String()}, true
		}
	}
	if dgram && s.IsInternal() {
		if !st.cps.admit(now.UnixNano(), s.CPS.Rate) {
			return Decision{Reason: ReasonCPS,
				Detail: "more than " + strconv.Itoa(s.CPS.Rate) + " datagrams within one second"}, true
		}
		return Decision{}, false
	}
	if st.cps.hit(now.UnixNano(), s.CPS.Rate) {
		wait := time.Duration(s.CPS.Wait) * time.Second
		st.suspendedUntil, st.suspendReason = now.Add(wait), ReasonCPS
		return Decision{Reason: ReasonCPS, SuspendFor: wait,
			Detail: "more than " + strconv.Itoa(s.CPS.Rate) + " connections within one second"}, true
	}
	return Decision{}, false
}

// reserve applies instances, per_source, the process limit and the inetd
// per-minute rates, and on success counts the request as running.
func (e *Engine) reserve(st *svcState, s *service.Service, known bool, peer netip.Addr, now time.Time) (*Lease, Decision, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !s.Instances.Allows(st.running) {
		return nil, Decision{Reason: ReasonServiceLimit, Detail: "instances " + s.Instances.String() + " reached"}, false
	}
	var src netip.Addr
	trackSrc := known && s.PerSource >= 0
	if trackSrc {
		src = sourceKey(s, peer)
		n, _ := st.perSrc.get(src)
		if !s.PerSource.Allows(int(n)) {
			return nil, Decision{Reason: ReasonPerSourceLimit, Detail: "per_source " + s.PerSource.String() + " reached for " + src.String()}, false
		}
	}
	if !e.takeProc() {
		return nil, Decision{Reason: ReasonProcessLimit, Detail: "process limit " + strconv.Itoa(e.g.ProcessLimit) + " reached"}, false
	}
	if s.Inetd.PerMinute > 0 && st.minute.add(now) > uint32(s.Inetd.PerMinute) {
		e.procs.Add(-1)
		st.suspendedUntil, st.suspendReason = now.Add(LoopingSuspend), ReasonLooping
		return nil, Decision{Reason: ReasonLooping, SuspendFor: LoopingSuspend,
			Detail: s.Name + "/" + s.Protocol + " server failing (looping), service terminated for 10 minutes"}, false
	}
	if known && s.Inetd.PerIPPerMinute > 0 {
		t := now.Unix() / 10
		st.ipRate.pruneHead(4, func(w minuteWindow) bool { return t-w.base >= 6 })
		w, _ := st.ipRate.get(peer)
		n := w.add(now)
		if st.ipRate.put(peer, w) > 0 {
			e.capHit("rates", now, "per-client rate table for "+s.ID+" full: evicting oldest entries")
		}
		if n > uint32(s.Inetd.PerIPPerMinute) {
			e.procs.Add(-1)
			return nil, Decision{Reason: ReasonRate, Detail: peer.String() + " exceeded " + strconv.Itoa(s.Inetd.PerIPPerMinute) + " connections per minute"}, false
		}
	}
	st.running++
	if trackSrc {
		n, _ := st.perSrc.get(src)
		if st.perSrc.put(src, n+1) > 0 {
			e.capHit("sources", now, "per-source table for "+s.ID+" full: evicting oldest entries")
		}
	}
	if st.slabNext == len(st.slab) {
		// Leases come from small slabs so that admitting a request does
		// not cost one allocation each; a lease is never reused.
		st.slab, st.slabNext = make([]Lease, 32), 0
	}
	l := &st.slab[st.slabNext]
	st.slabNext++
	l.e, l.st, l.epoch, l.src, l.hasSrc = e, st, st.epoch, src, trackSrc
	return l, Decision{}, true
}

// srcSecond counts one source's datagrams in one calendar second.
type srcSecond struct{ sec, n int64 }

// sourceKey groups a client for per_source by PerSourcePrefix4/6 (0 or
// the full length = one address).
func sourceKey(s *service.Service, a netip.Addr) netip.Addr {
	bits := int(s.PerSourcePrefix6)
	full := 128
	if a.Is4() {
		bits, full = int(s.PerSourcePrefix4), 32
	}
	if bits <= 0 || bits >= full {
		return a
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return a
	}
	return p.Addr()
}

func (e *Engine) takeProc() bool {
	for {
		n := e.procs.Load()
		if e.g.ProcessLimit > 0 && n >= int64(e.g.ProcessLimit) {
			return false
		}
		if e.procs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// checkLists applies only_from / no_access, looking names up only when
// name entries could change the outcome.
func (e *Engine) checkLists(ctx context.Context, c *compiled, s *service.Service, raw netip.AddrPort, peer netip.Addr, now time.Time) (string, bool) {
	t := c.lists
	if !t.onlySet && len(t.no) == 0 {
		return "", false
	}
	o, n := t.matchPrefixes(normAddr(peer))
	pre := t.decide(o, n)
	if (t.onlyNames && pre != vAllow) || (t.noNames && pre == vAllow) {
		name, ns := e.names.lookup(ctx, peer, now)
		switch ns {
		case nameOK:
			t.matchName(name, &o, &n)
		case nameFail:
			if t.noNames && pre == vAllow {
				return "no_access has host names and the client's name could not be looked up", true
			}
		}
	}
	switch t.decide(o, n) {
	case vAllow:
		return t.detail(o, true), false
	case vNoAccess:
		return t.detail(n, false), true
	case vNotInOnly:
		return "not in only_from", true
	}
	e.refusal("error", raw, "Service="+s.ID+": only_from list and no_access list match equally the address "+addrText(raw))
	return "only_from and no_access match equally (" + t.detail(o, true) + ", " + t.detail(n, false) + ")", true
}

func addrText(p netip.AddrPort) string {
	if !p.IsValid() {
		return "<no address>"
	}
	return p.Addr().WithZone("").String()
}

// refusal writes a message about one refused request from peer.
func (e *Engine) refusal(level string, peer netip.AddrPort, msg string) {
	if e.g.Refusal != nil {
		e.g.Refusal(level, peer.Addr(), msg)
		return
	}
	e.notify(level, msg)
}

// capHit counts a table-full event and reports it at most once a minute per table.
func (e *Engine) capHit(kind string, now time.Time, msg string) {
	e.capMu.Lock()
	e.capHits[kind]++
	last, seen := e.capLast[kind]
	report := !seen || now.Sub(last) >= capNoticeInterval || now.Before(last)
	if report {
		e.capLast[kind] = now
	}
	e.capMu.Unlock()
	if report {
		e.notify("warning", msg)
	}
}

// Lease is one admitted request counted as running.
type Lease struct {
	e        *Engine
	st       *svcState
	epoch    uint64
	src      netip.Addr
	hasSrc   bool
	released atomic.Bool
	// onRelease runs once the lease is given back (see OnRelease).
	onRelease func()
}

// OnRelease arranges for f to run when the lease is released, after the
// counts are given back, whether or not ReleaseAll gave them up first.
// The daemon frees an accept-queue slot with it (a lease lives exactly
// as long as its request). Set it before handing the lease on.
func (l *Lease) OnRelease(f func()) {
	if l != nil {
		l.onRelease = f
	}
}

// Release stops counting the request as running; calling it again does nothing.
func (l *Lease) Release() {
	if l == nil || !l.released.CompareAndSwap(false, true) {
		return
	}
	l.release()
	if f := l.onRelease; f != nil {
		f()
	}
}

func (l *Lease) release() {
	st := l.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if l.epoch != st.epoch {
		return // ReleaseAll already gave this one up
	}
	st.running--
	if l.hasSrc {
		if n, ok := st.perSrc.get(l.src); ok {
			if n <= 1 {
				st.perSrc.del(l.src)
			} else {
				st.perSrc.put(l.src, n-1)
			}
		}
	}
	l.e.procs.Add(-1)
}

// ReleaseAll gives up every running count of service id (compared
// case-insensitively); leases handed out before are then no-ops.
func (e *Engine) ReleaseAll(id string) {
	st, ok := e.cfg.Load().byID[strings.ToLower(id)]
	if !ok {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	e.procs.Add(-int64(st.running))
	st.running = 0
	st.epoch++
	st.perSrc = newBoundedMap[netip.Addr, int32](e.g.MaxSources)
}

// Snapshot is plain data for the state dump and metrics.
type Snapshot struct {
	// Services is keyed by the lower-cased service id.
	Services map[string]ServiceStats
	Deny     []DenyEntry
	// Running is the number of running servers across services (-limit).
	Running int
	Tables  TableSizes
	// CapHits counts table-full events by table: sources, rates, quiet, cps, names, deny.
	CapHits map[string]uint64
}

// ServiceStats is one service's counters.
type ServiceStats struct {
	ID             string
	Running        int
	Served         uint64
	Refused        map[Reason]uint64
	SuspendedUntil time.Time
}

// DenyEntry is one address on the SENSOR deny list.
type DenyEntry struct {
	Addr    netip.Addr
	Expires time.Time // zero when Forever
	Forever bool
}

// TableSizes are the current sizes of the bounded tables (summed over services).
type TableSizes struct {
	Sources, Rates, Quiet, Names, Deny int
	// CPS is the per-source cps table of datagram services.
	CPS int
}

// Snapshot returns the engine's counters and tables.
func (e *Engine) Snapshot() Snapshot {
	cfg := e.cfg.Load()
	snap := Snapshot{Services: make(map[string]ServiceStats, len(cfg.byID))}
	for k, st := range cfg.byID {
		ss := ServiceStats{ID: st.comp.Load().svc.ID, Served: st.served.Load(), Refused: map[Reason]uint64{}}
		for r := ReasonAddress; r < numReasons; r++ {
			if v := st.refused[r].Load(); v > 0 {
				ss.Refused[r] = v
			}
		}
		st.mu.Lock()
		ss.Running = st.running
		ss.SuspendedUntil = st.suspendedUntil
		snap.Tables.Sources += st.perSrc.len()
		snap.Tables.Rates += st.ipRate.len()
		snap.Tables.Quiet += st.quiet.len()
		snap.Tables.CPS += st.srcCPS.len()
		st.mu.Unlock()
		snap.Services[k] = ss
	}
	snap.Running = int(e.procs.Load())
	snap.Tables.Names = e.names.size()
	snap.Deny = e.deny.entries()
	snap.Tables.Deny = len(snap.Deny)
	e.capMu.Lock()
	snap.CapHits = make(map[string]uint64, len(e.capHits))
	for k, v := range e.capHits {
		snap.CapHits[k] = v
	}
	e.capMu.Unlock()
	return snap
}
