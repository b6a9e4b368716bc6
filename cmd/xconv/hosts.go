package main

// This is a deliberately small reader of hosts.allow / hosts.deny: just
// enough of hosts_access(5) and hosts_options(5) to decide whether the
// rules for one daemon can be written as only_from / no_access, and to
// say precisely why not when they cannot. It does not match clients and
// is no substitute for the access package's full tcp_wrappers engine.

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// hostsRule is one `daemons : clients [: options]` line.
type hostsRule struct {
	file    string
	line    int
	text    string
	allow   bool // what a match does (the file's action unless an option overrides it)
	daemons []string
	dExcept []string
	clients []string
	cExcept []string
	opts    []string
	bad     string // why the line could not be read
}

func (r hostsRule) where() string { return fmt.Sprintf("%s:%d", r.file, r.line) }

// readHosts reads one file; allow says which file it is. A missing file
// is empty, as for tcp_wrappers.
func readHosts(path string, allow bool) ([]hostsRule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("xconv: read %s: %w", path, err)
	}
	var out []hostsRule
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		text := strings.TrimRight(lines[i], "\r")
		for strings.HasSuffix(text, "\\") && i+1 < len(lines) {
			i++
			text = text[:len(text)-1] + strings.TrimRight(lines[i], "\r")
		}
		t := strings.TrimSpace(text)
		if t == "" || t[0] == '#' {
			continue
		}
		out = append(out, parseHostsRule(path, start, t, allow))
	}
	return out, nil
}

func parseHostsRule(file string, line int, t string, allow bool) hostsRule {
	r := hostsRule{file: file, line: line, text: strings.Join(strings.Fields(t), " "), allow: allow}
	fields := splitColons(t)
	if len(fields) < 2 {
		r.bad = "no ':' between the daemon list and the client list"
		return r
	}
	var ok bool
	if r.daemons, r.dExcept, ok = splitList(fields[0]); !ok {
		r.bad = "nested EXCEPT in the daemon list"
	}
	if r.clients, r.cExcept, ok = splitList(fields[1]); !ok {
		r.bad = "nested EXCEPT in the client list"
	}
	for _, o := range fields[2:] {
		o = strings.TrimSpace(o)
		switch strings.ToLower(o) {
		case "allow":
			r.allow = true
		case "deny":
			r.allow = false
		case "":
		default:
			r.opts = append(r.opts, o)
		}
	}
	return r
}

// splitColons splits at ':' that are not escaped and not inside [ ].
func splitColons(s string) []string {
	var out []string
	var cur strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == ':':
			cur.WriteByte(':')
			i++
		case c == '[':
			depth++
			cur.WriteByte(c)
		case c == ']':
			if depth > 0 {
				depth--
			}
			cur.WriteByte(c)
		case c == ':' && depth == 0:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, cur.String())
}

// splitList splits `a, b EXCEPT c d`; a second EXCEPT is refused.
func splitList(s string) (main, except []string, ok bool) {
	words := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
	seen := false
	for _, w := range words {
		if strings.EqualFold(w, "EXCEPT") {
			if seen {
				return main, except, false
			}
			seen = true
			continue
		}
		if seen {
			except = append(except, w)
		} else {
			main = append(main, w)
		}
	}
	return main, except, true
}

// applies says whether the rule is about daemon; sure is false when a
// daemon@host pattern makes that depend on the server address.
func (r hostsRule) applies(daemon string) (applies, sure bool) {
	match := func(list []string) (bool, bool) {
		for _, d := range list {
			if strings.Contains(d, "@") {
				return false, false
			}
			if strings.EqualFold(d, "ALL") || strings.EqualFold(d, daemon) {
				return true, true
			}
		}
		return false, true
	}
	in, ok1 := match(r.daemons)
	ex, ok2 := match(r.dExcept)
	return in && !ex, ok1 && ok2
}

// client is one client pattern in xinetd terms.
type client struct {
	all    bool
	prefix netip.Prefix // numeric forms
	name   string       // host name or .domain
}

// convertClient maps a tcp_wrappers client pattern onto an xinetd
// address, or says why it cannot be.
func convertClient(w string) (client, string) {
	up := strings.ToUpper(w)
	switch up {
	case "ALL":
		return client{all: true}, ""
	case "LOCAL", "KNOWN", "UNKNOWN", "PARANOID":
		return client{}, fmt.Sprintf("%s depends on name resolution, which only_from cannot test", up)
	}
	switch {
	case strings.HasPrefix(w, "@"):
		return client{}, fmt.Sprintf("NIS netgroup %s has no only_from equivalent", w)
	case strings.HasPrefix(w, "/"):
		return client{}, fmt.Sprintf("pattern file %s is not expanded", w)
	case strings.Contains(w, "@"):
		return client{}, fmt.Sprintf("user@host pattern %s needs an ident lookup", w)
	case strings.ContainsAny(w, "*?"):
		return client{}, fmt.Sprintf("wildcard pattern %s has no only_from equivalent", w)
	case strings.HasPrefix(w, "."):
		if validName(w[1:]) {
			return client{name: strings.ToLower(w)}, ""
		}
	case strings.HasPrefix(w, "["):
		if p, err := parseV6Pattern(w); err == "" {
			return client{prefix: p}, ""
		}
	case strings.HasSuffix(w, "."):
		if p, ok := dottedPrefix(w); ok {
			return client{prefix: p}, ""
		}
	case strings.Contains(w, "/"):
		a, m, _ := strings.Cut(w, "/")
		ip, err := netip.ParseAddr(a)
		if err == nil && ip.Is4() {
			if bits, ok := maskBits(m); ok {
				if p, err := ip.Prefix(bits); err == nil && p.Addr() == ip {
					return client{prefix: p}, ""
				}
			}
		}
	default:
		if ip, err := netip.ParseAddr(w); err == nil {
			return client{prefix: netip.PrefixFrom(ip, ip.BitLen())}, ""
		}
		if validName(w) {
			return client{name: strings.ToLower(w)}, ""
		}
	}
	return client{}, fmt.Sprintf("pattern %s is not understood", w)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return !strings.ContainsAny(s[:1], ".-")
}

func parseV6Pattern(w string) (netip.Prefix, string) {
	end := strings.IndexByte(w, ']')
	if end < 0 {
		return netip.Prefix{}, "no ]"
	}
	ip, err := netip.ParseAddr(w[1:end])
	if err != nil || !ip.Is6() {
		return netip.Prefix{}, "bad address"
	}
	rest := w[end+1:]
	bits := 128
	if rest != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(rest, "/"))
		if err != nil || !strings.HasPrefix(rest, "/") || n < 0 || n > 128 {
			return netip.Prefix{}, "bad length"
		}
		bits = n
	}
	p, err := ip.Prefix(bits)
	if err != nil || p.Addr() != ip {
		return netip.Prefix{}, "host bits set"
	}
	return p, ""
}

// dottedPrefix reads tcp_wrappers' `192.168.` form.
func dottedPrefix(w string) (netip.Prefix, bool) {
	parts := strings.Split(strings.TrimSuffix(w, "."), ".")
	if len(parts) < 1 || len(parts) > 3 {
		return netip.Prefix{}, false
	}
	var b [4]byte
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 || p == "" {
			return netip.Prefix{}, false
		}
		b[i] = byte(n)
	}
	return netip.PrefixFrom(netip.AddrFrom4(b), 8*len(parts)), true
}

// maskBits reads a /len or a dotted contiguous netmask.
func maskBits(m string) (int, bool) {
	if n, err := strconv.Atoi(m); err == nil && n >= 0 && n <= 32 {
		return n, true
	}
	ip, err := netip.ParseAddr(m)
	if err != nil || !ip.Is4() {
		return 0, false
	}
	v := uint32(0)
	for _, b := range ip.As4() {
		v = v<<8 | uint32(b)
	}
	bits := 0
	for v&0x80000000 != 0 {
		bits++
		v <<= 1
	}
	return bits, v == 0
}

// xinetd renders a client as an only_from / no_access word. A full IPv4
// address with trailing zero octets gets /32: xinetd would otherwise read
// the zeros as wildcards.
func (c client) xinetd() string {
	if c.name != "" {
		return c.name
	}
	a := c.prefix.Addr()
	if c.prefix.Bits() == a.BitLen() {
		if a.Is4() && a.As4()[3] == 0 {
			return c.prefix.String()
		}
		return a.String()
	}
	return c.prefix.String()
}

func overlaps(a, b client) bool {
	switch {
	case a.all || b.all:
		return true
	case a.name != "" && b.name != "":
		return a.name == b.name || nameWithin(a.name, b.name) || nameWithin(b.name, a.name)
	case a.name != "" || b.name != "":
		return true // a name may resolve anywhere
	}
	return a.prefix.Overlaps(b.prefix)
}

// within reports whether every client matching x also matches i.
func within(x, i client) bool {
	switch {
	case i.all:
		return true
	case x.all:
		return false
	case x.name != "" && i.name != "":
		return x.name == i.name || nameWithin(x.name, i.name)
	case x.name != "" || i.name != "":
		return false
	}
	return i.prefix.Bits() <= x.prefix.Bits() && i.prefix.Contains(x.prefix.Addr())
}

func nameWithin(x, domain string) bool {
	return strings.HasPrefix(domain, ".") && strings.HasSuffix(x, domain)
}

// access is what the rules for one daemon become.
type access struct {
	onlyFrom, noAccess []string
	onlySet            bool
	rules              []hostsRule // the rules that applied, for comments
	problems           []string    // why it cannot be expressed
}

// convertRules turns the rules that apply to daemon into only_from and
// no_access, or lists why that is impossible. tcp_wrappers grants on the
// first allow match, refuses on the first deny match and grants when
// nothing matches; xinetd refuses when both lists match, so only shapes
// where no client matches both lists are converted.
func convertRules(rules []hostsRule, daemon string) access {
	var acc access
	type crule struct {
		r    hostsRule
		inc  []client
		exc  []client
		all  bool // inc is ALL
		xall bool // exc contains ALL
	}
	var rs []crule
	for _, r := range rules {
		app, sure := r.applies(daemon)
		if !sure {
			acc.rules = append(acc.rules, r)
			acc.problems = append(acc.problems, fmt.Sprintf("%s: daemon@host patterns depend on the server address", r.where()))
			continue
		}
		if !app {
			continue
		}
		acc.rules = append(acc.rules, r)
		if r.bad != "" {
			acc.problems = append(acc.problems, fmt.Sprintf("%s: %s", r.where(), r.bad))
			continue
		}
		for _, o := range r.opts {
			word, _, _ := strings.Cut(o, " ")
			acc.problems = append(acc.problems, fmt.Sprintf("%s: option %q (%s) has no xinetd equivalent", r.where(), o, optionWhat(word)))
		}
		c := crule{r: r}
		for _, w := range r.clients {
			cl, why := convertClient(w)
			if why != "" {
				acc.problems = append(acc.problems, fmt.Sprintf("%s: %s", r.where(), why))
				continue
			}
			c.all = c.all || cl.all
			c.inc = append(c.inc, cl)
		}
		for _, w := range r.cExcept {
			cl, why := convertClient(w)
			if why != "" {
				acc.problems = append(acc.problems, fmt.Sprintf("%s: %s (after EXCEPT)", r.where(), why))
				continue
			}
			c.xall = c.xall || cl.all
			c.exc = append(c.exc, cl)
		}
		rs = append(rs, c)
	}
	if len(acc.problems) > 0 {
		return acc
	}
	fail := func(r hostsRule, why string) access {
		acc.problems = append(acc.problems, fmt.Sprintf("%s: %s", r.where(), why))
		return acc
	}
	// Rules after the first unconditional ALL can never match.
	for i, c := range rs {
		if c.all && len(c.exc) == 0 {
			rs = rs[:i+1]
			break
		}
	}
	if len(rs) == 0 {
		return acc
	}
	var allows, denies []crule
	for _, c := range rs {
		if c.r.allow {
			if len(denies) > 0 {
				return fail(c.r, "an allow rule after a deny rule: the order cannot be expressed with only_from/no_access")
			}
			allows = append(allows, c)
		} else {
			denies = append(denies, c)
		}
		if c.xall {
			return fail(c.r, "EXCEPT ALL never matches anything")
		}
	}
	if len(allows) > 0 && allows[0].all && len(allows[0].exc) == 0 {
		return acc // everyone is allowed
	}
	catchAll := len(denies) > 0 && denies[len(denies)-1].all && len(denies[len(denies)-1].exc) == 0
	var allowInc []client
	for _, a := range allows {
		if a.all {
			return fail(a.r, "allow ALL EXCEPT ... combined with other rules cannot be expressed")
		}
		allowInc = append(allowInc, a.inc...)
	}
	for _, a := range allows {
		for _, x := range a.exc {
			inside := false
			for _, i := range a.inc {
				inside = inside || within(x, i)
			}
			if !inside {
				return fail(a.r, fmt.Sprintf("EXCEPT %s is not inside the rule's own clients", x.xinetd()))
			}
			for _, o := range allows {
				if o.r.line == a.r.line && o.r.file == a.r.file {
					continue
				}
				for _, i := range o.inc {
					if overlaps(x, i) {
						return fail(a.r, fmt.Sprintf("EXCEPT %s is allowed again by %s", x.xinetd(), o.r.where()))
					}
				}
			}
			acc.noAccess = append(acc.noAccess, x.xinetd())
		}
	}
	if catchAll {
		// Whitelist: the allows decide, the denies before ALL deny only
		// what ALL denies anyway.
		acc.onlySet = true
		for _, i := range allowInc {
			acc.onlyFrom = append(acc.onlyFrom, i.xinetd())
		}
		return acc
	}
	// Blacklist: what the denies catch, minus what the allows granted.
	var allExcept *crule
	for k := range denies {
		d := &denies[k]
		if d.all {
			if allExcept != nil {
				return fail(d.r, "two deny ALL EXCEPT rules cannot be expressed")
			}
			allExcept = d
			continue
		}
		if len(d.exc) > 0 {
			return fail(d.r, "deny ... EXCEPT ... needs a most-specific-match rule that xinetd does not have")
		}
		for _, i := range d.inc {
			for _, a := range allowInc {
				if overlaps(i, a) {
					return fail(d.r, fmt.Sprintf("%s is denied here but allowed by an earlier rule (%s)", i.xinetd(), a.xinetd()))
				}
			}
			acc.noAccess = append(acc.noAccess, i.xinetd())
		}
	}
	if allExcept != nil {
		acc.onlySet = true
		for _, i := range allowInc {
			acc.onlyFrom = append(acc.onlyFrom, i.xinetd())
		}
		for _, x := range allExcept.exc {
			acc.onlyFrom = append(acc.onlyFrom, x.xinetd())
		}
	}
	return acc
}

// optionWhat names what a hosts_options(5) option does, for comments.
func optionWhat(word string) string {
	switch strings.ToLower(word) {
	case "spawn":
		return "runs a shell command"
	case "twist":
		return "replaces the server with a shell command"
	case "aclexec":
		return "lets a command decide"
	case "banners":
		return "sends a banner file"
	case "severity":
		return "changes the log priority"
	case "rfc931":
		return "does an ident lookup"
	case "setenv":
		return "sets an environment variable"
	case "user":
		return "changes the user"
	case "umask", "nice", "keepalive", "linger":
		return "changes the process or socket"
	}
	return "unknown option"
}
