package tcpwrap

import (
	"net/netip"
	"strconv"
	"strings"
)

// NameState says what is known about a client's host name.
type NameState int

const (
	// NameUnknown: no name (no PTR record, or the lookup failed).
	NameUnknown NameState = iota
	// NameKnown: a name whose forward lookup gives the address back.
	NameKnown
	// NameParanoid: the reverse name does not resolve back to the address.
	NameParanoid
)

// Client describes the connection being checked. Addr may be zero when
// the client address is not known. Lookup, when set, is called at most
// once per Match and only if a pattern needs the host name.
type Client struct {
	Addr      netip.Addr
	Port      uint16
	Local     netip.Addr
	LocalPort uint16
	User      string // ident answer; "" when unknown
	Lookup    func(netip.Addr) (name string, st NameState)
}

// matcher carries the lazily computed facts about one client through a match.
type matcher struct {
	lookup   func(netip.Addr) (string, NameState)
	user     string
	addr     netip.Addr // unmapped, zone stripped
	addrText string
	textDone bool
	name     string
	state    NameState
	looked   bool
}

func newMatcher(c *Client) matcher {
	return matcher{lookup: c.Lookup, user: c.User, addr: c.Addr.Unmap().WithZone("")}
}

func (m *matcher) hostName() (string, NameState) {
	if !m.looked {
		m.looked = true
		if m.lookup != nil && m.addr.IsValid() {
			m.name, m.state = m.lookup(m.addr)
			m.name = strings.ToLower(strings.TrimSuffix(m.name, "."))
			if m.name == "" && m.state != NameUnknown {
				m.state = NameUnknown
			}
		}
	}
	return m.name, m.state
}

func (m *matcher) text() string {
	if !m.textDone {
		m.textDone = true
		if m.addr.IsValid() {
			m.addrText = m.addr.String()
		}
	}
	return m.addrText
}

// Match returns the first rule whose daemon and client lists match. A
// broken rule whose daemon list could not be read matches every daemon.
func (rs *Rules) Match(daemon string, c Client) (bool, *Rule) {
	if rs == nil {
		return false, nil
	}
	d := strings.ToLower(daemon)
	m := newMatcher(&c)
	local := c.Local.Unmap().WithZone("")
	for _, r := range rs.Rules {
		if r.Daemons != nil && !listMatch(r.Daemons, func(p *pattern) bool { return daemonMatch(p, d, local) }) {
			continue
		}
		if r.Broken != nil {
			return true, r
		}
		if listMatch(r.Clients, func(p *pattern) bool { return clientMatch(p, &m) }) {
			return true, r
		}
	}
	return false, nil
}

// Select returns the rules that can apply to daemon (for some server
// address); matching the result gives the same answer as matching rs, and
// is cheaper when many rules name other daemons.
func (rs *Rules) Select(daemon string) *Rules {
	if rs == nil {
		return nil
	}
	d := strings.ToLower(daemon)
	out := &Rules{File: rs.File}
	for _, r := range rs.Rules {
		if r.Daemons == nil || listMatch(r.Daemons, func(p *pattern) bool { return daemonMayMatch(p, d) }) ||
			hasDaemonHost(r.Daemons) {
			out.Rules = append(out.Rules, r)
		}
	}
	return out
}

// hasDaemonHost reports whether a daemon list depends on the server
// address (daemon@host), which Select cannot decide ahead of time; such
// rules are kept.
func hasDaemonHost(l *list) bool {
	for ; l != nil; l = l.except {
		for i := range l.pats {
			if l.pats[i].kind == patUserHost {
				return true
			}
		}
	}
	return false
}

// listMatch applies tcp_wrappers' list rule: the first matching pattern
// before EXCEPT decides, and then the EXCEPT tail (itself a list) must not match.
func listMatch(l *list, match func(*pattern) bool) bool {
	if l == nil {
		return false
	}
	for i := range l.pats {
		if match(&l.pats[i]) {
			return l.except == nil || !listMatch(l.except, match)
		}
	}
	return false
}

func daemonMayMatch(p *pattern, d string) bool {
	switch p.kind {
	case patAll:
		return true
	case patGlob:
		return glob(p.text, d)
	case patName:
		return p.text == d
	}
	return false
}

func daemonMatch(p *pattern, d string, local netip.Addr) bool {
	if p.kind == patUserHost {
		if !daemonMayMatch(p.user, d) {
			return false
		}
		sm := matcher{addr: local, looked: true}
		return hostMatch(p.host, &sm)
	}
	return daemonMayMatch(p, d)
}

func clientMatch(p *pattern, m *matcher) bool {
	if p.kind == patUserHost {
		return userMatch(p.user, m.user) && hostMatch(p.host, m)
	}
	return hostMatch(p, m)
}

func userMatch(p *pattern, user string) bool {
	known := user != "" && !strings.EqualFold(user, "unknown")
	switch p.kind {
	case patAll:
		return true
	case patKnown:
		return known
	case patUnknown:
		return !known
	case patGlob:
		return known && glob(p.text, strings.ToLower(user))
	case patName:
		return known && strings.EqualFold(p.text, user)
	}
	return false
}

func hostMatch(p *pattern, m *matcher) bool {
	switch p.kind {
	case patAll:
		return true
	case patLocal:
		n, st := m.hostName()
		return st == NameKnown && !strings.Contains(n, ".")
	case patKnown:
		_, st := m.hostName()
		return m.addr.IsValid() && st == NameKnown
	case patUnknown:
		_, st := m.hostName()
		return !m.addr.IsValid() || st == NameUnknown
	case patParanoid:
		_, st := m.hostName()
		return st == NameParanoid
	case patNet:
		if !m.addr.IsValid() {
			return false
		}
		if p.prefix.Addr().Is4() {
			return m.addr.Is4() && p.prefix.Contains(m.addr)
		}
		return p.prefix.Contains(netip.AddrFrom16(m.addr.As16()))
	case patAddrPre:
		return m.addr.IsValid() && strings.HasPrefix(m.text(), p.text)
	case patDomain:
		n, st := m.hostName()
		return st == NameKnown && strings.HasSuffix(n, p.text)
	case patName:
		if m.addr.IsValid() && m.text() == p.text {
			return true
		}
		n, st := m.hostName()
		return st == NameKnown && n == p.text
	case patGlob:
		if m.addr.IsValid() && glob(p.text, m.text()) {
			return true
		}
		n, st := m.hostName()
		return st == NameKnown && glob(p.text, n)
	case patFile:
		for i := range p.sub {
			if hostMatch(&p.sub[i], m) {
				return true
			}
		}
		return false
	case patNetgroup:
		n, st := m.hostName()
		ng := Netgroup
		return ng != nil && st == NameKnown && ng(p.text, n)
	}
	return false
}

// glob matches s against a pattern of literal bytes, '*' (any run) and
// '?' (one byte). Iterative with one backtrack point, so it is linear-ish
// and cannot blow up on hostile input.
func glob(pat, s string) bool {
	px, sx := 0, 0
	star, mark := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pat) && (pat[px] == '?' || pat[px] == s[sx]):
			px++
			sx++
		case px < len(pat) && pat[px] == '*':
			star, mark = px, sx
			px++
		case star >= 0:
			px = star + 1
			mark++
			sx = mark
		default:
			return false
		}
	}
	for px < len(pat) && pat[px] == '*' {
		px++
	}
	return px == len(pat)
}

// Policy is the pair of tables tcp_wrappers consults.
type Policy struct {
	Allow *Rules // hosts.allow
	Deny  *Rules // hosts.deny
}

// Check applies hosts_access(5): the first matching rule of hosts.allow
// grants, else the first matching rule of hosts.deny refuses, else the
// client is granted. An `allow` or `deny` option overrides the table's
// own verdict; a broken rule always refuses. The deciding rule is
// returned (nil when nothing matched).
func (p *Policy) Check(daemon string, c Client) (allow bool, r *Rule) {
	if p == nil {
		return true, nil
	}
	if ok, r := p.Allow.Match(daemon, c); ok {
		return r.Verdict(true), r
	}
	if ok, r := p.Deny.Match(daemon, c); ok {
		return r.Verdict(false), r
	}
	return true, nil
}

// Select narrows both tables to the rules that can apply to daemon.
func (p *Policy) Select(daemon string) *Policy {
	if p == nil {
		return nil
	}
	return &Policy{Allow: p.Allow.Select(daemon), Deny: p.Deny.Select(daemon)}
}

// Empty reports whether the policy has no rules at all.
func (p *Policy) Empty() bool {
	return p == nil || ((p.Allow == nil || len(p.Allow.Rules) == 0) && (p.Deny == nil || len(p.Deny.Rules) == 0))
}

// Verdict is the rule's decision when it matches: its allow/deny option
// if it has one, else the verdict of the table it is in (inAllow).
func (r *Rule) Verdict(inAllow bool) bool {
	if r.Broken != nil {
		return false
	}
	for _, o := range r.Options {
		switch o.Name {
		case "allow":
			return true
		case "deny":
			return false
		}
	}
	return inAllow
}

// Where is the rule's file:line.
func (r *Rule) Where() string {
	if r == nil {
		return ""
	}
	return r.File + ":" + strconv.Itoa(r.Line)
}

// NeedsNames reports whether any rule can need the client's host name, so
// that callers can skip setting up Client.Lookup otherwise.
func (p *Policy) NeedsNames() bool {
	if p == nil {
		return false
	}
	for _, rs := range []*Rules{p.Allow, p.Deny} {
		if rs == nil {
			continue
		}
		for _, r := range rs.Rules {
			if r.Broken == nil && listNeedsNames(r.Clients) {
				return true
			}
		}
	}
	return false
}

func listNeedsNames(l *list) bool {
	for ; l != nil; l = l.except {
		for i := range l.pats {
			p := &l.pats[i]
			if p.kind == patUserHost {
				p = p.host
			}
			if patNeedsNames(p) {
				return true
			}
		}
	}
	return false
}

func patNeedsNames(p *pattern) bool {
	switch p.kind {
	case patLocal, patKnown, patUnknown, patParanoid, patDomain, patName, patGlob, patNetgroup:
		return true
	case patFile:
		for i := range p.sub {
			if patNeedsNames(&p.sub[i]) {
				return true
			}
		}
	}
	return false
}
