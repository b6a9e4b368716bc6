package main

import (
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
	"github.com/gxinetd/gxinetd/parser/inetd"
)

type converter struct {
	file         string
	dialect      string
	allowFile    string
	denyFile     string
	daemonDir    string
	keepDisabled bool
	haveHosts    bool
	rules        []hostsRule
	sys          *sysdb.DB
	stderr       io.Writer
	det          inetd.Detection // the dialect the file is read with, and why

	lossy bool
	lines []string
	// dups maps the id of an entry that an earlier one shadows to the
	// parser's message.
	dups map[string]string
	// unknown holds, by line, the names this machine does not know.
	unknown map[lineKey][]string
	// others caches the lines of files read through NetBSD's .include.
	others map[string][]string
	// quoted marks entries whose text is already in the output.
	quoted map[lineKey]bool
}

// attr is one `name = value` line with the comments printed above it.
type attr struct {
	name, value string
	comments    []string
}

// block is one service (or the defaults) with the comments above it;
// a block without a name is only comments (an entry that could not be
// converted).
type block struct {
	pre   []string
	name  string
	id    string
	attrs []attr
}

type output struct {
	header  []string
	blocks  []*block
	trailer []string
}

// lossyWarnings are the parser warnings that mean something in the
// input has no equivalent in the output.
var lossyWarnings = map[string]bool{inetd.CodeIPsec: true,
	inetd.CodeLoginClass: true, inetd.CodeAcceptFilter: true}

func (c *converter) report(format string, a ...any) {
	fmt.Fprintf(c.stderr, "xconv: "+format+"\n", a...)
}

func (c *converter) lose(format string, a ...any) {
	c.lossy = true
	c.report(format, a...)
}

// opts reads the file in the dialect asked for, or the one recognised
// in it; lines read on their own (commented-out entries) use the
// dialect chosen for the whole file.
// Names this machine does not know are kept: validating them is the
// job of `gxinetd -t` on the host that will run the result.
func (c *converter) opts() inetd.Options {
	return inetd.Options{Sys: c.sys, Dialect: c.dialect, KeepUnknownNames: true}
}

func (c *converter) lineOpts() inetd.Options {
	return inetd.Options{Sys: c.sys, Dialect: c.det.Dialect, KeepUnknownNames: true}
}

// convert reads inetd.conf text and lays out the xinetd.conf blocks.
func (c *converter) convert(data []byte) (*output, bool) {
	c.det = inetd.Detect(data)
	if c.dialect != "" {
		c.det = inetd.Detection{Dialect: strings.ToLower(c.dialect), Explicit: true}
	}
	svcs, diags := inetd.Parse(c.file, data, c.opts())
	c.dups = map[string]string{}
	c.unknown = map[lineKey][]string{}
	for _, d := range diags {
		if d.Severity == service.SevNotice {
			continue
		}
		if d.Code == inetd.CodeDuplicate {
			c.dups[d.Service] = d.Msg
		}
		if d.Code == inetd.CodeUnknownName {
			k := lineKey{d.Pos.File, d.Pos.Line}
			c.unknown[k] = append(c.unknown[k], d.Msg)
		}
		if d.Severity == service.SevError || lossyWarnings[d.Code] {
			c.lossy = true
		}
		c.report("%s", d)
	}
	if diags.HasFatal() {
		return nil, false
	}
	c.lines = strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	if n := len(c.lines); n > 0 && c.lines[n-1] == "" {
		c.lines = c.lines[:n-1]
	}
	byLine := map[int][]*service.Service{}
	used := map[string]bool{}
	// Entries of included files come, in read order, after the main
	// file's entry that precedes the .include: they are written where
	// the first .include line after that entry stands.
	included := map[int][]*service.Service{}
	lastMain := 0
	for _, s := range svcs {
		if s.Src.File == c.file {
			byLine[s.Src.Line] = append(byLine[s.Src.Line], s)
			lastMain = s.Src.Line
		} else {
			included[lastMain] = append(included[lastMain], s)
		}
		used[strings.ToLower(s.ID)] = true
	}
	lastMain = 0
	out := &output{header: c.header()}
	var pending []string
	emitted := false
	attach := func(bs []*block) {
		for len(pending) > 0 && pending[len(pending)-1] == "" {
			pending = pending[:len(pending)-1]
		}
		if len(bs) > 0 {
			bs[0].pre = append(pending, bs[0].pre...)
		}
		pending = nil
		out.blocks = append(out.blocks, bs...)
		emitted = true
	}
	for i := 0; i < len(c.lines); i++ {
		n := i + 1
		line := c.lines[i]
		if group := byLine[n]; group != nil {
			var bs []*block
			for _, s := range group {
				bs = append(bs, c.block(s, false))
			}
			attach(bs)
			lastMain = n
			if end := group[0].EndLine; end > n {
				i = end - 1
			}
			continue
		}
		t := strings.TrimLeft(line, " \t")
		switch {
		case strings.HasPrefix(line, ".include"):
			pending = append(pending, "# inetd.conf "+printable(t)+": the entries it read follow")
			if group := included[lastMain]; group != nil {
				delete(included, lastMain)
				var bs []*block
				for _, s := range group {
					bs = append(bs, c.block(s, false))
				}
				attach(bs)
			}
		case t == "":
			if !emitted && len(pending) > 0 {
				out.header = append(out.header, "")
				out.header = append(out.header, pending...)
				pending = nil
			} else if len(pending) > 0 && pending[len(pending)-1] != "" {
				pending = append(pending, "")
			}
		case t[0] == '#':
			if c.keepDisabled {
				if bs := c.disabled(line, n, used); bs != nil {
					attach(bs)
					continue
				}
			}
			pending = append(pending, t)
		case strings.HasSuffix(t, ":") && !strings.ContainsAny(t, " \t"):
			pending = append(pending, "# inetd.conf default address (now a bind attribute below): "+t)
		default:
			if len(t) > 200 {
				t = t[:200] + "..."
			}
			pending = append(pending, "# xconv: line "+strconv.Itoa(n)+" not converted: "+printable(t))
		}
	}
	for len(pending) > 0 && pending[len(pending)-1] == "" {
		pending = pending[:len(pending)-1]
	}
	out.trailer = pending
	return out, true
}

func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f || r == 0xfffd {
			return '?'
		}
		return r
	}, s)
}

func (c *converter) header() []string {
	h := []string{
		fmt.Sprintf("# xinetd.conf converted from %s by xconv (gxinetd), reading it as the %s inetd.conf dialect", c.file, c.det.Dialect),
		"# (" + c.det.Reason() + ").",
	}
	if len(c.det.Against) > 0 {
		h = append(h, "# xconv: the file's dialect signals disagree: "+strings.Join(c.det.Against, "; ")+"; run xconv -dialect D to choose.")
	}
	return append(h, `# Lines starting with "# xconv:" say what could not be carried over exactly.`)
}

// disabled converts a commented-out entry, or returns nil when the
// comment is not one. Debian's update-inetd marks them `#<off>#`.
func (c *converter) disabled(line string, n int, used map[string]bool) []*block {
	var t string
	switch {
	case strings.HasPrefix(line, "#<off>#"):
		t = line[len("#<off>#"):]
	case strings.HasPrefix(line, "#@"), !strings.HasPrefix(line, "#"):
		return nil
	default:
		t = line[1:]
	}
	t = strings.TrimLeft(t, " \t")
	if t == "" || t[0] == '#' {
		return nil
	}
	svcs, diags := inetd.Parse(c.file, []byte(t), c.lineOpts())
	if len(svcs) == 0 || diags.HasErrors() {
		return nil
	}
	var bs []*block
	for _, s := range svcs {
		if s.Status != service.StatusAccepted {
			return nil
		}
		s.Src.Line, s.EndLine = n, n
		id := s.ID
		for k := 2; used[strings.ToLower(id)]; k++ {
			id = s.ID + "-disabled"
			if k > 2 {
				id += strconv.Itoa(k - 1)
			}
		}
		used[strings.ToLower(id)] = true
		s.ID = id
		bs = append(bs, c.block(s, true))
	}
	return bs
}

// original returns the entry's lines as comments, once per entry: a
// line with many addresses must not be copied once per address.
func (c *converter) original(s *service.Service) []string {
	k := lineKey{s.Src.File, s.Src.Line}
	if c.quoted[k] {
		return nil
	}
	if c.quoted == nil {
		c.quoted = map[lineKey]bool{}
	}
	c.quoted[k] = true
	lines := c.linesOf(s.Src.File)
	var out []string
	for n := s.Src.Line; n <= s.EndLine && n-1 < len(lines); n++ {
		out = append(out, "# "+printable(strings.TrimLeft(lines[n-1], " \t")))
	}
	return out
}

// lineKey names a line of the main file or of an included one.
type lineKey struct {
	file string
	line int
}

// linesOf is the text of the main file, or of a file it included.
func (c *converter) linesOf(file string) []string {
	if file == c.file {
		return c.lines
	}
	if l, ok := c.others[file]; ok {
		return l
	}
	if c.others == nil {
		c.others = map[string][]string{}
	}
	data, _ := os.ReadFile(file)
	c.others[file] = strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	return c.others[file]
}

// unconverted is the block for an entry that has no xinetd form.
func (c *converter) unconverted(s *service.Service, why string, report bool) *block {
	if report {
		c.lose("%s: %s not converted: %s", s.Src, s.ID, why)
	}
	pre := []string{fmt.Sprintf("# xconv: line %d not converted: %s", s.Src.Line, why)}
	return &block{pre: append(pre, c.original(s)...)}
}

// block converts one service.
func (c *converter) block(s *service.Service, disabled bool) *block {
	if s.Status != service.StatusAccepted {
		var why []string
		for _, r := range s.Reasons {
			why = append(why, r.Msg)
		}
		return c.unconverted(s, strings.Join(why, "; "), false)
	}
	_, dup := c.dups[s.ID]
	if s.SocketType == service.SockRDM {
		return c.unconverted(s, "xinetd.conf has no rdm sockets", !disabled)
	}
	unixSock := s.Family == service.FamilyUnix
	b := &block{name: s.Name, id: s.ID}
	if unixSock {
		// The service is named by the path's last component, as FreeBSD
		// picks a builtin; the id keeps the path, which is unique.
		b.name = path.Base(s.UnixPath)
		if s.IsInternal() {
			b.name = s.Builtin
		}
	}
	add := func(name, value string, comments ...string) {
		b.attrs = append(b.attrs, attr{name: name, value: value, comments: comments})
	}
	lost := func(comment string) {
		if !disabled {
			c.lose("%s: %s: %s", s.Src, s.ID, comment)
		}
		b.attrs = append(b.attrs, attr{comments: []string{"xconv: " + comment}})
	}
	switch {
	case disabled:
		add("disable", "yes", "commented out in inetd.conf")
	case dup:
		// inetd could not bind it either; kept, off, with the reason.
		add("disable", "yes", "xconv: "+c.dups[s.ID]+": inetd could not serve this entry either")
	}
	for _, u := range c.unknown[lineKey{s.Src.File, s.Src.Line}] {
		b.attrs = append(b.attrs, attr{comments: []string{"xconv: " + u}})
	}
	if s.ID != b.name {
		add("id", s.ID)
	}
	if t := s.Type.Names(); len(t) > 0 {
		add("type", strings.Join(t, " "))
	}

	server, argv := s.Server, s.Argv
	daemon := ""
	wrapped := !s.IsInternal() && path.Base(s.Server) == "tcpd" && len(s.Argv) > 0
	if wrapped {
		daemon = path.Base(argv[0])
		if strings.HasPrefix(argv[0], "/") {
			server = path.Clean(argv[0])
			// tcpd passes the absolute argv[0] on; base name is what a
			// person would write and what every such daemon expects.
			argv = append([]string{path.Base(server)}, argv[1:]...)
		} else {
			server = path.Join(c.daemonDir, argv[0])
		}
	}
	var flags []string
	nameInArgs := !s.IsInternal() && len(argv) > 0 && argv[0] != path.Base(server)
	if nameInArgs {
		flags = append(flags, "NAMEINARGS")
	}
	switch {
	case s.Family == service.FamilyIPv4:
		flags = append(flags, "IPv4")
	case s.Family == service.FamilyDual && !s.Bind.IsZero() && !s.Bind.Addr.IsValid():
		// A host name: the family follows the address it resolves to.
	case s.Family == service.FamilyIPv6, s.Family == service.FamilyDual:
		flags = append(flags, "IPv6")
	}
	if unixSock {
		flags = slices.DeleteFunc(flags, func(f string) bool { return f == "IPv4" || f == "IPv6" })
	}
	add("flags", strings.Join(flags, " "))
	add("socket_type", s.SocketType.String())
	add("protocol", s.Protocol)
	if unixSock {
		add("unix_path", s.UnixPath)
		if s.UnixOwner != nil {
			add("unix_owner", s.UnixOwner.Name)
		}
		if s.UnixGroup != nil {
			add("unix_group", s.UnixGroup.Name)
		}
		add("unix_mode", fmt.Sprintf("%04o", s.UnixMode))
	}
	if s.Type.Has(service.TypeUnlisted) && !s.Type.Has(service.TypeRPC) && !s.IsTCPMuxClient() && s.Port > 0 {
		add("port", strconv.Itoa(s.Port))
	}
	if !s.Bind.IsZero() {
		add("bind", s.Bind.Text)
	}
	if s.V6Only != nil && *s.V6Only && s.Bind.IsZero() {
		add("v6only", "yes")
	}
	if s.Type.Has(service.TypeRPC) {
		if s.Type.Has(service.TypeUnlisted) {
			add("rpc_number", strconv.Itoa(s.RPCNumber))
		}
		v := strconv.Itoa(s.RPCLow)
		if s.RPCHigh != s.RPCLow {
			v += "-" + strconv.Itoa(s.RPCHigh)
		}
		add("rpc_version", v)
	}
	if s.SocketType == service.SockDgram && !s.Wait && !s.IsInternal() {
		lost("inetd.conf said dgram nowait (a busybox extension): xinetd.conf needs wait = yes, so one server runs at a time")
		add("wait", "yes")
	} else {
		add("wait", map[bool]string{true: "yes", false: "no"}[s.Wait])
	}
	if s.User != nil {
		add("user", s.User.Name)
	}
	if s.Group != nil && s.Origins.At("group").Line > 0 {
		add("group", s.Group.Name)
	}
	if !s.IsInternal() {
		add("groups", "yes", "inetd starts every server with its user's supplementary groups")
	}
	if !s.IsInternal() {
		add("server", server)
		args := argv
		if !nameInArgs && len(args) > 0 {
			args = args[1:]
		}
		if len(args) > 0 {
			if bad := badArgs(args); bad != "" {
				lost(fmt.Sprintf("argument %q cannot be written in xinetd.conf (no quoting): server_args splits it", bad))
			}
			add("server_args", strings.Join(args, " "))
		}
	} else if len(s.Argv) > 1 {
		lost(fmt.Sprintf("options of the internal %s service not carried over: %s", s.Builtin, strings.Join(s.Argv[1:], " ")))
	}
	c.limits(s, add, lost)
	if s.SndBuf > 0 || s.RcvBuf > 0 {
		lost(fmt.Sprintf("socket buffer sizes (sndbuf %d, rcvbuf %d) have no xinetd.conf attribute", s.SndBuf, s.RcvBuf))
	}
	if s.ProxyProtocol != 0 {
		// gxinetd's own protocol-field options: the same attributes.
		add("proxy_protocol", s.ProxyProtocol.String())
		from := make([]string, len(s.ProxyFrom.Entries))
		for i, e := range s.ProxyFrom.Entries {
			from[i] = e.Text
		}
		add("proxy_from", strings.Join(from, " "))
		if s.ProxyTimeout > 0 {
			add("proxy_timeout", strconv.Itoa(s.ProxyTimeout))
		}
	}
	if s.LoginClass != "" {
		lost(fmt.Sprintf("login class %q has no xinetd.conf attribute", s.LoginClass))
	}
	if wrapped {
		c.wrap(s, daemon, add, lost, disabled)
	}
	// Drop empty attributes (flags with nothing to say).
	kept := b.attrs[:0]
	for _, a := range b.attrs {
		if a.name != "" && a.value == "" {
			if len(a.comments) == 0 {
				continue
			}
			a.name = ""
		}
		kept = append(kept, a)
	}
	b.attrs = kept
	return b
}

// badArgs returns an argument that xinetd.conf's blank-split
// server_args cannot carry, or "".
func badArgs(args []string) string {
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t") {
			return a
		}
	}
	return ""
}

// limits maps inetd's limits onto instances, per_source, cps, cpm and
// per_source_cpm. Every rate is written, the dialect's default too, so
// that the block means the same wherever it is included: inetd has no
// per-second limit (xinetd's default cps is 50 10).
func (c *converter) limits(s *service.Service, add func(string, string, ...string), lost func(string)) {
	if s.Instances >= 0 {
		add("instances", s.Instances.String())
		lost(fmt.Sprintf("inetd leaves connections over its limit of %d servers waiting in the listen queue; instances = %d refuses them", s.Instances, s.Instances))
	}
	unixSock := s.Family == service.FamilyUnix
	if s.PerSource >= 0 && unixSock {
		lost(fmt.Sprintf("per_source %s is not carried over: unix-domain peers have no address to count by", s.PerSource))
	} else if s.PerSource >= 0 {
		add("per_source", s.PerSource.String())
	}
	o := s.Origins.At("cpm")
	n := s.Inetd.PerMinute
	var why string
	switch {
	case n == 0:
		why = "inetd: no per-second limit, no limit on invocations per minute"
	case o.Line > 0 || o.Origin == "flag":
		why = fmt.Sprintf("inetd: no per-second limit; at most %d invocations per minute, then 10 minutes off", n)
	default:
		why = fmt.Sprintf("inetd: no per-second limit; at most %d invocations per minute (the %s default), then 10 minutes off", n, s.Inetd.Dialect)
	}
	add("cps", "0 0", why)
	add("cpm", strconv.Itoa(n))
	if n := s.Inetd.PerIPPerMinute; n > 0 && unixSock {
		lost(fmt.Sprintf("%d connections per client address per minute is not carried over: unix-domain peers have no address", n))
	} else if n > 0 {
		add("per_source_cpm", strconv.Itoa(n), fmt.Sprintf("inetd: at most %d connections per minute from one client address", n))
	}
}

// wrap turns tcpd's hosts.allow/hosts.deny rules for the daemon into
// only_from/no_access, or keeps them in force through libwrap.
func (c *converter) wrap(s *service.Service, daemon string, add func(string, string, ...string), lost func(string), disabled bool) {
	if !c.haveHosts {
		add("libwrap", daemon, "inetd ran this server through tcpd: hosts.allow and hosts.deny still apply")
		return
	}
	acc := convertRules(c.rules, daemon)
	if len(acc.problems) > 0 {
		var cm []string
		for _, p := range acc.problems {
			cm = append(cm, "xconv: "+p)
			if !disabled {
				// Not a loss: libwrap keeps the rule in force, exactly.
				c.report("%s: %s: tcp_wrappers rule kept in hosts.allow/hosts.deny (libwrap = %s): %s", s.Src, s.ID, daemon, p)
			}
		}
		cm = append(cm, "the hosts.allow/hosts.deny rules stay in force through libwrap")
		add("libwrap", daemon, cm...)
		return
	}
	var src []string
	for _, r := range acc.rules {
		src = append(src, fmt.Sprintf("%s: %s", r.where(), r.text))
	}
	if acc.onlySet {
		if len(acc.onlyFrom) == 0 {
			add("no_access", "0.0.0.0/0 ::/0", append([]string{"tcp_wrappers allows no client:"}, src...)...)
			return
		}
		add("only_from", strings.Join(acc.onlyFrom, " "), append([]string{"from tcp_wrappers:"}, src...)...)
		src = nil
	}
	if len(acc.noAccess) > 0 {
		var cm []string
		if src != nil {
			cm = append([]string{"from tcp_wrappers:"}, src...)
		}
		add("no_access", strings.Join(acc.noAccess, " "), cm...)
		src = nil
	}
	if src != nil {
		add("", "", append([]string{"tcp_wrappers allows every client:"}, src...)...)
	}
}

// single renders the whole output as one file.
func (o *output) single() string {
	var b strings.Builder
	for _, h := range o.header {
		b.WriteString(h)
		b.WriteByte('\n')
	}
	for _, bl := range o.blocks {
		b.WriteByte('\n')
		bl.write(&b)
	}
	if len(o.trailer) > 0 {
		b.WriteByte('\n')
		for _, t := range o.trailer {
			b.WriteString(t)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

type dropIn struct{ name, text string }

// unconvertedFile holds, with -d, the entries that could not be
// converted, as comments, so that every entry lands in some file.
const unconvertedFile = "xconv-unconverted"

// files renders one file per block, and the comment-only blocks
// (entries that could not be converted) together in unconvertedFile.
// xinetd skips file names with dots.
func (o *output) files() []dropIn {
	var out []dropIn
	seen := map[string]bool{unconvertedFile: true}
	var rest strings.Builder
	for _, bl := range o.blocks {
		if bl.name == "" {
			rest.WriteByte('\n')
			bl.write(&rest)
			continue
		}
		name := fileName(bl.id)
		base := name
		for k := 2; seen[name]; k++ {
			name = base + "-" + strconv.Itoa(k)
		}
		seen[name] = true
		var b strings.Builder
		b.WriteString(o.header[0])
		b.WriteString("\n\n")
		bl.write(&b)
		out = append(out, dropIn{name: name, text: b.String()})
	}
	if rest.Len() > 0 {
		out = append(out, dropIn{name: unconvertedFile, text: o.header[0] + "\n" + rest.String()})
	}
	return out
}

func fileName(id string) string {
	f := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, id)
	if f == "" || f[0] == '_' {
		f = "svc" + f
	}
	return f
}

// write prints the block with its `=` signs aligned.
func (bl *block) write(b *strings.Builder) {
	for _, p := range bl.pre {
		b.WriteString(p)
		b.WriteByte('\n')
	}
	if bl.name == "" {
		return
	}
	if bl.name == "defaults" {
		b.WriteString("defaults\n{\n")
	} else {
		b.WriteString("service " + bl.name + "\n{\n")
	}
	w := 0
	for _, a := range bl.attrs {
		if len(a.name) > w {
			w = len(a.name)
		}
	}
	for _, a := range bl.attrs {
		for _, cm := range a.comments {
			b.WriteString("\t# " + cm + "\n")
		}
		if a.name != "" {
			fmt.Fprintf(b, "\t%-*s = %s\n", w, a.name, a.value)
		}
	}
	b.WriteString("}\n")
}
