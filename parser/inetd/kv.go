package inetd

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gxinetd/gxinetd/internal/service"
)

// NetBSD's key=value notation (inetd.8, "Key-Values Notation"):
//
//	[addr:]service on|off key = value ..., key = value, key =, ...;
//
// Keys are separated from their values by '=', values by blanks, options
// by commas; ';' ends the definition, which may span lines. '#' starts a
// comment anywhere outside quotes. Values may be quoted with ' or " and
// then hold \\ \n \t \r \' \" and \xHH escapes. `off` parses the entry
// and reports its errors but opens no socket. The lexer has already
// grouped the lines of one definition (lex.go); this reads its text
// character by character, because quoting and escapes do not follow
// word boundaries.

// kvOption is one `key = values` of a definition.
type kvOption struct {
	key    string
	line   int
	col    int
	values []token
}

// kvScanner walks the text of a definition, keeping line and column.
type kvScanner struct {
	src  string
	i    int
	line int
	col  int // 1-based column of src[i]
}

func (s *kvScanner) eof() bool  { return s.i >= len(s.src) }
func (s *kvScanner) peek() byte { return s.src[s.i] }

func (s *kvScanner) next() byte {
	c := s.src[s.i]
	s.i++
	if c == '\n' {
		s.line++
		s.col = 1
	} else {
		s.col++
	}
	return c
}

// skip passes blanks, newlines and comments.
func (s *kvScanner) skip() {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			s.next()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.next()
			}
		default:
			return
		}
	}
}

// value reads one value (up to a blank, '#', ',' or ';' outside quotes).
func (s *kvScanner) value() (token, error) {
	t := token{line: s.line, col: s.col}
	var b strings.Builder
	for !s.eof() {
		c := s.peek()
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '#' || c == ',' || c == ';' {
			break
		}
		if c != '"' && c != '\'' {
			b.WriteByte(s.next())
			continue
		}
		q := s.next()
		t.quoted = true
		closed := false
		for !s.eof() && !closed {
			c := s.next()
			switch {
			case c == q:
				closed = true
			case c == '\n':
				return t, fmt.Errorf("unterminated %c quote", q)
			case c == '\\':
				if s.eof() {
					return t, fmt.Errorf("dangling backslash")
				}
				e := s.next()
				switch e {
				case '\\', '\'', '"':
					b.WriteByte(e)
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case 'x':
					if s.i+2 > len(s.src) {
						return t, fmt.Errorf("bad \\x escape")
					}
					v, err := strconv.ParseUint(s.src[s.i:s.i+2], 16, 8)
					if err != nil {
						return t, fmt.Errorf("bad \\x escape %q", "\\x"+s.src[s.i:s.i+2])
					}
					s.next()
					s.next()
					b.WriteByte(byte(v))
				default:
					return t, fmt.Errorf("unknown escape \\%c", e)
				}
			default:
				b.WriteByte(c)
			}
		}
		if !closed {
			return t, fmt.Errorf("unterminated %c quote", q)
		}
	}
	t.text = b.String()
	return t, nil
}

// parseKV reads the options of a definition from its text after on/off.
// It returns the options, whether the ';' was found, and the offset in
// text just after it.
func parseKV(text string, line, col int) (opts []kvOption, done bool, end int, errAt *token, err error) {
	s := &kvScanner{src: text, line: line, col: col}
	for {
		s.skip()
		if s.eof() {
			return opts, false, s.i, nil, nil
		}
		kt := token{line: s.line, col: s.col}
		start := s.i
		for !s.eof() && (s.peek() == '_' || s.peek() >= 'a' && s.peek() <= 'z' || s.peek() >= 'A' && s.peek() <= 'Z') {
			s.next()
		}
		kt.text = text[start:s.i]
		s.skip()
		if kt.text == "" || s.eof() || s.peek() != '=' {
			found := "the end of the definition"
			if !s.eof() {
				found = fmt.Sprintf("%q", s.peek())
			}
			return opts, false, s.i, &kt, fmt.Errorf("expected key = value, found %s", found)
		}
		s.next() // '='
		o := kvOption{key: kt.text, line: kt.line, col: kt.col}
		for {
			s.skip()
			if s.eof() {
				opts = append(opts, o)
				return opts, false, s.i, nil, nil
			}
			if c := s.peek(); c == ',' || c == ';' {
				s.next()
				opts = append(opts, o)
				if c == ';' {
					return opts, true, s.i, nil, nil
				}
				break
			}
			v, verr := s.value()
			if verr != nil {
				return opts, false, s.i, &v, verr
			}
			o.values = append(o.values, v)
		}
	}
}

// kvEntry turns a key=value definition into the same fields a positional
// line gives, then runs the same checks.
func (p *parser) kvEntry(e *rawEntry, l *line, v *vals) {
	first, onoff := e.toks[0], e.toks[1]
	startCol := onoff.col + len(onoff.text)
	text := p.textFrom(onoff.line, startCol, e.endLine)
	opts, done, end, errAt, err := parseKV(text, onoff.line, startCol)
	if err != nil {
		l.errorf(CodeNotation, *errAt, "", "key=value notation: %v", err)
	} else if !done {
		l.errorf(CodeNotation, e.toks[len(e.toks)-1], "", "key=value notation: the definition does not end with ';'")
	}
	if rest := strings.TrimSpace(stripComment(text[end:])); err == nil && done && rest != "" {
		// NetBSD reads another definition after the ';' on the same
		// line; gxinetd asks for a line of its own.
		l.errorf(CodeNotation, token{line: e.endLine, col: 1}, "", "text after the ';' that ends a key=value definition is not read (%q): put the next definition on a line of its own", clip(rest))
	}

	// The fields, by key, in the order the positional reading needs.
	byKey := map[string]*kvOption{}
	single := map[string]bool{"bind": true, "wait": true, "service_max": true, "ip_max": true, "accept_max": true, "user": true, "args": true, "ipsec": true}
	known := map[string]bool{"bind": true, "socktype": true, "acceptfilter": true, "protocol": true, "sndbuf": true, "recvbuf": true, "wait": true,
		"service_max": true, "ip_max": true, "accept_max": true, "user": true, "group": true, "exec": true, "args": true, "ipsec": true}
	for i := range opts {
		o := &opts[i]
		kt := token{text: o.key, line: o.line, col: o.col}
		switch {
		case !known[o.key]:
			l.errorf(CodeNotation, kt, "", "unknown key %q (NetBSD's keys: bind, socktype, acceptfilter, protocol, sndbuf, recvbuf, wait, service_max, ip_max, accept_max, user, group, exec, args, ipsec)", o.key)
			continue
		case byKey[o.key] != nil && single[o.key]:
			l.errorf(CodeNotation, kt, "", "key %q given twice", o.key)
			continue
		}
		byKey[o.key] = o
	}
	one := func(key string) (token, bool) {
		o := byKey[key]
		if o == nil {
			return token{}, false
		}
		if len(o.values) != 1 {
			hint := ""
			for _, x := range o.values {
				if strings.Contains(x.text, "=") {
					hint = " (options are separated by ',')"
				}
			}
			l.errorf(CodeNotation, token{text: key, line: o.line, col: o.col}, "", "key %q takes one value, not %d%s", key, len(o.values), hint)
			return token{}, false
		}
		return o.values[0], true
	}
	keyTok := func(key string) token {
		if o := byKey[key]; o != nil {
			return token{text: key, line: o.line, col: o.col}
		}
		return first
	}

	t := make([]token, 7)
	t[0] = first
	for i := 1; i < 7; i++ {
		t[i] = onoff
	}
	// Protocol first: it decides whether the service is a path.
	if pt, ok := one("protocol"); ok {
		t[2] = pt
		l.protoField(pt, v)
	} else if byKey["protocol"] == nil {
		l.errorf(CodeNotation, onoff, "protocol", "key=value notation: protocol is required")
	}
	if bt, ok := one("bind"); ok {
		if addrSplit(first.text) >= 0 && !v.unix {
			l.errorf(CodeNotation, bt, "bind", "bind is given twice: by the address before the service name and by the bind key")
		} else {
			first = token{text: bt.text + ":" + first.text, line: first.line, col: first.col}
			t[0] = first
		}
	}
	l.serviceField(first, v)
	switch st, ok := one("socktype"); {
	case ok:
		t[1] = st
		l.sockField(st, v)
	case byKey["socktype"] == nil && strings.HasPrefix(v.protoText, "tcp"):
		v.sock = service.SockStream
	case byKey["socktype"] == nil && strings.HasPrefix(v.protoText, "udp"):
		v.sock = service.SockDgram
	case byKey["socktype"] == nil:
		l.errorf(CodeNotation, onoff, "socket_type", "key=value notation: socktype is required (it can only be left out for tcp and udp protocols)")
	}
	if at, ok := one("accept_max"); ok {
		n, good := parseCount(at.text)
		if !good {
			l.errorf(CodeSockType, at, "instances", "bad accept_max %q: want a number", at.text)
		} else {
			v.acceptMax = n
			v.origins["accept_max"] = p.pos(at.line, at.col)
		}
	}
	if o := byKey["acceptfilter"]; o != nil {
		l.warnf(CodeAcceptFilter, keyTok("acceptfilter"), "socket_type", "accept filter is not supported: connections are accepted without it")
	}
	for _, k := range []struct{ key, opt string }{{"sndbuf", "sndbuf"}, {"recvbuf", "rcvbuf"}} {
		if bt, ok := one(k.key); ok {
			l.protoOpt(bt, k.opt+"="+bt.text, v)
		}
	}
	// exec before wait: an internal service needs no wait key.
	exec := token{text: "internal", line: onoff.line, col: onoff.col}
	if xt, ok := one("exec"); ok {
		exec = xt
	}
	t[5] = exec
	var args []token
	if o := byKey["args"]; o != nil {
		args = o.values
		if len(args) > 0 {
			t[6] = args[0]
		}
	}
	l.serverField(exec, args, v)
	if wt, ok := one("wait"); ok {
		t[3] = wt
		switch wt.text {
		case "yes", "no":
			v.wait = wt.text == "yes"
			v.origins["wait"] = p.pos(wt.line, wt.col)
		default:
			l.errorf(CodeWait, wt, "wait", "bad wait %q: want yes or no", wt.text)
		}
	} else if byKey["wait"] == nil {
		if v.internal {
			v.wait = v.sock == service.SockDgram
		} else {
			l.errorf(CodeNotation, onoff, "wait", "key=value notation: wait is required for services that are not internal")
		}
	}
	for _, k := range []struct {
		key string
		dst *int
		rec string
	}{{"service_max", &v.perMinute, "cpm"}, {"ip_max", &v.perIPMin, "per_source_cpm"}} {
		if nt, ok := one(k.key); ok {
			n, good := parseCount(nt.text)
			if !good {
				l.errorf(CodeWait, nt, k.rec, "bad %s %q: want a number of invocations per minute", k.key, nt.text)
				continue
			}
			*k.dst = n
			v.origins[k.rec] = p.pos(nt.line, nt.col)
		}
	}
	ut, hasUser := one("user")
	if hasUser {
		t[4] = ut
		userText := ut.text
		if gt, ok := one("group"); ok {
			userText += ":" + gt.text
		}
		l.userField(token{text: userText, line: ut.line, col: ut.col, quoted: ut.quoted}, v)
	} else if byKey["user"] == nil {
		l.errorf(CodeNotation, onoff, "user", "key=value notation: user is required")
	}
	if o := byKey["ipsec"]; o != nil {
		l.warnf(CodeIPsec, keyTok("ipsec"), "", "IPsec policies are not supported: the ipsec key is not applied")
	}
	// Plain tcp and udp take their family from the address: NetBSD
	// refuses the definition when that is not a literal address.
	if (v.proto == "tcp" || v.proto == "udp") && v.famSuffix == "" && !v.unix {
		addrs := v.addrs
		if addrs == nil {
			addrs = p.defAddrs
		}
		switch {
		case len(addrs) == 1 && addrs[0].addr.IsValid() && addrs[0].addr.Is4():
			v.famSuffix = "4"
		case len(addrs) == 1 && addrs[0].addr.IsValid():
			v.famSuffix = "6"
		default:
			l.errorf(CodeNotation, t[2], "protocol", "protocol %s without 4 or 6 needs a literal IPv4 or IPv6 listen address in key=value notation (NetBSD refuses it too): write %s4 or %s6", v.protoText, v.protoText, v.protoText)
		}
	}
	e.toks = t
	if len(l.errs) == 0 {
		p.check(t, v, l)
	}
	mark := len(p.out)
	p.emit(e, v, l)
	if onoff.text == "off" {
		// Parsed and checked, but no socket: NetBSD's `off`.
		for _, s := range p.out[mark:] {
			if s.Status == service.StatusAccepted {
				s.Status = service.StatusDisabled
				p.diags = append(p.diags, service.Diag{Pos: s.Src, Severity: service.SevNotice, Code: CodeOff, Service: l.name,
					Msg: "key=value definition marked off: read and checked, not served"})
			}
		}
	}
}

// textFrom is the source from line:col (1-based) to the end of endLine.
func (p *parser) textFrom(line, col, endLine int) string {
	if line < 1 || line > len(p.lineStart) {
		return ""
	}
	start := p.lineStart[line-1] + col - 1
	end := len(p.src)
	if endLine < len(p.lineStart) {
		end = p.lineStart[endLine] - 1
	}
	if start > end || start > len(p.src) {
		return ""
	}
	return p.src[start:end]
}

// stripComment drops a '#' comment (outside quotes) from one line.
func stripComment(s string) string {
	if i := unquotedIndex(s, "#"); i >= 0 {
		return s[:i]
	}
	return s
}

// clip shortens text quoted in a message.
func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
