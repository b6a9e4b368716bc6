package tcpwrap

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// maxFileSize bounds what Load reads: an access table is a few kilobytes,
// and a runaway file must not make the daemon allocate without limit.
const maxFileSize = 4 << 20

// ParseError is one problem found in a table, naming file and line.
// Warning is true for problems that leave the rule in force (an option
// gxinetd does not carry out); otherwise the rule is broken and denies.
type ParseError struct {
	File    string
	Line    int
	Msg     string
	Warning bool
}

func (e *ParseError) Error() string {
	w := ""
	if e.Warning {
		w = "warning: "
	}
	return fmt.Sprintf("%s:%d: %s%s", e.File, e.Line, w, e.Msg)
}

// Rules is one parsed table (hosts.allow or hosts.deny), in file order.
type Rules struct {
	File  string
	Rules []*Rule
}

// Rule is one `daemon_list : client_list [: option : ...]` line.
type Rule struct {
	File string
	Line int
	Text string // the logical line as read (continuations joined)

	Daemons *list
	Clients *list
	Options []Option
	// Unsupported names the options gxinetd reads but does not carry out.
	Unsupported []string
	// Broken is set when the line could not be read; the rule then
	// matches (every daemon if its daemon list is unreadable too) and
	// always denies.
	Broken error
}

// Option is one hosts_options(5) option: its keyword (lower-case) and
// argument as written (with `\:` unescaped).
type Option struct {
	Name string
	Arg  string
}

// Load reads and parses one table. A missing file is an empty table, as
// tcp_wrappers treats it; any other read error is returned.
func Load(path string) (*Rules, []error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Rules{File: path}, nil
	}
	if err != nil {
		return &Rules{File: path}, []error{fmt.Errorf("tcpwrap: read %s: %w", path, err)}
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return &Rules{File: path}, []error{fmt.Errorf("tcpwrap: read %s: %w", path, err)}
	}
	if len(buf) > maxFileSize {
		return &Rules{File: path}, []error{fmt.Errorf("tcpwrap: read %s: larger than %d bytes", path, maxFileSize)}
	}
	r, errs := Parse(path, buf)
	return r, errs
}

// Parse reads a table from data; name is used in messages and in each
// Rule. Every problem is reported; broken lines are kept as deny rules.
func Parse(name string, data []byte) (*Rules, []error) {
	rs := &Rules{File: name}
	var errs []error
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		line := strings.TrimRight(lines[i], "\r")
		// A trailing backslash joins the next physical line.
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = line[:len(line)-1] + strings.TrimRight(lines[i], "\r")
		}
		line = strings.TrimSuffix(line, "\\")
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		r, lineErrs := parseRule(name, start, t)
		rs.Rules = append(rs.Rules, r)
		errs = append(errs, lineErrs...)
		for _, l := range []*list{r.Daemons, r.Clients} {
			errs = append(errs, resolveFiles(l, name, start, nil)...)
		}
	}
	return rs, errs
}

func parseRule(file string, line int, text string) (*Rule, []error) {
	r := &Rule{File: file, Line: line, Text: text}
	var errs []error
	fail := func(msg string) {
		if r.Broken == nil {
			r.Broken = errors.New(msg)
		}
		errs = append(errs, &ParseError{File: file, Line: line, Msg: msg})
	}
	warn := func(msg string) {
		errs = append(errs, &ParseError{File: file, Line: line, Msg: msg, Warning: true})
	}

	dpart, rest, ok := splitColon(text)
	if d, err := parseList(dpart, true); err != nil {
		fail("daemon list: " + err.Error())
	} else {
		r.Daemons = d
	}
	if !ok {
		fail("missing ':' separator")
		return r, errs
	}
	cpart, opts, hasOpts := splitColon(rest)
	if c, err := parseList(cpart, false); err != nil {
		fail("client list: " + err.Error())
	} else {
		r.Clients = c
	}
	if !hasOpts {
		return r, errs
	}
	fields := splitOptions(opts)
	for i, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			fail("empty option")
			continue
		}
		kw, arg := f, ""
		if j := strings.IndexAny(f, " \t="); j >= 0 {
			kw, arg = f[:j], strings.TrimLeft(f[j:], " \t=")
		}
		kw = strings.ToLower(kw)
		arg = strings.TrimSpace(arg)
		last := i == len(fields)-1
		switch kw {
		case "allow", "deny":
			if arg != "" {
				fail(fmt.Sprintf("option %q takes no value", kw))
			}
			if !last {
				fail(fmt.Sprintf("option %q must be the last option", kw))
			}
		case "severity", "banners", "spawn", "twist":
			if arg == "" {
				fail(fmt.Sprintf("option %q needs a value", kw))
			}
			if kw == "twist" && !last {
				fail(`option "twist" must be the last option`)
			}
		case "nice":
			if arg != "" {
				if _, err := strconv.Atoi(arg); err != nil {
					fail(fmt.Sprintf("option \"nice\": bad value %q (a number)", arg))
					continue
				}
			}
		case "umask":
			if v, err := strconv.ParseUint(arg, 8, 32); err != nil || v > 0o777 {
				fail(fmt.Sprintf("option \"umask\": bad value %q (octal 0 to 777)", arg))
				continue
			}
		case "user":
			if arg == "" || strings.ContainsAny(arg, " \t") {
				fail(`option "user" needs one value: user or user.group`)
				continue
			}
		case "setenv":
			if n, _, _ := strings.Cut(arg, " "); n == "" || strings.ContainsAny(n, "=\t") {
				fail(`option "setenv" needs a name and a value`)
				continue
			}
		case "keepalive", "linger", "rfc931":
			r.Unsupported = append(r.Unsupported, kw)
			warn(fmt.Sprintf("option %q is not supported by gxinetd and is ignored", kw))
			continue
		case "aclexec":
			// Its exit status decides; ignoring it could admit clients it refuses.
			fail(`option "aclexec" is not supported`)
			continue
		default:
			fail(fmt.Sprintf("bad option name %q", kw))
			continue
		}
		r.Options = append(r.Options, Option{Name: kw, Arg: arg})
	}
	return r, errs
}

// splitColon splits at the first ':' that is not inside [...] (IPv6
// patterns) and not escaped with a backslash.
func splitColon(s string) (before, after string, found bool) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '[':
			depth++
		case ']':
			if depth > 0 {
				depth--
			}
		case ':':
			if depth == 0 {
				return s[:i], s[i+1:], true
			}
		}
	}
	return s, "", false
}

// splitOptions splits the option part at ':' and turns `\:` into ':'.
func splitOptions(s string) []string {
	var out []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] == ':' {
			b.WriteByte(':')
			i++
			continue
		}
		if c == ':' {
			out = append(out, b.String())
			b.Reset()
			continue
		}
		b.WriteByte(c)
	}
	return append(out, b.String())
}

// list is a pattern list with an optional EXCEPT tail, which nests to the right.
type list struct {
	pats   []pattern
	except *list
}

type patKind int

const (
	patAll patKind = iota
	patLocal
	patKnown
	patUnknown
	patParanoid
	patName     // exact host (or daemon) name, or an address written plainly
	patDomain   // .domain suffix
	patAddrPre  // "131.155." address text prefix
	patNet      // n.n.n.n/m.m.m.m, /len, [v6]/len, [v6], plain address
	patGlob     // * and ?
	patUserHost // user@host (client) or daemon@host (daemon)
	patFile     // /path: the host patterns listed in a file
	patNetgroup // @group: an NIS netgroup (through NSS)
)

type pattern struct {
	kind   patKind
	text   string // lower-case
	prefix netip.Prefix
	user   *pattern // user@host: the user part (client lists) or daemon part (daemon lists)
	host   *pattern
	// sub holds a pattern file's patterns once read (see resolveFiles).
	sub []pattern
}

func parseList(s string, daemon bool) (*list, error) {
	toks := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
	if len(toks) == 0 {
		return nil, errors.New("empty list")
	}
	root := &list{}
	cur := root
	for _, t := range toks {
		if strings.EqualFold(t, "EXCEPT") {
			if len(cur.pats) == 0 {
				return nil, errors.New("EXCEPT without a pattern before it")
			}
			cur.except = &list{}
			cur = cur.except
			continue
		}
		p, err := parsePattern(t, daemon)
		if err != nil {
			return nil, err
		}
		cur.pats = append(cur.pats, p)
	}
	if len(cur.pats) == 0 {
		return nil, errors.New("EXCEPT without a pattern after it")
	}
	return root, nil
}

func parsePattern(t string, daemon bool) (pattern, error) {
	if daemon {
		if d, h, ok := strings.Cut(t, "@"); ok && d != "" {
			dp, err := parsePattern(d, true)
			if err != nil {
				return pattern{}, err
			}
			hp, err := parseHostPattern(h)
			if err != nil {
				return pattern{}, err
			}
			return pattern{kind: patUserHost, text: strings.ToLower(t), user: &dp, host: &hp}, nil
		}
		switch {
		case strings.EqualFold(t, "ALL"):
			return pattern{kind: patAll, text: "all"}, nil
		case strings.ContainsAny(t, "*?"):
			return pattern{kind: patGlob, text: strings.ToLower(t)}, nil
		}
		return pattern{kind: patName, text: strings.ToLower(t)}, nil
	}
	if t[0] != '@' && t[0] != '[' && strings.Contains(t, "@") {
		u, h, _ := strings.Cut(t, "@")
		up := pattern{kind: patName, text: strings.ToLower(u)}
		switch {
		case strings.EqualFold(u, "ALL"):
			up.kind = patAll
		case strings.EqualFold(u, "KNOWN"):
			up.kind = patKnown
		case strings.EqualFold(u, "UNKNOWN"):
			up.kind = patUnknown
		case strings.ContainsAny(u, "*?"):
			up.kind = patGlob
		}
		hp, err := parseHostPattern(h)
		if err != nil {
			return pattern{}, err
		}
		return pattern{kind: patUserHost, text: strings.ToLower(t), user: &up, host: &hp}, nil
	}
	return parseHostPattern(t)
}

func parseHostPattern(t string) (pattern, error) {
	lt := strings.ToLower(t)
	switch {
	case t == "":
		return pattern{}, errors.New("empty host pattern")
	case lt == "all":
		return pattern{kind: patAll, text: lt}, nil
	case lt == "local":
		return pattern{kind: patLocal, text: lt}, nil
	case lt == "known":
		return pattern{kind: patKnown, text: lt}, nil
	case lt == "unknown":
		return pattern{kind: patUnknown, text: lt}, nil
	case lt == "paranoid":
		return pattern{kind: patParanoid, text: lt}, nil
	case t[0] == '@':
		if len(t) == 1 {
			return pattern{}, errors.New(`"@" without a netgroup name`)
		}
		return pattern{kind: patNetgroup, text: t[1:]}, nil
	case t[0] == '/':
		return pattern{kind: patFile, text: t}, nil
	case t[0] == '[':
		return parseBracket(t)
	case strings.Contains(t, "/"):
		p, err := parseNetMask(t)
		if err != nil {
			return pattern{}, err
		}
		return pattern{kind: patNet, text: lt, prefix: p}, nil
	case strings.ContainsAny(t, "*?"):
		if t[0] == '.' || strings.HasSuffix(t, ".") {
			return pattern{}, fmt.Errorf("wildcards cannot be combined with a leading or trailing dot: %q", t)
		}
		return pattern{kind: patGlob, text: lt}, nil
	case t[0] == '.':
		if len(t) == 1 {
			return pattern{}, errors.New(`"." is not a domain`)
		}
		return pattern{kind: patDomain, text: lt}, nil
	case strings.HasSuffix(t, "."):
		return pattern{kind: patAddrPre, text: lt}, nil
	}
	if a, err := netip.ParseAddr(t); err == nil && a.Is4() {
		return pattern{kind: patNet, text: lt, prefix: netip.PrefixFrom(a, 32)}, nil
	}
	return pattern{kind: patName, text: lt}, nil
}

// parseBracket reads [v6] and [v6]/len.
func parseBracket(t string) (pattern, error) {
	end := strings.IndexByte(t, ']')
	if end < 0 {
		return pattern{}, fmt.Errorf("missing ']' in %q", t)
	}
	a, err := netip.ParseAddr(t[1:end])
	if err != nil || !a.Is6() || a.Zone() != "" {
		return pattern{}, fmt.Errorf("bad IPv6 address in %q", t)
	}
	bits := 128
	switch rest := t[end+1:]; {
	case rest == "":
	case rest[0] == '/':
		n, err := strconv.Atoi(rest[1:])
		if err != nil || n < 0 || n > 128 {
			return pattern{}, fmt.Errorf("bad prefix length in %q", t)
		}
		bits = n
	default:
		return pattern{}, fmt.Errorf("junk after ']' in %q", t)
	}
	return pattern{kind: patNet, text: strings.ToLower(t), prefix: netip.PrefixFrom(a, bits).Masked()}, nil
}

// parseNetMask reads n.n.n.n/m.m.m.m and n.n.n.n/len (IPv4).
func parseNetMask(t string) (netip.Prefix, error) {
	as, ms, _ := strings.Cut(t, "/")
	a, err := netip.ParseAddr(as)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("bad network address in %q", t)
	}
	if n, err := strconv.Atoi(ms); err == nil {
		if n < 0 || n > 32 {
			return netip.Prefix{}, fmt.Errorf("bad prefix length in %q", t)
		}
		return netip.PrefixFrom(a, n).Masked(), nil
	}
	m, err := netip.ParseAddr(ms)
	if err != nil || !m.Is4() {
		return netip.Prefix{}, fmt.Errorf("bad netmask in %q", t)
	}
	mb := m.As4()
	v := uint32(mb[0])<<24 | uint32(mb[1])<<16 | uint32(mb[2])<<8 | uint32(mb[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return netip.Prefix{}, fmt.Errorf("netmask in %q is not contiguous", t)
	}
	// tcp_wrappers compares (addr & mask) == net, so host bits in the
	// network part can never match; report them instead of masking them away.
	p := netip.PrefixFrom(a, n)
	if p.Masked().Addr() != a {
		return netip.Prefix{}, fmt.Errorf("network %q has bits set outside the mask", t)
	}
	return p, nil
}
