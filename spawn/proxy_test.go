package spawn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

// backend is a TCP server on a loopback address running handle for
// every connection.
type backend struct {
	ln   net.Listener
	port int
	wg   sync.WaitGroup
}

func newBackend(t testing.TB, addr string, handle func(c *net.TCPConn)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(60 * time.Second))
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return b
}

// echoHandler copies everything back and half-closes at EOF.
func echoHandler(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

type proxyResult struct {
	in, out int64
	err     error
}

// viaFD makes proxied hand the accepted connection to ProxyFD as a bare
// descriptor instead of to Proxy (TestProxyByDescriptor).
var viaFD bool

// proxied returns a client connection whose far end is being proxied to
// host:port with o, and a channel with Proxy's result.
func proxied(t testing.TB, ctx context.Context, host string, port int, o ProxyOptions) (*net.TCPConn, <-chan proxyResult) {
	t.Helper()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	res := make(chan proxyResult, 1)
	if viaListener {
		return proxiedOnThread(t, ctx, host, port, o, res)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := front.Accept()
		if err != nil {
			res <- proxyResult{err: err}
			close(accepted)
			return
		}
		accepted <- c
		if viaFD {
			// The daemon's raw path: a bare descriptor, no net.Conn.
			fd := -1
			rc, _ := c.(*net.TCPConn).SyscallConn()
			rc.Control(func(s uintptr) { fd, _ = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
			c.Close()
			in, out, err := ProxyFD(ctx, fd, host, port, o)
			res <- proxyResult{in, out, err}
			return
		}
		in, out, err := Proxy(ctx, c, host, port, o)
		res <- proxyResult{in, out, err}
	}()
	c, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	<-accepted
	c.SetDeadline(time.Now().Add(60 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn), res
}

// viaListener makes proxied accept the connection on a relay thread
// (RelayListener) and start the session there, as the daemon does for
// a redirect (TestProxyOnRelayThread).
var viaListener bool

// rawListener is a non-blocking listening socket on 127.0.0.1 (a port
// the kernel chose, held open), closed when the test ends.
func rawListener(t testing.TB) (fd, port int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1024); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, sa.(*unix.SockaddrInet4).Port
}

// relayAccept watches the listening socket lfd on every relay thread;
// each connection is accepted by the thread it wakes and handed to start
// there, with the listener to name in ProxyOptions.Relay. It reports in
// own whether every session went to the set of the thread that accepted
// it (found in another set's table right after start: its own set's
// goroutine, the caller, cannot have ended it meanwhile). Watching ends
// when the test does.
func relayAccept(t testing.TB, lfd int, start func(fd int, rl *RelayListener), own *atomic.Bool) {
	t.Helper()
	rls := RelayListeners(lfd)
	if len(rls) == 0 {
		t.Fatal("no relay listeners")
	}
	own.Store(true)
	for _, rl := range rls {
		rl.Ready = func() {
			for {
				nfd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
				if err != nil {
					return // EAGAIN: drained, or another thread took it
				}
				start(nfd, rl)
				for _, l := range relayLoops.loops {
					l.mu.Lock()
					if l != rl.l && l.byFD[int32(nfd)] != nil {
						own.Store(false)
					}
					l.mu.Unlock()
				}
			}
		}
		if err := rl.Watch(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, rl := range rls {
			rl.Unwatch()
		}
	})
}

func proxiedOnThread(t testing.TB, ctx context.Context, host string, port int, o ProxyOptions, res chan proxyResult) (*net.TCPConn, <-chan proxyResult) {
	t.Helper()
	lfd, lport := rawListener(t)
	var own atomic.Bool
	o.Nonblocking = true
	relayAccept(t, lfd, func(fd int, rl *RelayListener) {
		o := o
		o.Relay = rl
		ProxyFDAsync(ctx, fd, host, port, o, func(in, out int64, err error) { res <- proxyResult{in, out, err} })
	}, &own)
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(lport))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	t.Cleanup(func() {
		c.Close()
		if !own.Load() {
			t.Error("a session started on a relay thread went to another thread's set")
		}
	})
	return c.(*net.TCPConn), res
}

func waitResult(t testing.TB, res <-chan proxyResult) proxyResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("Proxy did not return")
	}
	return proxyResult{}
}

// TestProxyClientHalfClose is the case xinetd gets wrong: the client
// sends its request, shuts down its sending side, and must still get
// the whole answer.
func TestProxyClientHalfClose(t *testing.T) {
	be := newBackend(t, "127.0.0.1:0", func(c *net.TCPConn) {
		got, _ := io.ReadAll(c)
		// Answer only after the client's EOF, slowly, in pieces.
		for i := range 3 {
			fmt.Fprintf(c, "part %d of answer to %q\n", i, got)
			time.Sleep(20 * time.Millisecond)
		}
	})
	c, res := proxied(t, context.Background(), "127.0.0.1", be.port, ProxyOptions{})
	io.WriteString(c, "abc")
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	want := "part 0 of answer to \"abc\"\npart 1 of answer to \"abc\"\npart 2 of answer to \"abc\"\n"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	r := waitResult(t, res)
	if r.err != nil || r.in != 3 || r.out != int64(len(want)) {
		t.Errorf("Proxy = in %d out %d err %v; want in 3 out %d", r.in, r.out, r.err, len(want))
	}
}

// TestProxyUpstreamHalfClose: the upstream says all it has and
// half-closes; the client keeps sending, and everything still arrives.
func TestProxyUpstreamHalfClose(t *testing.T) {
	received := make(chan string, 1)
	be := newBackend(t, "127.0.0.1:0", func(c *net.TCPConn) {
		io.WriteString(c, "greeting\n")
		c.CloseWrite()
		got, _ := io.ReadAll(c)
		received <- string(got)
	})
	c, res := proxied(t, context.Background(), "127.0.0.1", be.port, ProxyOptions{})
	got, err := io.ReadAll(c) // EOF from the upstream's half-close
	if err != nil || string(got) != "greeting\n" {
		t.Fatalf("got %q %v", got, err)
	}
	for i := range 5 {
		fmt.Fprintf(c, "line %d after EOF\n", i)
	}
	c.CloseWrite()
	var want strings.Builder
	for i := range 5 {
		fmt.Fprintf(&want, "line %d after EOF\n", i)
	}
	select {
	case s := <-received:
		if s != want.String() {
			t.Errorf("upstream got %q", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("upstream got nothing")
	}
	r := waitResult(t, res)
	if r.err != nil || r.in != int64(want.Len()) || r.out != 9 {
		t.Errorf("Proxy = %+v", r)
	}
}

func TestProxy64MiB(t *testing.T) {
	be := newBackend(t, "127.0.0.1:0", echoHandler)
	c, res := proxied(t, context.Background(), "127.0.0.1", be.port, ProxyOptions{NoDelay: true, KeepAlive: true})
	const size = 64 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	sent := sha256.New()
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		for n := 0; n < size; n += len(buf) {
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			sent.Write(buf)
			if _, err := c.Write(buf); err != nil {
				werr <- err
				return
			}
		}
		werr <- c.CloseWrite()
	}()
	got := sha256.New()
	n, err := io.Copy(got, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if n != size || !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		t.Errorf("received %d bytes, hash %x; sent %d, hash %x", n, got.Sum(nil), size, sent.Sum(nil))
	}
	r := waitResult(t, res)
	if r.err != nil || r.in != size || r.out != size {
		t.Errorf("Proxy = %+v", r)
	}
}

// fullListener is a listener on 127.0.0.1 whose accept queue is full:
// the kernel drops further SYNs, so a connect to it hangs.
func fullListener(t testing.TB) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	// Fill the queue until a connect times out.
	for i := range 8 {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 300*time.Millisecond)
		if err != nil {
			return port
		}
		t.Cleanup(func() { c.Close() })
		if i == 7 {
			t.Skip("could not fill the accept queue of a loopback listener")
		}
	}
	return port
}

func TestProxyConnectTimeout(t *testing.T) {
	port := fullListener(t)
	_, res := proxied(t, context.Background(), "127.0.0.1", port, ProxyOptions{ConnectTimeout: 300 * time.Millisecond})
	r := waitResult(t, res)
	want := "spawn: redirect: connect 127.0.0.1:" + strconv.Itoa(port) + ": i/o timeout"
	if r.err == nil || r.err.Error() != want {
		t.Errorf("err %v, want %q", r.err, want)
	}
}

func TestProxyConnectRefused(t *testing.T) {
	// A port nobody listens on, and that the kernel hands no one meanwhile.
	port := testnet.Ports(t, 1)[0]
	c, res := proxied(t, context.Background(), "127.0.0.1", port, ProxyOptions{})
	r := waitResult(t, res)
	want := "spawn: redirect: connect 127.0.0.1:" + strconv.Itoa(port) + ": connect: connection refused"
	if r.err == nil || r.err.Error() != want || !errors.Is(r.err, syscall.ECONNREFUSED) {
		t.Errorf("err %v, want %q", r.err, want)
	}
	// The client is closed, as xinetd's child would close it.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("client read %d %v after failed connect", n, err)
	}
}

func TestProxyIdleTimeout(t *testing.T) {
	be := newBackend(t, "127.0.0.1:0", echoHandler)
	t.Run("idle", func(t *testing.T) {
		c, res := proxied(t, context.Background(), "127.0.0.1", be.port, ProxyOptions{IdleTimeout: 200 * time.Millisecond})
		r := waitResult(t, res)
		if !errors.Is(r.err, ErrIdleTimeout) {
			t.Errorf("err %v, want idle timeout", r.err)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("client still open")
		}
	})
	t.Run("trickle", func(t *testing.T) {
		// One byte every 400 ms for well over the idle timeout: the
		// session is busy and must survive (each pause leaves more than a
		// second of the timeout to spare). The bytes are spliced, so
		// this checks the TCP_INFO reading.
		c, res := proxied(t, context.Background(), "127.0.0.1", be.port, ProxyOptions{IdleTimeout: 1500 * time.Millisecond})
		buf := make([]byte, 1)
		for i := range 6 {
			if _, err := c.Write([]byte{byte('a' + i)}); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			if _, err := io.ReadFull(c, buf); err != nil || buf[0] != byte('a'+i) {
				t.Fatalf("echo %d: %q %v", i, buf, err)
			}
			time.Sleep(400 * time.Millisecond)
		}
		c.CloseWrite()
		io.Copy(io.Discard, c)
		r := waitResult(t, res)
		if r.err != nil || r.in != 6 || r.out != 6 {
			t.Errorf("Proxy = %+v", r)
		}
	})
	t.Run("not-tcp", func(t *testing.T) {
		// A client that is not a *net.TCPConn takes the user-space path.
		a, b := net.Pipe()
		defer a.Close()
		res := make(chan proxyResult, 1)
		go func() {
			in, out, err := Proxy(context.Background(), b, "127.0.0.1", be.port, ProxyOptions{IdleTimeout: 1500 * time.Millisecond})
			res <- proxyResult{in, out, err}
		}()
		a.SetDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 5)
		for i := range 5 {
			if _, err := a.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("echo %d: %q %v", i, buf, err)
			}
			time.Sleep(400 * time.Millisecond)
		}
		r := waitResult(t, res)
		if !errors.Is(r.err, ErrIdleTimeout) || r.in != 25 || r.out != 25 {
			t.Errorf("Proxy = %+v", r)
		}
	})
}

func TestProxySource(t *testing.T) {
	seen := make(chan string, 2)
	be := newBackend(t, "127.0.0.1:0", func(c *net.TCPConn) {
		seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
	})
	for _, tc := range []struct {
		src  netip.Addr
		want string
	}{
		{netip.MustParseAddr("127.0.0.2"), "127.0.0.2"},
		{netip.Addr{}, "127.0.0.1"},
	} {
		c, res := proxied(t, context.Background(), "127.0.0.1", be.port, ProxyOptions{Source: tc.src})
		c.CloseWrite()
		io.Copy(io.Discard, c)
		if r := waitResult(t, res); r.err != nil {
			t.Fatal(r.err)
		}
		if got := <-seen; got != tc.want {
			t.Errorf("source %v: backend saw %s, want %s", tc.src, got, tc.want)
		}
	}
	// A source of the wrong family leaves nothing to connect to.
	_, res := proxied(t, context.Background(), "127.0.0.1", be.port, ProxyOptions{Source: netip.MustParseAddr("::1")})
	if r := waitResult(t, res); r.err == nil || !strings.Contains(r.err.Error(), "same family as source ::1") {
		t.Errorf("err %v", r.err)
	}
}

func TestProxyReresolves(t *testing.T) {
	// Both backends share one port, so it comes from outside the
	// kernel's ephemeral range: a wildcard socket of another process may
	// hold any port in it on 127.0.0.3.
	port := testnet.Ports(t, 1)[0]
	one := newBackend(t, testnet.Addr("127.0.0.1", port), func(c *net.TCPConn) { io.WriteString(c, "one") })
	newBackend(t, testnet.Addr("127.0.0.3", port), func(c *net.TCPConn) { io.WriteString(c, "three") })
	var calls atomic.Int32
	lookup := func(ctx context.Context, host string) ([]netip.Addr, error) {
		if host != "backend.test" {
			return nil, fmt.Errorf("unexpected lookup of %q", host)
		}
		if calls.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.3")}, nil
	}
	for _, want := range []string{"one", "three", "three"} {
		c, res := proxied(t, context.Background(), "backend.test", one.port, ProxyOptions{LookupHost: lookup})
		c.CloseWrite()
		got, _ := io.ReadAll(c)
		if string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if r := waitResult(t, res); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d lookups for 3 connections", n)
	}
	failing := func(ctx context.Context, host string) ([]netip.Addr, error) {
		return nil, errors.New("no such host")
	}
	_, res := proxied(t, context.Background(), "gone.test", 7, ProxyOptions{LookupHost: failing})
	if r := waitResult(t, res); r.err == nil || r.err.Error() != "spawn: redirect: connect gone.test:7: no such host" {
		t.Errorf("err %v", r.err)
	}
}

func TestProxyContextCancel(t *testing.T) {
	be := newBackend(t, "127.0.0.1:0", echoHandler)
	ctx, cancel := context.WithCancel(context.Background())
	c, res := proxied(t, ctx, "127.0.0.1", be.port, ProxyOptions{})
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	r := waitResult(t, res)
	if !errors.Is(r.err, context.Canceled) || r.in != 4 || r.out != 4 {
		t.Errorf("Proxy = %+v", r)
	}
}

// TestProxyPreamble: the preamble (a PROXY header) reaches the backend
// first and at once, before the client has said anything (a backend
// that speaks first must get it before it answers), and is not counted.
func TestProxyPreamble(t *testing.T) {
	pre := []byte("PROXY TCP4 192.0.2.1 198.51.100.2 4000 25\r\n")
	got := make(chan string, 2)
	be := newBackend(t, "127.0.0.1:0", func(c *net.TCPConn) {
		hdr := make([]byte, len(pre))
		if _, err := io.ReadFull(c, hdr); err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(hdr)
		io.WriteString(c, "220 hello\n")
		rest, _ := io.ReadAll(c)
		got <- string(rest)
		c.CloseWrite()
	})
	c, res := proxied(t, context.Background(), "127.0.0.1", be.port, ProxyOptions{Preamble: pre})
	select {
	case h := <-got:
		if h != string(pre) {
			t.Fatalf("backend read %q first", h)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no preamble before the client spoke")
	}
	line := make([]byte, 10)
	if _, err := io.ReadFull(c, line); err != nil || string(line) != "220 hello\n" {
		t.Fatalf("greeting %q %v", line, err)
	}
	io.WriteString(c, "QUIT\n")
	c.CloseWrite()
	io.ReadAll(c)
	if rest := <-got; rest != "QUIT\n" {
		t.Fatalf("backend then read %q", rest)
	}
	r := waitResult(t, res)
	if r.err != nil || r.in != 5 || r.out != 10 {
		t.Errorf("Proxy = %+v, want in 5 out 10", r)
	}
}

// TestProxyControl: Control sees the upstream socket before it connects,
// and its error ends the session without a connection upstream.
func TestProxyControl(t *testing.T) {
	var accepted atomic.Int32
	be := newBackend(t, "127.0.0.1:0", func(c *net.TCPConn) { accepted.Add(1); echoHandler(c) })
	refuse := errors.New("over the reserve")
	var seen atomic.Int32
	c, res := proxied(t, context.Background(), "127.0.0.1", be.port, ProxyOptions{Control: func(fd int) error {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			t.Errorf("Control got descriptor %d: %v", fd, err)
		}
		seen.Add(1)
		return refuse
	}})
	r := waitResult(t, res)
	if !errors.Is(r.err, refuse) || seen.Load() != 1 {
		t.Errorf("Proxy = %+v after %d Control calls, want the Control error", r, seen.Load())
	}
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Errorf("client: %q, %v; want the connection closed", b, err)
	}
	if accepted.Load() != 0 {
		t.Error("the refused socket connected upstream")
	}
	// A Control that agrees changes nothing.
	c, res = proxied(t, context.Background(), "127.0.0.1", be.port, ProxyOptions{Control: func(int) error { return nil }})
	c.Write([]byte("ping"))
	c.CloseWrite()
	if b, _ := io.ReadAll(c); string(b) != "ping" {
		t.Errorf("with an agreeing Control: %q", b)
	}
	if r := waitResult(t, res); r.err != nil {
		t.Error(r.err)
	}
}

// TestProxyByDescriptor runs the session tests again through ProxyFD,
// the daemon's raw accept path.
func TestProxyByDescriptor(t *testing.T) {
	viaFD = true
	defer func() { viaFD = false }()
	for name, f := range map[string]func(*testing.T){
		"ClientHalfClose":   TestProxyClientHalfClose,
		"UpstreamHalfClose": TestProxyUpstreamHalfClose,
		"64MiB":             TestProxy64MiB,
		"ConnectTimeout":    TestProxyConnectTimeout,
		"ConnectRefused":    TestProxyConnectRefused,
		"IdleTimeout":       TestProxyIdleTimeout,
		"Source":            TestProxySource,
		"Reresolves":        TestProxyReresolves,
		"ContextCancel":     TestProxyContextCancel,
		"Preamble":          TestProxyPreamble,
		"Control":           TestProxyControl,
	} {
		t.Run(name, f)
	}
}

// TestProxyOnRelayThread runs the session tests again with the client
// accepted on a relay thread and its session started there, the
// daemon's path for a redirect to an address. (Not Reresolves and
// Source: a host name, or a source of the other family, is dialled by a
// call that may wait, which the daemon never makes on a relay thread.)
func TestProxyOnRelayThread(t *testing.T) {
	viaListener = true
	defer func() { viaListener = false }()
	for name, f := range map[string]func(*testing.T){
		"ClientHalfClose":   TestProxyClientHalfClose,
		"UpstreamHalfClose": TestProxyUpstreamHalfClose,
		"64MiB":             TestProxy64MiB,
		"ConnectTimeout":    TestProxyConnectTimeout,
		"ConnectRefused":    TestProxyConnectRefused,
		"IdleTimeout":       TestProxyIdleTimeout,
		"ContextCancel":     TestProxyContextCancel,
		"Preamble":          TestProxyPreamble,
		"Control":           TestProxyControl,
	} {
		t.Run(name, f)
	}
}

// TestRelayThreadsManySessions: 300 clients, up to 100 at once, through
// sessions accepted and started on the relay threads; each sends 4 KiB,
// half-closes and reads the echo to its end, but every fifth resets its
// connection (SO_LINGER 0) right after sending. Every session must end
// exactly once, the others with all their bytes, and the process must be
// left with the descriptors it had.
func TestRelayThreadsManySessions(t *testing.T) {
	// Not echoHandler: io.Copy between two TCPConns splices through
	// pipes that the net package keeps for later, which would count here.
	be := newBackend(t, "127.0.0.1:0", func(c *net.TCPConn) {
		io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, make([]byte, 8<<10))
		c.CloseWrite()
	})
	lfd, lport := rawListener(t)
	var own atomic.Bool
	var started, ended, twice atomic.Int32
	var sessions sync.WaitGroup
	relayAccept(t, lfd, func(fd int, rl *RelayListener) {
		started.Add(1)
		sessions.Add(1)
		var calls atomic.Int32
		ProxyFDAsync(context.Background(), fd, "127.0.0.1", be.port, ProxyOptions{Nonblocking: true, NoDelay: true, Relay: rl},
			func(in, out int64, err error) {
				if calls.Add(1) > 1 {
					twice.Add(1)
					return
				}
				ended.Add(1)
				sessions.Done()
			})
	}, &own)
	fdsBefore := openFDs(t) // the relay's sets exist now
	const clients, parallel = 300, 100
	payload := bytes.Repeat([]byte("0123456789abcdef"), 256)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := 0; i < clients; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(reset bool) {
			defer func() { <-sem; wg.Done() }()
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(lport))
			if err != nil {
				bad.Add(1)
				t.Errorf("dial: %v", err)
				return
			}
			tc := c.(*net.TCPConn)
			defer tc.Close()
			tc.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := tc.Write(payload); err != nil {
				bad.Add(1)
				t.Errorf("write: %v", err)
				return
			}
			if reset {
				tc.SetLinger(0)
				return
			}
			tc.CloseWrite()
			got, err := io.ReadAll(tc)
			if err != nil || !bytes.Equal(got, payload) {
				bad.Add(1)
				t.Errorf("echo: %d bytes, %v", len(got), err)
			}
		}(i%5 == 4)
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { sessions.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d of %d sessions ended", ended.Load(), started.Load())
	}
	if n := started.Load(); n != clients {
		t.Errorf("%d sessions started, want %d", n, clients)
	}
	if n := twice.Load(); n != 0 {
		t.Errorf("%d sessions ended more than once", n)
	}
	if !own.Load() {
		t.Error("a session went to another thread's set than the one that accepted it")
	}
	deadline := time.Now().Add(10 * time.Second)
	for openFDs(t) > fdsBefore {
		if time.Now().After(deadline) {
			ents, _ := os.ReadDir("/proc/self/fd")
			var links []string
			for _, e := range ents {
				l, _ := os.Readlink("/proc/self/fd/" + e.Name())
				links = append(links, e.Name()+"="+l)
			}
			t.Fatalf("descriptors: %d before, %d after: %v", fdsBefore, openFDs(t), links)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func BenchmarkProxyThroughput(b *testing.B) {
	be := newBackend(b, "127.0.0.1:0", func(c *net.TCPConn) { io.Copy(io.Discard, c) })
	chunk := make([]byte, 1<<20)
	const perOp = 16 << 20
	b.SetBytes(perOp)
	for b.Loop() {
		c, res := proxied(b, context.Background(), "127.0.0.1", be.port, ProxyOptions{})
		for n := 0; n < perOp; n += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		c.CloseWrite()
		io.Copy(io.Discard, c)
		if r := waitResult(b, res); r.err != nil || r.in != perOp {
			b.Fatalf("%+v", r)
		}
		c.Close()
	}
}

// TestRelayListenerWithdrawnLosesNoConnection: a thread woken for a
// connection that withdraws its listener without accepting (a halted
// or replaced acceptor entry, the old daemon of an upgrade) must not
// take the wake-up away from the other watchers of that socket. With
// EPOLLEXCLUSIVE the kernel woke only the first, and the connection
// waited in the backlog until another one arrived: an upgrade under load
// left a redirect client without an answer.
func TestRelayListenerWithdrawnLosesNoConnection(t *testing.T) {
	lfd, lport := rawListener(t)
	rls := RelayListeners(lfd)
	if len(rls) < 2 {
		t.Skipf("the relay has %d set(s) on this machine; two are needed", len(rls))
	}
	accepted := make(chan int, 1)
	// The first watched is the first the kernel wakes: it withdraws
	// without accepting, as a halted entry does.
	rls[0].Ready = func() { rls[0].Unwatch() }
	for _, rl := range rls[1:] {
		rl.Ready = func() {
			if nfd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC); err == nil {
				accepted <- nfd
			}
		}
	}
	for _, rl := range rls {
		if err := rl.Watch(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, rl := range rls {
			rl.Unwatch()
		}
	})
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(lport))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case nfd := <-accepted:
		unix.Close(nfd)
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was never accepted: the wake-up went to the watcher that withdrew")
	}
}
