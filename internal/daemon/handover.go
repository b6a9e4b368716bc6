package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/rpcbind"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
)

// The hand-over channel between a daemon (the old one) and the successor
// it starts for -upgrade is one end of a SOCK_SEQPACKET socket pair,
// descriptor 3 of the successor: messages keep their boundaries and carry
// descriptors (SCM_RIGHTS). Each message is one JSON object.
//
//	old -> new  socks    metadata of the attached sockets (200 a message)
//	old -> new  state    end of the sockets; rpcbind mappings registered
//	new -> old  ready    serving (or failed, with the reason)
//	old -> new  cutover  the old one stopped serving; pidfds of the servers
//	                     still holding wait=yes sockets (200 a message)
//	new -> old  pidfile  written (or why not)
//	old -> new  main     systemd's main process now (MAINPID sent)

// envHandover names the channel's descriptor in the successor's
// environment: "3", or "3,detached" when the old daemon had detached.
const envHandover = "GXINETD_HANDOVER"

// maxFDsPerMsg stays under the kernel's SCM_MAX_FD (253).
const maxFDsPerMsg = 200

// HandoverFromEnv reports the hand-over channel a daemon started by
// -upgrade was given, and whether its predecessor had detached; 0 when
// the daemon was started otherwise.
func HandoverFromEnv() (fd int, detached bool) {
	v := os.Getenv(envHandover)
	if v == "" {
		return 0, false
	}
	os.Unsetenv(envHandover)
	num, rest, _ := strings.Cut(v, ",")
	fd, err := strconv.Atoi(num)
	if err != nil || fd < 3 {
		return 0, false
	}
	return fd, rest == "detached"
}

type hoMsg struct {
	Type string `json:"type"`
	// socks: the sockets the attached descriptors are, in order.
	Socks []hoSock `json:"socks,omitempty"`
	// cutover: the socket (by id) each attached pidfd holds.
	Holders []int `json:"holders,omitempty"`
	// state: what the old daemon registered with rpcbind.
	RPC []hoMapping `json:"rpc,omitempty"`
	// state: the services the old daemon serves (their ids).
	Serving  []string `json:"serving,omitempty"`
	Last     bool     `json:"last,omitempty"`
	Services int      `json:"services,omitempty"`
	Reason   string   `json:"reason,omitempty"`
}

// hoSock says what one passed socket is.
type hoSock struct {
	ID int `json:"id"`
	// Use is "service" (a service's socket, under Key, the key the
	// service asked for), "systemd" (a socket unit's socket no service
	// took), "metrics" or "control".
	Use string `json:"use"`
	Key hoKey  `json:"key"`
	// Sock is the socket's own key when it differs from Key (a socket
	// unit's socket taken for a wildcard service).
	Sock      *hoKey `json:"sock,omitempty"`
	Activated bool   `json:"activated,omitempty"`
	// Wait marks a socket a wait=yes server may hold: the successor
	// serves it only once the cut-over says which servers hold it and
	// those have exited.
	Wait bool   `json:"wait,omitempty"`
	Addr string `json:"addr,omitempty"` // metrics: its address; control: its path
}

type hoKey struct {
	Type   int    `json:"type"`
	Family int    `json:"family"`
	Addr   string `json:"addr,omitempty"`
	Port   int    `json:"port,omitempty"`
	V6Only int    `json:"v6only"`
	Path   string `json:"path,omitempty"`
	RPC    string `json:"rpc,omitempty"`
}

type hoMapping struct {
	Prog  uint32 `json:"prog"`
	Vers  uint32 `json:"vers"`
	Netid string `json:"netid"`
	Addr  string `json:"addr"`
}

func hoKeyOf(k sockKey) hoKey {
	h := hoKey{Type: k.sotype, Family: k.family, Port: k.port, V6Only: k.v6only, Path: k.path, RPC: k.rpc}
	if k.addr.IsValid() {
		h.Addr = k.addr.String()
	}
	return h
}

func (h hoKey) key() (sockKey, error) {
	k := sockKey{sotype: h.Type, family: h.Family, port: h.Port, v6only: h.V6Only, path: h.Path, rpc: h.RPC}
	if h.Addr != "" {
		a, err := netip.ParseAddr(h.Addr)
		if err != nil {
			return k, fmt.Errorf("socket address %q: %w", h.Addr, err)
		}
		k.addr = a
	}
	switch k.family {
	case unix.AF_INET, unix.AF_INET6, unix.AF_UNIX:
	default:
		return k, fmt.Errorf("socket family %d", k.family)
	}
	return k, nil
}

func mappingsOut(have map[rpcbind.Mapping]bool) []hoMapping {
	var out []hoMapping
	for m := range have {
		out = append(out, hoMapping{Prog: m.Prog, Vers: m.Vers, Netid: m.Netid, Addr: m.Addr.String()})
	}
	return out
}

func mappingsIn(ms []hoMapping) map[rpcbind.Mapping]bool {
	have := map[rpcbind.Mapping]bool{}
	for _, h := range ms {
		ap, err := netip.ParseAddrPort(h.Addr)
		if err != nil {
			continue
		}
		have[rpcbind.Mapping{Prog: h.Prog, Vers: h.Vers, Netid: h.Netid, Addr: ap}] = true
	}
	return have
}

// hoConn is one end of the channel.
type hoConn struct {
	c   *net.UnixConn
	buf []byte
	oob []byte
}

func newHoConn(fd int) (*hoConn, error) {
	f := os.NewFile(uintptr(fd), "handover")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("hand-over channel: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, errors.New("hand-over channel is not a unix socket")
	}
	return &hoConn{c: uc, buf: make([]byte, 1<<20), oob: make([]byte, unix.CmsgSpace(4*maxFDsPerMsg))}, nil
}

// hoPair makes the channel: our end, and the successor's (inheritable).
func hoPair() (*hoConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	h, err := newHoConn(fds[0])
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return h, os.NewFile(uintptr(fds[1]), "handover"), nil
}

func (h *hoConn) close() { h.c.Close() }

// send writes one message with its descriptors (at most maxFDsPerMsg).
func (h *hoConn) send(m *hoMsg, fds []int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	h.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	defer h.c.SetWriteDeadline(time.Time{})
	if _, _, err := h.c.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("hand-over %s: %w", m.Type, err)
	}
	return nil
}

// recv reads one message; the descriptors come close-on-exec. io.EOF
// means the other side closed the channel (or exited).
func (h *hoConn) recv(timeout time.Duration) (*hoMsg, []int, error) {
	if timeout > 0 {
		h.c.SetReadDeadline(time.Now().Add(timeout))
		defer h.c.SetReadDeadline(time.Time{})
	}
	n, oobn, flags, _, err := h.c.ReadMsgUnix(h.buf, h.oob)
	var fds []int
	if oobn > 0 {
		cms, perr := unix.ParseSocketControlMessage(h.oob[:oobn])
		if perr == nil {
			for _, cm := range cms {
				if got, err := unix.ParseUnixRights(&cm); err == nil {
					fds = append(fds, got...)
				}
			}
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
		}
	}
	if err != nil {
		closeFDs(fds)
		if errors.Is(err, io.EOF) {
			return nil, nil, io.EOF
		}
		return nil, nil, err
	}
	if n == 0 && len(fds) == 0 {
		return nil, nil, io.EOF
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		closeFDs(fds)
		return nil, nil, errors.New("hand-over message truncated")
	}
	var m hoMsg
	if err := json.Unmarshal(h.buf[:n], &m); err != nil {
		closeFDs(fds)
		return nil, nil, fmt.Errorf("hand-over message: %w", err)
	}
	return &m, fds, nil
}

// expect reads the next message, which must be of type typ (or
// "failed"), with exactly as many descriptors as want says.
func (h *hoConn) expect(timeout time.Duration, typ string) (*hoMsg, []int, error) {
	m, fds, err := h.recv(timeout)
	if err != nil {
		return nil, nil, err
	}
	if m.Type == "failed" {
		closeFDs(fds)
		return m, nil, nil
	}
	if m.Type != typ {
		closeFDs(fds)
		return nil, nil, fmt.Errorf("hand-over: got %q, want %q", m.Type, typ)
	}
	return m, fds, nil
}

// sendSocks passes sockets, maxFDsPerMsg a message, and closes fds (the
// kernel has its own references in flight).
func (h *hoConn) sendSocks(metas []hoSock, fds []int) error {
	defer closeFDs(fds)
	for i := 0; i < len(metas); i += maxFDsPerMsg {
		j := min(i+maxFDsPerMsg, len(metas))
		if err := h.send(&hoMsg{Type: "socks", Socks: metas[i:j]}, fds[i:j]); err != nil {
			return err
		}
	}
	return nil
}

// recvSocks reads sockets until the state message, which it returns.
func (h *hoConn) recvSocks(timeout time.Duration) (metas []hoSock, fds []int, state *hoMsg, err error) {
	for {
		m, got, err := h.recv(timeout)
		if err != nil {
			closeFDs(fds)
			return nil, nil, nil, err
		}
		switch {
		case m.Type == "socks" && len(got) == len(m.Socks):
			metas, fds = append(metas, m.Socks...), append(fds, got...)
		case m.Type == "state" && len(got) == 0:
			return metas, fds, m, nil
		default:
			closeFDs(got)
			closeFDs(fds)
			return nil, nil, nil, fmt.Errorf("hand-over: unexpected %q with %d descriptors", m.Type, len(got))
		}
	}
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// sockGate holds back serving a socket that a server of the predecessor
// may still have on its standard input (a wait=yes socket): the project's
// rule is one server per wait=yes socket, always. It opens when the
// predecessor has stopped watching the socket and every server holding it
// has exited.
type sockGate struct {
	open chan struct{}
	once sync.Once

	mu      sync.Mutex
	holders []*os.File // pidfds of the servers holding the socket
}

func newSockGate() *sockGate { return &sockGate{open: make(chan struct{})} }

func (g *sockGate) isOpen() bool {
	if g == nil {
		return true
	}
	select {
	case <-g.open:
		return true
	default:
		return false
	}
}

func (g *sockGate) release() {
	g.once.Do(func() { close(g.open) })
}

// waitFor opens the gate once every process behind pidfds has exited.
func (g *sockGate) waitFor(pidfds []int) {
	if len(pidfds) == 0 {
		g.release()
		return
	}
	var files []*os.File
	for _, fd := range pidfds {
		unix.SetNonblock(fd, true)
		files = append(files, os.NewFile(uintptr(fd), "pidfd"))
	}
	g.mu.Lock()
	g.holders = files
	g.mu.Unlock()
	go func() {
		for _, f := range files {
			waitPidfd(f)
		}
		g.mu.Lock()
		g.holders = nil
		g.mu.Unlock()
		for _, f := range files {
			f.Close()
		}
		g.release()
	}()
}

// pending returns duplicates of the pidfds of the holders still running,
// for a successor of our own.
func (g *sockGate) pending() []int {
	if g == nil || g.isOpen() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []int
	for _, f := range g.holders {
		rc, err := f.SyscallConn()
		if err != nil {
			continue
		}
		rc.Control(func(pfd uintptr) {
			if pidfdExited(int(pfd)) {
				return
			}
			if fd, err := unix.FcntlInt(pfd, unix.F_DUPFD_CLOEXEC, 0); err == nil {
				out = append(out, fd)
			}
		})
	}
	return out
}

// waitPidfd returns when the process behind the pidfd has exited: the
// descriptor becomes readable, also for a process that is not our child.
func waitPidfd(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Read(func(fd uintptr) bool { return pidfdExited(int(fd)) })
}

func pidfdExited(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(p, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || n > 0
	}
}

// handoverIn is the successor's end of the channel while the hand-over
// runs.
type handoverIn struct {
	conn    *hoConn
	gates   map[int]*sockGate // wait=yes sockets by id, until the cut-over
	old     int               // the predecessor's pid
	serving map[string]bool   // the predecessor's services, lower-case ids
}

// receiveHandover takes the predecessor's sockets into the pool that the
// first configuration draws from (the same pool a reload uses), before
// anything is opened.
func (d *Daemon) receiveHandover() error {
	u := &d.up
	if d.o.HandoverFD <= 0 {
		return nil
	}
	conn, err := newHoConn(d.o.HandoverFD)
	if err != nil {
		return err
	}
	in := &handoverIn{conn: conn, gates: map[int]*sockGate{}, old: os.Getppid()}
	u.in = in
	u.store.hold()
	if u.inherited == nil {
		u.inherited = map[sockKey]*sock{}
	}
	metas, fds, state, err := conn.recvSocks(30 * time.Second)
	if err != nil {
		return fmt.Errorf("receiving the sockets: %w", err)
	}
	n := 0
	for i, hs := range metas {
		if err := d.adoptHanded(in, hs, fds[i]); err != nil {
			d.log.Logf(logging.LevelWarning, "upgrade", "not taking over socket %d: %v", hs.ID, err)
			unix.Close(fds[i])
			continue
		}
		n++
	}
	d.rpc.inherit = mappingsIn(state.RPC)
	in.serving = map[string]bool{}
	for _, id := range state.Serving {
		in.serving[strings.ToLower(id)] = true
	}
	d.log.Logf(logging.LevelNotice, "upgrade", "took over %d %s and %d rpcbind %s from pid %d",
		n, plural(n, "socket"), len(d.rpc.inherit), plural(len(d.rpc.inherit), "mapping"), in.old)
	return nil
}

func (d *Daemon) adoptHanded(in *handoverIn, hs hoSock, fd int) error {
	u := &d.up
	switch hs.Use {
	case "metrics":
		f := os.NewFile(uintptr(fd), "metrics")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return err
		}
		u.metricsLn, u.metricsAddr = ln, hs.Addr
		return nil
	case "control":
		f := os.NewFile(uintptr(fd), "control")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return err
		}
		ul, ok := ln.(*net.UnixListener)
		if !ok {
			ln.Close()
			return errors.New("control socket is not a unix socket")
		}
		ul.SetUnlinkOnClose(false)
		u.ctl.inherit(ul, hs.Addr)
		return nil
	case "service", "systemd":
	default:
		return fmt.Errorf("unknown use %q", hs.Use)
	}
	pk, err := hs.Key.key()
	if err != nil {
		return err
	}
	sk := pk
	if hs.Sock != nil {
		if sk, err = hs.Sock.key(); err != nil {
			return err
		}
	}
	var s *sock
	if hs.Wait {
		// A server of the predecessor may have it on its standard input,
		// blocking: nothing here may switch the shared file description
		// to non-blocking (as wrapping it for the poller would) until the
		// gate opens.
		s = &sock{key: sk, fdNum: fd, gate: newSockGate()}
		in.gates[hs.ID] = s.gate
	} else {
		unix.SetNonblock(fd, true)
		if s, err = wrapSock(fd, sk); err != nil {
			return err
		}
	}
	s.activated = hs.Activated
	if !s.activated {
		u.store.adopt(s)
	}
	if hs.Use == "systemd" {
		d.activated[pk] = s
	} else {
		u.inherited[pk] = s
	}
	return nil
}

// intoPool adds the sockets taken over (from a predecessor, or from
// systemd's store) to the pool of the first configuration. Those nobody
// takes are closed with the rest of the pool, and removed from the store.
func (u *upgradeState) intoPool(pool map[sockKey]*sock) {
	for k, sk := range u.inherited {
		if _, dup := pool[k]; !dup {
			pool[k] = sk
		} else {
			sk.Close()
		}
	}
	u.inherited = nil
}

// serveGated starts serving a socket whose gate is not open yet. Its
// goroutine only waits for the gate (or a halt); when the gate opens, the
// socket is started again as any other, on the acceptor where it belongs.
func (d *Daemon) serveGated(r *svcRun, sr *sockRun) bool {
	g := sr.s.gate
	if g.isOpen() {
		return false
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(sr.done)
		select {
		case <-g.open:
			// On a goroutine of its own: it takes change, which a halt
			// of this one may be holding.
			go d.ungate(r, sr)
		case <-sr.stop:
		}
	}()
	return true
}

// ungate starts serving a socket whose gate has opened, if the gated
// goroutine still stands for it (a reload, interface change or stop
// meanwhile has halted it and done what it does with the socket).
func (d *Daemon) ungate(r *svcRun, sr *sockRun) {
	d.change.Lock()
	defer d.change.Unlock()
	if d.stopping.Load() {
		return
	}
	d.mu.Lock()
	defer d.unlock()
	for k, cur := range r.socks.all() {
		if cur == sr && !sr.stopped() {
			readySock(sr.s)
			d.startSockLocked(r, k, sr.s)
			return
		}
	}
}

// readySock makes a socket whose gate opened what wrapSock makes: non-
// blocking, and a PacketConn for a datagram socket.
func readySock(s *sock) {
	if s.fdNum < 0 {
		return
	}
	unix.SetNonblock(s.fdNum, true)
	if s.key.sotype == unix.SOCK_DGRAM && s.pc == nil {
		if pc, err := net.FilePacketConn(s.osFile()); err == nil {
			s.pc = pc
		}
	}
}

// handoverReady replaces the start-up's READY=1 in a daemon started by
// -upgrade: it tells the predecessor it serves, waits until that one has
// stopped, writes the pidfile and becomes systemd's main process. It
// reports false when the daemon was started otherwise.
func (d *Daemon) handoverReady(services int) bool {
	u := &d.up
	in := u.in
	if in == nil {
		return false
	}
	u.in = nil
	defer in.conn.close()
	u.closeUnusedInherited()
	openAll := func() {
		for _, g := range in.gates {
			g.release()
		}
	}
	if err := in.conn.send(&hoMsg{Type: "ready", Services: services}, nil); err != nil {
		d.log.Logf(logging.LevelError, "upgrade", "telling pid %d this daemon serves: %v", in.old, err)
	}
	// The cut-over: the predecessor has stopped accepting and says which
	// of its servers still hold wait=yes sockets.
	cut := map[int][]int{}
	for {
		m, fds, err := in.conn.recv(0)
		if err != nil {
			// The predecessor is gone without a cut-over: it stopped
			// serving anyway. Whoever held a wait=yes socket then is
			// unknown.
			d.log.Logf(logging.LevelWarning, "upgrade", "pid %d ended the hand-over early (%v); serving every socket now", in.old, err)
			openAll()
			if d.o.PidFile != "" {
				if err := writePidFileReplacing(d.o.PidFile, in.old); err != nil {
					d.log.Logf(logging.LevelError, "upgrade", "%v", err)
				}
			}
			d.becomeMain(services, in.old)
			return true
		}
		if m.Type != "cutover" || len(fds) != len(m.Holders) {
			closeFDs(fds)
			continue
		}
		for i, id := range m.Holders {
			cut[id] = append(cut[id], fds[i])
		}
		if m.Last {
			break
		}
	}
	held := 0
	for id, g := range in.gates {
		if len(cut[id]) > 0 {
			held++
		}
		g.waitFor(cut[id])
		delete(cut, id)
	}
	for _, fds := range cut {
		closeFDs(fds)
	}
	if held > 0 {
		d.log.Logf(logging.LevelNotice, "upgrade", "%d wait=yes %s held by servers of pid %d: served once they exit", held, plural(held, "socket"), in.old)
	}
	var perr error
	if d.o.PidFile != "" {
		perr = writePidFileReplacing(d.o.PidFile, in.old)
	}
	reply := &hoMsg{Type: "pidfile"}
	if perr != nil {
		d.log.Logf(logging.LevelError, "upgrade", "%v", perr)
		reply.Reason = perr.Error()
	}
	in.conn.send(reply, nil)
	if _, _, err := in.conn.expect(30*time.Second, "main"); err != nil {
		d.log.Logf(logging.LevelWarning, "upgrade", "pid %d did not confirm the hand-over (%v)", in.old, err)
	}
	d.becomeMain(services, in.old)
	return true
}

// becomeMain is the rest of a start once this daemon is the one serving.
func (d *Daemon) becomeMain(services, old int) {
	// Requests that came meanwhile wait in the control socket's backlog.
	d.startControl()
	d.up.store.release()
	sdNotify("READY=1\nSTATUS=" + fmt.Sprintf("serving %d services", services))
	if old > 0 {
		d.log.Logf(logging.LevelNotice, "upgrade", "serving in place of pid %d", old)
	}
}

// closeUnusedInherited closes what was taken over and is not used after
// the first configuration: a metrics listener on an address that changed.
func (u *upgradeState) closeUnusedInherited() {
	if u.metricsLn != nil {
		u.metricsLn.Close()
		u.metricsLn = nil
	}
}

// takeMetricsListener returns the metrics listener taken over for addr,
// if any.
func (u *upgradeState) takeMetricsListener(addr string) net.Listener {
	if u.metricsLn == nil || u.metricsAddr != addr {
		return nil
	}
	ln := u.metricsLn
	u.metricsLn = nil
	return ln
}

// adoptStored takes a descriptor systemd passed back from the store (a
// restart) into the pool, as a hand-over's; it reports false for names
// gxinetd did not give.
func (d *Daemon) adoptStored(fd int, name string) bool {
	info, err := parseFDName(name)
	if !info.ours {
		return false
	}
	k, kerr := storedKey(fd, info)
	if err == nil {
		err = kerr
	}
	if err != nil {
		d.log.Logf(logging.LevelWarning, "activate", "closing stored descriptor %d (%s): %v", fd, name, err)
		// Not usable, so not wanted in the store either.
		go func() {
			var n notifier
			n.send("FDSTOREREMOVE=1\nFDNAME="+name, -1)
			n.close()
		}()
		unix.Close(fd)
		return true
	}
	unix.SetNonblock(fd, true)
	sk, err := wrapSock(fd, k)
	if err != nil {
		return true
	}
	d.up.store.adopt(sk)
	if d.up.inherited == nil {
		d.up.inherited = map[sockKey]*sock{}
	}
	d.up.inherited[k] = sk
	return true
}

// storedKey is the key of a socket passed back from the store: what the
// socket is bound to, and what its name adds (the V6ONLY asked for, the
// RPC service it belongs to).
func storedKey(fd int, info fdNameInfo) (sockKey, error) {
	k, err := sockKeyOfFD(fd)
	if err != nil {
		return k, err
	}
	if k.family == unix.AF_INET6 && k.addr.IsValid() && k.addr.IsLinkLocalUnicast() {
		if sa, err := unix.Getsockname(fd); err == nil {
			if a, ok := sa.(*unix.SockaddrInet6); ok && a.ZoneId != 0 {
				k.addr = k.addr.WithZone(zoneName(a.ZoneId))
			}
		}
	}
	if k.family == unix.AF_INET6 && info.v6only >= 0 {
		k.v6only = info.v6only
	}
	if info.rpc != "" {
		// RPC services ask for port 0, and the key says whose it is.
		k.port, k.rpc = 0, info.rpc
	}
	return k, nil
}

// handoverAccepts is a successor's check of the configuration. It is
// refused when it cannot be served at all, or when an error in it would
// make the new daemon drop a service the old one serves: a reload would
// keep that service's running definition, which a new process cannot.
// The old daemon keeps serving, and the reasons go back to it (and to
// -upgrade). Errors in entries the old daemon does not serve either (new
// ones, or ones it rejected too) only leave those out, as at a start.
func (d *Daemon) handoverAccepts(cfg *service.Config) bool {
	in := d.up.in
	if in == nil {
		return true
	}
	lost := map[string]bool{}
	if cfg.Usable() {
		for _, s := range cfg.Services {
			if s.Status == service.StatusRejected && (in.serving[strings.ToLower(s.ID)] || in.serving[strings.ToLower(s.Name)]) {
				lost[strings.ToLower(s.ID)], lost[strings.ToLower(s.Name)] = true, true
			}
		}
		if len(lost) == 0 {
			return true
		}
	}
	var lines []string
	for _, dg := range cfg.Diags {
		if dg.Severity == service.SevError && (!cfg.Usable() || lost[strings.ToLower(dg.Service)]) {
			lines = append(lines, dg.String())
		}
	}
	n := len(lines)
	if n > 20 {
		lines = append(lines[:20], fmt.Sprintf("... and %d more", n-20))
	}
	what := "the configuration cannot be used"
	if cfg.Usable() {
		what = "the configuration rejects services pid " + strconv.Itoa(in.old) + " serves"
	}
	d.log.Logf(logging.LevelCrit, "upgrade", "not taking over from pid %d: %s", in.old, what)
	in.conn.send(&hoMsg{Type: "failed", Reason: what + ":\n" + strings.Join(lines, "\n")}, nil)
	in.conn.close()
	d.up.in = nil
	return false
}

// endPredecessorHolders is a stop's end of the servers a predecessor left
// holding wait=yes sockets (their gates still closed): as the daemon's
// own, they get SIGTERM, and SIGKILL after the grace period, so the next
// daemon finds every socket free. They are not our children; their
// pidfds name them, and the process group is signalled only while the
// leader provably exists.
func (d *Daemon) endPredecessorHolders(all []*sockRun) {
	var files []*os.File
	for _, sr := range all {
		for _, fd := range sr.s.gate.pending() {
			files = append(files, os.NewFile(uintptr(fd), "pidfd"))
		}
	}
	if len(files) == 0 {
		return
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	signal := func(f *os.File, sig unix.Signal) {
		rc, err := f.SyscallConn()
		if err != nil {
			return
		}
		rc.Control(func(fd uintptr) {
			if pidfdExited(int(fd)) {
				return
			}
			pid := pidfdPid(int(fd))
			if unix.PidfdSendSignal(int(fd), sig, nil, 0) == nil && pid > 0 {
				unix.Kill(-pid, sig)
			}
		})
	}
	for _, f := range files {
		rc, _ := f.SyscallConn()
		rc.Control(func(fd uintptr) {
			d.log.Logf(logging.LevelWarning, "terminate", "Sending signal %d to server %d (a wait=yes server of the previous daemon)", int(unix.SIGTERM), pidfdPid(int(fd)))
		})
		signal(f, unix.SIGTERM)
	}
	deadline := time.Now().Add(d.o.Grace)
	for _, f := range files {
		f.SetReadDeadline(deadline)
		waitPidfd(f)
		signal(f, unix.SIGKILL)
	}
}

// pidfdPid reads the pid a pidfd names (its fdinfo's Pid: line), 0 when
// unknown or gone.
func pidfdPid(fd int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return max(n, 0)
		}
	}
	return 0
}
