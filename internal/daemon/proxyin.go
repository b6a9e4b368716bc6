package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/access"
	"github.com/gxinetd/gxinetd/internal/proxyproto"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
)

// PROXY protocol, receiving side (proxy_protocol). A service with it
// takes a header off every connection before anything else happens: the
// connection's own peer must be in proxy_from (checked first, so a client
// that bypasses the balancer is refused at once, not after the timeout),
// then the header must arrive whole within proxy_timeout. The header is
// read by whoever serves the connection (a worker or the connection's
// goroutine), never by the acceptor: the raw path first tries once
// without waiting (the balancer sends the header with the connection, so
// it is nearly always there), and only a header still on its way sends
// the connection to the net.Conn path, which waits in the runtime's
// poller, bounded by the deadline. A builtin that reads everything the
// client sends (readsWhole) takes the header with one read of what has
// arrived; a server's connection is peeked at and exactly the header
// read, so the server gets every byte after it. After a header that names a client,
// that client and the address it connected to are the connection's
// remote and local ends everywhere; the balancer's address is kept for
// the records only.

// proxyConn is a connection that came through a balancer: RemoteAddr and
// LocalAddr are the ends its header named, so code that asks the
// connection who it is from (tcpmux's services, the auth builtin) sees
// the client. The rest is the accepted connection's.
type proxyConn struct {
	net.Conn
	remote, local netip.AddrPort
	via           netip.AddrPort
	// pending are the client's first bytes, read together with the
	// header (proxyproto.TakeBuffered, builtins only): Read returns
	// them before anything from the socket.
	pending []byte
}

// proxyConnBuf is a proxyConn and the buffer its header is read into,
// allocated together: one allocation per connection on the net.Conn
// path, where the buffer, the wrapper and the reading state were five.
type proxyConnBuf struct {
	pc       proxyConn
	buf      [proxyproto.MaxLen]byte
	n        int
	versions proxyproto.Versions
	buffered bool
	h        proxyproto.Header
	err      error
}

// take is the first, non-waiting attempt at the header, run inside
// rc.Control.
func (b *proxyConnBuf) take(fd uintptr) {
	if b.buffered {
		b.h, b.err = proxyproto.TakeBuffered(int(fd), &b.buf, &b.n, b.versions)
	} else {
		b.h, b.err = proxyproto.Take(int(fd), &b.buf, b.versions)
	}
}

func (c *proxyConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *proxyConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }
func (c *proxyConn) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(c.local) }

// File, SyscallConn, CloseRead and CloseWrite are the accepted
// connection's: servers, the redirect proxy and the builtins use them.
func (c *proxyConn) File() (*os.File, error) { return connFile(c.Conn) }

func (c *proxyConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("connection has no descriptor")
}

func (c *proxyConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return nil
}

func (c *proxyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// proxyOf returns the balancer a connection came through, or the zero
// value.
func proxyOf(c net.Conn) netip.AddrPort {
	if pc, ok := c.(*proxyConn); ok {
		return pc.via
	}
	return netip.AddrPort{}
}

// proxied wraps c when the header named a client (via valid).
func proxied(c net.Conn, remote, local, via netip.AddrPort) net.Conn {
	if !via.IsValid() {
		return c
	}
	return &proxyConn{Conn: c, remote: remote, local: local, via: via}
}

func proxyTimeout(svc *service.Service) time.Duration {
	if svc.ProxyTimeout > 0 {
		return secs(svc.ProxyTimeout)
	}
	return secs(service.DefaultProxyTimeout)
}

// takeHeader applies a header: the client and the address it connected
// to replace the connection's ends when the header names them; a LOCAL
// or UNKNOWN header (the balancer's own health check) keeps them.
func takeHeader(h proxyproto.Header, remote, local netip.AddrPort) (r, l, via netip.AddrPort) {
	if !h.Src.IsValid() {
		return remote, local, netip.AddrPort{}
	}
	return h.Src, h.Dst, remote
}

// proxyIn reads the header of a connection on the net.Conn path. It
// returns the connection to serve (wrapped when the header named a
// client, or when the client's first bytes were read with it) and its
// ends, or ok false when the connection was refused and closed.
// b, when not nil, holds the beginning of the header, already read on
// the raw path; the proxy_from check was made there.
func (r *svcRun) proxyIn(c net.Conn, svc *service.Service, remote, local netip.AddrPort, b *proxyConnBuf) (net.Conn, netip.AddrPort, netip.AddrPort, bool) {
	d := r.d
	if b == nil && !d.eng.ProxyTrusted(d.ctx, svc, remote, time.Now()) {
		d.proxyRefused(svc, remote, local, access.ReasonProxyUntrusted, nil)
		c.Close()
		return nil, remote, local, false
	}
	sc, ok := c.(syscall.Conn)
	var rc syscall.RawConn
	var err error
	if ok {
		rc, err = sc.SyscallConn()
	}
	if !ok || err != nil {
		d.proxyRefused(svc, remote, local, access.ReasonProxyMalformed, errors.New("connection has no descriptor"))
		c.Close()
		return nil, remote, local, false
	}
	if b == nil {
		b = &proxyConnBuf{buffered: readsWhole(svc)}
	}
	b.versions = proxyproto.Versions(svc.ProxyProtocol)
	// Nearly always the header is there already: take it without arming
	// a deadline (two timer operations per connection otherwise).
	rc.Control(b.take)
	if b.err == proxyproto.ErrIncomplete {
		wait := proxyTimeout(svc)
		var held bool
		rc.Control(func(fd uintptr) { held = heldSilent(int(fd)) })
		if held {
			// The kernel held it silent for the whole deferral of the
			// listener: what is left of proxy_timeout counts from now.
			wait -= secs(deferSecs(svc))
		}
		if wait <= 0 {
			b.err = errSilent
		} else {
			c.SetReadDeadline(time.Now().Add(wait))
			if b.buffered {
				b.h, b.err = proxyproto.ReadBuffered(rc, &b.buf, &b.n, b.versions)
			} else {
				b.h, b.err = proxyproto.Read(rc, &b.buf, b.versions)
			}
			c.SetReadDeadline(time.Time{})
		}
	}
	if err := b.err; err != nil {
		reason := access.ReasonProxyMalformed
		if errors.Is(err, os.ErrDeadlineExceeded) {
			reason = access.ReasonProxyTimeout
		}
		d.proxyRefused(svc, remote, local, reason, err)
		c.Close()
		return nil, remote, local, false
	}
	remote, local, via := takeHeader(b.h, remote, local)
	if b.buffered && b.n > b.h.Len {
		b.pc.pending = b.buf[b.h.Len:b.n]
	} else if !via.IsValid() {
		return c, remote, local, true
	}
	b.pc.Conn, b.pc.remote, b.pc.local, b.pc.via = c, remote, local, via
	return &b.pc, remote, local, true
}

// readsWhole reports whether the daemon itself reads everything the
// client sends on s's connections, through the connection's Read: the
// stream builtins but tcpmux, which hands the connection on to a
// server after its request line. Only then may the header be read
// together with what follows it (proxyproto.TakeBuffered): one system
// call instead of two, and the bytes read past the header are handed
// to the builtin first. For a server every byte after the header stays
// in the socket (proxyproto.Take).
func readsWhole(s *service.Service) bool {
	return s.IsInternal() && s.Builtin != "tcpmux"
}

// proxyInRaw reads the header of a connection on the raw path, without
// waiting. done reports that the connection has been dealt with
// (refused, or handed to the net.Conn path because its header is still
// on its way); otherwise remote, local and via are its ends from now on.
func (r *svcRun) proxyInRaw(fd int, svc *service.Service, remote, local netip.AddrPort, g *acceptGate, at time.Time) (r2, l2, via netip.AddrPort, done bool) {
	d := r.d
	if !d.eng.ProxyTrusted(d.ctx, svc, remote, time.Now()) {
		d.proxyRefused(svc, remote, local, access.ReasonProxyUntrusted, nil)
		closeRaw(fd)
		g.done()
		return remote, local, via, true
	}
	var buf [proxyproto.MaxLen]byte
	n := 0
	var h proxyproto.Header
	var err error
	if readsWhole(svc) {
		// daytime and time (the only builtins on this path) read
		// nothing from the client: the header may be read with
		// whatever follows it, in one system call, and the rest dropped.
		h, err = proxyproto.TakeBuffered(fd, &buf, &n, proxyproto.Versions(svc.ProxyProtocol))
	} else {
		h, err = proxyproto.Take(fd, &buf, proxyproto.Versions(svc.ProxyProtocol))
	}
	switch {
	case err == proxyproto.ErrIncomplete:
		// Still on its way: wait for it in the poller, on the net.Conn
		// path, with what has been read of it (proxy_from was checked).
		if c, err := fdConn(fd); err == nil {
			r.handleStreamWith(c, svc, g, at, &proxyConnBuf{buf: buf, n: n, buffered: readsWhole(svc)})
		} else {
			g.done()
		}
		return remote, local, via, true
	case err != nil:
		d.proxyRefused(svc, remote, local, access.ReasonProxyMalformed, err)
		closeRaw(fd)
		g.done()
		return remote, local, via, true
	}
	remote, local, via = takeHeader(h, remote, local)
	return remote, local, via, false
}

// proxyRefused records a connection refused for its PROXY header: a FAIL
// record naming the connection's own peer (no client is known), the
// refusal counted with the engine's, and for a malformed header the
// reason in the daemon log, which an operator needs to fix a balancer.
// Nothing is sent to the peer: it is not known to be a client at all.
func (d *Daemon) proxyRefused(svc *service.Service, remote, local netip.AddrPort, reason access.Reason, err error) {
	d.eng.CountRefusal(svc, reason)
	// Within the refusal budget, as every refusal's lines are.
	if !d.mayLogRefusal(remote.Addr()) {
		return
	}
	d.record(logging.Record{Event: logging.EventFail, Service: svc, Remote: remote, Local: local,
		Reason: reason.String(), ReasonCode: reason.Code()})
	if reason == access.ReasonProxyMalformed && err != nil {
		d.log.Logf(logging.LevelNotice, "proxy", "service %s: bad PROXY protocol header from %s: %v", svc.ID, remote.Addr(), err)
	}
}

// setDeferAccept gives the listening socket of a service that takes a
// PROXY header TCP_DEFER_ACCEPT, and takes it off one that no longer
// does. The kernel then hands over a connection only once its first
// bytes (the header: a balancer sends it at once) have arrived, or after
// the deferral (deferSecs, at most proxy_timeout) without any. Without it
// the header was often still on its way when the connection was accepted
// (the client writes it just after its connect returns): the raw path
// then moved the connection to the net.Conn path to wait for it in the
// poller, a tenth of the daemon's CPU on a spawned service under load. A
// peer that sends nothing at all is seen only when the deferral ends
// (refused then, if it is not a balancer), not at once; proxyIn counts
// the deferral as part of proxy_timeout (heldSilent).
func setDeferAccept(sk *sock, svc *service.Service) {
	if !sk.stream() || sk.key.family == unix.AF_UNIX {
		return
	}
	want := 0
	if svc.ProxyProtocol != 0 && !svc.Wait {
		want = deferSecs(svc)
	}
	if !sk.deferKnown {
		if v, err := unix.GetsockoptInt(sk.fd(), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT); err == nil {
			sk.deferAccept, sk.deferKnown = v, true
		}
	}
	if sk.deferKnown && sk.deferAccept == want {
		return
	}
	if unix.SetsockoptInt(sk.fd(), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, want) == nil {
		sk.deferAccept, sk.deferKnown = want, true
	}
}

// deferSecs is the TCP_DEFER_ACCEPT of the listeners of s: the longest
// the kernel can hold a silent connection within proxy_timeout. The
// kernel counts a deferral in retransmissions of its SYN-ACK (the first
// after 1 s, each wait then doubled up to 120 s) and holds a silent
// connection until the last of them is answered, so the spans it can keep
// are 1, 3, 7, 15... seconds; any other value is rounded up to the next
// (a proxy_timeout of 2 held a silent peer for 3 s, and then the daemon
// waited its own 2 s on top).
func deferSecs(s *service.Service) int {
	t := int(proxyTimeout(s) / time.Second)
	p, rto := 1, 1
	for {
		rto = min(rto*2, 120)
		if p+rto > t {
			return p
		}
		p += rto
	}
}

// errSilent is a connection that sent nothing while the kernel held it
// for the whole of proxy_timeout.
var errSilent = fmt.Errorf("no header within proxy_timeout: %w", os.ErrDeadlineExceeded)

// heldSilent reports whether the kernel handed the connection over
// because its deferral ended, not because bytes arrived: nothing
// received, and the SYN-ACK retransmitted (the deferral's end is the
// answer to a retransmitted SYN-ACK; a connection whose bytes arrive
// is handed over at once). Only asked when no header byte is there, so
// a connection whose header is there costs nothing more. A connection
// established by a SYN cookie (a SYN flood) has no retransmission to
// show and gets the whole of proxy_timeout.
func heldSilent(fd int) bool {
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	return err == nil && ti.Total_retrans > 0 && ti.Bytes_received == 0
}
