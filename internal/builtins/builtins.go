package builtins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
)

// Defaults used when the corresponding Limits or Env field is zero.
const (
	DefaultIdleTimeout = 5 * time.Minute
	DefaultMaxBytes    = 64 << 30
	DefaultReadTimeout = 10 * time.Second
	DefaultLogInterval = time.Minute
	DefaultProcNet     = "/proc/net"
)

// Sizes that bound what one request may make the daemon read or send.
const (
	// MaxEchoDatagram is the largest datagram echo answers in full: the
	// largest UDP payload over IPv4. Longer datagrams (possible only over
	// IPv6) are echoed truncated.
	MaxEchoDatagram = 65507
	// MaxMuxName bounds the tcpmux service-name line, terminator included.
	MaxMuxName = 512
	// MaxAuthQuery bounds the auth query line, terminator included.
	MaxAuthQuery = 1024
)

// Errors a StreamFunc may wrap in its result, so the daemon can tell a
// bound being hit from a peer that misbehaved.
var (
	// ErrIdleTimeout: the connection made no progress for the idle timeout.
	ErrIdleTimeout = errors.New("idle timeout")
	// ErrByteLimit: the connection moved its byte budget.
	ErrByteLimit = errors.New("byte limit reached")
	// ErrNoService: tcpmux was asked for a name it does not multiplex.
	ErrNoService = errors.New("service name not found")
	// ErrBadRequest: the request line (tcpmux name, auth query) was
	// malformed, overlong or never completed.
	ErrBadRequest = errors.New("bad request")
)

// Limits bound one stream builtin connection. Zero fields take the
// defaults above; a service's own idle_timeout and max_bytes, when set,
// take precedence over these daemon-wide values.
type Limits struct {
	// IdleTimeout closes a stream builtin after this long without
	// progress (default 5 min). The deadline is refreshed before every
	// read and write.
	IdleTimeout time.Duration
	// MaxBytes is what one connection may move in its main direction:
	// bytes echoed, discarded or generated (default 64 GiB: about a minute of loopback chargen, so benchmarks and real clients are not cut short while an endless session still ends).
	MaxBytes int64
	// ReadTimeout bounds reading a whole request line: the tcpmux service
	// name and the auth query (default 10 s; auth's -t option overrides
	// it for that service).
	ReadTimeout time.Duration
}

// Env is what the daemon lends the builtins. Its function fields are
// called concurrently from many connections. An Env must not be copied
// after first use (it holds the guard's log limiter).
type Env struct {
	Limits
	// TCPMux looks up a TCPMUX/TCPMUXPLUS client service by name
	// (case-insensitive); the daemon provides it. A service that is not a
	// tcpmux client is refused even if returned.
	TCPMux func(name string) (*service.Service, bool)
	// TCPMuxNames lists the names `help` prints, in the order printed.
	TCPMuxNames func() []string
	// Serve hands the connection (already past the tcpmux negotiation;
	// for TCPMUXPLUS "+Go\r\n" already sent) to the selected service —
	// the daemon runs its access checks, logging and spawning. Serve owns
	// conn afterwards. No deadline is left set on conn and nothing read
	// from it is held back: tcpmux reads the name one byte at a time.
	Serve func(ctx context.Context, svc *service.Service, conn net.Conn) error
	// Now is the clock for daytime and time; nil means time.Now.
	// daytime prints the time in the location of the value returned.
	Now func() time.Time
	// OwnPorts reports whether a UDP port is one of the daemon's own
	// builtin UDP ports (reflection guard); nil means none.
	OwnPorts func(port uint16) bool
	// ProcNet is the directory holding tcp and tcp6 that auth -r reads
	// when the kernel has no sock_diag (default /proc/net). Tests point
	// it elsewhere, and auth then reads it instead of asking the kernel.
	ProcNet string
	// Users resolves uids to names and home directories for auth; nil
	// means sysdb.System.
	Users *sysdb.DB
	// Logf reports guard refusals; nil discards them. Refusals are
	// logged at most once per source address per LogInterval, and then
	// only as AllowLog allows.
	Logf func(format string, args ...any)
	// LogInterval is the per-source quiet period for Logf (default 1 min).
	LogInterval time.Duration
	// AllowLog, when set, is asked about every refusal Logf would
	// report, with repeat true when the source was reported within
	// LogInterval (the refusal is then not logged whatever it answers):
	// the daemon's refusal budget, which bounds the lines a flood from
	// many sources writes and counts what it holds back.
	AllowLog func(src netip.Addr, repeat bool) bool

	logMu  sync.Mutex
	logged map[netip.Addr]time.Time
}

// StreamFunc serves one accepted connection. It owns conn and closes it
// before returning, except that tcpmux passes it on to Env.Serve. It
// returns nil when the peer ended the exchange normally, an error
// wrapping ErrIdleTimeout, ErrByteLimit, ErrNoService, ErrBadRequest or
// ctx.Err() when a bound or the daemon ended it, and any other I/O error
// wrapped with context.
type StreamFunc func(ctx context.Context, conn net.Conn, svc *service.Service, env *Env) error

// DgramFunc answers one datagram: it appends the reply to reply[:0] and
// returns it, or returns nil to send nothing. With a reply buffer of
// enough capacity (MaxEchoDatagram covers every builtin) it does not
// allocate. reply may share pkt's backing array: only echo reads pkt,
// and it copies it in place.
type DgramFunc func(pkt []byte, from netip.AddrPort, svc *service.Service, env *Env, reply []byte) []byte

var streams = map[string]StreamFunc{
	"echo":    echoStream,
	"discard": discardStream,
	"daytime": daytimeStream,
	"time":    timeStream,
	"chargen": chargenStream,
	"tcpmux":  tcpmuxStream,
	"auth":    authStream,
	"sensor":  sensorStream,
}

var dgrams = map[string]DgramFunc{
	"echo":    echoDgram,
	"discard": discardDgram,
	"daytime": daytimeDgram,
	"time":    timeDgram,
	"chargen": chargenDgram,
	"sensor":  discardDgram,
}

// Stream returns the stream handler of a builtin (case-insensitive):
// echo discard daytime time chargen tcpmux auth sensor.
func Stream(name string) (StreamFunc, bool) {
	f, ok := streams[strings.ToLower(name)]
	return f, ok
}

// Dgram returns the datagram handler of a builtin (case-insensitive):
// echo discard daytime time chargen sensor.
func Dgram(name string) (DgramFunc, bool) {
	f, ok := dgrams[strings.ToLower(name)]
	return f, ok
}

func (e *Env) now() time.Time {
	if e != nil && e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Env) readTimeout() time.Duration {
	if e != nil && e.ReadTimeout > 0 {
		return e.ReadTimeout
	}
	return DefaultReadTimeout
}

func (e *Env) users() *sysdb.DB {
	if e != nil && e.Users != nil {
		return e.Users
	}
	return sysdb.System
}

func (e *Env) procNet() string {
	if e != nil && e.ProcNet != "" {
		return e.ProcNet
	}
	return defaultProcNet
}

// defaultProcNet is DefaultProcNet; a test hides it to show that auth -r
// no longer reads it when sock_diag answers.
var defaultProcNet = DefaultProcNet

// idleTimeout and maxBytes prefer the service's own setting, then the
// daemon's, then the default.
func idleTimeout(svc *service.Service, env *Env) time.Duration {
	switch {
	case svc != nil && svc.IdleTimeout > 0:
		return time.Duration(svc.IdleTimeout) * time.Second
	case env != nil && env.IdleTimeout > 0:
		return env.IdleTimeout
	}
	return DefaultIdleTimeout
}

func maxBytes(svc *service.Service, env *Env) int64 {
	switch {
	case svc != nil && svc.MaxBytes > 0:
		return svc.MaxBytes
	case env != nil && env.MaxBytes > 0:
		return env.MaxBytes
	}
	return DefaultMaxBytes
}

// longAgo is a deadline in the past: setting it wakes every blocked
// read and write on the connection at once.
var longAgo = time.Unix(1, 0)

// session carries the bounds of one stream builtin connection.
type session struct {
	name  string
	ctx   context.Context
	conn  net.Conn
	idle  time.Duration
	max   int64
	moved int64
	stop  func() bool
	// armed is when the idle deadline was last pushed back. Pushing it on
	// every read and write cost more than the echo itself; a deadline
	// refreshed at most every idle/16 is still an idle timeout to within
	// about 6 %.
	armed time.Time
}

func newSession(name string, ctx context.Context, conn net.Conn, svc *service.Service, env *Env) *session {
	s := &session{name: name, ctx: ctx, conn: conn, idle: idleTimeout(svc, env), max: maxBytes(svc, env)}
	// Cancelling ctx must interrupt a blocked read or write, which only a
	// deadline can do for a net.Conn.
	s.stop = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(longAgo) })
	return s
}

// arm refreshes the idle deadline before an operation. The ctx check
// comes after the refresh: if cancellation's past deadline was
// overwritten by ours, ctx.Err is already set and we stop here.
func (s *session) arm() error {
	now := time.Now()
	if now.Sub(s.armed) >= s.idle/16 {
		if err := s.conn.SetDeadline(now.Add(s.idle)); err != nil {
			return err
		}
		s.armed = now
	}
	return s.ctx.Err()
}

func (s *session) close() {
	s.stop()
	_ = s.conn.Close()
}

// budget is how many bytes the next operation may move, or an error
// once the budget is spent.
func (s *session) budget(want int) (int, error) {
	left := s.max - s.moved
	if left <= 0 {
		return 0, fmt.Errorf("builtins: %s: %w (%d bytes)", s.name, ErrByteLimit, s.max)
	}
	if int64(want) > left {
		return int(left), nil
	}
	return want, nil
}

// end turns the error that stopped the session into the StreamFunc
// result: nil when the peer simply went away.
func (s *session) end(err error) error {
	if err == nil {
		return nil
	}
	if cerr := s.ctx.Err(); cerr != nil {
		return fmt.Errorf("builtins: %s: %w", s.name, cerr)
	}
	if errors.Is(err, ErrByteLimit) {
		return err
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("builtins: %s: %w after %v", s.name, ErrIdleTimeout, s.idle)
	}
	if peerGone(err) {
		return nil
	}
	return fmt.Errorf("builtins: %s: %w", s.name, err)
}

// peerGone reports the errors that mean the client closed or reset the
// connection, which is how most of these protocols end.
func peerGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// writeAndClose writes a short reply under a deadline and closes conn.
func writeAndClose(ctx context.Context, conn net.Conn, timeout time.Duration, name string, b []byte) error {
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(longAgo) })
	defer stop()
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("builtins: %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("builtins: %s: %w", name, err)
	}
	if _, err := conn.Write(b); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("builtins: %s: %w", name, cerr)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("builtins: %s: %w after %v", name, ErrIdleTimeout, timeout)
		}
		if peerGone(err) {
			return nil
		}
		return fmt.Errorf("builtins: %s: %w", name, err)
	}
	return nil
}

func sensorStream(_ context.Context, conn net.Conn, _ *service.Service, _ *Env) error {
	// The daemon has already recorded the sensor hit; there is nothing
	// to say to the client.
	_ = conn.Close()
	return nil
}
