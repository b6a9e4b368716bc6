package daemon

import (
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/access"
	"github.com/gxinetd/gxinetd/internal/builtins"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/spawn"
)

// The raw accept path serves the stream services whose connections need
// no net.Conn: external servers (the descriptor goes straight to the
// child), the write-and-close builtins daytime and time, and redirects
// (spawn.ProxyFD drives the descriptor itself). Go's Accept registers
// every connection with the poller, asks the kernel for both addresses
// and turns TCP keepalive on, and handing the connection to a child then
// costs a dup and two more closes: about ten system calls that xinetd and
// inetd do not make. Here accept4 gives a blocking descriptor and the
// peer's address in one call.
//
// Everything unusual (banners, tcp_wrappers actions, ident, refusals)
// still goes through the net.Conn path, so there is one implementation of
// each behaviour; the fast path only skips work it can prove unneeded.

// rawAcceptable reports whether a service's connections can take the raw path.
func rawAcceptable(s *service.Service) bool {
	if s.Wait || s.SocketType != service.SockStream || s.Family == service.FamilyUnix {
		return false
	}
	if s.IsInternal() {
		return s.Builtin == "daytime" || s.Builtin == "time"
	}
	return true
}

// needsConn reports whether an allowed request needs the full net.Conn
// path: something must be written or read before the server runs.
func needsConn(s *service.Service, dec *access.Decision) bool {
	return s.Banner != "" || s.BannerSuccess != "" || dec.Wrap != nil ||
		(s.LogOnSuccess.Has(service.LogSuccessUserID) && !s.Wait)
}

// fdConn turns a raw accepted descriptor into a net.Conn for the full path.
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "conn")
	defer f.Close()
	return net.FileConn(f)
}

// handleRaw serves one connection the acceptor took; g is the accept gate
// it holds a slot of, or nil; at is when the connection arrived; nonblock
// says it was accepted non-blocking, for a redirect; rl is the relay
// listener whose set's goroutine accepted it and runs this, or nil (a
// session started here then goes into that set: spawn.ProxyOptions.Relay).
func (r *svcRun) handleRaw(fd int, nonblock bool, remote, local netip.AddrPort, g *acceptGate, at time.Time, rl *spawn.RelayListener) {
	d := r.d
	svc := r.svc.Load()
	if nonblock && !svc.IsRedirect() {
		// A reload made the redirect something else meanwhile: a server
		// gets its connection blocking, as always.
		if err := unix.SetNonblock(fd, false); err != nil {
			closeRaw(fd)
			g.done()
			return
		}
		nonblock = false
	}
	if s := svc; s.Flags.Has(service.FlagKeepAlive) {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	}
	if svc.Flags.Has(service.FlagNoDelay) {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	var via netip.AddrPort
	if svc.ProxyProtocol != 0 {
		var done bool
		if remote, local, via, done = r.proxyInRaw(fd, svc, remote, local, g, at); done {
			return
		}
	}
	if svc.Banner != "" {
		// banner goes out before any check: the full path does that.
		if c, err := fdConn(fd); err == nil {
			streamOpts(c, svc)
			r.serveStream(proxied(c, remote, local, via), svc, remote, local, g, at)
		} else {
			g.done()
		}
		return
	}
	dec := d.eng.Decide(d.ctx, access.Request{Service: svc, Peer: remote, Local: local, Now: at})
	g.admit(&dec)
	if !dec.Allow || needsConn(svc, &dec) {
		c, err := fdConn(fd)
		if err != nil {
			releaseLease(dec.Lease)
			return
		}
		c = proxied(c, remote, local, via)
		if !dec.Allow {
			d.refused(r, svc, c, remote, local, dec)
			c.Close()
			return
		}
		d.serveAllowed(r, svc, c, remote, local, dec)
		return
	}
	if svc.IsRedirect() {
		if d.inReserve(fd, svc.ID) {
			d.refuseSession(r, svc, remote, local, dec.Lease)
			closeRaw(fd)
			return
		}
		d.redirect(r, svc, remote, local, via, dec.Lease, func(o spawn.ProxyOptions, done func(int64, int64, error)) {
			o.Nonblocking, o.Relay = nonblock, rl
			spawn.ProxyFDAsync(r.sessions(), fd, svc.Redirect.Host, svc.Redirect.Port, o, done)
		})
		return
	}
	if svc.IsInternal() {
		d.record(logging.Record{Event: logging.EventStart, Service: svc, Remote: remote, Local: local, Proxy: via})
		r.cnt.served.Add(1)
		var buf [64]byte
		var out []byte
		now := time.Now()
		if d.benv.Now != nil {
			now = d.benv.Now()
		}
		if svc.Builtin == "daytime" {
			out = builtins.AppendDaytime(buf[:0], now)
		} else {
			out = builtins.AppendTime(buf[:0], now)
		}
		// A fresh connection's send buffer holds these few bytes: the
		// write cannot block.
		writeRaw(fd, out)
		closeRaw(fd)
		releaseLease(dec.Lease)
		return
	}
	r.cnt.inflight.Add(1)
	f := os.NewFile(uintptr(fd), "conn")
	d.spawnServer(r, svc, f, true, spawn.Conn{Remote: remote, Local: local, RemoteKnown: true, Proxy: via}, dec.Lease, nil, 0)
	r.cnt.inflight.Add(-1)
}
