package inetd

import (
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/gxinetd/gxinetd/internal/service"
)

// unset marks a limit the entry did not write.
const unset = -1

// maxCount bounds every number in an entry; nothing real comes close.
const maxCount = 1_000_000_000

// addrSpec is one listen address: a literal, a host name, or any.
type addrSpec struct {
	text string     // as written ("*" for any)
	addr netip.Addr // set for literals
	any  bool
	src  service.Source
	flag bool // from Options.BindAddr
}

// vals is one entry's fields, read but not yet resolved per address.
type vals struct {
	name    string
	nameTok token
	addrs   []addrSpec // from the line's own prefix; nil means the default

	rpc          bool
	rpcNum       int
	rpcLo, rpcHi int
	unlisted     bool
	port         int
	tcpmux       service.TypeFlags // TypeTCPMux or TypeTCPMuxPlus for tcpmux/NAME lines

	unix      bool
	unixPath  string
	unixOwner *service.Cred
	unixGroup *service.Cred
	unixMode  uint32

	sock      service.SocketType
	acceptMax int

	protoText string // as written, without options
	proto     string // tcp, udp, unix, or an /etc/protocols name
	protoNum  int
	famSuffix string // "", "4", "6", "46"
	sndbuf    int
	rcvbuf    int
	// PROXY protocol options (gxinetd's, in the protocol field).
	proxyProto   service.ProxyVersions
	proxyFrom    service.AddrList
	proxyTimeout int

	wait       bool
	perMinute  int
	maxChild   int
	perIPMin   int
	maxChildIP int

	user       *service.Cred
	group      *service.Cred
	groupSet   bool
	loginClass string

	internal bool
	builtin  string
	server   string
	argv     []string

	origins map[string]service.Source
}

// line collects one entry's diagnostics. Errors reject the entry.
type line struct {
	p    *parser
	name string
	errs service.Diags
}

func (l *line) add(sev service.Severity, code string, pos service.Source, attr, msg string) {
	d := service.Diag{Pos: pos, Severity: sev, Code: code, Service: l.name, Attr: attr, Msg: msg}
	l.p.diags = append(l.p.diags, d)
	if sev == service.SevError {
		l.errs = append(l.errs, d)
	}
}

func (l *line) errorf(code string, t token, attr, format string, a ...any) {
	l.add(service.SevError, code, l.p.pos(t.line, t.col), attr, fmt.Sprintf(format, a...))
}

func (l *line) warnf(code string, t token, attr, format string, a ...any) {
	l.add(service.SevWarning, code, l.p.pos(t.line, t.col), attr, fmt.Sprintf(format, a...))
}

func (l *line) notef(t token, attr, format string, a ...any) {
	l.add(service.SevNotice, CodeDialectNotice, l.p.pos(t.line, t.col), attr, fmt.Sprintf(format, a...))
}

// sub returns the token for a part of t starting at byte offset off.
func sub(t token, off int) token {
	c := t.col + off
	if t.quoted {
		c++
	}
	return token{text: t.text[off:], line: t.line, col: c}
}

// parseCount reads a non-negative decimal count.
func parseCount(s string) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > maxCount {
		return 0, false
	}
	return n, true
}

// parseAddrList reads `a,b,[v6],*` (the part before the last colon).
func (l *line) parseAddrList(t token, text string) ([]addrSpec, bool) {
	var out []addrSpec
	ok := true
	off := 0
	for _, a := range strings.Split(text, ",") {
		at := sub(t, 0)
		at.col += off
		off += len(a) + 1
		spec, good := parseAddr(a)
		if !good {
			l.errorf(CodeAddr, at, "bind", "bad listen address %q", a)
			ok = false
			continue
		}
		spec.src = l.p.pos(at.line, at.col)
		out = append(out, spec)
	}
	return out, ok
}

// parseAddr reads one listen address: *, a literal (IPv6 with or without
// brackets), or a host name.
func parseAddr(a string) (addrSpec, bool) {
	if a == "*" {
		return addrSpec{text: a, any: true}, true
	}
	lit := a
	if strings.HasPrefix(lit, "[") && strings.HasSuffix(lit, "]") {
		lit = lit[1 : len(lit)-1]
	}
	if ip, err := netip.ParseAddr(lit); err == nil {
		if ip.IsUnspecified() {
			return addrSpec{text: a, any: true, addr: ip}, true
		}
		return addrSpec{text: lit, addr: ip}, true
	}
	if !validHost(a) {
		return addrSpec{}, false
	}
	return addrSpec{text: a}, true
}

// validHost accepts host names as resolvers do: letters, digits, '-',
// '_' and dots, not starting with a dot or a dash.
func validHost(h string) bool {
	if h == "" || len(h) > 253 || h[0] == '.' || h[0] == '-' {
		return false
	}
	digitsOnly := true
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
			digitsOnly = false
		case c >= '0' && c <= '9', c == '.':
		default:
			return false
		}
	}
	return !digitsOnly
}

// serviceField reads field 1: [addr:]name, name/ver, tcpmux/[+]name, or
// (for unix) [:user:group:mode:]path.
func (l *line) serviceField(t token, v *vals) {
	text := t.text
	if v.unix {
		l.unixField(t, v)
		return
	}
	nameOff := 0
	if i := addrSplit(text); i >= 0 {
		l.name = text[i+1:]
		addrs, ok := l.parseAddrList(t, text[:i])
		if ok {
			v.addrs = addrs
		}
		nameOff = i + 1
		if !l.p.d.addrPrefix {
			l.notef(t, "bind", "listen-address prefix %q is not %s syntax (FreeBSD has only -a); read as OpenBSD does", text[:i+1], l.p.d.name)
		}
	}
	name := text[nameOff:]
	nt := sub(t, nameOff)
	v.nameTok = nt
	if name == "" {
		l.errorf(CodeService, nt, "", "missing service name after %q", text[:nameOff])
		return
	}
	v.name = name
	l.name = name
	switch {
	case strings.HasPrefix(name, "tcpmux/"):
		rest := name[len("tcpmux/"):]
		v.tcpmux = service.TypeTCPMux
		if strings.HasPrefix(rest, "+") {
			v.tcpmux = service.TypeTCPMuxPlus
			rest = rest[1:]
		}
		if rest == "" || strings.ContainsAny(rest, "/+") {
			l.errorf(CodeTCPMux, nt, "", "bad tcpmux service %q: want tcpmux/NAME or tcpmux/+NAME", name)
			return
		}
		v.name = rest
		l.name = rest
	case v.rpc:
		i := strings.IndexByte(name, '/')
		if i < 0 {
			l.errorf(CodeRPC, nt, "rpc_version", "RPC service %q has no version: want NAME/VERSION or NAME/LOW-HIGH", name)
			return
		}
		v.name = name[:i]
		l.name = v.name
		l.rpcField(sub(nt, 0), name[:i], sub(nt, i+1), v)
	case strings.ContainsRune(name, '/'):
		l.errorf(CodeService, nt, "", "service %q contains '/', which only RPC (rpc/tcp, rpc/udp) and tcpmux/NAME entries may", name)
	}
}

// addrSplit returns the index of the colon that ends a listen-address
// prefix, or -1. Names never contain ':', so the last colon ends the
// prefix; `[v6]:` is found by its bracket.
func addrSplit(s string) int {
	if strings.HasPrefix(s, "[") {
		if i := strings.Index(s, "]:"); i >= 0 {
			return i + 1
		}
	}
	return strings.LastIndexByte(s, ':')
}

func (l *line) rpcField(nt token, name string, vt token, v *vals) {
	if n, ok := parseCount(name); ok {
		v.rpcNum = n
		v.unlisted = true
	} else if n, ok := l.p.sys.RPC(name); ok {
		v.rpcNum = n
	} else if l.p.opt.KeepUnknownNames {
		l.unknownName(CodeRPC, nt, "", name, "rpc")
	} else {
		l.errorf(CodeRPC, nt, "", "unknown RPC program %q (not in %s/rpc, not a number)", name, l.p.etc())
	}
	ver := vt.text
	lo, hi := ver, ver
	if i := strings.IndexByte(ver, '-'); i >= 0 {
		lo, hi = ver[:i], ver[i+1:]
	}
	a, ok1 := parseCount(lo)
	b, ok2 := parseCount(hi)
	if !ok1 || !ok2 || a > b {
		l.errorf(CodeRPC, vt, "rpc_version", "bad RPC version %q: want N or LOW-HIGH with LOW <= HIGH", ver)
		return
	}
	v.rpcLo, v.rpcHi = a, b
	v.origins["rpc_version"] = l.p.pos(vt.line, vt.col)
}

// unixField reads FreeBSD's [:user:group:mode:]/path.
func (l *line) unixField(t token, v *vals) {
	text := t.text
	off := 0
	v.unixMode = 0o200
	if strings.HasPrefix(text, ":") {
		parts := strings.SplitN(text[1:], ":", 4)
		l.name = parts[len(parts)-1]
		if len(parts) != 4 {
			l.errorf(CodeUnix, t, "", "bad unix socket %q: the prefix is :user:group:mode: before the path", text)
			return
		}
		off = 1
		if parts[0] != "" {
			if c, ok := l.lookupUser(parts[0]); ok {
				v.unixOwner = c
			} else {
				v.unixOwner = l.unknownName(CodeUser, sub(t, off), "socket_owner", parts[0], "passwd")
			}
		}
		off += len(parts[0]) + 1
		if parts[1] != "" {
			if c, ok := l.lookupGroup(parts[1]); ok {
				v.unixGroup = c
			} else {
				v.unixGroup = l.unknownName(CodeGroup, sub(t, off), "socket_group", parts[1], "group")
			}
		}
		off += len(parts[1]) + 1
		if parts[2] != "" {
			m, err := strconv.ParseUint(parts[2], 8, 32)
			if err != nil || m > 0o777 {
				l.errorf(CodeUnix, sub(t, off), "", "bad unix socket mode %q: want octal 0-777", parts[2])
			} else {
				v.unixMode = uint32(m)
			}
		}
		off += len(parts[2]) + 1
		text = parts[3]
	}
	pt := sub(t, off)
	v.nameTok = pt
	v.name = text
	l.name = text
	v.unixPath = text
	if !strings.HasPrefix(text, "/") || len(text) > 107 {
		l.errorf(CodeUnix, pt, "", "unix socket path %q must be absolute and at most 107 bytes", text)
	}
}

// sockField reads field 2: socktype[,accept-max][:accept-filter] (the
// options are NetBSD's).
func (l *line) sockField(t token, v *vals) {
	text := t.text
	if i := strings.IndexByte(text, ':'); i >= 0 {
		l.warnf(CodeAcceptFilter, sub(t, i+1), "socket_type", "accept filter %q is not supported: connections are accepted without it", text[i+1:])
		text = text[:i]
	}
	if i := strings.IndexByte(text, ','); i >= 0 {
		n, ok := parseCount(text[i+1:])
		if !ok {
			l.errorf(CodeSockType, sub(t, i+1), "instances", "bad accept-max %q: want a number", text[i+1:])
		} else {
			v.acceptMax = n
			v.origins["accept_max"] = l.p.pos(t.line, t.col+i+1)
		}
		if l.p.d.name != "netbsd" {
			l.notef(t, "instances", "socket-type option %q is NetBSD's accept-max (concurrent connections); read as NetBSD does", text[i:])
		}
		text = text[:i]
	}
	st, ok := service.ParseSocketType(text)
	if !ok || text != strings.ToLower(text) {
		l.errorf(CodeSockType, t, "socket_type", "unknown socket type %q: want stream, dgram, raw, rdm or seqpacket", text)
		return
	}
	v.sock = st
	v.origins["socket_type"] = l.p.pos(t.line, t.col)
}

// protoField reads field 3: [rpc/]proto[4|6|46][,sndbuf=N][,rcvbuf=N],
// or unix.
func (l *line) protoField(t token, v *vals) {
	parts := strings.Split(t.text, ",")
	// Protocol names are case-insensitive, as in /etc/protocols lookups
	// and xinetd.
	base := strings.ToLower(parts[0])
	v.protoText = base
	off := len(base) + 1
	for _, o := range parts[1:] {
		ot := sub(t, 0)
		ot.col += off
		off += len(o) + 1
		l.protoOpt(ot, o, v)
	}
	if len(parts) > 1 && !l.p.d.bufOpts {
		l.notef(t, "protocol", "socket buffer options are NetBSD and Debian syntax, not %s; read as they do", l.p.d.name)
	}
	b := base
	if strings.HasPrefix(b, "rpc/") {
		v.rpc = true
		b = b[4:]
	}
	for _, fam := range []struct{ name, proto, suffix string }{
		{"tcp", "tcp", ""}, {"udp", "udp", ""}, {"tcp4", "tcp", "4"}, {"udp4", "udp", "4"},
		{"tcp6", "tcp", "6"}, {"udp6", "udp", "6"}, {"tcp46", "tcp", "46"}, {"udp46", "udp", "46"},
	} {
		if b == fam.name {
			v.proto, v.famSuffix = fam.proto, fam.suffix
		}
	}
	switch {
	case v.proto != "":
	case b == "unix" && !v.rpc:
		v.proto = "unix"
		v.unix = true
	case b == "tcp/faith" || b == "tcp6/faith":
		l.errorf(CodeProto, t, "protocol", "protocol %q: faith has been removed from FreeBSD and is not supported", base)
		return
	default:
		if n, ok := l.p.sys.Protocol(b); ok && !v.rpc && b != "" && !strings.ContainsAny(b, "/") {
			v.proto, v.protoNum = b, n
		} else {
			l.errorf(CodeProto, t, "protocol", "unknown protocol %q: want tcp, udp, tcp4, udp4, tcp6, udp6, tcp46, udp46, rpc/tcp, rpc/udp or unix", base)
			return
		}
	}
	if v.famSuffix == "46" && !l.p.d.dual46 {
		l.notef(t, "protocol", "%s is not %s syntax; read as FreeBSD does: one socket for IPv4 and IPv6", base, l.p.d.name)
	}
	if v.unix && !l.p.d.unixSock {
		l.notef(t, "protocol", "unix sockets are not %s syntax; read as FreeBSD does", l.p.d.name)
	}
	if v.proto == "tcp" || v.proto == "udp" {
		v.protoNum, _ = l.p.sys.Protocol(v.proto)
		if v.protoNum == 0 {
			v.protoNum = map[string]int{"tcp": 6, "udp": 17}[v.proto]
		}
	}
	v.origins["protocol"] = l.p.pos(t.line, t.col)
}

func (l *line) protoOpt(t token, o string, v *vals) {
	k, val, ok := strings.Cut(o, "=")
	if ok && strings.HasPrefix(k, "proxy_") {
		l.proxyOpt(t, k, val, v)
		return
	}
	if !ok || (k != "sndbuf" && k != "rcvbuf") {
		l.errorf(CodeProtoOpt, t, "protocol", "bad protocol option %q: want sndbuf=SIZE or rcvbuf=SIZE", o)
		return
	}
	mult := 1
	switch {
	case strings.HasSuffix(val, "k"), strings.HasSuffix(val, "K"):
		mult, val = 1<<10, val[:len(val)-1]
	case strings.HasSuffix(val, "m"), strings.HasSuffix(val, "M"):
		mult, val = 1<<20, val[:len(val)-1]
	}
	n, good := parseCount(val)
	if !good || n == 0 || n > (1<<31-1)/mult {
		l.errorf(CodeProtoOpt, t, k, "bad %s size %q: want a positive number with an optional k or m suffix, below 2 GiB", k, o[len(k)+1:])
		return
	}
	if k == "sndbuf" {
		v.sndbuf = n * mult
	} else {
		v.rcvbuf = n * mult
	}
	v.origins[k] = l.p.pos(t.line, t.col)
}

// waitField reads field 4: wait|nowait plus FreeBSD /a/b/c, OpenBSD and
// Linux .N, or NetBSD :N.
func (l *line) waitField(t token, v *vals) {
	text := t.text
	lw := strings.ToLower(text)
	var rest string
	switch {
	case strings.HasPrefix(lw, "nowait"):
		rest = text[6:]
	case strings.HasPrefix(lw, "wait"):
		v.wait = true
		rest = text[4:]
	default:
		l.errorf(CodeWait, t, "wait", "bad wait field %q: want wait or nowait", text)
		return
	}
	v.origins["wait"] = l.p.pos(t.line, t.col)
	if rest == "" {
		return
	}
	rt := sub(t, len(text)-len(rest))
	switch rest[0] {
	case '.', ':':
		n, ok := parseCount(rest[1:])
		if !ok {
			l.errorf(CodeWait, rt, "cpm", "bad rate %q after %s: want a number of invocations per minute", rest[1:], text[:len(text)-len(rest)])
			return
		}
		v.perMinute = n
		v.origins["cpm"] = l.p.pos(rt.line, rt.col)
		if rest[0] == '.' && !l.p.d.dotRate {
			l.notef(rt, "cpm", "%q read as OpenBSD and Linux inetd do: at most %d invocations per minute (FreeBSD would refuse the line; its limits are /max-child/...)", rest, n)
		}
		if rest[0] == ':' && !l.p.d.colonRate {
			l.notef(rt, "cpm", "%q read as NetBSD does: at most %d invocations per minute", rest, n)
		}
	case '/':
		parts := strings.Split(rest[1:], "/")
		if len(parts) > 3 {
			l.errorf(CodeWait, rt, "wait", "too many limits in %q: FreeBSD allows /max-child/max-connections-per-ip-per-minute/max-child-per-ip", text)
			return
		}
		names := []string{"instances", "per_source_cpm", "per_source"}
		what := []string{"max-child", "max-connections-per-ip-per-minute", "max-child-per-ip"}
		dst := []*int{&v.maxChild, &v.perIPMin, &v.maxChildIP}
		off := len(text) - len(rest) + 1
		for i, s := range parts {
			pt := sub(t, off)
			off += len(s) + 1
			n, ok := parseCount(s)
			if !ok {
				l.errorf(CodeWait, pt, names[i], "bad %s %q: want a number", what[i], s)
				continue
			}
			*dst[i] = n
			v.origins[names[i]] = l.p.pos(pt.line, pt.col)
		}
		if !l.p.d.slashLimits {
			l.notef(rt, "instances", "%q read as FreeBSD does: /max-child/max-connections-per-ip-per-minute/max-child-per-ip (%s has no such field)", rest, l.p.d.name)
		}
	default:
		l.errorf(CodeWait, t, "wait", "bad wait field %q: want wait or nowait, optionally followed by .RATE, :RATE or /MAX-CHILD...", text)
	}
}

// userField reads field 5: user[:group|.group][/login-class].
func (l *line) userField(t token, v *vals) {
	text := t.text
	if i := strings.LastIndexByte(text, '/'); i >= 0 {
		v.loginClass = text[i+1:]
		ct := sub(t, i+1)
		if v.loginClass == "" {
			l.errorf(CodeUser, ct, "login_class", "empty login class after '/'")
		} else {
			v.origins["login_class"] = l.p.pos(ct.line, ct.col)
			l.warnf(CodeLoginClass, ct, "login_class", "login class %q is not supported: its resource limits, umask, environment and priority are not applied", v.loginClass)
		}
		text = text[:i]
	}
	user, group, hasGroup := text, "", false
	if i := strings.IndexByte(text, ':'); i >= 0 {
		user, group, hasGroup = text[:i], text[i+1:], true
	} else if i := strings.LastIndexByte(text, '.'); i >= 0 {
		if _, known := l.p.sys.LookupUser(text); !known {
			user, group, hasGroup = text[:i], text[i+1:], true
		}
	}
	if user == "" {
		l.errorf(CodeUser, t, "user", "missing user name")
		return
	}
	u, ok := l.lookupUser(user)
	if !ok {
		if u = l.unknownName(CodeUser, t, "user", user, "passwd"); u == nil {
			return
		}
	}
	v.user = u
	v.origins["user"] = l.p.pos(t.line, t.col)
	if hasGroup {
		gt := sub(t, len(user)+1)
		if group == "" {
			l.errorf(CodeGroup, gt, "group", "missing group name after %q", text[:len(user)+1])
			return
		}
		g, ok := l.lookupGroup(group)
		if !ok {
			if g = l.unknownName(CodeGroup, gt, "group", group, "group"); g == nil {
				return
			}
		}
		v.group, v.groupSet = g, true
		v.origins["group"] = l.p.pos(gt.line, gt.col)
		return
	}
	if u.ID < 0 {
		return // unknown here: the primary group is the target host's to find
	}
	gid := u.ID
	if pw, ok := l.p.sys.LookupUID(u.ID); ok {
		gid = pw.GID
	}
	if pu, ok := l.p.sys.LookupUser(user); ok {
		gid = pu.GID
	}
	g := &service.Cred{ID: gid}
	if gr, ok := l.p.sys.LookupGID(gid); ok {
		g.Name = gr.Name
	}
	v.group = g
	v.origins["group"] = service.Source{Origin: "default"}
}

// unknownName handles a user, group, service or RPC name this machine
// does not know: an error, or with Options.KeepUnknownNames (converters)
// a W-UNKNOWN-NAME warning and a Cred that keeps the name with ID -1.
func (l *line) unknownName(code string, t token, attr, name, db string) *service.Cred {
	what := map[string]string{"passwd": "user", "group": "group", "services": "service", "rpc": "RPC program"}[db]
	if !l.p.opt.KeepUnknownNames {
		l.errorf(code, t, attr, "unknown %s %q (not in %s/%s)", what, name, l.p.etc(), db)
		return nil
	}
	l.warnf(CodeUnknownName, t, attr, "%s %q is not in %s/%s here: kept by name; the host that runs this entry needs it", what, name, l.p.etc(), db)
	return &service.Cred{Name: name, ID: -1}
}

// lookupUser resolves a user name or uid. An all-digits name that is not
// in passwd is taken as a bare uid, as xinetd does.
func (l *line) lookupUser(s string) (*service.Cred, bool) {
	if u, ok := l.p.sys.LookupUser(s); ok {
		return &service.Cred{Name: s, ID: u.UID}, true
	}
	if n, ok := parseCount(s); ok {
		return &service.Cred{Name: s, ID: n}, true
	}
	return nil, false
}

func (l *line) lookupGroup(s string) (*service.Cred, bool) {
	if g, ok := l.p.sys.LookupGroup(s); ok {
		return &service.Cred{Name: s, ID: g.GID}, true
	}
	if n, ok := parseCount(s); ok {
		return &service.Cred{Name: s, ID: n}, true
	}
	return nil, false
}

// inetdBuiltins are the internal services the inetds have; xinetd's
// sensor is not one of them.
var inetdBuiltins = map[string]bool{"echo": true, "discard": true, "chargen": true, "daytime": true,
	"time": true, "tcpmux": true, "auth": true}

// serverField reads field 6 and the arguments.
func (l *line) serverField(t token, args []token, v *vals) {
	argv := make([]string, len(args))
	for i, a := range args {
		argv[i] = a.text
	}
	if t.text == "internal" {
		v.internal = true
		v.argv = argv
		if len(args) > 0 {
			v.origins["server_args"] = l.p.pos(args[0].line, args[0].col)
		}
		return
	}
	v.origins["server"] = l.p.pos(t.line, t.col)
	if !strings.HasPrefix(t.text, "/") {
		l.errorf(CodeServer, t, "server", "server %q must be an absolute path (or internal)", t.text)
		return
	}
	v.server = path.Clean(t.text)
	if len(argv) == 0 {
		argv = []string{path.Base(v.server)}
		l.warnf(CodeArgv0, t, "server_args", "no argv[0] after the server: %q is used (inetd would run it with an empty argument list)", argv[0])
	} else {
		v.origins["server_args"] = l.p.pos(args[0].line, args[0].col)
	}
	v.argv = argv
}

func (p *parser) etc() string {
	if p.sys.Root == "" || p.sys.Root == "/" {
		return "/etc"
	}
	return path.Join(p.sys.Root, "etc")
}

// proxyOpt reads gxinetd's PROXY protocol options of the protocol field
// (tcp,proxy_protocol=v2,proxy_from=10.0.0.0/8): the same attributes as
// in xinetd.conf, one value per option; repeating an option adds to it.
func (l *line) proxyOpt(t token, k, val string, v *vals) {
	pos := l.p.pos(t.line, t.col)
	switch k {
	case "proxy_protocol":
		switch strings.ToLower(val) {
		case "v1", "1":
			v.proxyProto |= service.ProxyV1
		case "v2", "2":
			v.proxyProto |= service.ProxyV2
		default:
			l.errorf(CodeProtoOpt, t, k, "bad proxy_protocol %q: want v1 or v2 (repeat the option for both)", val)
			return
		}
	case "proxy_from":
		e := service.AddrEntry{Text: val, Src: pos}
		if pr, err := netip.ParsePrefix(val); err == nil {
			e.Kind, e.Prefix = service.AddrNet, pr.Masked()
		} else if a, err := netip.ParseAddr(val); err == nil && a.Zone() == "" {
			e.Kind, e.Prefix = service.AddrNumeric, netip.PrefixFrom(a, a.BitLen())
		} else {
			l.errorf(CodeProtoOpt, t, k, "bad proxy_from %q: want a numeric address or ADDRESS/BITS (repeat the option for more)", val)
			return
		}
		v.proxyFrom.Set = true
		v.proxyFrom.Entries = append(v.proxyFrom.Entries, e)
	case "proxy_timeout":
		n, ok := parseCount(val)
		if !ok || n < 1 || n > 3600 {
			l.errorf(CodeProtoOpt, t, k, "bad proxy_timeout %q: want 1 to 3600 seconds", val)
			return
		}
		v.proxyTimeout = n
	default:
		l.errorf(CodeProtoOpt, t, "protocol", "bad protocol option %q: want proxy_protocol, proxy_from or proxy_timeout", k)
		return
	}
	v.origins[k] = pos
}
