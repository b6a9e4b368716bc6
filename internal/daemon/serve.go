package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/access"
	"github.com/gxinetd/gxinetd/internal/builtins"
	"github.com/gxinetd/gxinetd/internal/proxyproto"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/spawn"
)

// svcRun is the running state of one accepted service. The service value
// itself is swapped atomically on reload; sockets and flags are written
// with Daemon.change and Daemon.mu held (see Daemon.mu). Nothing a
// serving goroutine does reads them.
type svcRun struct {
	d            *Daemon
	svc          atomic.Pointer[service.Service]
	socks        sockSet
	state        atomic.Value // "Active", "Suspended", "Disabled"
	cnt          *counters
	removed      atomic.Bool // dropped by a reload; read by timers and serving goroutines
	pending      bool        // wants a socket it could not open yet
	waitingIface bool
	retry        *time.Timer
	retrying     bool                           // inside retryBind: repeated failures stay quiet
	suspended    bool                           // cps/looping trip: sockets closed until the timer fires
	suspending   atomic.Bool                    // a suspension is on its way (see suspend)
	forkWait     atomic.Bool                    // a wait=yes loop waits to retry a failed fork
	gate         atomic.Pointer[acceptGate]     // inetd.conf child limit: accepts queue at it (queue.go)
	tmpl         atomic.Pointer[spawn.Template] // the current service's server, prepared
	// scope is what the service's in-process sessions (builtins,
	// redirects) run under: ended with the service's servers, when a
	// reload removes the service or moves its socket. nil: the daemon's.
	scope atomic.Pointer[sessionScope]
}

// endedScope is the scope of a removed service: already over.
var endedScope = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// sessionScope is one generation of a service's in-process sessions.
type sessionScope struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// sessions is the context a new builtin or redirect session of the
// service runs under: cancelled by endSessions, and by the daemon's own
// end (its context is the parent).
func (r *svcRun) sessions() context.Context {
	if sc := r.scope.Load(); sc != nil {
		return sc.ctx
	}
	if r.removed.Load() {
		// A request accepted just before its service was removed.
		return endedScope
	}
	if sc := r.newScope(); sc != nil {
		return sc.ctx
	}
	return r.d.ctx
}

func (r *svcRun) newScope() *sessionScope {
	if r.d == nil || r.d.ctx == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(r.d.ctx)
	sc := &sessionScope{ctx, cancel}
	if r.scope.CompareAndSwap(nil, sc) {
		return sc
	}
	cancel()
	return r.scope.Load()
}

// endSessions ends the sessions running now, as xinetd's SIGKILL ends a
// removed redirect's children; sessions started later (the service is
// kept on a new socket) get a new scope.
func (r *svcRun) endSessions() {
	if sc := r.scope.Swap(nil); sc != nil {
		sc.cancel()
	}
}

// template returns the prepared server of svc, making it on first use
// after a (re)load.
func (r *svcRun) template(svc *service.Service) (*spawn.Template, error) {
	if t := r.tmpl.Load(); t != nil && t.Service() == svc {
		return t, nil
	}
	t, err := spawn.NewTemplate(svc, r.d.startEnv, r.d.db)
	if err != nil {
		return nil, err
	}
	r.tmpl.Store(t)
	return t, nil
}

func (r *svcRun) listenText() string {
	var parts []string
	for k := range r.socks.all() {
		parts = append(parts, k.String())
	}
	sort.Strings(parts) // stable log lines
	return strings.Join(parts, " ")
}

// sockRun is one socket of a service and the goroutine serving it.
type sockRun struct {
	s    *sock
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// acc is set when the daemon's acceptor watches this socket instead of
	// a goroutine of its own.
	acc *acceptor
}

// halt stops the serving goroutine without closing the socket, so a
// reload can hand the socket to the new configuration: a deadline in the
// past wakes a blocked Accept or read, which then sees stop. It waits for
// the goroutine, so it must never be called with a lock held that a
// serving goroutine may take (see Daemon.change).
func (sr *sockRun) halt() {
	sr.signal()
	sr.wait()
}

// haltAll halts every goroutine of srs: all are told first, then each is
// waited for, so they stop together rather than one after another.
func haltAll(srs []*sockRun) {
	for _, sr := range srs {
		sr.signal()
	}
	for _, sr := range srs {
		sr.wait()
	}
}

// signal is the first half of halt: it tells the goroutine to stop.
func (sr *sockRun) signal() {
	if sr.acc != nil {
		sr.once.Do(func() {
			close(sr.stop)
			sr.acc.remove(sr)
			close(sr.done)
		})
		return
	}
	sr.once.Do(func() { close(sr.stop) })
	past := time.Unix(1, 0)
	if ln := sr.s.existingListener(); ln != nil {
		if dl, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
			dl.SetDeadline(past)
		}
	}
	if sr.s.pc != nil {
		sr.s.pc.SetReadDeadline(past)
	}
	if f := sr.s.existingFile(); f != nil {
		f.SetReadDeadline(past)
	}
}

// wait is the second half of halt: it waits for the goroutine to end and
// clears the deadlines signal set, for the socket's next user.
func (sr *sockRun) wait() {
	<-sr.done
	if sr.acc != nil {
		return
	}
	if ln := sr.s.existingListener(); ln != nil {
		if dl, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
			dl.SetDeadline(time.Time{})
		}
	}
	if sr.s.pc != nil {
		sr.s.pc.SetReadDeadline(time.Time{})
	}
	if f := sr.s.existingFile(); f != nil {
		f.SetReadDeadline(time.Time{})
	}
}

func (sr *sockRun) stopped() bool {
	select {
	case <-sr.stop:
		return true
	default:
		return false
	}
}

func (r *svcRun) serve(sr *sockRun) {
	s := r.svc.Load()
	switch {
	case sr.s.stream() && (!s.Wait || s.IsInternal()):
		// Internal wait=yes stream services accept themselves in xinetd;
		// in-process that is the same as accepting here.
		r.acceptLoop(sr)
	case sr.s.stream():
		r.streamWaitLoop(sr)
	case sr.s.pc != nil && s.IsInternal():
		r.dgramBuiltinLoop(sr)
	default:
		r.dgramWaitLoop(sr)
	}
}

func (r *svcRun) acceptLoop(sr *sockRun) {
	d := r.d
	ln, err := sr.s.listener()
	if err != nil {
		d.log.Logf(logging.LevelError, "serve", "service %s: %v", r.svc.Load().ID, err)
		return
	}
	// halt may have come before the listener existed, and then had no
	// deadline to set: it has closed stop first, so this sees it.
	if sr.stopped() {
		return
	}
	var bo acceptBackoff
	var clock arrivalClock
	for {
		g := r.gate.Load()
		if g != nil && !g.take() {
			// At the service's limit of children: clients wait in the
			// backlog until one exits.
			if !waitSlot(g, sr) {
				return
			}
			continue
		}
		c, err := ln.Accept()
		if err != nil {
			g.done()
			if sr.stopped() || errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if !bo.failed(r, sr, err) {
				return
			}
			continue
		}
		bo.ok(d)
		at := clock.arrivedConn(c, time.Now())
		if tc, ok := c.(*net.TCPConn); ok {
			systemKeepAlive(tc, r.svc.Load().Flags.Has(service.FlagKeepAlive))
		}
		d.up.sessionStart() // upgrade.go: the old daemon waits for it
		go r.handleCounted(c, g, at)
	}
}

// waitSlot waits until g may have a free slot, or the goroutine must stop
// (false).
func waitSlot(g *acceptGate, sr *sockRun) bool {
	ch := make(chan struct{})
	g.pause(func() { close(ch) })
	select {
	case <-ch:
		return true
	case <-sr.stop:
		return false
	}
}

// systemKeepAlive undoes what Go's Accept does to every connection, which
// is to turn keepalive on with 15 s timers: as in xinetd, a connection
// has keepalive only with flags = KEEPALIVE, and then with the system's
// timers (net.ipv4.tcp_keepalive_*), which the listener's SO_KEEPALIVE
// would have given it.
func systemKeepAlive(tc *net.TCPConn, on bool) {
	if !on {
		_ = tc.SetKeepAlive(false)
		return
	}
	_ = tc.SetKeepAliveConfig(keepAliveDefaults())
}

var keepAliveDefaults = sync.OnceValue(func() net.KeepAliveConfig {
	read := func(name string, def int) time.Duration {
		b, err := os.ReadFile("/proc/sys/net/ipv4/" + name)
		n, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || perr != nil || n <= 0 {
			n = def
		}
		return time.Duration(n) * time.Second
	}
	// The kernel's own defaults when /proc cannot say.
	return net.KeepAliveConfig{Enable: true, Idle: read("tcp_keepalive_time", 7200),
		Interval: read("tcp_keepalive_intvl", 75), Count: int(read("tcp_keepalive_probes", 9) / time.Second)}
})

// acceptBackoff is what both accept loops do when accept fails: out of
// descriptors, back off (never spin), say so once per episode, and
// recover by themselves when descriptors free up.
type acceptBackoff struct{ delay time.Duration }

// failed handles an accept error; it returns false when the loop must end.
func (b *acceptBackoff) failed(r *svcRun, sr *sockRun, err error) bool {
	d := r.d
	b.delay = backoff(b.delay)
	if !d.fdShortage(err, r.svc.Load().ID) {
		d.log.Logf(logging.LevelError, "accept", "accept failed for service %s: %v; retrying", r.svc.Load().ID, err)
	}
	select {
	case <-time.After(b.delay):
		return true
	case <-sr.stop:
		return false
	}
}

// ok notes a successful accept: the next failure backs off from the
// start again. The out-of-descriptors episode ends by itself, once an
// interval passes without a shortage (logging.Episode); ending it at the
// first success wrote two lines for every connection under pressure.
func (b *acceptBackoff) ok(d *Daemon) {
	b.delay = 0
}

func backoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	d *= 2
	if d > time.Second {
		d = time.Second
	}
	return d
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.TCPAddr:
		return v.AddrPort()
	case *net.UDPAddr:
		return v.AddrPort()
	}
	return netip.AddrPort{}
}

// handleStream serves one accepted connection of a stream service; g is
// the accept gate the connection holds a slot of, or nil; at is when the
// connection arrived.
func (r *svcRun) handleStream(c net.Conn, g *acceptGate, at time.Time) {
	r.handleStreamWith(c, r.svc.Load(), g, at, nil)
}

// handleStreamWith is handleStream for svc; pp, when not nil, holds the
// part of the connection's PROXY header the raw path has read.
func (r *svcRun) handleStreamWith(c net.Conn, svc *service.Service, g *acceptGate, at time.Time, pp *proxyConnBuf) {
	remote, local := addrPortOf(c.RemoteAddr()), addrPortOf(c.LocalAddr())
	streamOpts(c, svc)
	if svc.ProxyProtocol != 0 {
		var ok bool
		if c, remote, local, ok = r.proxyIn(c, svc, remote, local, pp); !ok {
			g.done()
			return
		}
	}
	r.serveStream(c, svc, remote, local, g, at)
}

// streamOpts gives an accepted connection the service's socket options.
func streamOpts(c net.Conn, svc *service.Service) {
	if tc, ok := c.(*net.TCPConn); ok {
		if svc.Flags.Has(service.FlagKeepAlive) {
			tc.SetKeepAlive(true)
		}
		if !svc.Flags.Has(service.FlagNoDelay) && !svc.IsInternal() {
			// Go turns NODELAY on by default; servers get what xinetd
			// gives them unless NODELAY was asked for.
			tc.SetNoDelay(false)
		}
	}
}

// serveStream serves a connection whose ends are known (after its PROXY
// header, if the service takes one): banner, checks, then the request.
func (r *svcRun) serveStream(c net.Conn, svc *service.Service, remote, local netip.AddrPort, g *acceptGate, at time.Time) {
	d := r.d
	d.sendBanner(c, svc, svc.Banner)
	dec := d.eng.Decide(d.ctx, access.Request{Service: svc, Peer: remote, Local: local, Now: at, PeerCred: peerCred(c)})
	g.admit(&dec)
	if !dec.Allow {
		d.refused(r, svc, c, remote, local, dec)
		c.Close()
		return
	}
	d.serveAllowed(r, svc, c, remote, local, dec)
}

// serveAllowed carries out an allowed stream request: tcp_wrappers
// actions, banner_success, ident, then the builtin, proxy or server.
func (d *Daemon) serveAllowed(r *svcRun, svc *service.Service, c net.Conn, remote, local netip.AddrPort, dec access.Decision) {
	lease := dec.Lease
	r.cnt.inflight.Add(1)
	defer r.cnt.inflight.Add(-1)
	if w := dec.Wrap; w != nil {
		d.wrapBanner(c, svc, w)
		if w.Spawn != "" {
			d.runWrapCommand(svc, w.Spawn, remote, local, nil, nil, w.SpawnProc)
		}
		if w.Twist != "" {
			// twist replaces the server with the command, on the
			// connection; it runs counted as the service's server.
			d.runWrapCommand(svc, w.Twist, remote, local, c, lease, w.Proc)
			return
		}
	}
	d.sendBanner(c, svc, svc.BannerSuccess)
	var after []logging.Record // written after START (records.go)
	if svc.LogOnSuccess.Has(service.LogSuccessUserID) && !svc.Wait && svc.SocketType == service.SockStream {
		began := time.Now()
		via := proxyOf(c)
		user, err := d.ident(svc, identLocal(local, via), remote)
		if err == nil {
			rec := userIDRecord(svc, remote, local, user)
			rec.Proxy = via
			after = append(after, rec)
		} else if svc.Flags.Has(service.FlagIDOnly) {
			// The record's reason code comes from the ident failure
			// (no_server, timeout, ...), as the structured formats document.
			d.noIdent(svc, remote, local, identReason(err), began)
			r.cnt.noid.Add(1)
			c.Close()
			releaseLease(lease)
			return
		}
	}
	d.dispatch(r, svc, c, remote, local, lease, dec.Wrap, after...)
}

// ident runs the RFC 1413 lookup for a connection and reports a
// malformed answer in the daemon log, as xinetd does.
func (d *Daemon) ident(svc *service.Service, local, remote netip.AddrPort) (string, error) {
	user, err := logging.Ident(d.ctx, local, remote, identTimeout(svc))
	var ie *logging.IdentError
	if errors.As(err, &ie) && ie.Reason == "bad response" && d.mayLogRefusal(remote.Addr()) {
		// The answer comes from the network: no control characters in our log.
		line := strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return '?'
			}
			return r
		}, ie.Line)
		d.log.Logf(logging.LevelError, "ident", "Bad line received from identity server at %s: %s", remote.Addr(), line)
	}
	return user, err
}

// identLocal is the local end an ident lookup connects from and names
// in its query. Behind a balancer the client connected to the
// balancer's address (the header's destination), which is the port the
// client's ident server knows; the lookup itself must leave from an
// address of this host, so the kernel chooses it.
func identLocal(local, via netip.AddrPort) netip.AddrPort {
	if !via.IsValid() {
		return local
	}
	return netip.AddrPortFrom(netip.Addr{}, local.Port())
}

func identTimeout(svc *service.Service) time.Duration {
	if svc.IdentTimeout > 0 {
		return time.Duration(svc.IdentTimeout) * time.Second
	}
	return 5 * time.Second
}

func identReason(err error) string {
	var ie *logging.IdentError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return "system error"
}

func releaseLease(l *access.Lease) {
	if l != nil {
		l.Release()
	}
}

// forkingBuiltins are the stream builtins xinetd runs in a forked child;
// their sessions get EXIT records (with pid=0 here, since gxinetd serves
// them in-process).
var forkingBuiltins = map[string]bool{"echo": true, "discard": true, "chargen": true, "tcpmux": true}

// dispatch runs an allowed stream request; after are the records to
// write after its START.
func (d *Daemon) dispatch(r *svcRun, svc *service.Service, c net.Conn, remote, local netip.AddrPort, lease *access.Lease, w *access.WrapAction, after ...logging.Record) {
	start := time.Now()
	if holdsSession(svc) && d.inReserve(connFD(c), svc.ID) {
		d.refuseSession(r, svc, remote, local, lease)
		c.Close()
		return
	}
	switch {
	case svc.IsInternal():
		fn, ok := builtins.Stream(svc.Builtin)
		d.started(logging.Record{Event: logging.EventStart, Service: svc, Remote: remote, Local: local, Proxy: proxyOf(c)}, after)
		r.cnt.served.Add(1)
		if ok {
			if err := fn(r.sessions(), c, svc, d.benv); err != nil && !isBenign(err) {
				d.log.Logf(logging.LevelDebug, "builtin", "service %s: %v", svc.ID, err)
			}
		}
		c.Close()
		releaseLease(lease)
		if forkingBuiltins[svc.Builtin] {
			d.record(logging.Record{Event: logging.EventExit, Service: svc, Remote: remote, Local: local, Duration: time.Since(start)})
		}
	case svc.IsRedirect():
		d.redirect(r, svc, remote, local, proxyOf(c), lease, func(o spawn.ProxyOptions, done func(int64, int64, error)) {
			spawn.ProxyAsync(r.sessions(), c, svc.Redirect.Host, svc.Redirect.Port, o, done)
		}, after...)
	default:
		peer := peerCred(c)
		over, err := d.wrapOverrides(svc, w)
		if err != nil {
			c.Close()
			releaseLease(lease)
			return
		}
		f, err := connFile(c)
		c.Close()
		if err != nil {
			if !d.fdShortage(err, svc.ID) {
				d.log.Logf(logging.LevelError, "spawn", "service %s: %v", svc.ID, err)
			}
			releaseLease(lease)
			return
		}
		d.spawnServer(r, svc, f, true, spawn.Conn{Remote: remote, Local: local, RemoteKnown: true, Peer: peer, Over: over, Proxy: proxyOf(c)}, lease, nil, 0, after...)
	}
}

// redirect starts one redirect session through start (ProxyAsync on a
// net.Conn, or ProxyFDAsync on the raw path), which returns once the
// upstream connect has begun: the session then runs in the relay, with
// no goroutine of its own, and its end writes the records (after follow
// START) and releases the lease. via is the balancer the connection came
// through, if a PROXY header named remote.
func (d *Daemon) redirect(r *svcRun, svc *service.Service, remote, local, via netip.AddrPort, lease *access.Lease,
	start func(o spawn.ProxyOptions, done func(in, out int64, err error)), after ...logging.Record) {
	begin := time.Now()
	d.started(logging.Record{Event: logging.EventStart, Service: svc, Remote: remote, Local: local, Proxy: via}, after)
	r.cnt.served.Add(1)
	o := spawn.ProxyOptions{
		ConnectTimeout: secs(svc.ConnectTimeout), IdleTimeout: secs(svc.IdleTimeout),
		KeepAlive: svc.Flags.Has(service.FlagKeepAlive), NoDelay: true, Source: svc.RedirectSource,
		Control: func(fd int) error { return d.reserveControl(fd, svc.ID) }}
	switch svc.RedirectProxyProtocol {
	case 1:
		o.Preamble = proxyproto.AppendV1(make([]byte, 0, 108), remote, local)
	case 2:
		o.Preamble = proxyproto.AppendV2(make([]byte, 0, 52), remote, local)
	}
	// The session outlives the request's goroutine (it runs in the
	// relay): it counts as the daemon's own until it ends, so that after
	// an upgrade the old daemon stays for it. The request still holds its
	// own count here, so this one never starts from zero.
	d.up.sessionStart()
	start(o, func(in, out int64, err error) {
		// Called by the relay's goroutine: nothing here may wait.
		defer d.up.sessionEnd()
		releaseLease(lease)
		switch {
		case errors.Is(err, errInReserve):
			// The upstream socket would have eaten into the reserve.
			r.cnt.noFD.Add(1)
			if d.mayLogRefusal(remote.Addr()) {
				d.record(logging.Record{Event: logging.EventFail, Service: svc, Remote: remote, Local: local,
					Reason: access.ReasonDescriptors.String(), ReasonCode: access.ReasonDescriptors.Code(), Proxy: via})
			}
		case errors.Is(err, spawn.ErrIdleTimeout):
			// The configured idle_timeout did its job: the EXIT record
			// says the session ended, and idle sessions are what an
			// attacker would make to fill the log.
		case errors.Is(err, spawn.ErrConnect) && !errors.Is(err, context.Canceled):
			// A backend that times out is as down as one that refuses
			// (xinetd logs both), though a timeout is benign below.
			if !d.fdShortage(err, svc.ID) {
				d.log.Logf(logging.LevelError, "redirect", "service %s: %v", svc.ID, err)
			}
		case err != nil && !isBenign(err) && !d.fdShortage(err, svc.ID):
			d.log.Logf(logging.LevelError, "redirect", "service %s: %v", svc.ID, err)
		}
		r.cnt.bytesIn.Add(uint64(in))
		r.cnt.bytesOut.Add(uint64(out))
		if svc.LogOnSuccess.Has(service.LogSuccessTraffic) {
			d.record(logging.Record{Event: logging.EventTraffic, Service: svc, Remote: remote, Local: local, BytesIn: in, BytesOut: out})
		}
		d.record(logging.Record{Event: logging.EventExit, Service: svc, Remote: remote, Local: local, Duration: time.Since(begin)})
	})
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

func isBenign(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) ||
		errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, os.ErrDeadlineExceeded)
}

func connFile(c net.Conn) (*os.File, error) {
	type filer interface{ File() (*os.File, error) }
	if fc, ok := c.(filer); ok {
		return fc.File()
	}
	return nil, errors.New("connection has no descriptor to hand to a server")
}

// refused handles a refusal: FAIL record, banner_fail, the failure-path
// ident lookup, and closing the listener for a cps or looping trip.
func (d *Daemon) refused(r *svcRun, svc *service.Service, c net.Conn, remote, local netip.AddrPort, dec access.Decision) {
	via := proxyOf(c)
	if !dec.Quiet && d.mayLogRefusal(remote.Addr()) {
		d.record(logging.Record{Event: logging.EventFail, Service: svc, Remote: remote, Local: local,
			Reason: dec.Reason.String(), ReasonCode: dec.Reason.Code(), Proxy: via})
	}
	if c != nil {
		d.sendBanner(c, svc, svc.BannerFail)
		if dec.Wrap != nil {
			d.wrapBanner(c, svc, dec.Wrap)
			if dec.Wrap.Spawn != "" {
				d.runWrapCommand(svc, dec.Wrap.Spawn, remote, local, nil, nil, dec.Wrap.SpawnProc)
			}
			if dec.Wrap.Twist != "" {
				// A hosts.deny twist answers the refused client itself
				// (the classic "send a message and close").
				d.runWrapCommand(svc, dec.Wrap.Twist, remote, local, c, nil, dec.Wrap.Proc)
			}
		}
	}
	if svc.LogOnFailure.Has(service.LogFailureUserID) && remote.IsValid() && svc.SocketType == service.SockStream {
		// The lookup must not hold the refused connection's goroutine
		// hostage: it runs on its own, bounded by the ident timeout,
		// and by the gate: a refused client could otherwise make the
		// daemon open one outgoing connection per refusal, each held
		// for the timeout.
		if release, ok := d.bnd.ident.Acquire(remote.Addr(), time.Now()); ok {
			go func() {
				defer release()
				user, err := d.ident(svc, identLocal(local, via), remote)
				if err == nil {
					d.record(logging.Record{Event: logging.EventUserID, Service: svc, Remote: remote, Local: local, UserID: user, Proxy: via})
				} else if reason := identReason(err); reason != "no server" && d.mayLogRefusal(remote.Addr()) {
					d.log.Logf(logging.LevelError, "ident", "Failed to contact identity server at %s: %s", remote.Addr(), reason)
				}
			}()
		}
	}
	if dec.SuspendFor > 0 {
		d.suspend(r, svc, dec)
	}
}

// suspend closes a service's sockets for a while after a cps or looping
// trip, then reopens them. Running servers are untouched and stay counted.
// It is called on the request's goroutine, often a serving goroutine that
// a reload may be waiting for, so the work is done on a goroutine of its
// own under Daemon.change (one per trip).
func (d *Daemon) suspend(r *svcRun, svc *service.Service, dec access.Decision) {
	if r.suspending.CompareAndSwap(false, true) {
		go d.suspendRun(r, svc, dec)
	}
}

func (d *Daemon) suspendRun(r *svcRun, svc *service.Service, dec access.Decision) {
	d.change.Lock()
	defer d.change.Unlock()
	defer r.suspending.Store(false)
	if r.suspended || r.removed.Load() || d.stopping.Load() {
		return
	}
	d.mu.Lock()
	r.suspended = true
	socks := r.socks
	r.socks = nil
	d.unlock()
	var all []*sockRun
	for _, sr := range socks.all() {
		all = append(all, sr)
	}
	haltAll(all)
	for _, sr := range all {
		sr.s.Close()
	}
	d.rpc.kick()
	r.state.Store("Disabled")
	wait := dec.SuspendFor
	if dec.Reason == access.ReasonLooping {
		d.log.Logf(logging.LevelError, "access", "%s/%s server failing (looping), service terminated for %d minutes",
			svc.Name, svc.Protocol, int(wait/time.Minute))
	} else {
		d.log.Logf(logging.LevelError, "access", "Deactivating service %s due to excessive incoming connections.  Restarting in %d seconds.",
			svc.Name, int(wait/time.Second))
	}
	time.AfterFunc(wait, func() { d.resume(r) })
}

// resume reopens a suspended service's sockets when its time is up. A
// reload meanwhile has already reopened them (and cleared suspended).
func (d *Daemon) resume(r *svcRun) {
	d.change.Lock()
	defer d.change.Unlock()
	if !r.suspended {
		return
	}
	d.mu.Lock()
	defer d.unlock()
	r.suspended = false
	if r.removed.Load() || d.stopping.Load() {
		return
	}
	before := len(r.socks)
	d.openRunLocked(r, nil)
	if len(r.socks) > before {
		d.logLocked(logging.LevelError, "access", "Activating service %s", r.svc.Load().Name)
	} else {
		d.logLocked(logging.LevelError, "access", "Error activating service %s", r.svc.Load().Name)
	}
}

// sendBanner copies a banner file to the client, bounded in size and time.
func (d *Daemon) sendBanner(c net.Conn, svc *service.Service, path string) {
	if path == "" || c == nil {
		return
	}
	if ue := d.unsafeRead(path); ue != nil {
		d.log.Logf(logging.LevelError, "banner", "service = %s, banner not sent: %v", svc.ID, ue)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		d.log.Logf(logging.LevelError, "banner", "service = %s, open of banner %s failed", svc.ID, path)
		return
	}
	defer f.Close()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.Copy(c, io.LimitReader(f, 1<<20))
	c.SetWriteDeadline(time.Time{})
}

func (d *Daemon) record(rec logging.Record) {
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	d.rec.Log(rec)
}

// streamWaitLoop serves a wait=yes stream service: the listening socket
// itself goes to one server at a time, which accepts for itself.
func (r *svcRun) streamWaitLoop(sr *sockRun) {
	d := r.d
	rc, err := sr.s.osFile().SyscallConn()
	if err != nil {
		d.log.Logf(logging.LevelError, "serve", "service %s: %v", r.svc.Load().ID, err)
		return
	}
	local := sockLocal(sr.s)
	for {
		if !r.waitHolder(sr) {
			return
		}
		if err := waitReadable(rc, sr.stop); err != nil || sr.stopped() {
			return
		}
		svc := r.svc.Load()
		dec := d.eng.Decide(d.ctx, access.Request{Service: svc, Local: local, Now: time.Now()})
		if !dec.Allow {
			// Consume the one pending connection so the refusal cannot
			// leave the service suspended or spinning (xinetd's defect).
			c, err := acceptOne(sr.s)
			var remote netip.AddrPort
			if err == nil {
				remote = addrPortOf(c.RemoteAddr())
			}
			d.refused(r, svc, c, remote, local, dec)
			if c != nil {
				c.Close()
			}
			if dec.SuspendFor > 0 {
				return
			}
			continue
		}
		r.state.Store("Suspended")
		setBlocking(sr.s.osFile(), true)
		ch, halted := r.startWaitServer(sr, svc, spawn.Conn{Local: local}, dec.Lease)
		if ch != nil {
			sr.s.holder = ch
			continue // waitHolder waits for it
		}
		setBlocking(sr.s.osFile(), false)
		if halted {
			return // the connection waits for the next goroutine
		}
		if c, err := acceptOne(sr.s); err == nil {
			// The server could not start: drop the connection that woke
			// us, or we would try again at once, forever.
			c.Close()
		}
		r.state.Store("Active")
	}
}

// waitHolder waits until the wait=yes server holding the socket (if any)
// exits, then takes the socket back: non-blocking again, for the poller.
// A reload that halts this goroutine meanwhile leaves the socket as the
// server has it (blocking) and the server recorded as its holder, so the
// goroutine of the new configuration waits for the same server. It
// reports false when the goroutine must stop.
func (r *svcRun) waitHolder(sr *sockRun) bool {
	ch := sr.s.holder
	if ch == nil {
		return !sr.stopped()
	}
	r.state.Store("Suspended")
	select {
	case <-ch.done:
	case <-sr.stop:
		return false
	}
	sr.s.holder = nil
	setBlocking(sr.s.osFile(), false)
	r.state.Store("Active")
	return !sr.stopped()
}

// acceptOne takes one pending connection off a wait=yes listener.
func acceptOne(s *sock) (net.Conn, error) {
	ln, err := s.listener()
	if err != nil {
		return nil, err
	}
	return ln.Accept()
}

func sockLocal(s *sock) netip.AddrPort {
	if s.stream() && s.fdNum >= 0 {
		if sa, err := unix.Getsockname(s.fdNum); err == nil {
			return sockaddrToAddrPort(sa)
		}
		return netip.AddrPort{}
	}
	if s.pc != nil {
		return addrPortOf(s.pc.LocalAddr())
	}
	return netip.AddrPort{}
}

// dgramWaitLoop serves an external datagram service (wait=yes): the
// socket goes to one server at a time, with the datagram that woke us
// still queued. Datagrams that arrive meanwhile stay queued for the next
// server; xinetd drains them.
func (r *svcRun) dgramWaitLoop(sr *sockRun) {
	d := r.d
	rc, err := sr.s.osFile().SyscallConn()
	if err != nil {
		d.log.Logf(logging.LevelError, "serve", "service %s: %v", r.svc.Load().ID, err)
		return
	}
	local := sockLocal(sr.s)
	var peekBuf [1]byte
	for {
		if !r.waitHolder(sr) {
			return
		}
		if err := waitReadable(rc, sr.stop); err != nil || sr.stopped() {
			return
		}
		var from netip.AddrPort
		rc.Control(func(fd uintptr) {
			_, sa, err := unix.Recvfrom(int(fd), peekBuf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if err == nil {
				from = sockaddrToAddrPort(sa)
			}
		})
		svc := r.svc.Load()
		dec := d.eng.Decide(d.ctx, access.Request{Service: svc, Peer: from, Local: local, Now: time.Now()})
		if !dec.Allow {
			dropDatagram(rc)
			d.refused(r, svc, nil, from, local, dec)
			if dec.SuspendFor > 0 {
				return
			}
			continue
		}
		r.state.Store("Suspended")
		setBlocking(sr.s.osFile(), true)
		ch, halted := r.startWaitServer(sr, svc, spawn.Conn{Remote: from, Local: local, RemoteKnown: from.IsValid()}, dec.Lease)
		if ch != nil {
			sr.s.holder = ch
			continue // waitHolder waits for it
		}
		setBlocking(sr.s.osFile(), false)
		if halted {
			return // the datagram waits for the next goroutine
		}
		// As OpenBSD inetd: a server that cannot start must not leave
		// its datagram behind to wake us again at once.
		dropDatagram(rc)
		r.state.Store("Active")
	}
}

func dropDatagram(rc interface{ Control(func(uintptr)) error }) {
	var b [1]byte
	rc.Control(func(fd uintptr) { unix.Recvfrom(int(fd), b[:], unix.MSG_DONTWAIT) })
}

func sockaddrToAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		addr := netip.AddrFrom16(a.Addr)
		if a.ZoneId != 0 {
			addr = addr.WithZone(zoneName(a.ZoneId))
		}
		return netip.AddrPortFrom(addr, uint16(a.Port))
	}
	return netip.AddrPort{}
}

// dgramRaw receives and sends datagrams on a non-blocking socket's
// descriptor, waiting in the runtime's poller (which also honours the
// deadline halt sets).
type dgramRaw struct{ rc syscall.RawConn }

func (u *dgramRaw) recv(buf []byte) (int, netip.AddrPort, error) {
	var (
		n    int
		from netip.AddrPort
		serr error
	)
	if err := u.rc.Read(func(fd uintptr) bool {
		n, from, serr = recvfromRaw(int(fd), buf)
		return serr != unix.EAGAIN
	}); err != nil {
		return 0, from, err
	}
	return n, from, serr
}

func (u *dgramRaw) send(b []byte, to netip.AddrPort) error {
	var serr error
	if err := u.rc.Write(func(fd uintptr) bool {
		serr = sendtoRaw(int(fd), b, to)
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	return serr
}

// dgramBuiltinLoop answers datagram builtins in-process: one goroutine per
// socket, no allocation per datagram on the allow path.
func (r *svcRun) dgramBuiltinLoop(sr *sockRun) {
	d := r.d
	uc, ok := sr.s.pc.(*net.UDPConn)
	if !ok {
		return
	}
	local := sockLocal(sr.s)
	buf := make([]byte, 65536)
	reply := make([]byte, 0, 65536)
	// With several local addresses, the answer must leave from the one the
	// client sent to (see enableDstInfo).
	var oob, ctl []byte
	if enableDstInfo(sr.s) {
		oob, ctl = make([]byte, 256), make([]byte, 0, 64)
	}
	// Without control messages to read, datagrams go through raw
	// recvfrom and sendto on the descriptor (see rawsys.go): recvmsg and
	// sendmsg copy a message header in and out of the kernel, and the
	// ordinary calls hand the scheduler slot around, for every datagram.
	var raw *dgramRaw
	if oob == nil {
		rc, err := uc.SyscallConn()
		if err != nil {
			return // closed already
		}
		raw = &dgramRaw{rc: rc}
	}
	for {
		var n, oobn int
		var from netip.AddrPort
		var err error
		if raw != nil {
			n, from, err = raw.recv(buf)
		} else {
			n, oobn, _, from, err = uc.ReadMsgUDPAddrPort(buf, oob)
		}
		if err != nil {
			if sr.stopped() || errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			continue
		}
		svc := r.svc.Load()
		if ok, _ := builtins.Guard(from, d.benv); !ok {
			continue // Guard says why in the log, once per source per interval
		}
		dec := d.eng.Decide(d.ctx, access.Request{Service: svc, Peer: from, Local: local, Now: time.Now()})
		if !dec.Allow {
			d.refused(r, svc, nil, from, local, dec)
			if dec.SuspendFor > 0 {
				return
			}
			continue
		}
		r.cnt.served.Add(1)
		if svc.LogType.Kind != service.LogNone && svc.LogOnSuccess != 0 {
			d.record(logging.Record{Event: logging.EventStart, Service: svc, Remote: from, Local: local})
		}
		if fn, ok := builtins.Dgram(svc.Builtin); ok {
			if out := fn(buf[:n], from, svc, d.benv, reply[:0]); out != nil {
				if raw != nil {
					raw.send(out, from)
				} else {
					uc.WriteMsgUDPAddrPort(out, replySourceControl(ctl[:0], oob[:oobn]), from)
				}
			}
		}
		releaseLease(dec.Lease)
	}
}

// builtinEnv is what the builtins may ask of the daemon.
func (d *Daemon) builtinEnv() *builtins.Env {
	return &builtins.Env{
		Limits: builtins.Limits{IdleTimeout: builtins.DefaultIdleTimeout, MaxBytes: builtins.DefaultMaxBytes},
		TCPMux: func(name string) (*service.Service, bool) {
			if r := d.muxRun(name); r != nil {
				return r.svc.Load(), true
			}
			return nil, false
		},
		TCPMuxNames: func() []string {
			m := d.tcpmux.Load()
			var out []string
			if m != nil {
				for _, r := range *m {
					out = append(out, r.svc.Load().Name)
				}
			}
			sort.Strings(out)
			return out
		},
		Serve: d.serveMux,
		Users: d.db,
		OwnPorts: func(p uint16) bool {
			m := d.udpPorts.Load()
			return m != nil && (*m)[p]
		},
		Logf: func(format string, args ...any) { d.log.Logf(logging.LevelWarning, "builtin", format, args...) },
		AllowLog: func(a netip.Addr, repeat bool) bool {
			if repeat {
				// Said within the minute already: counted, not written.
				d.bnd.refusals.Hold(time.Now())
				return false
			}
			return d.mayLogRefusal(a)
		},
	}
}

// muxRun is the running TCPMUX service of that name, or nil.
func (d *Daemon) muxRun(name string) *svcRun {
	if m := d.tcpmux.Load(); m != nil {
		return (*m)[strings.ToLower(name)]
	}
	return nil
}

// serveMux runs a service selected through tcpmux on the connection: the
// selected service's own access checks, logging and server, as if its
// client had connected to it directly. The server belongs to the
// service's own run, so a reload that removes the service, or moves it,
// terminates it as it does the servers started directly.
func (d *Daemon) serveMux(ctx context.Context, svc *service.Service, c net.Conn) error {
	r := d.muxRun(svc.Name)
	if r == nil {
		// Removed by a reload since the name was looked up.
		c.Close()
		return nil
	}
	remote, local := addrPortOf(c.RemoteAddr()), addrPortOf(c.LocalAddr())
	dec := d.eng.Decide(ctx, access.Request{Service: svc, Peer: remote, Local: local, Now: time.Now()})
	if !dec.Allow {
		dec.SuspendFor = 0
		d.refused(r, svc, c, remote, local, dec)
		c.Close()
		return nil
	}
	d.serveAllowed(r, svc, c, remote, local, dec)
	return nil
}
