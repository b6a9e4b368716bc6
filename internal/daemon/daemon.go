package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/access"
	"github.com/gxinetd/gxinetd/internal/builtins"
	"github.com/gxinetd/gxinetd/internal/rpcbind"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/spawn"
)

// Daemon is one running gxinetd.
type Daemon struct {
	o        *Options
	log      *logging.Daemon
	rec      *logging.Manager
	eng      *access.Engine
	db       *sysdb.DB
	startEnv []string
	ctx      context.Context
	cancel   context.CancelFunc
	benv     *builtins.Env

	// Locks, in the order they are taken (docs/design.md, "Locks"):
	// change, then mu, then kids' and the acceptor's own. No lock is
	// ever held while waiting for a goroutine, a child process or I/O
	// that could need it.
	//
	// change serializes every change to the services and their sockets:
	// start-up, reload, shutdown, a suspension and its end, bind retries,
	// interface changes. It is held while serving goroutines are halted
	// and waited for, so nothing that serves a request ever takes it.
	change sync.Mutex
	// mu guards the fields below and the services' sockets and flags
	// (svcRun). They are written with both change and mu held, so a
	// holder of change reads them freely; readers that are not changing
	// anything (dump, metrics, consistency check, rpcbind) take mu,
	// which is only ever held for bookkeeping and quick system calls.
	// Daemon log lines written meanwhile wait in logq until unlock.
	mu        sync.Mutex
	logq      []queuedLog
	cfg       *service.Config
	runs      []*svcRun            // accepted services in configuration order
	byID      map[string]*svcRun   // lower-case id
	activated map[sockKey]*sock    // systemd-passed sockets not yet claimed
	counters  map[string]*counters // lower-case id; survives reloads
	pre       map[sockKey]opened   // sockets opened ahead during a configuration change

	kids     childSet // running servers; own lock
	udpPorts atomic.Pointer[map[uint16]bool]
	tcpmux   atomic.Pointer[map[string]*svcRun] // TCPMUX services by lower-case name
	stopping atomic.Bool
	bnd      bounds // what one client can make the daemon write, look up or hold
	metrics  *metricsServer
	acc      acceptor // raw-path listeners, one epoll set
	rpc      rpcReg   // the RPC services' rpcbind mappings
	fdt      fdTable
	pid1     bool           // PID 1 of its namespace: reaps orphans (orphans.go)
	wg       sync.WaitGroup // serving goroutines
	up       upgradeState   // -upgrade, the hand-over, systemd's fd store (upgrade.go)
}

// counters are the per-service figures of the state dump and metrics
// that the access engine does not keep.
type counters struct {
	served, execFail, bytesIn, bytesOut atomic.Uint64
	// inflight counts requests admitted (holding a lease) whose server is
	// not started yet: banners, ident lookups. The consistency check
	// needs it to tell them from leaked leases.
	inflight atomic.Int64
	// noid counts IDONLY requests refused for want of an ident answer:
	// the engine admitted them, the daemon refused them (reason noid).
	noid atomic.Uint64
	// noFD counts sessions refused at the descriptor reserve.
	noFD atomic.Uint64
}

// queuedLog is a daemon log line written while mu was held.
type queuedLog struct {
	level logging.Level
	fn    string
	msg   string
}

// logLocked writes a daemon log line once mu is released (see unlock):
// a stalled syslog must not hold up the readers of mu.
func (d *Daemon) logLocked(l logging.Level, fn, format string, args ...any) {
	d.logq = append(d.logq, queuedLog{l, fn, fmt.Sprintf(format, args...)})
}

// unlock releases mu, then writes the lines logged meanwhile, in order.
func (d *Daemon) unlock() {
	q := d.logq
	d.logq = nil
	d.mu.Unlock()
	for _, m := range q {
		d.log.Logf(m.level, m.fn, "%s", m.msg)
	}
}

func (d *Daemon) countersLocked(id string) *counters {
	k := strings.ToLower(id)
	c := d.counters[k]
	if c == nil {
		c = &counters{}
		d.counters[k] = c
	}
	return c
}

// Run starts the daemon with the given options and serves until SIGTERM,
// SIGQUIT (or SIGINT in debug mode). It returns the process exit status.
func Run(o *Options) int {
	if o.ConfigFile == "" && o.InetdFile == "" {
		o.ConfigFile = DefaultConfigFile
	}
	if o.Grace == 0 {
		o.Grace = 5 * time.Second
	}
	// As PID 1 (a container's init) there is nobody to detach from, and
	// a parent that exits would end the container.
	if !o.DontFork && !o.Debug && !o.Foreground && !reapsOrphans() {
		return daemonize(o)
	}
	if o.Foreground && (o.ReadyFD > 0 || o.HandoverDetached) {
		if err := detachedChdir(o); err != nil {
			fmt.Fprintf(os.Stderr, "gxinetd: %v\n", err)
			return 1
		}
	}
	dl, err := newDaemonLog(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gxinetd: msg_init failed: %v\n", err)
		return 1
	}
	d := newDaemon(o, dl)
	status := d.run()
	d.log.Close()
	return status
}

func newDaemon(o *Options, dl *logging.Daemon) *Daemon {
	d := &Daemon{o: o, log: dl, db: &sysdb.DB{Root: o.SysRoot}, byID: map[string]*svcRun{},
		counters: map[string]*counters{}, activated: map[sockKey]*sock{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.up.store.init(d)
	d.initBounds()
	d.acc.d = d
	d.acc.work.jobs = make(chan rawJob)
	// A hung rpcbind must not hold up a reload's mappings, or exit, long.
	d.rpc = rpcReg{d: d, client: rpcbind.Client{Timeout: time.Second}}
	return d
}

func newDaemonLog(o *Options) (*logging.Daemon, error) {
	do := logging.DaemonOptions{Ident: identOr(o.LogIdent), Stderr: os.Stderr, SyslogPath: o.SyslogPath, Debug: o.Debug}
	switch {
	case o.Debug && o.FileLog == "" && o.Syslog == "":
		do.Mode = "debug"
	case o.FileLog != "":
		do.Mode = "file"
		do.Path = o.FileLog
	default:
		do.Mode = "syslog"
		do.Facility = o.Syslog
		if do.Facility == "" {
			do.Facility = "daemon"
		}
	}
	return logging.NewDaemon(do)
}

func (d *Daemon) run() int {
	o := d.o
	raiseNoFile()
	d.fdt.growAsync(configSize(o))
	syscall.Umask(syscall.Umask(0) | 0o022)
	d.startEnv = activationEnvStripped(os.Environ())
	d.adoptActivatedSockets()
	if err := d.receiveHandover(); err != nil {
		d.log.Logf(logging.LevelCrit, "upgrade", "%v", err)
		return 1
	}

	// Signals become events in this one loop. SIGPIPE is deliberately not
	// ignored: ignored signals survive exec into every server. It is
	// caught instead (a caught signal is reset to default at exec): Go
	// otherwise dies of a write to a broken pipe on descriptor 1 or 2,
	// and a daemon logging to stderr (a container's, a supervisor's
	// pipe) must outlive the reader going away.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGUSR1,
		syscall.SIGABRT, syscall.SIGINT)
	defer signal.Stop(sigs)
	if reapsOrphans() {
		d.pid1 = true
		d.startOrphanReaper()
	}
	// Dispositions and umask are final now: let the spawner read them once.
	spawn.Refresh()

	if o.PidFile != "" && o.HandoverFD == 0 { // a successor's is written at the cut-over
		if err := writePidFile(o.PidFile); err != nil {
			d.log.Logf(logging.LevelCrit, "main", "%v", err)
			return 1
		}
	}
	// Start-up allocates a lot that dies at once (the parse, the socket
	// set-up): collecting it as it goes cost a third of the start-up time
	// for 1,000 services. Collect rarely until serving, then return it all.
	oldGC := debug.SetGCPercent(400)
	cfg := loadWith(o, d.db)
	d.logDiags(cfg)
	if !d.handoverAccepts(cfg) {
		return 1
	}
	if !cfg.Usable() {
		if cfg.Diags.HasFatal() && defaultsFatal(cfg) {
			d.log.Logf(logging.LevelCrit, "main", "A fatal error was encountered while parsing the default section. gxinetd will exit.")
		} else {
			d.log.Logf(logging.LevelCrit, "main", "couldn't get configuration. Exiting...")
		}
		d.removePidFile()
		return 1
	}
	if o.Debug {
		var b strings.Builder
		logging.WriteConfigDump(&b, cfg)
		fmt.Fprint(os.Stderr, b.String())
	}

	n := d.startServing(cfg)
	defer d.rec.Close()
	if n == 0 && !o.StayAlive && !o.DontFork {
		d.log.Logf(logging.LevelCrit, "main", "no services. Exiting...")
		d.removePidFile()
		return 1
	}
	d.startMetrics(cfg)
	debug.SetGCPercent(oldGC)
	debug.FreeOSMemory()
	d.log.Logf(logging.LevelNotice, "main", "%s started with libwrap loadavg options compiled in.", Version)
	if !sysdb.NSS && o.SysRoot == "" {
		d.log.Logf(logging.LevelNotice, "main", "built without cgo: users and groups come from /etc/passwd and /etc/group only (NSS modules such as LDAP, SSSD and extrausers are not consulted)")
	}
	d.log.Logf(logging.LevelNotice, "main", "Started working: %d available %s", n, plural(n, "service"))
	if !d.handoverReady(n) { // handover.go: a successor's start ends there
		d.startControl() // before READY: whoever waits for it may ask for -upgrade at once
		sdNotify("READY=1\nSTATUS=" + fmt.Sprintf("serving %d services", n))
		signalReady(o.ReadyFD)
	}

	go d.followInterfaces()
	var cc <-chan time.Time
	if o.CC > 0 {
		t := time.NewTicker(time.Duration(o.CC) * time.Second)
		defer t.Stop()
		cc = t.C
	}
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP, syscall.SIGUSR2:
				d.reload()
			case syscall.SIGUSR1:
				d.dump()
			case syscall.SIGABRT:
				d.consistencyCheck(true)
			case syscall.SIGTERM:
				d.shutdown(true)
				return 0
			case syscall.SIGQUIT:
				d.shutdown(false)
				return 0
			case syscall.SIGINT:
				if o.Debug {
					d.shutdown(true)
					return 1
				}
				// In the foreground (make run, a container's init under
				// docker run -it) Ctrl-C must stop the daemon; it stops as
				// on SIGTERM. A detached daemon has no terminal to get it
				// from, and ignores it as xinetd does.
				if o.DontFork || d.pid1 {
					d.log.Logf(logging.LevelNotice, "main", "SIGINT in the foreground: stopping")
					d.shutdown(true)
					return 0
				}
				d.log.Logf(logging.LevelInfo, "main", "ignoring SIGINT outside debug mode and -dontfork")
			}
		case <-cc:
			d.consistencyCheck(o.Debug)
		case req := <-d.up.ctl.reqs:
			if code, exit := d.upgrade(req, sigs); exit {
				return code
			}
		}
	}
}

// startServing makes the engines and opens the first configuration's sockets;
// it returns how many services are available.
func (d *Daemon) startServing(cfg *service.Config) int {
	o := d.o
	d.rec = logging.NewManager(logging.Options{Ident: identOr(o.LogIdent), SyslogPath: o.SyslogPath, Daemon: d.log})
	d.eng = access.New(access.Global{ProcessLimit: o.Limit, NoLibwrap: o.NoLibwrap, HostsAllow: o.HostsAllow,
		HostsDeny: o.HostsDeny, Notify: d.notifyFromAccess, Refusal: d.refusalFromAccess, CheckOwnership: o.CheckOwnership})
	d.benv = d.builtinEnv()
	warmConfigTemplates(cfg)
	d.change.Lock()
	defer d.change.Unlock()
	d.applyConfig(cfg, cfg.Accepted(), true)
	return d.available()
}

func identOr(s string) string {
	if s == "" {
		return logging.DefaultIdent
	}
	return s
}

func plural(n int, w string) string {
	if n == 1 {
		return w
	}
	return w + "s"
}

func defaultsFatal(cfg *service.Config) bool {
	for _, dg := range cfg.Diags {
		if dg.Fatal && dg.Service == "defaults" {
			return true
		}
	}
	return false
}

// logDiags writes every configuration message to the daemon log, in the
// words and levels xinetd uses for its parser messages.
func (d *Daemon) logDiags(cfg *service.Config) {
	for _, dg := range cfg.Diags {
		lvl := logging.LevelError
		switch dg.Severity {
		case service.SevWarning:
			lvl = logging.LevelWarning
		case service.SevNotice:
			lvl = logging.LevelNotice
		}
		d.log.Logf(lvl, "parse", "%s", dg.String())
	}
}

func (d *Daemon) notifyFromAccess(level, msg string) {
	lvl := logging.LevelInfo
	switch strings.ToLower(level) {
	case "crit", "critical":
		lvl = logging.LevelCrit
	case "error", "err":
		lvl = logging.LevelError
	case "warning", "warn":
		lvl = logging.LevelWarning
	case "notice":
		lvl = logging.LevelNotice
	case "debug":
		lvl = logging.LevelDebug
	}
	d.log.Logf(lvl, "access", "%s", msg)
}

// refusalFromAccess writes the engine's message about one refused
// request, within the refusal budget.
func (d *Daemon) refusalFromAccess(level string, peer netip.Addr, msg string) {
	if d.mayLogRefusal(peer) {
		d.notifyFromAccess(level, msg)
	}
}

// raiseNoFile lifts the soft descriptor limit to the hard one: a
// super-server's connections are its descriptors.
func raiseNoFile() {
	// syscall (not x/sys) so that the runtime also stops restoring the
	// old soft limit in children: servers get soft = hard, as in xinetd,
	// without needing the exec helper for it.
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

// available counts the services that serve or will: called with change
// or mu held.
func (d *Daemon) available() int {
	n := 0
	for _, r := range d.runs {
		if r.svc.Load().IsTCPMuxClient() || len(r.socks) > 0 || r.pending || r.suspended {
			n++
		}
	}
	return n
}

// trimOrigins drops, from the services the daemon keeps, the origins of
// values that came from defaults: the daemon only asks whether a value
// was written in the entry (for xinetd's dump lines), and the full maps
// were a fifth of the memory of a 1,000-service configuration. The check
// mode's JSON is made before this and keeps them all.
func trimOrigins(cfg *service.Config) {
	for _, s := range cfg.Services {
		s.Origins.Keep(func(_ string, src service.Source) bool { return writtenInEntry(src) })
		s.Origins.Compact()
	}
}

// writtenInEntry is logging's test for "set by the entry itself".
func writtenInEntry(src service.Source) bool {
	return src.Origin != "default" && src.Origin != "defaults"
}

// applyConfig makes cfg the running configuration, running the services
// accepted (cfg's accepted entries, and on reload previous definitions
// kept): sockets whose address is unchanged are kept, others opened or
// closed, servers of removed services terminated. It returns what
// changed. The caller holds change, and not mu.
func (d *Daemon) applyConfig(cfg *service.Config, accepted []*service.Service, first bool) (added, kept, dropped []string) {
	if err := d.rec.Configure(&cfg.Defaults, accepted); err != nil {
		// As xinetd: a service whose log cannot be created does not start.
		var ce logging.ConfigureError
		if errors.As(err, &ce) {
			var ok []*service.Service
			for _, se := range ce {
				d.log.Logf(logging.LevelError, "log", "creation of %s log failed: %v", se.ID, se.Err)
			}
			for _, s := range accepted {
				if ce.Failed(s.ID) {
					d.log.Logf(logging.LevelError, "log", "Service %s failed to start and is deactivated.", s.ID)
					continue
				}
				ok = append(ok, s)
			}
			accepted = ok
		} else {
			d.log.Logf(logging.LevelError, "log", "%v", err)
		}
	}
	// At start-up nothing is served before openRunLocked below: the
	// engines are built beside the sockets (1.5 ms for 1,000 services).
	// A reload keeps them in step with the services it halts.
	engReady := make(chan struct{})
	if first {
		go func() {
			defer close(engReady)
			d.eng.Configure(accepted)
		}()
	} else {
		d.eng.Configure(accepted)
		close(engReady)
	}

	// Every serving goroutine stops before its socket changes hands, and
	// is waited for with no lock held: it may be recording a server it
	// has just started, or stopping its service after a cps trip.
	var all []*sockRun
	for _, r := range d.runs {
		for _, sr := range r.socks.all() {
			all = append(all, sr)
		}
	}
	haltAll(all)
	// Room for every new socket at once: one growth of the table, not
	// one per power of two (see fdTable). A reload keeps most sockets.
	d.fdt.reserve(max(len(accepted)-len(all), 0) + 16)

	d.mu.Lock()
	defer d.unlock()
	// Socket pool: every open socket of the old configuration, by key.
	pool := map[sockKey]*sock{}
	d.up.intoPool(pool) // a predecessor's, or systemd's store's (handover.go)
	oldRuns := map[string]*svcRun{}
	for _, r := range d.runs {
		oldRuns[strings.ToLower(r.svc.Load().ID)] = r
		for k, sr := range r.socks.all() {
			pool[k] = sr.s
		}
		r.socks = nil
	}

	mux := map[string]*svcRun{}
	udp := map[uint16]bool{}
	var runs []*svcRun
	byID := map[string]*svcRun{}
	euid := os.Geteuid()
	for _, s := range accepted {
		id := strings.ToLower(s.ID)
		if _, dup := byID[id]; dup {
			// Same id on another port (xinetd allows it): give the run a
			// distinct key so both are served and dumped.
			id = id + "/" + s.Protocol + "/" + fmt.Sprint(s.Port)
		}
		if euid != 0 && s.User != nil && s.User.ID != euid && !s.IsInternal() && !s.IsRedirect() {
			d.logLocked(logging.LevelWarning, "activate", "service %s: not running as root, so user %s is ineffective: its servers run as uid %d",
				s.ID, s.User.Name, euid)
		}
		if s.IsInternal() && s.SocketType == service.SockDgram {
			udp[uint16(s.Port)] = true
		}
		r := oldRuns[id]
		if r != nil && !r.removed.Load() {
			delete(oldRuns, id)
			old := r.svc.Load()
			r.svc.Store(s)
			if !first {
				if !sameListen(old, s) || differentService(old, s) {
					// The socket changes, or xinetd would see another
					// service: the servers go, as in xinetd.
					d.terminateServers(r)
				}
				switch {
				case differentService(old, s):
					// xinetd sees another service under the same id: the
					// old one is dropped and the new one added, and the
					// summary line counts it so. A suspension was the old
					// one's.
					r.suspended = false
					d.logLocked(logging.LevelNotice, "reconfig", "service %s deactivated", old.ID)
					dropped = append(dropped, old.ID)
					added = append(added, s.ID)
				case !sameListen(old, s):
					d.logLocked(logging.LevelNotice, "reconfig", "service %s deactivated (its listening address changed)", old.ID)
					kept = append(kept, s.ID)
				default:
					d.logLocked(logging.LevelNotice, "reconfig", "readjusting service %s", s.ID)
					kept = append(kept, s.ID)
				}
			}
		} else {
			r = &svcRun{d: d, cnt: d.countersLocked(s.ID)}
			r.svc.Store(s)
			if !first {
				added = append(added, s.ID)
			}
		}
		r.setGate(s)
		if s.IsTCPMuxClient() {
			mux[strings.ToLower(s.Name)] = r
		}
		runs = append(runs, r)
		byID[id] = r
	}
	d.tcpmux.Store(&mux)
	d.udpPorts.Store(&udp)
	for _, r := range oldRuns {
		r.removed.Store(true)
		if r.retry != nil {
			r.retry.Stop()
		}
		dropped = append(dropped, r.svc.Load().ID)
		d.terminateServers(r)
		d.logLocked(logging.LevelNotice, "reconfig", "service %s deactivated", r.svc.Load().ID)
	}
	d.runs = runs
	d.byID = byID
	d.cfg = cfg
	tuneProcs(wantsMoreProcs(accepted))

	// Open (or take over) the sockets of the new configuration.
	d.preopenLocked(runs, pool)
	<-engReady
	for _, r := range runs {
		s := r.svc.Load()
		if s.IsTCPMuxClient() || r.suspended {
			continue // a suspended service's timer reopens it
		}
		r.pending = false
		d.openRunLocked(r, pool)
	}
	d.closePreopenedLocked()
	for k, sk := range pool {
		if !sk.activated {
			sk.Close()
		} else {
			d.activated[k] = sk
		}
	}
	// Only the dump asks where a value came from, and only whether the
	// entry wrote it: done after the sockets listen, it does not delay
	// serving.
	trimOrigins(cfg)
	d.rpc.startIfNeeded(accepted)
	d.rpc.kick()
	return
}

// differentService is xinetd's test for a reloaded entry that is not the
// same service although its id is: the RPC, INTERNAL or UNLISTED type
// differs, or wait, the protocol, the socket type, or the port (the RPC
// program for RPC services).
func differentService(a, b *service.Service) bool {
	const kinds = service.TypeRPC | service.TypeInternal | service.TypeUnlisted
	if a.Type&kinds != b.Type&kinds || a.Wait != b.Wait || a.ProtoNum != b.ProtoNum ||
		!strings.EqualFold(a.Protocol, b.Protocol) {
		return true
	}
	if a.Type&service.TypeRPC != 0 {
		return a.RPCNumber != b.RPCNumber
	}
	return a.SocketType != b.SocketType || a.Port != b.Port
}

// sameListen reports whether two versions of a service want the same
// sockets, so the one open can be kept.
func sameListen(a, b *service.Service) bool {
	return a.Port == b.Port && a.SocketType == b.SocketType && a.Protocol == b.Protocol &&
		a.Family == b.Family && a.Bind.Text == b.Bind.Text && a.UnixPath == b.UnixPath &&
		((a.V6Only == nil) == (b.V6Only == nil)) && (a.V6Only == nil || *a.V6Only == *b.V6Only)
}

// wantedKeys lists the sockets a service needs now: one per address for
// an interface bind (possibly none yet), one otherwise.
func (d *Daemon) wantedKeys(s *service.Service) []sockKey {
	if s.Bind.Interface != "" {
		var keys []sockKey
		for _, a := range interfaceAddrs(s.Bind.Interface, s.Bind.IfaceFamily) {
			keys = append(keys, keyFor(s, a))
		}
		return keys
	}
	if s.Bind.Template != "" {
		var keys []sockKey
		for _, a := range d.templateAddrs(s) {
			keys = append(keys, keyFor(s, a))
		}
		return keys
	}
	addr := s.Bind.Addr
	if !addr.IsValid() && d.o.BindAddr != "" && s.Language == service.LangInetd {
		if a, err := netip.ParseAddr(d.o.BindAddr); err == nil {
			addr = a
		}
	}
	return []sockKey{keyFor(s, addr)}
}

// openRunLocked opens every socket the service wants that is not open yet,
// taking them from the pool of the previous configuration or from
// systemd's when the address matches.
func (d *Daemon) openRunLocked(r *svcRun, pool map[sockKey]*sock) {
	s := r.svc.Load()
	keys := d.wantedKeys(s)
	if len(keys) == 0 {
		if !r.waitingIface {
			d.logLocked(logging.LevelWarning, "activate", "service %s: %s has no usable address yet; will listen when it gets one", s.ID, bindWhat(s))
		}
		r.waitingIface = true
		r.pending = true
		return
	}
	r.waitingIface = false
	for _, k := range keys {
		if r.socks.has(k) {
			continue
		}
		sk := pool[k]
		if sk != nil {
			delete(pool, k)
		} else if sk = d.takeActivated(k); sk == nil {
			var err error
			if o, ok := d.takePreopenedLocked(k); ok {
				sk, err = o.sk, o.err
			} else {
				sk, err = openSock(s, k, backlogFor(s, d.o))
			}
			if err != nil && k.family == unix.AF_INET6 && !k.addr.IsValid() && errors.Is(err, unix.EAFNOSUPPORT) {
				d.logLocked(logging.LevelNotice, "activate", "IPv6 socket creation failed for service %s, trying IPv4", s.ID)
				k.family, k.v6only = unix.AF_INET, -1
				sk, err = openSock(s, k, backlogFor(s, d.o))
			}
			if err != nil {
				d.bindFailedLocked(r, k, err)
				continue
			}
		}
		d.startSockLocked(r, k, sk)
	}
}

func backlogFor(s *service.Service, o *Options) int {
	if s.Backlog > 0 {
		return s.Backlog
	}
	if o.Backlog > 0 {
		return o.Backlog
	}
	return DefaultBacklog
}

// bindFailedLocked reports a socket that could not be opened. The service
// is not served on that address, the others are. An address that does
// not exist yet (a bind to an address that DHCP or PPP will bring) is
// retried instead of dropped for good, as xinetd does.
func (d *Daemon) bindFailedLocked(r *svcRun, k sockKey, err error) {
	s := r.svc.Load()
	retryable := errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.EADDRINUSE)
	// A retry that fails again says nothing: the first failure was
	// logged, and success will be.
	if !(retryable && r.retrying) {
		d.logLocked(logging.LevelError, "activate", "bind failed (%s). service = %s", logging.Errno(unwrapErrno(err)), s.ID)
	}
	if retryable {
		r.pending = true
		if r.retry == nil {
			if !r.retrying {
				d.logLocked(logging.LevelNotice, "activate", "service %s: %s is not available yet; retrying every %s", s.ID, k, bindRetry)
			}
			r.retry = time.AfterFunc(bindRetry, func() { d.retryBind(r) })
		}
		return
	}
	d.logLocked(logging.LevelError, "activate", "Service %s failed to start and is deactivated.", s.ID)
}

const bindRetry = 5 * time.Second

func (d *Daemon) retryBind(r *svcRun) {
	d.change.Lock()
	defer d.change.Unlock()
	d.mu.Lock()
	defer d.unlock()
	r.retry = nil
	if r.removed.Load() || d.stopping.Load() {
		return
	}
	before := len(r.socks)
	r.retrying = true
	d.openRunLocked(r, nil)
	r.retrying = false
	if len(r.socks) > before {
		d.logLocked(logging.LevelNotice, "activate", "service %s: now listening on %s", r.svc.Load().ID, r.listenText())
		r.pending = false
	}
}

func unwrapErrno(err error) error {
	var en unix.Errno
	if errors.As(err, &en) {
		return en
	}
	return err
}

// takeActivated finds a systemd-passed socket for k: the same address, or,
// for a service that listens on every address, any socket of its type on
// its port (systemd's ListenStream=PORT may be IPv4 or dual-stack).
func (d *Daemon) takeActivated(k sockKey) *sock {
	for ak, sk := range d.activated {
		if ak.sotype == k.sotype && ak.family == k.family && ak.addr == k.addr && ak.port == k.port && ak.path == k.path {
			delete(d.activated, ak)
			return sk
		}
	}
	if k.addr.IsValid() || k.family == unix.AF_UNIX {
		return nil
	}
	for ak, sk := range d.activated {
		if ak.sotype == k.sotype && ak.port == k.port && ak.family != unix.AF_UNIX {
			delete(d.activated, ak)
			return sk
		}
	}
	return nil
}

// startSockLocked attaches a socket to the service under the key the
// service asked for (a systemd socket may be bound more narrowly) and
// starts serving it.
func (d *Daemon) startSockLocked(r *svcRun, k sockKey, sk *sock) {
	setDeferAccept(sk, r.svc.Load())
	sr := &sockRun{s: sk, stop: make(chan struct{}), done: make(chan struct{})}
	r.socks.put(k, sr)
	r.state.Store("Active")
	d.rpc.kick()
	d.up.store.track(sk)
	if sk.gate != nil && d.serveGated(r, sr) {
		return // a predecessor's server may still hold it
	}
	if sk.stream() && rawAcceptable(r.svc.Load()) {
		if err := d.acc.add(r, sr); err == nil {
			sr.acc = &d.acc
			return
		}
		// No epoll set: serve it with its own goroutine (Go's accept).
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(sr.done)
		r.serve(sr)
	}()
}

// reload is SIGHUP: read and validate the whole new configuration first.
// A fatal error keeps the old configuration entirely; otherwise the new
// one is applied per entry, as a start would apply it, except that a
// running service whose new entry is rejected keeps its previous
// definition (reload.go).
func (d *Daemon) reload() {
	d.log.Logf(logging.LevelNotice, "reconfig", "Starting reconfiguration")
	sdNotify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
	defer sdNotify("READY=1")
	d.db.Refresh()
	cfg := loadWith(d.o, d.db)
	if !cfg.Usable() {
		d.logDiags(cfg)
		d.log.Logf(logging.LevelWarning, "reconfig", "reconfiguration failed: a fatal error in the new configuration (%d errors); still serving the old one", len(cfg.Diags.Errors()))
		return
	}
	d.logDiags(cfg)
	if d.o.Debug {
		// xinetd -d dumps the configuration after every load.
		var b strings.Builder
		logging.WriteConfigDump(&b, cfg)
		fmt.Fprint(os.Stderr, b.String())
	}
	d.log.Logf(logging.LevelNotice, "reconfig", "Swapping defaults")
	d.rec.Reopen()
	warmConfigTemplates(cfg)
	d.change.Lock()
	added, kept, dropped := d.applyConfig(cfg, d.reloadServices(cfg), false)
	n := d.available()
	d.change.Unlock()
	d.restartMetrics(cfg)
	d.log.Logf(logging.LevelNotice, "reconfig", "Reconfigured: new=%d old=%d dropped=%d (services)", len(added), len(kept), len(dropped))
	sort.Strings(added)
	sort.Strings(dropped)
	d.log.Logf(logging.LevelNotice, "reconfig", "services added: [%s] kept: %d dropped: [%s]", strings.Join(added, " "), len(kept), strings.Join(dropped, " "))
	if n == 0 && !d.o.StayAlive && !d.o.DontFork {
		d.log.Logf(logging.LevelCrit, "reconfig", "No available services. Exiting")
		d.shutdown(true)
		d.log.Close()
		os.Exit(1)
	}
}

// takeAllSocks stops every service's fork retry and returns all its
// socket runs, for halting with no lock held; with forget, the services
// no longer list them. The caller holds change.
func (d *Daemon) takeAllSocks(forget bool) []*sockRun {
	d.mu.Lock()
	defer d.unlock()
	var all []*sockRun
	for _, r := range d.runs {
		if r.retry != nil {
			r.retry.Stop()
		}
		for _, sr := range r.socks.all() {
			all = append(all, sr)
		}
		if forget {
			r.socks = nil
		}
	}
	return all
}

// shutdown ends serving. With terminate (SIGTERM) running builtin and
// redirect sessions are cancelled and the servers of wait=yes services
// that hold one of the daemon's sockets get SIGTERM then SIGKILL: left
// running, they would keep the socket, and its service, from the next
// daemon. Servers of wait=no services own only their connection and keep
// running, as in xinetd, unless -killservers. SIGQUIT leaves every
// server alone.
func (d *Daemon) shutdown(terminate bool) {
	d.stopping.Store(true)
	sdNotify("STOPPING=1")
	d.change.Lock()
	all := d.takeAllSocks(true)
	// As in a reload, the serving goroutines are waited for with no lock
	// held. A halted wait=yes goroutine leaves the server holding its
	// socket recorded as the holder.
	haltAll(all)
	var victims []*child
	for _, sr := range all {
		if h := sr.s.holder; h != nil && terminate && !d.o.KillServers && !h.exited() {
			victims = append(victims, h)
		}
		sr.s.Close()
	}
	d.change.Unlock()
	if terminate && d.o.KillServers {
		victims = d.kids.list()
	}
	d.rpc.stop()
	d.stopMetrics()
	d.up.ctl.stopControl(false)
	if terminate {
		d.cancel()
		d.terminate(victims)
		d.endPredecessorHolders(all) // handover.go
		if d.pid1 {
			d.endNamespace()
		}
	}
	d.removePidFile()
	d.log.Logf(logging.LevelWarning, "main", "Exiting...")
	if d.rec != nil {
		d.rec.Flush(2 * time.Second)
	}
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() / 1000
}
