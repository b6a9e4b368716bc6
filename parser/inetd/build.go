package inetd

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/gxinetd/gxinetd/internal/pathsafe"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
)

type parser struct {
	file string
	// root is the main file; incStack the files being included (absolute
	// paths, outermost first); files every file read after the main one.
	root     string
	incStack []string
	incNames []string // the same files as named in .include lines
	files    []string
	// src and lineStart are the text being read, for the key=value
	// notation, which is read character by character.
	src       string
	lineStart []int

	opt   Options
	sys   *sysdb.DB
	d     *dialect
	diags service.Diags
	out   []*service.Service
	// extra holds per-service facts needed for ids and duplicate checks.
	extra map[*service.Service]*extra
	// defAddrs is the default listen address set by an `addr:` line; nil
	// means any address.
	defAddrs []addrSpec
	// bind is Options.BindAddr, parsed.
	bind *addrSpec
}

type extra struct {
	protoText string
	line      int
}

var fieldNames = []string{"service name", "socket type", "protocol", "wait/nowait", "user", "server"}

// entry turns one raw entry into services (one per listen address).
func (p *parser) entry(e *rawEntry) {
	if len(e.toks) == 0 {
		return
	}
	first := e.toks[0]
	l := &line{p: p, name: first.text}
	p.diags = append(p.diags, e.errs...)
	l.errs = append(l.errs, e.errs...)
	v := &vals{maxChild: unset, perIPMin: unset, maxChildIP: unset, perMinute: unset, acceptMax: unset,
		origins: map[string]service.Source{}}
	if e.kv {
		if i := addrSplit(first.text); i >= 0 && !v.unix {
			l.name = first.text[i+1:]
		}
		p.kvEntry(e, l, v)
		return
	}
	for _, n := range e.notes {
		n.Service = l.name
		p.diags = append(p.diags, n)
	}
	t := e.toks
	// The protocol decides how the service field reads (unix paths), so
	// it goes first.
	if len(t) > 2 {
		l.protoField(t[2], v)
	}
	l.serviceField(t[0], v)
	if len(t) > 1 {
		l.sockField(t[1], v)
	}
	if len(t) > 3 {
		l.waitField(t[3], v)
	}
	if len(t) > 4 {
		l.userField(t[4], v)
	}
	if len(t) > 5 {
		l.serverField(t[5], t[6:], v)
	}
	if len(t) < 6 {
		last := t[len(t)-1]
		end := token{line: last.line, col: last.col + len(last.text)}
		if last.quoted {
			end.col += 2
		}
		l.errorf(CodeFields, end, "", "missing %s (an entry is: service socket-type protocol wait/nowait user server [argv0 args...])", strings.Join(fieldNames[len(t):], ", "))
		p.emit(e, v, l)
		return
	}
	p.check(t, v, l)
	p.emit(e, v, l)
}

// check does the whole-entry checks once every field is read.
func (p *parser) check(t []token, v *vals, l *line) {
	// Every check whose fields could be read runs, also when another
	// field was refused, so that the check mode shows all of a line's
	// problems at once.
	sockOK, protoOK := v.sock != service.SockUnset, v.proto != ""
	if sockOK && protoOK && (v.proto == "tcp" && v.sock != service.SockStream || v.proto == "udp" && v.sock != service.SockDgram) {
		l.errorf(CodeProto, t[2], "protocol", "socket type %s does not go with protocol %s (tcp is stream, udp is dgram)", v.sock, v.protoText)
		return
	}
	if v.unix && sockOK && v.sock != service.SockStream && v.sock != service.SockDgram && v.sock != service.SockSeqPacket {
		l.errorf(CodeUnix, t[1], "socket_type", "unix sockets are stream, dgram or seqpacket, not %s", v.sock)
		return
	}
	switch {
	case v.tcpmux != 0:
		if sockOK && protoOK && (v.sock != service.SockStream || v.proto != "tcp") {
			l.errorf(CodeTCPMux, t[0], "", "tcpmux services are stream tcp, not %s %s", v.sock, v.protoText)
		}
		if v.internal {
			l.errorf(CodeTCPMux, t[5], "server", "a tcpmux/NAME service needs a server: internal services are not reachable through tcpmux")
		}
		if v.wait && len(l.errs) == 0 {
			v.wait = false
			l.warnf(CodeWaitForced, t[3], "wait", "tcpmux services always accept their own connections: read as nowait")
		}
	case v.unix:
	case v.rpc:
		if v.internal {
			l.errorf(CodeInternal, t[5], "server", "RPC services cannot be internal")
		}
	case protoOK:
		l.port(v)
	}
	if v.internal && sockOK {
		l.internal(t, v)
	}
	if !v.internal && v.sock == service.SockDgram && !v.wait && len(l.errs) == 0 {
		l.warnf(CodeDgramNowait, t[3], "wait", "dgram nowait is a busybox extension: the server must read its datagram at once, or it is started again for the same datagram until the rate limit stops the service")
	}
	if (v.proxyProto != 0 || v.proxyFrom.Set || v.proxyTimeout != 0) && len(l.errs) == 0 {
		l.proxyCheck(t, v)
	}
	if p.opt.CheckOwnership && v.server != "" {
		if code, msg := checkServer(v.server, pathsafe.ForUser(v.user, v.group, true, p.sys)); code != "" {
			l.errorf(code, t[5], "server", "%s", msg)
		}
	}
}

// port resolves the service name (or number) to a port.
func (l *line) port(v *vals) {
	if v.name == "" || strings.ContainsRune(v.name, '/') {
		return // refused by serviceField already
	}
	if n, ok := parseCount(v.name); ok {
		if n < 1 || n > 65535 {
			l.errorf(CodeService, v.nameTok, "port", "port %d out of range 1-65535", n)
			return
		}
		v.port, v.unlisted = n, true
		v.origins["port"] = l.p.pos(v.nameTok.line, v.nameTok.col)
		return
	}
	n, ok := l.p.sys.ServicePort(v.name, v.proto)
	if !ok && l.p.opt.KeepUnknownNames {
		l.warnf(CodeUnknownName, v.nameTok, "port", "service %s/%s is not in %s/services here: kept by name; the host that runs this entry needs it", v.name, v.proto, l.p.etc())
		return
	}
	if !ok {
		l.errorf(CodeService, v.nameTok, "", "unknown service %s/%s (not in %s/services; a port number may be written instead)", v.name, v.proto, l.p.etc())
		return
	}
	v.port = n
}

// internal checks a builtin and its arguments.
func (l *line) internal(t []token, v *vals) {
	name := v.name
	if v.unix {
		name = path.Base(v.unixPath)
	} else if _, numeric := parseCount(name); numeric && v.port > 0 {
		if n, ok := l.p.sys.ServiceName(v.port, v.proto); ok {
			name = n
		}
	}
	name = strings.ToLower(name)
	if !inetdBuiltins[name] || !service.HasBuiltin(name, v.sock) {
		l.errorf(CodeInternal, t[5], "server", "no such internal service %s/%s (internal services: echo, discard, chargen, daytime, time over stream and dgram; tcpmux and auth over stream)", v.name, v.sock)
		return
	}
	v.builtin = name
	if v.wait && v.sock == service.SockStream {
		v.wait = false
		l.warnf(CodeWaitForced, t[3], "wait", "internal stream services accept their own connections: read as nowait, as inetd does")
	}
	// FreeBSD's auth builtin takes options after its argv[0]; the other
	// builtins ignore arguments, which is worth a word.
	if name != "auth" && len(v.argv) > 1 {
		l.warnf(CodeInternalArgs, t[6], "server_args", "internal service %s takes no arguments: %q ignored", name, strings.Join(v.argv[1:], " "))
	}
}

// emit builds the services of one entry, one per listen address.
func (p *parser) emit(e *rawEntry, v *vals, l *line) {
	addrs := v.addrs
	if addrs == nil {
		addrs = p.defAddrs
	}
	if addrs == nil {
		addrs = []addrSpec{{any: true, text: "*"}}
		if p.bind != nil {
			addrs = []addrSpec{*p.bind}
		}
	}
	notedPlain := false
	for _, a := range addrs {
		s := p.base(e, v, l)
		if v.unix || len(l.errs) > 0 && v.proto == "" {
			if v.unix {
				s.Family = service.FamilyUnix
			}
			p.add(s, v, l, nil)
			continue
		}
		var perAddr service.Diags
		if a.flag && !familyFits(v.famSuffix, a) {
			l.add(service.SevWarning, CodeBindFamily, a.src, "bind",
				fmt.Sprintf("-a %s does not fit protocol %s: the entry listens on every address", a.text, v.protoText))
			a = addrSpec{any: true, text: "*"}
		}
		fam, v6only, err := familyOf(v.famSuffix, a, p.d.plainDual)
		if err != "" {
			pos := a.src
			if pos.IsZero() {
				pos = p.pos(e.line, e.toks[0].col)
			}
			d := service.Diag{Pos: pos, Severity: service.SevError, Code: CodeAddr, Service: l.name, Attr: "bind", Msg: err}
			p.diags = append(p.diags, d)
			perAddr = append(perAddr, d)
		}
		s.Family = fam
		if v6only {
			t := true
			s.V6Only = &t
		}
		switch fam {
		case service.FamilyIPv4:
			s.Flags |= service.FlagIPv4
		case service.FamilyIPv6, service.FamilyDual:
			s.Flags |= service.FlagIPv6
		}
		if !a.any || a.addr.IsValid() {
			s.Bind = service.Bind{Text: a.text, Addr: a.addr}
			if a.any {
				s.Bind.Text = a.addr.String()
			}
			s.Origins.Set("bind", a.src) // Origin "flag" for -a, else the prefix or the addr: line
		}
		if v.famSuffix == "" && !a.addr.IsValid() && !notedPlain && len(l.errs) == 0 {
			notedPlain = true
			if p.d.plainDual {
				l.notef(e.toks[2], "protocol", "plain %s read as IPv4 and IPv6 (dialect %s, as Debian's openbsd-inetd does); FreeBSD, OpenBSD and NetBSD would listen on IPv4 only: write %s4 or %s46 to make it explicit", v.protoText, p.d.name, v.protoText, v.protoText)
			} else {
				l.notef(e.toks[2], "protocol", "plain %s read as IPv4 only (dialect %s); Debian's openbsd-inetd would also listen on IPv6: write %s46 for both", v.protoText, p.d.name, v.protoText)
			}
		}
		p.add(s, v, l, perAddr)
	}
}

// familyFits says whether a -a address can be used for an entry.
func familyFits(suffix string, a addrSpec) bool {
	if !a.addr.IsValid() {
		return true
	}
	switch suffix {
	case "4":
		return a.addr.Is4()
	case "6":
		return a.addr.Is6()
	}
	return true
}

// familyOf chooses the family of one listening socket. A literal
// address decides for plain and 46 protocols; an explicit 4 or 6 that
// contradicts it is an error.
func familyOf(suffix string, a addrSpec, plainDual bool) (service.Family, bool, string) {
	lit := a.addr.IsValid() && !(a.any && a.addr.IsUnspecified() && suffix != "")
	switch suffix {
	case "4":
		if lit && !a.addr.Is4() {
			return service.FamilyIPv4, false, fmt.Sprintf("listen address %s is IPv6 but the protocol is IPv4 only", a.text)
		}
		return service.FamilyIPv4, false, ""
	case "6":
		if lit && a.addr.Is4() {
			return service.FamilyIPv6, true, fmt.Sprintf("listen address %s is IPv4 but the protocol is IPv6 only", a.text)
		}
		return service.FamilyIPv6, true, ""
	}
	if a.addr.IsValid() {
		if a.addr.Is4() {
			return service.FamilyIPv4, false, ""
		}
		if suffix == "46" && a.addr.IsUnspecified() {
			return service.FamilyDual, false, ""
		}
		return service.FamilyIPv6, suffix == "", ""
	}
	if suffix == "46" || plainDual {
		return service.FamilyDual, false, ""
	}
	return service.FamilyIPv4, false, ""
}

// base fills what every service of the entry shares.
func (p *parser) base(e *rawEntry, v *vals, l *line) *service.Service {
	s := &service.Service{
		Name:             v.name,
		Language:         service.LangInetd,
		Src:              service.Source{File: p.file, Line: e.line, Col: e.toks[0].col},
		EndLine:          e.endLine,
		Status:           service.StatusAccepted,
		Origins:          service.NewOrigins(service.OriginsCap),
		SocketType:       v.sock,
		Protocol:         v.proto,
		ProtoNum:         v.protoNum,
		Wait:             v.wait,
		User:             v.user,
		Group:            v.group,
		Groups:           true,
		LoginClass:       v.loginClass,
		Port:             v.port,
		SndBuf:           v.sndbuf,
		RcvBuf:           v.rcvbuf,
		Instances:        service.Unlimited,
		PerSource:        service.Unlimited,
		PerSourcePrefix4: 32,
		PerSourcePrefix6: 128,
		CPS:              service.CPS{},
		LogType:          service.LogType{Kind: service.LogNone},
		Inetd:            service.InetdLimits{Dialect: p.d.name},
	}
	if s.Name == "" {
		s.Name = l.name
	}
	if s.Name == "" {
		// Only rejected entries get here; they still need an id to be
		// named in the check mode.
		s.Name = "line" + strconv.Itoa(e.line)
	}
	for k, o := range v.origins {
		s.Origins.Set(k, o)
	}
	if v.unix {
		s.Protocol = "unix"
		s.UnixPath = v.unixPath
		s.UnixOwner = v.unixOwner
		s.UnixGroup = v.unixGroup
		s.UnixMode = v.unixMode
	}
	if v.unlisted {
		s.Type |= service.TypeUnlisted
	}
	if v.rpc {
		s.Type |= service.TypeRPC
		s.RPCNumber, s.RPCLow, s.RPCHigh = v.rpcNum, v.rpcLo, v.rpcHi
	}
	if v.tcpmux != 0 {
		s.Type |= service.TypeUnlisted | v.tcpmux
		s.Port = 0
	}
	if v.internal {
		s.Type |= service.TypeInternal
		s.Builtin = v.builtin
		if len(v.argv) > 0 {
			s.Argv = append([]string(nil), v.argv...)
		}
	} else if v.server != "" {
		s.Server = v.server
		s.Argv = append([]string(nil), v.argv...)
		// argv[0] is written in the entry, which is xinetd's NAMEINARGS;
		// inetd entries are not wrapped unless they say tcpd themselves.
		s.ServerArgs = append([]string(nil), v.argv...)
		s.Flags |= service.FlagNameInArgs | service.FlagNoLibwrap
	}
	p.limits(s, v)
	s.ProxyProtocol, s.ProxyFrom, s.ProxyTimeout = v.proxyProto, v.proxyFrom, v.proxyTimeout
	return s
}

// limits applies the entry's limits, then the command line's, then the
// dialect's default rate.
func (p *parser) limits(s *service.Service, v *vals) {
	flag := service.Source{Origin: "flag"}
	switch {
	case v.maxChild > 0:
		s.Instances = service.Limit(v.maxChild)
	case v.maxChild == 0:
		// FreeBSD: 0 is "no limit".
	case v.acceptMax > 0:
		s.Instances = service.Limit(v.acceptMax)
		s.Origins.Set("instances", s.Origins.At("accept_max"))
	case p.opt.MaxChild > 0:
		s.Instances = service.Limit(p.opt.MaxChild)
		s.Origins.Set("instances", flag)
	}
	s.Origins.Delete("accept_max")
	switch {
	case v.maxChildIP >= 0:
		if v.maxChildIP > 0 {
			s.PerSource = service.Limit(v.maxChildIP)
		}
	case p.opt.MaxChildPerIP > 0:
		s.PerSource = service.Limit(p.opt.MaxChildPerIP)
		s.Origins.Set("per_source", flag)
	}
	switch {
	case v.perIPMin >= 0:
		s.Inetd.PerIPPerMinute = v.perIPMin
	case p.opt.PerIPPerMinute > 0:
		s.Inetd.PerIPPerMinute = p.opt.PerIPPerMinute
		s.Origins.Set("per_source_cpm", flag)
	}
	switch {
	case v.perMinute >= 0:
		s.Inetd.PerMinute = v.perMinute
	case p.opt.PerMinute > 0:
		s.Inetd.PerMinute = p.opt.PerMinute
		s.Origins.Set("cpm", flag)
	case p.opt.PerMinute < 0:
		s.Inetd.PerMinute = 0
		s.Origins.Set("cpm", flag)
	default:
		s.Inetd.PerMinute = p.d.defaultRate
		s.Origins.Set("cpm", service.Source{Origin: "default"})
	}
}

// add records a finished service.
func (p *parser) add(s *service.Service, v *vals, l *line, perAddr service.Diags) {
	reasons := append(append(service.Diags(nil), l.errs...), perAddr...)
	if len(reasons) > 0 {
		s.Status = service.StatusRejected
		s.Reasons = reasons
	}
	if p.extra == nil {
		p.extra = map[*service.Service]*extra{}
	}
	p.extra[s] = &extra{protoText: v.protoText, line: s.Src.Line}
	p.out = append(p.out, s)
}

// defaultAddress handles an `addr:` line.
func (p *parser) defaultAddress(t token) {
	text := strings.TrimSuffix(t.text, ":")
	l := &line{p: p}
	addrs, ok := l.parseAddrList(t, text)
	if !ok {
		return
	}
	if len(addrs) == 1 && addrs[0].any && !addrs[0].addr.IsValid() {
		p.defAddrs = nil
	} else {
		p.defAddrs = addrs
	}
	if !p.d.addrPrefix {
		l.notef(t, "bind", "default-address line %q is not %s syntax; read as OpenBSD does: it applies to the entries that follow", t.text, p.d.name)
		return
	}
	l.add(service.SevNotice, CodeDefaultAddress, p.pos(t.line, t.col), "bind",
		fmt.Sprintf("entries that follow listen on %s", text))
}

// parseBindOption reads Options.BindAddr.
func (p *parser) parseBindOption() bool {
	if p.opt.BindAddr == "" || p.opt.BindAddr == "*" {
		return true
	}
	a, ok := parseAddr(p.opt.BindAddr)
	if !ok {
		p.diags = append(p.diags, service.Diag{Pos: service.Source{Origin: "flag"}, Severity: service.SevError, Code: CodeOption,
			Fatal: true, Msg: fmt.Sprintf("-a %q: not an address or host name", p.opt.BindAddr)})
		return false
	}
	a.flag = true
	a.src = service.Source{Origin: "flag"}
	p.bind = &a
	return true
}

// finish gives ids and looks for entries that would fight over a port.
func (p *parser) finish() {
	p.assignIDs()
	p.duplicates()
}

// assignIDs makes ids unique: NAME (NAME-SOCKTYPE for internal
// services), then NAME-PROTO, then NAME-PROTO-ADDR, then a counter.
func (p *parser) assignIDs() {
	ids := make([]string, len(p.out))
	for i, s := range p.out {
		ids[i] = s.Name
		if s.Type.Has(service.TypeInternal) && s.SocketType != service.SockUnset {
			ids[i] = s.Name + "-" + s.SocketType.String()
		}
	}
	steps := []func(i int) string{
		func(i int) string { return ids[i] + "-" + p.extra[p.out[i]].protoText },
		func(i int) string {
			b := p.out[i].Bind.Text
			if b == "" {
				b = "any"
			}
			return ids[i] + "-" + strings.NewReplacer(":", "_", "[", "", "]", "", "%", "_").Replace(b)
		},
	}
	for _, step := range steps {
		dup := dupSet(ids)
		if len(dup) == 0 {
			break
		}
		for i := range ids {
			if dup[strings.ToLower(ids[i])] {
				ids[i] = step(i)
			}
		}
	}
	if dup := dupSet(ids); len(dup) > 0 {
		seen := map[string]int{}
		for i := range ids {
			k := strings.ToLower(ids[i])
			if dup[k] {
				seen[k]++
				if seen[k] > 1 {
					ids[i] += "-" + strconv.Itoa(seen[k])
				}
			}
		}
	}
	for i, s := range p.out {
		s.ID = ids[i]
	}
}

func dupSet(ids []string) map[string]bool {
	n := map[string]int{}
	for _, id := range ids {
		n[strings.ToLower(id)]++
	}
	out := map[string]bool{}
	for k, c := range n {
		if c > 1 {
			out[k] = true
		}
	}
	return out
}

// duplicates warns about accepted entries that would listen on the same
// port, protocol and address as an earlier one (the bind would fail). A
// wildcard conflicts with every address of its family on Linux, and a
// dual-stack socket is in both families. Lookups are by key, so a
// hostile file with thousands of addresses stays linear.
func (p *parser) duplicates() {
	type key struct {
		proto string
		port  int
		unix  string
		fam   int
		bind  string // "" for the wildcard, "\x00" for "any bind"
	}
	first := map[key]*service.Service{}
	for _, s := range p.out {
		if s.Status != service.StatusAccepted || s.Type.Has(service.TypeRPC) || s.IsTCPMuxClient() {
			continue
		}
		if s.Port == 0 && s.Family != service.FamilyUnix {
			continue // a service name unknown here (KeepUnknownNames)
		}
		base := key{proto: s.Protocol, port: s.Port}
		var fams []int
		switch s.Family {
		case service.FamilyUnix:
			base = key{proto: "unix", unix: s.UnixPath}
			fams = []int{0}
		case service.FamilyIPv4:
			fams = []int{4}
		case service.FamilyIPv6:
			fams = []int{6}
		default:
			fams = []int{4, 6}
		}
		bind := strings.ToLower(s.Bind.Text)
		var clash *service.Service
		for _, f := range fams {
			k := base
			k.fam = f
			probe := []string{"\x00"}
			if bind != "" && s.Family != service.FamilyUnix {
				probe = []string{"", bind}
			}
			for _, b := range probe {
				k.bind = b
				if o := first[k]; o != nil && clash == nil {
					clash = o
				}
			}
		}
		if clash != nil {
			p.diags = append(p.diags, service.Diag{Pos: s.Src, Severity: service.SevWarning, Code: CodeDuplicate, Service: s.ID,
				Msg: fmt.Sprintf("line %d (%s) already listens there: binding this entry will fail", clash.Src.Line, clash.ID)})
		}
		for _, f := range fams {
			k := base
			k.fam = f
			for _, b := range []string{"\x00", bind} {
				k.bind = b
				if first[k] == nil {
					first[k] = s
				}
			}
		}
	}
}

// proxyCheck applies xinetd.conf's rules for the PROXY protocol options.
func (l *line) proxyCheck(t []token, v *vals) {
	switch {
	case v.proxyProto == 0:
		l.errorf(CodeProtoOpt, t[2], "proxy_protocol", "proxy_from and proxy_timeout need proxy_protocol=v1 or proxy_protocol=v2")
	case !v.proxyFrom.Set:
		l.errorf(CodeProtoOpt, t[2], "proxy_from", "proxy_protocol needs proxy_from=ADDRESS[/BITS]: the balancers allowed to send a header")
	case v.sock != service.SockStream || v.proto != "tcp" || v.unix:
		l.errorf(CodeProtoOpt, t[2], "proxy_protocol", "proxy_protocol needs a stream tcp service")
	case v.tcpmux != 0:
		l.errorf(CodeProtoOpt, t[2], "proxy_protocol", "a tcpmux/NAME service cannot take a PROXY header: the tcpmux service's connections carry it")
	case v.wait && !v.internal:
		l.errorf(CodeProtoOpt, t[3], "proxy_protocol", "proxy_protocol cannot be used with wait: the server accepts its connections itself, so no header can be taken off before it (use nowait)")
	}
}
