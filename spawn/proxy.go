package spawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ProxyOptions tune Proxy. The zero value is xinetd's redirect with a
// 10 s connect timeout added.
type ProxyOptions struct {
	ConnectTimeout time.Duration // 0 = DefaultConnectTimeout
	IdleTimeout    time.Duration // 0 = none: a session may sit idle for ever, as in xinetd
	KeepAlive      bool          // SO_KEEPALIVE on the upstream connection (Go's default keep-alive is switched off otherwise)
	// NoDelay sets TCP_NODELAY on both connections. Go already enables
	// it on every TCP connection and xinetd's redirect always sets it,
	// so false leaves the connections as Go made them (no delay).
	NoDelay bool
	// Source is the local address of the outgoing connection
	// (redirect_source); the zero Addr lets the kernel choose. Upstream
	// addresses of the other family are skipped.
	Source netip.Addr
	// LookupHost resolves a non-numeric host; nil means
	// net.DefaultResolver. It is called for every connection, so a name
	// that moves is followed without a reload.
	LookupHost func(ctx context.Context, host string) ([]netip.Addr, error)
}

// DefaultConnectTimeout bounds the upstream connect when
// ProxyOptions.ConnectTimeout is zero. xinetd has none beyond the
// kernel's SYN retries (about two minutes).
const DefaultConnectTimeout = 10 * time.Second

// ErrIdleTimeout ends a session in which no byte moved in either
// direction for ProxyOptions.IdleTimeout.
var ErrIdleTimeout = errors.New("spawn: redirect: idle timeout")

// Proxy connects to host:port and relays bytes between client and that
// upstream until both directions are finished, then closes both
// connections (client included, whatever happens). A direction finishes
// at EOF, which is passed on as a half-close (CloseWrite) while the other
// direction keeps running, so a client that shuts down its sending side
// still receives the whole answer. Any read or write error, the idle
// timeout or ctx ends both directions at once.
//
// in counts bytes read from the client and out bytes read from the
// upstream (xinetd's TRAFFIC record). Between two *net.TCPConn the kernel
// moves the data with splice(2), never through user space, so pass the
// accepted *net.TCPConn itself, not a wrapper around it.
func Proxy(ctx context.Context, client net.Conn, host string, port int, o ProxyOptions) (in, out int64, err error) {
	defer client.Close()
	// A deadline left over from the daemon's own writes (a banner) would
	// cut the session short; the idle timeout is the only bound here.
	_ = client.SetDeadline(time.Time{})
	upstream, err := dialUpstream(ctx, host, port, o)
	if err != nil {
		return 0, 0, err
	}
	defer upstream.Close()
	if o.NoDelay {
		setNoDelay(client)
		setNoDelay(upstream)
	}

	var (
		wg       sync.WaitGroup
		abortMu  sync.Mutex
		aborted  error
		counters activity
	)
	// abort ends both directions by closing both connections; the first
	// reason wins and is what Proxy reports.
	abort := func(why error) {
		abortMu.Lock()
		if aborted == nil {
			aborted = why
		}
		abortMu.Unlock()
		client.Close()
		upstream.Close()
	}
	firstErr := func() error {
		abortMu.Lock()
		defer abortMu.Unlock()
		return aborted
	}

	c2u, u2c := client, net.Conn(upstream)
	var idle func() time.Duration
	if o.IdleTimeout > 0 {
		if f := tcpIdle(client, upstream); f != nil {
			idle = f
		} else {
			// Not both TCP: no splice to preserve, so count activity in
			// user space.
			counters.touch()
			c2u = &activityConn{Conn: client, a: &counters}
			u2c = &activityConn{Conn: upstream, a: &counters}
			idle = counters.idle
		}
	}

	pipe := func(dst, src net.Conn, n *int64) {
		defer wg.Done()
		c, err := io.Copy(dst, src)
		*n = c
		if err != nil {
			abort(err)
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
				abort(err)
			}
		}
	}
	if idle == nil {
		// Without an idle timer nothing needs watching: copy one direction
		// here and let cancellation close both sides. Two goroutines fewer
		// per connection is most of what a short session costs.
		stop := context.AfterFunc(ctx, func() { abort(ctx.Err()) })
		wg.Add(2)
		go pipe(upstream, c2u, &in)
		pipe(client, u2c, &out)
		wg.Wait()
		stop()
		if err := firstErr(); err != nil {
			return in, out, fmt.Errorf("spawn: redirect: %w", err)
		}
		return in, out, nil
	}
	wg.Add(2)
	go pipe(upstream, c2u, &in)
	go pipe(client, u2c, &out)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var tick <-chan time.Time
	if idle != nil {
		// A ticker rather than per-read deadlines: it leaves io.Copy free
		// to splice, and costs nothing per byte.
		period := min(max(o.IdleTimeout/4, 10*time.Millisecond), time.Second)
		t := time.NewTicker(period)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-done:
			if err := firstErr(); err != nil {
				return in, out, fmt.Errorf("spawn: redirect: %w", err)
			}
			return in, out, nil
		case <-ctx.Done():
			abort(ctx.Err())
			<-done
			return in, out, fmt.Errorf("spawn: redirect: %w", ctx.Err())
		case <-tick:
			if idle() >= o.IdleTimeout {
				abort(ErrIdleTimeout)
				<-done
				return in, out, ErrIdleTimeout
			}
		}
	}
}

func setNoDelay(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
}

// dialUpstream resolves host (again for every call) and connects to the
// first address that answers within the connect timeout.
func dialUpstream(ctx context.Context, host string, port int, o ProxyOptions) (*net.TCPConn, error) {
	target := net.JoinHostPort(host, strconv.Itoa(port))
	fail := func(err error) error {
		return fmt.Errorf("spawn: redirect: connect %s: %w", target, err)
	}
	if port <= 0 || port > 65535 {
		return nil, fail(errors.New("invalid port"))
	}
	timeout := o.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

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
		addrs, err = lookup(ctx, host)
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

	d := net.Dialer{KeepAlive: -1}
	if o.KeepAlive {
		d.KeepAlive = 0 // Go's default: on, 15 s probes
	}
	if o.Source.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: o.Source.Unmap().AsSlice()}
	}
	var last error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a.Unmap(), uint16(port)).String())
		if err == nil {
			return c.(*net.TCPConn), nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	var oe *net.OpError
	if errors.As(last, &oe) && oe.Err != nil {
		// The OpError repeats "dial tcp ADDR"; the message already names
		// the target.
		last = oe.Err
	}
	return nil, fail(last)
}

// activity is the last time a byte moved, for connections the kernel
// cannot tell us about.
type activity struct{ last atomic.Int64 }

func (a *activity) touch()              { a.last.Store(time.Now().UnixNano()) }
func (a *activity) idle() time.Duration { return time.Since(time.Unix(0, a.last.Load())) }

type activityConn struct {
	net.Conn
	a *activity
}

func (c *activityConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.a.touch()
	}
	return n, err
}
