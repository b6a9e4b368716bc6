package spawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ProxyOptions tune Proxy. The zero value is xinetd's redirect with a
// 10 s connect timeout added.
type ProxyOptions struct {
	ConnectTimeout time.Duration // 0 = DefaultConnectTimeout
	IdleTimeout    time.Duration // 0 = none: a session may sit idle for ever, as in xinetd
	// KeepAlive sets SO_KEEPALIVE, with the system's timers, on the
	// upstream connection.
	KeepAlive bool
	// NoDelay sets TCP_NODELAY on both connections, as xinetd's redirect
	// always does.
	NoDelay bool
	// Source is the local address of the outgoing connection
	// (redirect_source); the zero Addr lets the kernel choose. Upstream
	// addresses of the other family are skipped.
	Source netip.Addr
	// Preamble is written to the upstream before any of the client's
	// bytes, as soon as the connection is made: the daemon's PROXY
	// protocol header (redirect_proxy_protocol). The session's counts do
	// not include it.
	Preamble []byte
	// LookupHost resolves a non-numeric host; nil means
	// net.DefaultResolver. It is called for every connection, so a name
	// that moves is followed without a reload.
	LookupHost func(ctx context.Context, host string) ([]netip.Addr, error)
	// Control, when set, is called with each upstream socket's
	// descriptor before it connects; an error refuses that socket and
	// ends the session with the error (the daemon keeps a reserve of
	// descriptors this way).
	Control func(fd int) error
	// Nonblocking says that the descriptor given to ProxyFD or
	// ProxyFDAsync is non-blocking already (accepted with
	// SOCK_NONBLOCK), which spares two fcntl calls per connection.
	Nonblocking bool
	// Relay, when set, is the relay listener whose Ready the caller is
	// serving: the session goes into that listener's set, whose goroutine
	// is the caller, so that it wakes no other thread. Any other caller
	// leaves it nil (a session may be started in any set from anywhere;
	// naming another goroutine's set only costs a wake-up of it).
	Relay *RelayListener
}

// DefaultConnectTimeout bounds the upstream connect when
// ProxyOptions.ConnectTimeout is zero. xinetd has none beyond the
// kernel's SYN retries (about two minutes).
const DefaultConnectTimeout = 10 * time.Second

// ErrIdleTimeout ends a session in which no byte moved in either
// direction for ProxyOptions.IdleTimeout.
var ErrIdleTimeout = errors.New("spawn: redirect: idle timeout")

// ErrConnect is in the chain of every error of a session whose upstream
// could not be connected (refused, unreachable, timed out): the backend's
// trouble, which the operator must see, where a timeout of the client is
// not.
var ErrConnect = errors.New("connect")

// Proxy connects to host:port and relays bytes between client and that
// upstream until both directions are finished, then closes both
// connections (client included, whatever happens). A direction finishes
// at EOF, which is passed on as a half-close while the other direction
// keeps running, so a client that shuts down its sending side still
// receives the whole answer. Any read or write error, the idle timeout or
// ctx ends both directions at once.
//
// in counts bytes read from the client and out bytes read from the
// upstream (xinetd's TRAFFIC record). Both connections are driven through
// their descriptors by the relay (relay.go), with no goroutine of their
// own while the session runs: a short session costs the system calls
// xinetd's redirect makes and no more, and once a direction has moved
// spliceAfter bytes the kernel moves the rest with splice(2), never
// through user space. A client without a descriptor (net.Pipe) is copied
// in user space by two goroutines.
func Proxy(ctx context.Context, client net.Conn, host string, port int, o ProxyOptions) (in, out int64, err error) {
	ch := make(chan relayResult, 1)
	ProxyAsync(ctx, client, host, port, o, func(in, out int64, err error) { ch <- relayResult{in, out, err} })
	r := <-ch
	return r.in, r.out, r.err
}

type relayResult struct {
	in, out int64
	err     error
}

// ProxyAsync is Proxy returning as soon as the upstream connection is
// made (or has failed): done is called with Proxy's results when the
// session ends, on a goroutine that must not be held up (done may be
// called before ProxyAsync returns, when the connection fails).
func ProxyAsync(ctx context.Context, client net.Conn, host string, port int, o ProxyOptions, done func(in, out int64, err error)) {
	// A deadline left over from the daemon's own writes (a banner) would
	// cut the session short; the idle timeout is the only bound here.
	_ = client.SetDeadline(time.Time{})
	fd := -1
	if sc, ok := client.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(f uintptr) { fd = int(f) })
		}
	}
	if fd < 0 {
		go func() {
			in, out, err := proxy(ctx, &endpoint{rw: client}, host, port, o)
			client.Close()
			done(in, out, err)
		}()
		return
	}
	startRelay(ctx, fd, func() { client.Close() }, host, port, o, done)
}

// ProxyFD is Proxy for a connected stream socket the caller hands over
// as a bare descriptor (the daemon's raw accept path): ProxyFD owns fd
// and closes it.
func ProxyFD(ctx context.Context, fd int, host string, port int, o ProxyOptions) (in, out int64, err error) {
	ch := make(chan relayResult, 1)
	ProxyFDAsync(ctx, fd, host, port, o, func(in, out int64, err error) { ch <- relayResult{in, out, err} })
	r := <-ch
	return r.in, r.out, r.err
}

// ProxyFDAsync is ProxyFD returning as soon as the upstream connection is
// made (or has failed), as ProxyAsync.
func ProxyFDAsync(ctx context.Context, fd int, host string, port int, o ProxyOptions, done func(in, out int64, err error)) {
	if o.Nonblocking {
		startRelay(ctx, fd, func() { unix.Close(fd) }, host, port, o, done)
		return
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		done(0, 0, fmt.Errorf("spawn: redirect: client: %w", os.NewSyscallError("fcntl", err)))
		return
	}
	startRelay(ctx, fd, func() { unix.Close(fd) }, host, port, o, done)
}

// startRelay connects the upstream, sends the preamble and hands both
// sockets to the relay. cfd is the client's non-blocking descriptor,
// closed by closeClient.
//
// An upstream that is one address (a numeric redirect host, the usual
// case) is connected by the relay itself: the connect is started here
// and the session goes into the relay at once, its preamble queued as
// the first bytes for the upstream; the relay sees the connection
// complete (or fail, or time out) like any other readiness. A host name
// is resolved and its addresses tried one after the other here, as
// before, and the connected socket then handed over.
func startRelay(ctx context.Context, cfd int, closeClient func(), host string, port int, o ProxyOptions,
	done func(in, out int64, err error)) {
	if o.NoDelay {
		_ = unix.SetsockoptInt(cfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	l, lerr := relaySet(o.Relay)
	if a, ok := directAddr(host, port, o.Source); ok && lerr == nil {
		timeout := o.ConnectTimeout
		if timeout <= 0 {
			timeout = DefaultConnectTimeout
		}
		deadline := time.Now().Add(timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		target := net.JoinHostPort(host, strconv.Itoa(port))
		ufd, inProgress, err := connectStart(a, port, o)
		if err != nil {
			closeClient()
			done(0, 0, fmt.Errorf("spawn: redirect: %w %s: %w", ErrConnect, target, err))
			return
		}
		s := newRelaySession(cfd, ufd, o, func() { closeClient(); unix.Close(ufd) }, done)
		s.target, s.connDeadline = target, deadline
		// A connect in progress has often completed by now (a nearby
		// backend); the first write to the upstream tells (relay.go).
		s.connecting = inProgress
		if len(o.Preamble) > 0 {
			s.dirs[0].pending = append([]byte(nil), o.Preamble...)
			s.dirs[0].preamble = len(o.Preamble)
		}
		s.start(ctx, l)
		return
	}
	up, err := dialUpstream(ctx, host, port, o)
	if err != nil {
		closeClient()
		done(0, 0, err)
		return
	}
	upstream := &endpoint{rw: up}
	upstream.rc, _ = up.SyscallConn()
	if len(o.Preamble) > 0 {
		// A fresh connection's send buffer takes a header whole; writeAll
		// still waits in the poller if it ever does not.
		if err := upstream.writeAll(o.Preamble); err != nil {
			up.Close()
			closeClient()
			done(0, 0, fmt.Errorf("spawn: redirect: sending the PROXY header: %w", err))
			return
		}
	}
	if lerr != nil {
		// No epoll set to be had: copy with goroutines.
		go func() {
			cf := os.NewFile(uintptr(cfd), "client")
			crc, _ := cf.SyscallConn()
			in, out, err := session2(ctx, &endpoint{rw: cf, rc: crc}, upstream, o)
			up.Close()
			cf.Close()
			done(in, out, err)
		}()
		return
	}
	ufd := -1
	upstream.rc.Control(func(f uintptr) { ufd = int(f) })
	s := newRelaySession(cfd, ufd, o, func() { closeClient(); up.Close() }, done)
	s.start(ctx, l)
}

// RelaysDirect reports whether a redirect to host:port from source is
// connected by the relay itself, with no call that may block: a numeric
// host of source's family (startRelay).
func RelaysDirect(host string, port int, source netip.Addr) bool {
	_, ok := directAddr(host, port, source)
	return ok
}

// directAddr is the one address a redirect to host:port from source
// connects to without a look-up, if it has one: a numeric host of
// source's family and a valid port.
func directAddr(host string, port int, source netip.Addr) (netip.Addr, bool) {
	a, err := netip.ParseAddr(host)
	ok := err == nil && port > 0 && port <= 65535 && (!source.IsValid() || a.Unmap().Is4() == source.Unmap().Is4())
	return a, ok
}

// connectStart opens a non-blocking socket to addr:port with the
// options' socket settings and starts connecting it.
func connectStart(addr netip.Addr, port int, o ProxyOptions) (fd int, inProgress bool, err error) {
	addr = addr.Unmap()
	family := unix.AF_INET6
	if addr.Is4() {
		family = unix.AF_INET
	}
	fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, false, os.NewSyscallError("socket", err)
	}
	if o.NoDelay {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	if o.KeepAlive {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	}
	if o.Control != nil {
		if err := o.Control(fd); err != nil {
			unix.Close(fd)
			return -1, false, err
		}
	}
	if o.Source.IsValid() {
		if err := unix.Bind(fd, sockaddr(o.Source.Unmap(), 0)); err != nil {
			unix.Close(fd)
			return -1, false, os.NewSyscallError("bind", err)
		}
	}
	err = unix.Connect(fd, sockaddr(addr, port))
	switch err {
	case nil:
		return fd, false, nil
	case unix.EINPROGRESS, unix.EINTR:
		return fd, true, nil
	}
	unix.Close(fd)
	return -1, false, os.NewSyscallError("connect", err)
}

func proxy(ctx context.Context, client *endpoint, host string, port int, o ProxyOptions) (in, out int64, err error) {
	if o.NoDelay {
		client.setNoDelay()
	}
	up, err := dialUpstream(ctx, host, port, o)
	if err != nil {
		return 0, 0, err
	}
	defer up.Close()
	upstream := &endpoint{rw: up}
	upstream.rc, _ = up.SyscallConn()
	if len(o.Preamble) > 0 {
		if err := upstream.writeAll(o.Preamble); err != nil {
			return 0, 0, fmt.Errorf("spawn: redirect: sending the PROXY header: %w", err)
		}
	}
	return session2(ctx, client, upstream, o)
}

// session2 copies between two endpoints with a goroutine per direction:
// the way for a client without a descriptor.
func session2(ctx context.Context, client, upstream *endpoint, o ProxyOptions) (in, out int64, err error) {
	s := &session{client: client, upstream: upstream}
	s.act.touch()
	stop := context.AfterFunc(ctx, func() { s.abort(ctx.Err()) })
	defer stop()
	s.wg.Add(2)
	go s.pump(client, upstream, &in)
	if o.IdleTimeout <= 0 {
		// Nothing to watch: copy the other direction here. One goroutine
		// fewer per connection is much of what a short session costs.
		s.pump(upstream, client, &out)
		s.wg.Wait()
	} else {
		go s.pump(upstream, client, &out)
		s.watchIdle(o.IdleTimeout)
	}
	if err := s.firstErr(); err != nil {
		if errors.Is(err, ErrIdleTimeout) {
			return in, out, err
		}
		return in, out, fmt.Errorf("spawn: redirect: %w", err)
	}
	return in, out, nil
}

// session is one proxied connection pair.
type session struct {
	client, upstream *endpoint
	wg               sync.WaitGroup
	act              activity

	abortMu sync.Mutex
	aborted error
}

// abort ends both directions by closing both connections; the first
// reason wins and is what Proxy reports.
func (s *session) abort(why error) {
	s.abortMu.Lock()
	if s.aborted == nil {
		s.aborted = why
	}
	s.abortMu.Unlock()
	s.client.close()
	s.upstream.close()
}

func (s *session) firstErr() error {
	s.abortMu.Lock()
	defer s.abortMu.Unlock()
	return s.aborted
}

// watchIdle waits for both directions, ending the session when no byte
// has moved for idle. A ticker rather than per-read deadlines: it costs
// nothing per byte.
func (s *session) watchIdle(idle time.Duration) {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTicker(min(max(idle/4, 10*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if s.act.idle() >= idle {
				s.abort(ErrIdleTimeout)
				<-done
				return
			}
		}
	}
}

// pump copies src to dst until src's EOF, then half-closes dst.
func (s *session) pump(src, dst *endpoint, n *int64) {
	defer s.wg.Done()
	err := s.copy(src, dst, n)
	if err == nil {
		err = dst.closeWrite()
	}
	if err != nil {
		s.abort(err)
	}
}

// spliceAfter is how many bytes a direction moves through user space
// before it switches to splice: a pipe costs three system calls to make
// and close, more than a short request and answer need.
const spliceAfter = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (s *session) copy(src, dst *endpoint, n *int64) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	canSplice := src.rc != nil && dst.rc != nil
	for {
		m, err := src.read(buf)
		if m > 0 {
			*n += int64(m)
			s.act.touch()
			if werr := dst.writeAll(buf[:m]); werr != nil {
				return werr
			}
			if canSplice && *n >= spliceAfter {
				if done, serr := s.splice(src, dst, n); done {
					return serr
				}
				canSplice = false // no pipe to be had: go on copying
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// splice moves the rest of src to dst through a pipe. done is false when
// no pipe could be made and nothing was moved.
func (s *session) splice(src, dst *endpoint, n *int64) (done bool, err error) {
	var p [2]int
	if unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK) != nil {
		return false, nil
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	size := 64 << 10
	if sz, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, 1<<20); err == nil {
		size = sz
	}
	const flags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK
	for {
		// The pipe is empty here, so EAGAIN can only mean "no data yet".
		m, err := src.do(false, func(fd int) (int, error) {
			n, err := unix.Splice(fd, nil, p[1], nil, size, flags)
			return int(n), err
		})
		if err != nil {
			return true, err
		}
		if m == 0 {
			return true, nil // EOF
		}
		*n += int64(m)
		s.act.touch()
		for m > 0 {
			k, err := dst.do(true, func(fd int) (int, error) {
				n, err := unix.Splice(p[0], nil, fd, nil, m, flags)
				return int(n), err
			})
			if err != nil {
				return true, err
			}
			m -= k
		}
	}
}

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

// endpoint is one side of a session: a descriptor in the runtime's
// poller, or (rc nil) a connection that has none.
type endpoint struct {
	rc syscall.RawConn
	rw io.ReadWriteCloser
}

func (e *endpoint) close() { e.rw.Close() }

// do runs op on the descriptor, waiting in the runtime's poller (to read,
// or to write with write set) for as long as op says EAGAIN.
func (e *endpoint) do(write bool, op func(fd int) (int, error)) (int, error) {
	var n int
	var serr error
	f := func(fd uintptr) bool {
		n, serr = retryEINTR(func() (int, error) { return op(int(fd)) })
		return serr != unix.EAGAIN
	}
	var err error
	if write {
		err = e.rc.Write(f)
	} else {
		err = e.rc.Read(f)
	}
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return n, nil
}

// read returns io.EOF at the end of the stream.
func (e *endpoint) read(p []byte) (int, error) {
	if e.rc == nil {
		return e.rw.Read(p)
	}
	n, err := e.do(false, func(fd int) (int, error) { return unix.Read(fd, p) })
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

func (e *endpoint) writeAll(p []byte) error {
	if e.rc == nil {
		_, err := e.rw.Write(p)
		return err
	}
	for len(p) > 0 {
		n, err := e.do(true, func(fd int) (int, error) { return unix.Write(fd, p) })
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// closeWrite passes EOF on. A peer that has gone already (ENOTCONN)
// needs no telling.
func (e *endpoint) closeWrite() error {
	if e.rc == nil {
		if cw, ok := e.rw.(interface{ CloseWrite() error }); ok {
			if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
				return err
			}
		}
		return nil
	}
	var serr error
	if err := e.rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_WR) }); err != nil {
		return err
	}
	if serr != nil && serr != unix.ENOTCONN {
		return os.NewSyscallError("shutdown", serr)
	}
	return nil
}

func (e *endpoint) setNoDelay() {
	if e.rc == nil {
		return
	}
	_ = e.rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	})
}

// dialUpstream resolves host (again for every call) and connects to the
// first address that answers within the connect timeout.
func dialUpstream(ctx context.Context, host string, port int, o ProxyOptions) (*os.File, error) {
	target := net.JoinHostPort(host, strconv.Itoa(port))
	fail := func(err error) error {
		return fmt.Errorf("spawn: redirect: %w %s: %w", ErrConnect, target, err)
	}
	if port <= 0 || port > 65535 {
		return nil, fail(errors.New("invalid port"))
	}
	timeout := o.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}

	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		lookup := o.LookupHost
		if lookup == nil {
			lookup = func(ctx context.Context, h string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", h)
			}
		}
		lctx, cancel := context.WithDeadline(ctx, deadline)
		addrs, err = lookup(lctx, host)
		cancel()
		if err != nil {
			return nil, fail(err)
		}
	}
	if o.Source.IsValid() {
		src := o.Source.Unmap()
		kept := addrs[:0:0]
		for _, a := range addrs {
			if a.Unmap().Is4() == src.Is4() {
				kept = append(kept, a)
			}
		}
		if len(kept) == 0 {
			return nil, fail(fmt.Errorf("no address of the same family as source %s", src))
		}
		addrs = kept
	}
	if len(addrs) == 0 {
		return nil, fail(errors.New("no addresses"))
	}
	var last error
	for _, a := range addrs {
		f, err := connect(ctx, a, port, o, deadline)
		if err == nil {
			return f, nil
		}
		last = err
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			break
		}
	}
	return nil, fail(last)
}

// connect makes one non-blocking connection, waiting for it in the
// runtime's poller until deadline or ctx ends.
func connect(ctx context.Context, addr netip.Addr, port int, o ProxyOptions, deadline time.Time) (*os.File, error) {
	fd, inProgress, err := connectStart(addr, port, o)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "upstream")
	if !inProgress {
		return f, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	_ = f.SetWriteDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	// Writable means the handshake has ended, one way or the other. Each
	// call looks at the socket itself: a readiness that came before the
	// wait began is not remembered by it.
	var soErr error
	err = rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case err != nil:
			soErr = err
		case v != 0 && v != int(unix.EINPROGRESS) && v != int(unix.EALREADY) && v != int(unix.EINTR):
			soErr = unix.Errno(v)
		default:
			if _, err := unix.Getpeername(int(fd)); err != nil {
				return false // still connecting
			}
		}
		return true
	})
	stop()
	if err == nil && soErr != nil {
		err = os.NewSyscallError("connect", soErr)
	}
	if err != nil {
		f.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_ = f.SetWriteDeadline(time.Time{})
	return f, nil
}

func sockaddr(a netip.Addr, port int) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: port}
	}
	sa := &unix.SockaddrInet6{Addr: a.As16(), Port: port}
	if z := a.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa
}

// activity is the last time a byte moved, for the idle timeout.
type activity struct{ last atomic.Int64 }

func (a *activity) touch()              { a.last.Store(time.Now().UnixNano()) }
func (a *activity) idle() time.Duration { return time.Since(time.Unix(0, a.last.Load())) }
