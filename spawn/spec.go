package spawn

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
)

// Conn describes the request a server is started for. Remote is
// meaningless unless RemoteKnown: a wait=yes stream server gets the
// listening socket and nobody has accepted the client yet.
type Conn struct {
	Remote, Local netip.AddrPort
	RemoteKnown   bool
	// Proxy is the load balancer the connection came through when a
	// PROXY protocol header named Remote and Local; the server's
	// environment does not show it (only the daemon's records do).
	Proxy netip.AddrPort
	// Peer is the peer of a unix-domain connection (SO_PEERCRED), nil
	// when unknown.
	Peer *service.PeerCred
	// Over holds per-request changes to the process, nil for none.
	Over *Overrides
}

// Overrides change one request's process: the tcp_wrappers process
// options (hosts_options(5) nice, umask, user, setenv) of the rule that
// allowed it, which tcpd would have applied to itself before running the
// server.
type Overrides struct {
	Nice  int   // added to the service's own nice
	Umask *int  // replaces the umask
	Cred  *Cred // replaces the credentials (nil: unchanged)
	// Env holds NAME=VALUE assignments; they replace variables of the
	// same name, but never the connection's variables.
	Env []string
}

// Spec is everything Start needs to run one server. The zero value of
// every optional field means "leave as the daemon has it", except Umask,
// whose "leave" value is -1 because 0 is a real umask.
type Spec struct {
	Path string
	Argv []string
	Env  []string

	Cred    *Cred    // nil: keep the daemon's credentials and groups
	Umask   int      // -1: inherit the daemon's
	Nice    *int     // added to the daemon's niceness, as nice(2) does
	Rlimits []Rlimit // each applied with soft = hard = Value
	Dir     string   // working directory; "" means "/"

	test      int           // tests: cloneTest* switches for this start only
	testBound time.Duration // tests: execTimeout for this start only

	// Sandbox isolates the server (sandbox.go); nil for none.
	Sandbox *Sandbox
}

// Cred is the identity a server runs with. Groups nil or empty means no
// supplementary groups at all, never "keep the daemon's".
type Cred struct {
	UID, GID uint32
	Groups   []uint32
}

// Rlimit is one resource limit. Resource is a unix.RLIMIT_* constant and
// Value may be unix.RLIM_INFINITY or InheritHard.
type Rlimit struct {
	Resource int
	Value    uint64
	// BestEffort makes Value a ceiling rather than a demand: where the
	// daemon may not raise its hard limit that far (the kernel's
	// fs.nr_open, or no CAP_SYS_RESOURCE), the server gets the hard
	// limit the daemon has instead of failing to start. BuildSpec sets
	// it for rlimit_files.
	BestEffort bool
}

// InheritHard as an Rlimit's Value sets the soft and the hard limit to
// the hard limit the daemon has when Start runs, not when the Spec was
// made: the daemon's limit may have been lowered since (prlimit(1)), and
// a Spec holding the old value would then fail every start of a daemon
// that may not raise a hard limit, until the next reload.
const InheritHard uint64 = 1<<64 - 2

// rlimitNames names the limits gxinetd sets, for messages and tests.
var rlimitNames = map[int]string{
	unix.RLIMIT_AS:     "as",
	unix.RLIMIT_CPU:    "cpu",
	unix.RLIMIT_DATA:   "data",
	unix.RLIMIT_RSS:    "rss",
	unix.RLIMIT_STACK:  "stack",
	unix.RLIMIT_NOFILE: "files",
}

func rlimitName(r int) string {
	if n, ok := rlimitNames[r]; ok {
		return n
	}
	return "resource " + strconv.Itoa(r)
}

// hostEnv is what BuildSpec needs to know about the daemon process and
// the kernel; tests replace it to see how a non-root daemon behaves.
type hostEnv struct {
	euid, egid int
	umask      int    // the daemon's umask, -1 when it cannot be read
	nrOpen     uint64 // the kernel's fs.nr_open
}

func currentHost() hostEnv {
	h := hostEnv{euid: syscall.Geteuid(), egid: syscall.Getegid(), umask: -1, nrOpen: NrOpen()}
	if st, err := cachedProcStatus(); err == nil {
		h.umask = st.umask
	}
	return h
}

// defaultNrOpen is the kernel's default fs.nr_open, used when
// /proc/sys/fs/nr_open cannot be read.
const defaultNrOpen = 1 << 20

var nrOpenCache atomic.Uint64

// NrOpen is the kernel's fs.nr_open: the most descriptors any process
// may have, and so the highest RLIMIT_NOFILE the kernel accepts, even
// from root. It is read once (until Refresh).
func NrOpen() uint64 {
	if n := nrOpenCache.Load(); n != 0 {
		return n
	}
	n := uint64(defaultNrOpen)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 {
			n = v
		}
	}
	nrOpenCache.Store(n)
	return n
}

// BuildSpec turns an exec'd service and one request into a Spec, the way
// xinetd's child prepares itself (xinetd.md §8): argv as the parser built
// it, the environment of §8.5 plus the connection variables, credentials
// (only when the daemon is root), umask, nice and rlimits. startEnv is the
// daemon's environment as it was at start-up; db resolves the user's
// primary group and, with groups = yes, its supplementary groups (nil
// means the real system).
func BuildSpec(svc *service.Service, c Conn, startEnv []string, db *sysdb.DB) (Spec, error) {
	t, err := NewTemplate(svc, startEnv, db)
	if err != nil {
		return Spec{}, err
	}
	return t.Spec(c), nil
}

func buildSpec(svc *service.Service, c Conn, startEnv []string, db *sysdb.DB, h hostEnv) (Spec, error) {
	t, err := newTemplate(svc, startEnv, db, h)
	if err != nil {
		return Spec{}, err
	}
	return t.Spec(c), nil
}

// Template is the part of a service's Spec that is the same for every
// request: BuildSpec without the connection. The daemon keeps one per
// loaded service, so a request costs only its own few variables; a
// reload (and with it a new user or group database) makes new ones.
type Template struct {
	svc  *service.Service
	spec Spec // Env is the environment before the connection's variables
	// connNamed marks the entries of spec.Env that a connection variable
	// may replace.
	connNamed []bool
}

// NewTemplate prepares the Specs of svc (see BuildSpec).
func NewTemplate(svc *service.Service, startEnv []string, db *sysdb.DB) (*Template, error) {
	return newTemplate(svc, startEnv, db, currentHost())
}

func newTemplate(svc *service.Service, startEnv []string, db *sysdb.DB, h hostEnv) (*Template, error) {
	if db == nil {
		db = sysdb.System
	}
	if svc.Server == "" {
		return nil, fmt.Errorf("spawn: service %s: no server to execute", svc.ID)
	}
	spec := Spec{Path: svc.Server, Umask: -1, Dir: "/"}
	spec.Argv = append([]string(nil), svc.Argv...)
	if len(spec.Argv) == 0 {
		// xinetd would exec with an empty argv here (NAMEINARGS placed
		// after server_args); giving the program its own name is what
		// every server expects.
		spec.Argv = []string{filepath.Base(svc.Server)}
	}
	spec.Env = baseEnv(svc, startEnv)

	cred, err := buildCred(svc, db, h.euid)
	if err != nil {
		return nil, err
	}
	spec.Cred = cred

	switch {
	case svc.Umask != nil:
		spec.Umask = int(*svc.Umask & 0o777)
	case h.umask >= 0 && h.umask|0o022 != h.umask:
		// xinetd runs with start-up umask | 022 and its children inherit
		// that; gxinetd never changes its own umask, so the child gets
		// the same value here.
		spec.Umask = h.umask | 0o022
	}
	if svc.Nice != nil && *svc.Nice != 0 {
		n := *svc.Nice
		spec.Nice = &n
	}
	spec.Rlimits = buildRlimits(svc.Rlim.Get(), h.nrOpen)
	if spec.Sandbox, err = buildSandbox(&svc.Sandbox, h); err != nil {
		return nil, fmt.Errorf("spawn: service %s: %w", svc.ID, err)
	}
	t := &Template{svc: svc, spec: spec, connNamed: make([]bool, len(spec.Env))}
	for i, kv := range spec.Env {
		t.connNamed[i] = connVars[envName(kv)]
	}
	return t, nil
}

// Service is the service the template was made for.
func (t *Template) Service() *service.Service { return t.svc }

// Spec completes the template for one request. The Spec shares the
// template's argv, credentials and limits: Start only reads them.
func (t *Template) Spec(c Conn) Spec {
	spec := t.spec
	spec.Env = t.env(c)
	if o := c.Over; o != nil {
		if o.Nice != 0 {
			n := o.Nice
			if spec.Nice != nil {
				n += *spec.Nice
			}
			spec.Nice = &n
		}
		if o.Umask != nil {
			spec.Umask = *o.Umask & 0o777
		}
		if o.Cred != nil {
			spec.Cred = o.Cred
		}
	}
	return spec
}

func (t *Template) env(c Conn) []string {
	conn := connEnv(t.svc, c)
	env := make([]string, 0, len(t.spec.Env)+len(conn))
	for i, kv := range t.spec.Env {
		if t.connNamed[i] && setsName(conn, envName(kv)) {
			continue
		}
		env = append(env, kv)
	}
	if c.Over != nil {
		for _, kv := range c.Over.Env {
			if !connVars[envName(kv)] {
				env = setEnv(env, kv)
			}
		}
	}
	return append(env, conn...)
}

func setsName(vars []string, name string) bool {
	for _, kv := range vars {
		if envName(kv) == name {
			return true
		}
	}
	return false
}

// connVars are the names connEnv may set.
var connVars = map[string]bool{
	"REMOTE_HOST": true, "REMOTE_PORT": true, "LOCAL_HOST": true, "LOCAL_PORT": true, "PROTO": true,
	"TCPREMOTEIP": true, "TCPREMOTEPORT": true, "TCPLOCALIP": true, "TCPLOCALPORT": true,
	"UNIXLOCALPATH": true, "UNIXREMOTEEUID": true, "UNIXREMOTEEGID": true, "UNIXREMOTEPID": true,
}

// buildRlimits lists the rlimit_* attributes in xinetd's order. A limit
// written as 0 counts as not set. RLIMIT_NOFILE is always forced: to
// the daemon's own hard limit when rlimit_files is absent, as xinetd
// does (as it is at each start: InheritHard), and never above the
// kernel's fs.nr_open, which no process may exceed (UNLIMITED means
// nr_open; see CheckLimits).
func buildRlimits(r service.Rlimits, nrOpen uint64) []Rlimit {
	value := func(l service.Rlimit) (uint64, bool) {
		switch {
		case !l.Set:
			return 0, false
		case l.Infinity:
			return unix.RLIM_INFINITY, true
		case l.Value == 0:
			return 0, false
		}
		return l.Value, true
	}
	var out []Rlimit
	if v, ok := value(r.Files); ok {
		out = append(out, Rlimit{Resource: unix.RLIMIT_NOFILE, Value: min(v, nrOpen), BestEffort: true})
	} else {
		out = append(out, Rlimit{Resource: unix.RLIMIT_NOFILE, Value: InheritHard})
	}
	for _, l := range []struct {
		res int
		lim service.Rlimit
	}{
		{unix.RLIMIT_AS, r.AS},
		{unix.RLIMIT_CPU, r.CPU},
		{unix.RLIMIT_DATA, r.Data},
		{unix.RLIMIT_RSS, r.RSS},
		{unix.RLIMIT_STACK, r.Stack},
	} {
		if v, ok := value(l.lim); ok {
			out = append(out, Rlimit{Resource: l.res, Value: v})
		}
	}
	return out
}

// CheckLimits says where the spawner gives svc's servers fewer
// descriptors than rlimit_files asks for. rlimit_files is a ceiling (the
// Rlimit is BestEffort): no process may have more than the kernel's
// fs.nr_open, even root's, so UNLIMITED and anything above nr_open mean
// nr_open; and where the daemon may not raise its own hard limit (it
// lacks CAP_SYS_RESOURCE, as every non-root daemon does), servers get
// that hard limit instead. Every start would fail otherwise. The daemon
// adds these warnings when it loads a configuration, so the check mode
// (-t) shows them, judged with its own privileges and limits.
//
// A service without rlimit_files (nearly all) costs no system call: the
// daemon asks this for every service it loads, and two calls each were
// 2,000 of a 1,000-service start-up's.
func CheckLimits(svc *service.Service) []service.Diag {
	if !filesLimited(svc) {
		return nil
	}
	hard, mayRaise := hostLimits()
	return checkLimits(svc, NrOpen(), hard, mayRaise)
}

// hostLimits is this process's hard descriptor limit and whether it may
// raise it (a variable so a test can count the probes).
var hostLimits = func() (hard uint64, mayRaise bool) {
	hard = uint64(unix.RLIM_INFINITY)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
		hard = lim.Max
	}
	return hard, mayRaiseLimits()
}

// filesLimited reports whether svc sets rlimit_files (0 means unset).
func filesLimited(svc *service.Service) bool {
	f := svc.Rlim.Get().Files
	return f.Set && (f.Infinity || f.Value != 0)
}

func checkLimits(svc *service.Service, nrOpen, hard uint64, mayRaise bool) []service.Diag {
	if !filesLimited(svc) {
		return nil
	}
	f := svc.Rlim.Get().Files
	v, written := f.Value, strconv.FormatUint(f.Value, 10)
	if f.Infinity {
		v, written = unix.RLIM_INFINITY, "UNLIMITED"
	}
	var msg string
	switch h := strconv.FormatUint(hard, 10); {
	case min(v, nrOpen) > hard && !mayRaise:
		msg = written + " is more than gxinetd's own hard limit (" + h +
			"), which it may not raise (no CAP_SYS_RESOURCE): servers get " + h
	case v > nrOpen:
		n := strconv.FormatUint(nrOpen, 10)
		msg = written + " is more than the kernel allows any process (fs.nr_open = " + n + "): servers get " + n
	default:
		return nil
	}
	pos, ok := svc.Origins.Get("rlimit_files")
	if !ok || pos.IsZero() {
		pos = svc.Src
	}
	return []service.Diag{{Pos: pos, Severity: service.SevWarning, Code: "W-RLIMIT", Service: svc.ID,
		Attr: "rlimit_files", Msg: msg}}
}

// mayRaiseLimits reports whether this process may raise a hard resource
// limit: CAP_SYS_RESOURCE in its effective set.
func mayRaiseLimits() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return syscall.Geteuid() == 0
	}
	const c = unix.CAP_SYS_RESOURCE
	return data[c/32].Effective&(1<<(c%32)) != 0
}

// errNoUser is the getpwuid failure of groups = yes for a uid that has no
// passwd entry.
var errNoUser = errors.New("no such user")

// buildCred follows xinetd's set_credentials (xinetd.md §8 step 3, §8.2).
func buildCred(svc *service.Service, db *sysdb.DB, euid int) (*Cred, error) {
	if svc.User == nil && svc.Group == nil {
		return nil, nil
	}
	if euid != 0 {
		// Not root: user and group cannot take effect. xinetd's manual
		// says they are then ineffective (its code makes the child fail
		// setuid instead); gxinetd does what the manual says, so an
		// unprivileged gxinetd (make run, tests, per-user daemons) can
		// serve configurations written for root. The daemon warns.
		return nil, nil
	}
	c := &Cred{UID: uint32(euid), GID: uint32(syscall.Getegid())}
	if svc.User != nil {
		c.UID = uint32(svc.User.ID)
		c.GID = uint32(primaryGID(svc.User, db))
	}
	if svc.Group != nil {
		c.GID = uint32(svc.Group.ID)
	}
	if svc.Groups && svc.User != nil {
		// initgroups(pw_name, pw_gid): the passwd entry of the uid,
		// whatever `group` says.
		u, ok := db.LookupUID(svc.User.ID)
		if !ok {
			return nil, &StartError{Step: "getpwuid", Arg: strconv.Itoa(svc.User.ID), Err: errNoUser}
		}
		for _, g := range db.GroupIDs(u.Name, u.GID) {
			c.Groups = append(c.Groups, uint32(g))
		}
	}
	return c, nil
}

// primaryGID is the gid xinetd uses when only `user` is given: the same
// number for a numeric user, the passwd primary group for a name.
func primaryGID(u *service.Cred, db *sysdb.DB) int {
	if u.Name == "" || isDigits(u.Name) {
		return u.ID
	}
	if pw, ok := db.LookupUser(u.Name); ok {
		return pw.GID
	}
	if pw, ok := db.LookupUID(u.ID); ok {
		return pw.GID
	}
	return u.ID
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// BuildEnv is the server environment of xinetd.md §8.5 followed by the
// connection variables. The parser has already merged the defaults'
// passenv into svc.PassEnv: nil passes the whole start-up environment, an
// empty list passes nothing. `env` strings replace variables of the same
// name. The connection variables come last and replace anything of the
// same name, so a server can trust them.
func BuildEnv(svc *service.Service, c Conn, startEnv []string) []string {
	env := baseEnv(svc, startEnv)
	for _, kv := range connEnv(svc, c) {
		env = append(unsetEnv(env, envName(kv)), kv)
	}
	return env
}

// baseEnv is a server's environment before the connection's variables:
// the daemon's start-up environment (all of it, or only passenv's names)
// with env's assignments.
func baseEnv(svc *service.Service, startEnv []string) []string {
	env := make([]string, 0, len(startEnv)+len(svc.Env)+12)
	if svc.PassEnv == nil {
		env = append(env, startEnv...)
	} else {
		for _, kv := range startEnv {
			name := envName(kv)
			for _, p := range svc.PassEnv {
				if p == name {
					env = append(env, kv)
					break
				}
			}
		}
	}
	for _, kv := range svc.Env {
		env = setEnv(env, kv)
	}
	return env
}

// connEnv lists the variables describing the connection. REMOTE_HOST is
// xinetd's (the address exactly as the socket reports it, v4-mapped for
// IPv4 clients of a dual-stack listener); the UCSPI TCP* set uses plain
// IPv4 text as tcpserver does.
func connEnv(svc *service.Service, c Conn) []string {
	if svc.Family == service.FamilyUnix {
		return unixEnv(svc, c)
	}
	remote := "<no address>"
	if c.RemoteKnown && c.Remote.IsValid() {
		remote = c.Remote.Addr().String()
	}
	out := []string{"REMOTE_HOST=" + remote}
	known := c.RemoteKnown && c.Remote.IsValid()
	if known {
		out = append(out, "REMOTE_PORT="+strconv.Itoa(int(c.Remote.Port())))
	}
	if c.Local.IsValid() {
		out = append(out, "LOCAL_HOST="+c.Local.Addr().String(), "LOCAL_PORT="+strconv.Itoa(int(c.Local.Port())))
	}
	if strings.HasPrefix(svc.Network(), "tcp") {
		out = append(out, "PROTO=TCP")
		if known {
			out = append(out, "TCPREMOTEIP="+c.Remote.Addr().Unmap().String(),
				"TCPREMOTEPORT="+strconv.Itoa(int(c.Remote.Port())))
		}
		if c.Local.IsValid() {
			out = append(out, "TCPLOCALIP="+c.Local.Addr().Unmap().String(),
				"TCPLOCALPORT="+strconv.Itoa(int(c.Local.Port())))
		}
	}
	return out
}

// unixEnv describes a unix-domain connection with ucspi-unix's names:
// the socket's path and, when the daemon accepted the connection, the
// peer's effective uid, gid and pid.
func unixEnv(svc *service.Service, c Conn) []string {
	out := []string{"PROTO=UNIX", "UNIXLOCALPATH=" + svc.UnixPath}
	if p := c.Peer; p != nil {
		out = append(out, "UNIXREMOTEEUID="+strconv.Itoa(p.UID), "UNIXREMOTEEGID="+strconv.Itoa(p.GID),
			"UNIXREMOTEPID="+strconv.Itoa(p.PID))
	}
	return out
}

func envName(kv string) string {
	if i := strings.IndexByte(kv, '='); i >= 0 {
		return kv[:i]
	}
	return kv
}

// setEnv replaces the first variable named like kv in place and drops
// later duplicates, or appends kv.
func setEnv(env []string, kv string) []string {
	name := envName(kv)
	out := env[:0]
	done := false
	for _, e := range env {
		if envName(e) == name {
			if done {
				continue
			}
			e, done = kv, true
		}
		out = append(out, e)
	}
	if !done {
		out = append(out, kv)
	}
	return out
}

func unsetEnv(env []string, name string) []string {
	out := env[:0]
	for _, e := range env {
		if envName(e) != name {
			out = append(out, e)
		}
	}
	return out
}
