package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/logging"
)

// systemd's file descriptor store (FDSTORE=1 in sd_notify) keeps a copy of
// every listening socket of a Type=notify unit, so `systemctl restart`
// passes them to the next daemon (LISTEN_FDS, LISTEN_FDNAMES) instead of
// closing them: clients that connect while no daemon runs wait in the
// listen backlog. The daemon keeps the store in step with its sockets:
// a socket it starts serving is stored, one it closes for good (a reload
// dropped it, its interface address left) is removed, since the store's
// copy would otherwise keep the port listening with nobody to answer.
// Stopping removes nothing: a restart hands the store to the next daemon,
// and a stop makes systemd close it.
//
// The store is used only when systemd says it has one: $FDSTORE (set by
// systemd 254 and later when FileDescriptorStoreMax= is not zero, and by
// the shipped unit itself for older ones) and $NOTIFY_SOCKET. systemd logs
// a warning for every descriptor it cannot store, so without $FDSTORE
// nothing is sent.

// fdNamePrefix marks the descriptors gxinetd stored itself; names from a
// socket unit (the unit's name, or FileDescriptorName=) never contain '/'.
const fdNamePrefix = "gxinetd/"

// fdNameMax is systemd's limit on FDNAME= (FDNAME_MAX).
const fdNameMax = 255

// fdName is the name a socket is stored under: readable in
// `systemd-analyze fdstore`, unique per socket (FDSTOREREMOVE removes every
// descriptor of a name), and carrying what the socket's own address cannot
// tell: the RPC service a kernel-chosen port belongs to.
func fdName(k sockKey) string {
	n := fdNamePrefix + fdEscape(k.String())
	if k.family == unix.AF_INET6 && k.v6only >= 0 {
		// The kernel reports V6ONLY as 1 for any socket bound to one
		// IPv6 address, whatever was set: the name says what was asked.
		n += "/v6only=" + strconv.Itoa(k.v6only)
	}
	if k.rpc != "" {
		// No '/' in it, so the last "/rpc=" is this one.
		n += "/rpc=" + strings.ReplaceAll(fdEscape(k.rpc), "/", "%2F")
	}
	if len(n) > fdNameMax {
		// Only long unix socket paths get here; their socket says
		// everything else.
		sum := sha256.Sum256([]byte(n))
		n = fdNamePrefix + "sha256=" + hex.EncodeToString(sum[:16])
	}
	return n
}

// fdEscape makes s a valid part of a name: printable ASCII without ':'
// (LISTEN_FDNAMES' separator) and without '%', which escapes.
func fdEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == ':' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func fdUnescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// fdNameInfo is what a stored descriptor's name says.
type fdNameInfo struct {
	ours   bool   // gxinetd stored it
	rpc    string // the RPC service the socket belongs to
	v6only int    // the V6ONLY asked for; -1 when not said
}

// parseFDName reads a name from LISTEN_FDNAMES.
func parseFDName(name string) (fdNameInfo, error) {
	info := fdNameInfo{v6only: -1}
	rest, ok := strings.CutPrefix(name, fdNamePrefix)
	if !ok {
		return info, nil
	}
	info.ours = true
	if i := strings.LastIndex(rest, "/rpc="); i >= 0 {
		rpc, err := fdUnescape(rest[i+len("/rpc="):])
		if err != nil {
			return info, err
		}
		if rpc == "" {
			return info, fmt.Errorf("empty RPC service in %q", name)
		}
		info.rpc, rest = rpc, rest[:i]
	}
	if i := strings.LastIndex(rest, "/v6only="); i >= 0 {
		switch rest[i+len("/v6only="):] {
		case "0":
			info.v6only = 0
		case "1":
			info.v6only = 1
		default:
			return info, fmt.Errorf("bad v6only in %q", name)
		}
	}
	return info, nil
}

// storeMax reports how many descriptors systemd's store takes, 0 when the
// daemon is not a unit with a store.
func storeMax() int {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return 0
	}
	n, err := strconv.Atoi(os.Getenv("FDSTORE"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// fdStore is the daemon's side of the store, and the one place that
// decides what closing a socket means beyond this process.
type fdStore struct {
	d   *Daemon
	max int

	mu      sync.Mutex
	queue   []storeOp
	stored  map[*sock]string // sent (or queued) and not removed
	full    bool             // the limit was hit (logged once)
	held    bool             // not systemd's main process yet: messages wait
	running bool
	kick    chan struct{}

	// handedOver is set when a successor daemon has every socket: closing
	// one here then neither removes it from the store nor unlinks its
	// path.
	handedOver atomic.Bool
}

type storeOp struct {
	name string
	fd   int // a duplicate to store, or -1 to remove name
}

func (st *fdStore) init(d *Daemon) {
	st.d = d
	st.max = storeMax()
	st.stored = map[*sock]string{}
	st.kick = make(chan struct{}, 1)
}

// hold keeps messages back until release: a daemon started by -upgrade is
// not systemd's main process until its predecessor says so, and systemd
// ignores (NotifyAccess=main) what others send.
func (st *fdStore) hold() {
	st.mu.Lock()
	st.held = true
	st.mu.Unlock()
}

func (st *fdStore) release() {
	st.mu.Lock()
	st.held = false
	st.mu.Unlock()
	st.poke()
}

// track makes sk one of the daemon's sockets: it is stored (with the store
// on) and told about its closing. Sockets from a socket unit are systemd's
// own and stay out of it. The caller holds Daemon.mu.
func (st *fdStore) track(sk *sock) {
	if sk.activated {
		return
	}
	sk.owner = st
	if st.max == 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.stored[sk]; ok {
		return
	}
	if len(st.stored) >= st.max {
		if !st.full {
			st.full = true
			st.d.logLocked(logging.LevelWarning, "fdstore", "systemd's file descriptor store is full (FDSTORE=%d): %s and later sockets are not kept across a restart", st.max, sk.key)
		}
		return
	}
	dup, err := unix.FcntlInt(uintptr(sk.fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return
	}
	name := fdName(sk.key)
	st.stored[sk] = name
	st.queue = append(st.queue, storeOp{name: name, fd: dup})
	st.startLocked()
}

// adopt notes a socket that is in the store already (passed back by
// systemd, or handed over by the predecessor), so closing it removes it.
func (st *fdStore) adopt(sk *sock) {
	sk.owner = st
	if st.max == 0 {
		return
	}
	st.mu.Lock()
	st.stored[sk] = fdName(sk.key)
	st.mu.Unlock()
}

// closing is called by sock.Close. It reports whether the socket's path
// must stay: another process serves the socket (a successor, or the next
// daemon after a restart through the store).
func (st *fdStore) closing(sk *sock) (keepPath bool) {
	if st.handedOver.Load() {
		return true
	}
	if st.max == 0 {
		return false
	}
	if st.d.stopping.Load() {
		// A stop: the store keeps the socket for a restart, or systemd
		// closes it.
		return true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	name, ok := st.stored[sk]
	if !ok {
		return false
	}
	delete(st.stored, sk)
	st.full = false
	st.queue = append(st.queue, storeOp{name: name, fd: -1})
	st.startLocked()
	return false
}

func (st *fdStore) startLocked() {
	if !st.running {
		st.running = true
		go st.loop()
	}
	st.poke()
}

func (st *fdStore) poke() {
	select {
	case st.kick <- struct{}{}:
	default:
	}
}

// loop sends the queued messages in order, on a goroutine of its own: a
// socket is closed with the daemon's lock held, and a message to systemd
// is I/O.
func (st *fdStore) loop() {
	var n notifier
	defer n.close()
	for range st.kick {
		for {
			st.mu.Lock()
			if st.held || len(st.queue) == 0 {
				st.mu.Unlock()
				break
			}
			op := st.queue[0]
			st.queue = st.queue[1:]
			st.mu.Unlock()
			var err error
			if op.fd >= 0 {
				err = n.send("FDSTORE=1\nFDNAME="+op.name, op.fd)
				unix.Close(op.fd)
			} else {
				err = n.send("FDSTOREREMOVE=1\nFDNAME="+op.name, -1)
			}
			if err != nil {
				st.d.log.Logf(logging.LevelWarning, "fdstore", "telling systemd about %s: %v", op.name, err)
			}
		}
	}
}

// notifier sends sd_notify messages, with descriptors, over one socket.
type notifier struct{ fd int }

func (n *notifier) send(state string, fd int) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return errors.New("NOTIFY_SOCKET is not set")
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	if n.fd <= 0 {
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		n.fd = s
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	for {
		err := unix.Sendmsg(n.fd, []byte(state), oob, &unix.SockaddrUnix{Name: path}, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

func (n *notifier) close() {
	if n.fd > 0 {
		unix.Close(n.fd)
		n.fd = 0
	}
}
