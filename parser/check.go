package parser

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/gxinetd/gxinetd/internal/service"
)

// checker collects the whole-entry messages of one service.
type checker struct {
	l *loader
	e *readEntry
	s *service.Service
}

func (c *checker) err(code, msg string) {
	d := service.Diag{Pos: c.s.Src, Severity: service.SevError, Code: code, Service: c.s.ID, Msg: msg, IncludedFrom: c.e.incFrom}
	c.l.cfg.Diags = append(c.l.cfg.Diags, d)
	c.s.Reasons = append(c.s.Reasons, d)
	c.s.Status = service.StatusRejected
}

func (c *checker) warn(code, attr, msg string) {
	pos := c.s.Src
	if o, ok := c.s.Origins.Get(attr); ok && o.Line > 0 {
		pos = o
		pos.Origin = ""
	}
	c.l.cfg.Diags = append(c.l.cfg.Diags, service.Diag{Pos: pos, Severity: service.SevWarning, Code: code, Service: c.s.ID, Attr: attr, Msg: msg, IncludedFrom: c.e.incFrom})
}

func (c *checker) implied(attr string) {
	c.s.Origins.Set(attr, service.Source{Origin: "default"})
}

// complete fills what xinetd fills after all files are read (§2.5 step 2,
// §4.1) and applies the whole-entry rules (§4.2), rejecting the service
// with one message per broken rule.
func (l *loader) complete(e *readEntry) {
	s := e.svc
	c := &checker{l: l, e: e, s: s}
	FillFromDefaults(&l.cfg.Defaults, s)

	internal := s.Type.Has(service.TypeInternal) || s.Flags.Has(service.FlagSensor)
	redirect := s.Redirect != nil
	mux := s.IsTCPMuxClient()
	rpc := s.Type.Has(service.TypeRPC)
	unlisted := s.Type.Has(service.TypeUnlisted)

	// Address family: flags, then the bind address, then dual-stack.
	v4, v6 := s.Flags.Has(service.FlagIPv4), s.Flags.Has(service.FlagIPv6)
	if v4 && v6 {
		c.warn(WarnFamily, "flags", fmt.Sprintf("Service %s will use IPv6 or fallback to IPv4: flags IPv4 and IPv6 together mean IPv6", s.Name))
		v4 = false
	}
	if len(e.bindCands) > 0 {
		s.Bind.Addr = pickBind(e.bindCands, v4, v6)
	}
	switch {
	case v6:
		s.Family = service.FamilyIPv6
	case v4:
		s.Family = service.FamilyIPv4
	case s.Bind.Addr.IsValid():
		if s.Bind.Addr.Is4() {
			s.Family = service.FamilyIPv4
		} else {
			s.Family = service.FamilyIPv6
		}
	case s.Bind.Interface != "":
		s.Family = s.Bind.IfaceFamily
	default:
		s.Family = service.FamilyDual
	}
	if a := s.Bind.Addr; a.IsValid() {
		if v4 && !a.Is4() {
			c.err(CodeEntry, fmt.Sprintf("Service %s has flags IPv4 but binds to the IPv6 address %s", s.Name, a))
		}
		if v6 && a.Is4() {
			c.err(CodeEntry, fmt.Sprintf("Service %s has flags IPv6 but binds to the IPv4 address %s", s.Name, a))
		}
	}

	unixSock := s.UnixPath != "" || s.Protocol == "unix" || e.wrote("unix_path")
	if unixSock {
		c.unix()
	} else {
		for _, attr := range []string{"unix_owner", "unix_group", "unix_mode", "only_users", "only_groups"} {
			if setByEntry(s, attr) {
				c.err(CodeEntry, fmt.Sprintf("Service %s: %s applies to unix-domain services only (set unix_path)", s.Name, attr))
			}
		}
	}

	// protocol <-> socket_type.
	switch {
	case s.Protocol == "" && s.SocketType == service.SockStream:
		s.Protocol, s.ProtoNum = "tcp", l.protoNum("tcp")
		c.implied("protocol")
	case s.Protocol == "" && s.SocketType == service.SockDgram:
		s.Protocol, s.ProtoNum = "udp", l.protoNum("udp")
		c.implied("protocol")
	case s.SocketType == service.SockUnset && s.Protocol == "tcp":
		s.SocketType = service.SockStream
		c.implied("socket_type")
	case s.SocketType == service.SockUnset && s.Protocol == "udp":
		s.SocketType = service.SockDgram
		c.implied("socket_type")
	}

	// argv.
	if !internal && !redirect && s.Server != "" {
		if s.Flags.Has(service.FlagNameInArgs) {
			if len(s.ServerArgs) == 0 {
				c.err(CodeEntry, fmt.Sprintf("Service %s has NAMEINARGS flag set and no server_args", s.Name))
			} else {
				s.Argv = append([]string(nil), s.ServerArgs...)
			}
		} else {
			s.Argv = append([]string{baseName(s.Server)}, s.ServerArgs...)
		}
	}

	// User without group: a numeric user's gid is the same number
	// (xinetd), a named user's is its passwd entry's.
	if s.User != nil && s.Group == nil {
		if allDigits(s.User.Name) {
			s.Group = &service.Cred{ID: s.User.ID}
		} else if u, ok := l.sys.LookupUser(s.User.Name); ok {
			s.Group = &service.Cred{ID: u.GID}
			if g, ok := l.sys.LookupGID(u.GID); ok {
				s.Group.Name = g.Name
			}
		}
		if s.Group != nil {
			c.implied("group")
		}
	}
	if !internal && !redirect {
		c.checkServerOwner()
	}

	// Port from /etc/services.
	if unixSock {
		// A path, not a port.
	} else if s.Port == 0 && e.wrote("port") {
		// A refused port line was reported; looking the name up would
		// only add a second message about the same line.
	} else if s.Port == 0 && !mux && !rpc && !unlisted && s.Protocol != "" {
		if p, ok := l.sys.ServicePort(s.Name, s.Protocol); ok {
			s.Port = p
			c.implied("port")
		} else {
			c.err(CodePort, fmt.Sprintf("Port not specified and can't find service: %s with getservbyname", s.Name))
		}
	} else if s.Port != 0 && !mux && !rpc && !unlisted && s.Protocol != "" && setByEntry(s, "port") {
		if p, ok := l.sys.ServicePort(s.Name, s.Protocol); !ok {
			c.err(CodePort, fmt.Sprintf("service/protocol combination not in /etc/services: %s/%s (add type = UNLISTED for a service of your own)", s.Name, s.Protocol))
		} else if p != s.Port {
			c.err(CodePort, fmt.Sprintf("Service %s expects port %d, not %d", s.Name, p, s.Port))
		}
	}

	// INTERCEPT has never worked in the packaged xinetd; keep xinetd's
	// two rules for clearing it.
	if s.Flags.Has(service.FlagIntercept) {
		switch {
		case internal:
			s.Flags &^= service.FlagIntercept
			c.warn(WarnIntercept, "flags", "Internal services cannot be intercepted: "+s.ID)
		case !s.Wait:
			s.Flags &^= service.FlagIntercept
			c.warn(WarnIntercept, "flags", "Multi-threaded services cannot be intercepted: "+s.ID)
		}
	}

	// Builtins.
	switch {
	case s.Flags.Has(service.FlagSensor):
		s.Builtin = "sensor"
	case s.Type.Has(service.TypeInternal):
		if service.HasBuiltin(s.Name, s.SocketType) {
			s.Builtin = strings.ToLower(s.Name)
		} else if s.SocketType != service.SockUnset {
			c.err(CodeBuiltin, fmt.Sprintf("No such internal service: %s/%s - DISABLING", s.Name, s.SocketType))
		}
	}

	if mux {
		if !unlisted {
			c.err(CodeEntry, fmt.Sprintf("Service: %s (tcpmux) should have UNLISTED in type.", s.Name))
		}
		if s.Protocol != "" && s.Protocol != "tcp" {
			c.err(CodeEntry, fmt.Sprintf("Service: %s (tcpmux) should have tcp in protocol.", s.Name))
		}
	}

	if rpc && !unlisted {
		if n, ok := l.sys.RPC(s.Name); ok {
			s.RPCNumber = n
		} else {
			c.err(CodeEntry, "unknown RPC service: "+s.Name)
		}
	}
	if !rpc && !unlisted && !mux && s.Protocol == "" && s.SocketType != service.SockUnset {
		c.err(CodeEntry, fmt.Sprintf("A protocol or a socket_type must be specified for service: %s.", s.Name))
	}

	if redirect {
		if s.SocketType != service.SockStream && s.SocketType != service.SockUnset || s.Protocol != "" && s.Protocol != "tcp" {
			c.err(CodeEntry, "Only tcp sockets are supported for redirected service "+s.Name)
		}
		if s.Wait {
			c.err(CodeEntry, fmt.Sprintf("Redirected service %s must not wait", s.Name))
		}
		if s.Flags.Has(service.FlagNameInArgs) {
			c.err(CodeEntry, fmt.Sprintf("Redirected service %s should not have NAMEINARGS flag set", s.Name))
		}
	} else if s.LogOnSuccess.Has(service.LogSuccessTraffic) {
		c.err(CodeEntry, fmt.Sprintf("Service %s should not have TRAFFIC flag set since its not redirected", s.Name))
	}
	if s.Flags.Has(service.FlagNameInArgs) && internal {
		c.err(CodeEntry, fmt.Sprintf("Service %s is INTERNAL and has NAMEINARGS flag set", s.Name))
	}
	if s.SocketType == service.SockDgram && !s.Wait && setByEntry(s, "wait") {
		c.err(CodeEntry, fmt.Sprintf("Service %s has socket_type dgram, but does not wait", s.Name))
	}

	// Required attributes, counting what the entry set plus what was
	// inferred above.
	missing := func(attr string) {
		// Written but refused (or implied by a refused line): that
		// line's message already says what is wrong.
		switch {
		case e.wrote(attr):
			return
		case attr == "protocol" && s.SocketType == service.SockUnset && e.wrote("socket_type"):
			return
		case attr == "socket_type" && s.Protocol == "" && e.wrote("protocol"):
			return
		}
		c.err(CodeMissingAttr, fmt.Sprintf("Service %s missing attribute %s - DISABLING", s.ID, attr))
	}
	if s.SocketType == service.SockUnset {
		missing("socket_type")
	}
	if !setByEntry(s, "wait") {
		missing("wait")
	}
	if !internal {
		if s.User == nil {
			missing("user")
		}
		if s.Server == "" && !redirect {
			missing("server")
		}
	}
	if unlisted && !rpc && !unixSock {
		if s.Protocol == "" {
			missing("protocol")
		}
		if !mux && s.Port == 0 {
			missing("port")
		}
	}
	if rpc {
		if s.Protocol == "" {
			missing("protocol")
		}
		if !setByEntry(s, "rpc_version") {
			missing("rpc_version")
		}
		if unlisted && !setByEntry(s, "rpc_number") {
			missing("rpc_number")
		}
	}

	c.proxyRules(internal, redirect, mux)

	l.checkSandbox(c)

	// The ident port must not look itself up.
	if s.Port == 113 && s.Protocol == "tcp" {
		if s.LogOnSuccess.Has(service.LogSuccessUserID) {
			s.LogOnSuccess &^= service.LogSuccessUserID
			c.warn(WarnUserID113, "log_on_success", s.ID+" service: clearing USERID option from log_on_success")
		}
		if s.LogOnFailure.Has(service.LogFailureUserID) {
			s.LogOnFailure &^= service.LogFailureUserID
			c.warn(WarnUserID113, "log_on_failure", s.ID+" service: clearing USERID option from log_on_failure")
		}
	}
}

// wrote reports whether the entry had a line for attr, whether or not
// its value was accepted.
func (e *readEntry) wrote(attr string) bool {
	sp := attrSpecs[attr]
	return sp != nil && e.tried.has(sp.bit)
}

// unix applies the rules of a unix-domain service (unix_path): its
// family and protocol, and the attributes that need a network peer.
func (c *checker) unix() {
	s := c.s
	switch {
	case s.UnixPath == "" && !c.e.wrote("unix_path"):
		c.err(CodeEntry, fmt.Sprintf("Service %s has protocol unix but no unix_path to listen on", s.Name))
	case s.UnixPath == "":
		// The refused unix_path line was reported; the rest still
		// gets checked as a unix-domain service.
	}
	s.Family, s.Protocol, s.ProtoNum = service.FamilyUnix, "unix", 0
	if !s.Origins.Has("protocol") {
		c.implied("protocol")
	}
	if s.UnixMode == 0 && !setByEntry(s, "unix_mode") {
		// FreeBSD inetd's default: only the socket's owner may connect.
		s.UnixMode = 0o200
		c.implied("unix_mode")
	}
	switch s.SocketType {
	case service.SockStream, service.SockDgram, service.SockSeqPacket, service.SockUnset:
	default:
		c.err(CodeEntry, fmt.Sprintf("Service %s listens on a unix socket: socket_type must be stream, dgram or seqpacket, not %s", s.Name, s.SocketType))
	}
	// Attributes that need an address or a port cannot be honoured;
	// ignoring them would drop what the writer asked for.
	for _, a := range []struct{ attr, why string }{
		{"port", "a unix-domain service listens on its unix_path, not a port"},
		{"bind", "a unix-domain service listens on its unix_path, not an address"},
		{"only_from", "unix-domain peers have no address: use only_users or only_groups"},
		{"no_access", "unix-domain peers have no address: use only_users or only_groups"},
		{"per_source", "per_source counts clients by address, which unix-domain peers do not have"},
		{"per_source_cpm", "per_source_cpm counts clients by address, which unix-domain peers do not have"},
		{"redirect", "redirect proxies tcp connections only"},
	} {
		if setByEntry(s, a.attr) {
			c.err(CodeEntry, fmt.Sprintf("Service %s: %s cannot be used with unix_path: %s", s.Name, a.attr, a.why))
		}
	}
	if s.Flags.Has(service.FlagIPv4) || s.Flags.Has(service.FlagIPv6) {
		c.err(CodeEntry, fmt.Sprintf("Service %s: flags IPv4 and IPv6 cannot be used with unix_path", s.Name))
	}
	if s.Type.Has(service.TypeRPC) || s.IsTCPMuxClient() {
		c.err(CodeEntry, fmt.Sprintf("Service %s: RPC and TCPMUX services cannot listen on a unix socket", s.Name))
	}
	if (len(s.OnlyUsers) > 0 || len(s.OnlyGroups) > 0) && (s.Wait || s.SocketType != service.SockStream && s.SocketType != service.SockSeqPacket) {
		c.err(CodeEntry, fmt.Sprintf("Service %s: only_users and only_groups need socket_type stream or seqpacket and wait = no: the daemon learns a peer's credentials only from a connection it accepts", s.Name))
	}
}

func (l *loader) protoNum(name string) int {
	n, _ := l.sys.Protocol(name)
	return n
}

// pickBind chooses among a bind name's addresses as xinetd does once the
// flags are known: IPv6 flag -> first IPv6, otherwise first IPv4.
func pickBind(addrs []netip.Addr, v4, v6 bool) netip.Addr {
	for _, a := range addrs {
		if v6 && a.Is6() || !v6 && a.Is4() {
			return a
		}
	}
	return addrs[0]
}

func indexOf(list []*readEntry, e *readEntry) int {
	for i, x := range list {
		if x == e {
			return i
		}
	}
	return -1
}

// listenSpace describes the addresses a service's socket occupies.
type listenSpace struct {
	v4, v6 bool
	addr   netip.Addr // invalid = every address of the families
	iface  string
}

func spaceOf(s *service.Service) listenSpace {
	var sp listenSpace
	switch s.Family {
	case service.FamilyIPv4:
		sp.v4 = true
	case service.FamilyIPv6:
		sp.v6 = true
		// Without V6ONLY an IPv6 wildcard socket also takes IPv4.
		if !s.Bind.Addr.IsValid() && (s.V6Only == nil || !*s.V6Only) {
			sp.v4 = true
		}
	default:
		sp.v4, sp.v6 = true, true
	}
	sp.addr = s.Bind.Addr
	sp.iface = s.Bind.Interface
	if s.Bind.Template != "" {
		// Like an interface: its addresses are known only on the host.
		sp.iface = "{{" + s.Bind.Template
	}
	return sp
}

func (a listenSpace) overlaps(b listenSpace) bool {
	if !(a.v4 && b.v4 || a.v6 && b.v6) {
		return false
	}
	aAny := !a.addr.IsValid() && a.iface == ""
	bAny := !b.addr.IsValid() && b.iface == ""
	switch {
	case aAny || bAny:
		return true
	case a.addr.IsValid() && b.addr.IsValid():
		return a.addr == b.addr
	case a.iface != "" && b.iface != "":
		return a.iface == b.iface
	}
	return false
}

type portKey struct {
	port  int
	proto int
}

type boundKey struct {
	portKey
	addr  netip.Addr
	iface string
}

func (a listenSpace) wildcard() bool { return !a.addr.IsValid() && a.iface == "" }

// checkDuplicates rejects a service whose socket would clash with an
// earlier accepted one. Unlike xinetd (which only compares services that
// have a bind address and otherwise lets bind(2) fail at start-up), two
// services on the same port and protocol with overlapping addresses are a
// clash: they cannot both listen. TCPMUX clients have no socket.
func (l *loader) checkDuplicates() {
	// Group the candidates by port (or RPC program) and protocol by
	// sorting, then check each group in read order. This is linear apart
	// from the sort, and unlike a map per port it costs little memory on a
	// 10,000-service file, where nearly every group has one member. Within
	// a group a wildcard listener is compared with everything, a bound one
	// only with wildcards and its own address.
	type cand struct {
		key portKey
		rpc bool
		i   int // index in l.entries
	}
	n := 0
	for _, e := range l.entries {
		if e.svc.Status == "" && !e.svc.IsTCPMuxClient() {
			n++
		}
	}
	cands := make([]cand, 0, n)
	for i, e := range l.entries {
		s := e.svc
		switch {
		case s.Status != "" || s.IsTCPMuxClient():
		case s.Type.Has(service.TypeRPC) && s.Port == 0:
			cands = append(cands, cand{portKey{s.RPCNumber, s.ProtoNum}, true, i})
		case s.Port != 0:
			cands = append(cands, cand{portKey{s.Port, s.ProtoNum}, false, i})
		}
	}
	sameGroup := func(a, b cand) bool { return a.rpc == b.rpc && a.key == b.key }
	slices.SortFunc(cands, func(a, b cand) int {
		switch {
		case a.rpc != b.rpc:
			if a.rpc {
				return 1
			}
			return -1
		case a.key.port != b.key.port:
			return cmp.Compare(a.key.port, b.key.port)
		case a.key.proto != b.key.proto:
			return cmp.Compare(a.key.proto, b.key.proto)
		}
		return cmp.Compare(a.i, b.i)
	})
	clashes := make(map[int]*service.Service) // by index in l.entries
	var wild, bound, rpcs []*service.Service
	exact := map[boundKey]*service.Service{}
	for g := 0; g < len(cands); {
		h := g + 1
		for h < len(cands) && sameGroup(cands[g], cands[h]) {
			h++
		}
		group := cands[g:h]
		g = h
		if len(group) == 1 {
			continue // nothing to clash with
		}
		wild, bound, rpcs = wild[:0], bound[:0], rpcs[:0]
		clear(exact)
		for _, cd := range group {
			s := l.entries[cd.i].svc
			var clash *service.Service
			if cd.rpc {
				for _, t := range rpcs {
					if s.RPCLow <= t.RPCHigh && t.RPCLow <= s.RPCHigh {
						clash = t
						break
					}
				}
				if clash == nil {
					rpcs = append(rpcs, s)
				}
			} else {
				sp := spaceOf(s)
				first := func(list []*service.Service) {
					for _, t := range list {
						if clash == nil && sp.overlaps(spaceOf(t)) {
							clash = t
						}
					}
				}
				first(wild)
				bk := boundKey{cd.key, sp.addr, sp.iface}
				if sp.wildcard() {
					first(bound)
				} else if t, ok := exact[bk]; ok && sp.overlaps(spaceOf(t)) {
					clash = t
				}
				if clash == nil {
					if sp.wildcard() {
						wild = append(wild, s)
					} else {
						bound = append(bound, s)
						if _, ok := exact[bk]; !ok {
							exact[bk] = s
						}
					}
				}
			}
			if clash != nil {
				clashes[cd.i] = clash
			}
		}
	}
	// Unix-domain services clash by path.
	paths := map[string]*service.Service{}
	for _, e := range l.entries {
		s := e.svc
		if s.Status != "" || s.Family != service.FamilyUnix {
			continue
		}
		if t, ok := paths[s.UnixPath]; ok {
			clashes[indexOf(l.entries, e)] = t
			continue
		}
		paths[s.UnixPath] = s
	}
	ids := make(map[string]*service.Service, n)
	for i, e := range l.entries {
		s := e.svc
		if s.Status != "" || s.IsTCPMuxClient() {
			continue
		}
		c := &checker{l: l, e: e, s: s}
		if clash := clashes[i]; clash != nil {
			if s.Family == service.FamilyUnix {
				c.err(CodeDuplicate, fmt.Sprintf("service: %s id: %s listens on unix_path %s, as service %s does (%s) - DISABLING", s.Name, s.ID, s.UnixPath, clash.ID, clash.Src))
				continue
			}
			if strings.EqualFold(clash.ID, s.ID) {
				c.err(CodeDuplicate, fmt.Sprintf("service: %s id: %s not unique or is a duplicate - DISABLING (same port as %s)", s.Name, s.ID, clash.Src))
			} else {
				c.err(CodeDuplicate, fmt.Sprintf("service: %s id: %s is unique but its identical to service: %s id: %s - DISABLING (same port and address, %s)", s.Name, s.ID, clash.Name, clash.ID, clash.Src))
			}
			continue
		}
		id := strings.ToLower(s.ID)
		if t, ok := ids[id]; ok {
			c.warn(WarnDuplicateID, "id", fmt.Sprintf("service %s has id %s, also used by service %s at %s; log records and the enabled/disabled lists cannot tell them apart", s.Name, s.ID, t.Name, t.Src))
		} else {
			ids[id] = s
		}
	}
}

// proxyRules checks the PROXY protocol attributes against the rest of the
// entry.
func (c *checker) proxyRules(internal, redirect, mux bool) {
	s := c.s
	if s.ProxyProtocol != 0 {
		switch {
		case mux:
			c.err(CodeEntry, fmt.Sprintf("Service %s is reached through tcpmux: set proxy_protocol on the tcpmux service, whose connections carry the header", s.Name))
		case s.SocketType != service.SockStream && s.SocketType != service.SockUnset:
			c.err(CodeEntry, fmt.Sprintf("Service %s: proxy_protocol needs a stream service (a datagram server reads its socket itself, so no header can be taken off before it)", s.Name))
		case s.Family == service.FamilyUnix:
			c.err(CodeEntry, fmt.Sprintf("Service %s: proxy_protocol needs a TCP service", s.Name))
		case s.Wait && !internal:
			c.err(CodeEntry, fmt.Sprintf("Service %s: proxy_protocol cannot be used with wait = yes: the server accepts its connections itself, so gxinetd never sees a header to take off (use wait = no)", s.Name))
		}
		if !s.ProxyFrom.Set {
			c.err(CodeEntry, fmt.Sprintf("Service %s has proxy_protocol but no proxy_from: name the balancers allowed to send a header (only they can claim to speak for another address)", s.Name))
		} else if len(s.ProxyFrom.Entries) == 0 {
			c.warn(WarnObsolete, "proxy_from", fmt.Sprintf("Service %s: proxy_from is empty, so every connection is refused", s.Name))
		}
	} else {
		if setByEntry(s, "proxy_from") {
			c.warn(WarnObsolete, "proxy_from", fmt.Sprintf("Service %s: proxy_from has no effect without proxy_protocol", s.Name))
		}
		if setByEntry(s, "proxy_timeout") {
			c.warn(WarnObsolete, "proxy_timeout", fmt.Sprintf("Service %s: proxy_timeout has no effect without proxy_protocol", s.Name))
		}
	}
	if s.RedirectProxyProtocol != 0 && !redirect {
		c.err(CodeEntry, fmt.Sprintf("Service %s has redirect_proxy_protocol but no redirect", s.Name))
	}
}
