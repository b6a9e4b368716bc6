package parser

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2/lexer"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/suggest"
)

// entry is a service (or the defaults block) while its lines are read.
// One entry per loader is reused for every block (at 10,000 services a
// fresh one each was 1.7 MB); what outlives the block is in kept.
type entry struct {
	l          *loader
	svc        *service.Service
	kept       *readEntry // nil for the defaults block
	isDefaults bool
	file       string
	incFrom    []service.Source
	set        attrSet // attributes already given in this block
	tried      attrSet // attributes written in this block, accepted or not
	diags      service.Diags
	rejecting  []bool // parallel to diags: did this one reject the entry
	rejected   bool
	stop       bool // disable = yes ends the entry

	bindCands []netip.Addr   // a bind host name's addresses, chosen once flags are known
	argsLine  int            // line of server_args, for the NAMEINARGS order warning
	serverSrc service.Source // the server line, for a chroot read after it
	flagsLine int            // line of a flags line with NAMEINARGS
}

// readEntry is what the whole-configuration steps (finish) need of a
// service once its block has been read.
type readEntry struct {
	svc       *service.Service
	incFrom   []service.Source
	bindCands []netip.Addr
	// tried holds every attribute the entry wrote, including lines whose
	// value was refused, so that the whole-entry checks of a rejected
	// service do not repeat "missing attribute" for them.
	tried attrSet
	// unread marks an entry whose body was never read (no name, no
	// '{'): whole-entry checks would only echo that one mistake.
	unread    bool
	serverCol int // the column of the server path, for checkServerOwner
	// serverDeferred: the server path was left to checkSandbox, a chroot
	// being known when it was read.
	serverDeferred bool
}

// word is one blank-separated word of an attribute line and its column.
type word struct {
	text string
	col  int
}

// attrLine is a split attribute line.
type attrLine struct {
	name   string // as written
	key    string // lower-case
	op     byte   // '=', '+' or '-'
	line   int
	col    int
	values []word
}

func (a *attrLine) src(file string) service.Source { return srcOf(file, a.line, a.col) }

// opText is the operator as written, for messages.
func (a *attrLine) opText() string {
	switch a.op {
	case '+':
		return "+="
	case '-':
		return "-="
	}
	return "="
}

// report records a diagnostic about the entry. A rejecting error marks the
// service rejected (or, in defaults, the whole configuration unusable).
func (e *entry) report(sev service.Severity, code, attr string, line, col int, reject bool, msg string) {
	d := service.Diag{Pos: srcOf(e.file, line, col), Severity: sev, Code: code, Attr: attr, Msg: msg, IncludedFrom: e.incFrom}
	if reject {
		if e.isDefaults {
			d.Fatal = true
		} else {
			e.rejected = true
		}
	}
	e.diags = append(e.diags, d)
	e.rejecting = append(e.rejecting, reject && !e.isDefaults)
}

// errAt rejects the entry because of one word of an attribute line.
func (e *entry) errAt(a *attrLine, w int, code, msg string) {
	col := a.col
	if w >= 0 && w < len(a.values) {
		col = a.values[w].col
	}
	e.report(service.SevError, code, a.key, a.line, col, true, msg)
}

// lineErr reports an error that drops one attribute line without
// rejecting the entry; in defaults it is not fatal.
func (e *entry) lineErr(a *attrLine, w int, code, msg string) {
	col := a.col
	if w >= 0 && w < len(a.values) {
		col = a.values[w].col
	}
	e.report(service.SevError, code, a.key, a.line, col, false, msg)
}

// valueErr is errAt with E-ATTR-VALUE.
func (e *entry) valueErr(a *attrLine, w int, msg string) { e.errAt(a, w, CodeAttrValue, msg) }

func (e *entry) warnAt(a *attrLine, w int, code, msg string) {
	col := a.col
	if w >= 0 && w < len(a.values) {
		col = a.values[w].col
	}
	e.report(service.SevWarning, code, a.key, a.line, col, false, msg)
}

// origin records that the entry itself set attr on line a.
func (e *entry) origin(attr string, a *attrLine) {
	if e.isDefaults {
		e.l.defs.origins[attr] = a.src(e.file)
		return
	}
	e.svc.Origins.Set(attr, a.src(e.file))
}

// block handles one `service` or `defaults` entry.
func (l *loader) block(fs *fileState, b *astBlock) {
	head := b.Head
	file := head.Pos.Filename
	var wb [3]string
	words := firstFields(head.Value, wb[:0]) // three are enough to decide
	isDefaults := head.Type == tokDefaults
	e := &l.scratch
	*e = entry{l: l, file: file, isDefaults: isDefaults, incFrom: l.chain(), diags: e.diags[:0], rejecting: e.rejecting[:0]}
	headSrc := srcOf(file, head.Pos.Line, head.Pos.Column)
	var ts [3]lexer.Token
	open, body, closing := b.parts(&ts)
	endLine := head.Pos.Line
	switch {
	case closing != nil:
		endLine = closing.Pos.Line
	case body != nil:
		endLine = body.Pos.Line + strings.Count(body.Value, "\n")
	case open != nil:
		endLine = open.Pos.Line
	}

	if isDefaults {
		if fs.defaultsSeen {
			l.add(service.Diag{Pos: headSrc, Severity: service.SevError, Code: CodeDefaultsDup, Service: "defaults",
				Msg: "only 1 defaults entry is allowed. This entry will be ignored"})
			return
		}
		fs.defaultsSeen = true
		e.svc = l.defs.svc
		if l.defs.src.IsZero() {
			l.defs.src = headSrc
		}
		if len(words) > 1 {
			e.report(service.SevWarning, WarnTrailing, "", head.Pos.Line, head.Pos.Column, false,
				"words after defaults are ignored: "+clip(strings.Join(strings.Fields(head.Value)[1:], " ")))
		}
	} else {
		s := &service.Service{Language: service.LangXinetd, Src: headSrc, EndLine: endLine}
		e.svc = s
		e.kept = &readEntry{svc: s, incFrom: e.incFrom}
		l.entries = append(l.entries, e.kept)
		if len(words) < 2 {
			e.report(service.SevError, CodeSyntax, "", head.Pos.Line, head.Pos.Column, true, "service name missing")
			e.kept.unread = true
			l.closeEntry(e)
			return
		}
		s.Name, s.ID = words[1], words[1]
		if len(words) > 2 {
			e.report(service.SevWarning, WarnTrailing, "", head.Pos.Line, head.Pos.Column, false,
				"words after the service name are ignored: "+clip(strings.Join(strings.Fields(head.Value)[2:], " ")))
		}
		l.defs.copyListsTo(s)
	}

	switch {
	case open == nil:
		e.report(service.SevError, CodeSyntax, "", head.Pos.Line, head.Pos.Column, true,
			fmt.Sprintf("missing '{' (it must be on the line after %q)", clip(head.Value)))
		if e.kept != nil {
			e.kept.unread = true
		}
		l.closeEntry(e)
		return
	case open.Pos.Line == head.Pos.Line:
		e.report(service.SevWarning, WarnBraceSameLine, "", open.Pos.Line, open.Pos.Column, false,
			"'{' on the same line as the entry header; accepted (xinetd 2.3.15 refuses this entry)")
	}
	if body != nil {
		e.lines(body)
	}
	if closing == nil {
		e.report(service.SevError, CodeSyntax, "", endLine, 0, true,
			"missing '}' (incomplete entry)")
	}
	if isDefaults {
		l.defs.afterBlock(e, head.Pos.Line, len(l.entries))
	}
	l.closeEntry(e)
}

// firstFields is strings.Fields that stops when out is full, appending to
// out instead of allocating.
func firstFields(s string, out []string) []string {
	i := 0
	for len(out) < cap(out) {
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if !unicode.IsSpace(r) {
				break
			}
			i += n
		}
		if i == len(s) {
			break
		}
		j := i
		for j < len(s) {
			r, n := utf8.DecodeRuneInString(s[j:])
			if unicode.IsSpace(r) {
				break
			}
			j += n
		}
		out = append(out, s[i:j])
		i = j
	}
	return out
}

// parts returns a block's opening brace, attribute lines and closing
// brace, whichever exist, unfolding the lexer's Body token into ts (the
// caller's, so that nothing is allocated per block).
func (b *astBlock) parts(ts *[3]lexer.Token) (open, body, closing *lexer.Token) {
	switch {
	case b.Folded != nil:
		f := b.Folded
		ts[0] = lexer.Token{Type: tokLBrace, Value: "{", Pos: f.Pos}
		open = &ts[0]
		first := strings.IndexByte(f.Value, '\n')
		last := strings.LastIndexByte(f.Value, '\n')
		cp := f.Pos
		cp.Line += strings.Count(f.Value, "\n")
		cp.Offset += len(f.Value) - 1
		cp.Column = 0 // not needed for messages
		ts[1] = lexer.Token{Type: tokRBrace, Value: "}", Pos: cp}
		closing = &ts[1]
		if first >= 0 && last > first {
			bp := lexer.Position{Filename: f.Pos.Filename, Offset: f.Pos.Offset + first + 1, Line: f.Pos.Line + 1, Column: 1}
			ts[2] = lexer.Token{Type: tokLine, Value: f.Value[first+1 : last], Pos: bp}
			body = &ts[2]
		}
	case b.Open != nil:
		open, body, closing = &b.Open.Brace, b.Open.Lines, b.Open.Close
	case b.Bare != nil:
		body, closing = &b.Bare.Lines, b.Bare.Close
	}
	return open, body, closing
}

// closeEntry moves an entry's diagnostics into the configuration, naming
// the service by its final id.
func (l *loader) closeEntry(e *entry) {
	name := "defaults"
	if !e.isDefaults {
		name = e.svc.ID
		if name == "" {
			name = e.svc.Name
		}
	}
	for i := range e.diags {
		d := &e.diags[i]
		d.Service = name
		if len(d.IncludedFrom) == 0 {
			d.IncludedFrom = nil
		}
		l.cfg.Diags = append(l.cfg.Diags, *d)
		if e.rejecting[i] && !e.stop {
			e.svc.Reasons = append(e.svc.Reasons, *d)
		}
	}
	if e.isDefaults {
		return
	}
	e.kept.bindCands = e.bindCands
	e.kept.tried = e.tried
	switch {
	case e.stop:
		e.svc.Status = service.StatusDisabled
	case e.rejected:
		e.svc.Status = service.StatusRejected
	}
}

// lines splits the body token into attribute lines and handles each.
func (e *entry) lines(body *lexer.Token) {
	text := body.Value
	line := body.Pos.Line
	first := true
	for len(text) > 0 && !e.stop {
		var ln string
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			ln, text = text[:i], text[i+1:]
		} else {
			ln, text = text, ""
		}
		col := 1
		if first {
			col = body.Pos.Column
			first = false
		}
		if n := len(ln); n > 0 && ln[n-1] == '\r' {
			ln = ln[:n-1]
		}
		i := 0
		for i < len(ln) && isBlank(ln[i]) {
			i++
		}
		if i < len(ln) && ln[i] != '#' {
			e.line(ln[i:], line, col+i)
		}
		line++
	}
}

// line handles one attribute line: split, operator, dispatch.
func (e *entry) line(ln string, line, col int) {
	if len(ln) > maxLineLen {
		e.report(service.SevError, CodeLineTooLong, "", line, col, true,
			fmt.Sprintf("line too long (%d bytes, the limit is %d)", len(ln), maxLineLen))
		return
	}
	if strings.IndexByte(ln, 0) >= 0 {
		e.report(service.SevError, CodeSyntax, "", line, col, true, "line contains a NUL byte")
		return
	}
	ln = strings.TrimRight(ln, " \t")
	n := 0
	for n < len(ln) && isNameByte(ln[n]) {
		n++
	}
	firstWord := ln
	if j := strings.IndexAny(ln, " \t"); j >= 0 {
		firstWord = ln[:j]
	}
	if n == 0 {
		msg := fmt.Sprintf("expected an attribute name, found %q", clip(firstWord))
		switch ln[0] {
		case '}':
			msg = "'}' must be alone on its line; text after it: " + clip(strings.TrimSpace(ln[1:]))
		case '{':
			msg = "'{' must be alone on its line"
		}
		e.report(service.SevError, CodeSyntax, "", line, col, true, msg)
		return
	}
	// One attrLine per loader: handlers never keep it, and a fresh one per
	// line would be 100,000 heap objects in a large configuration.
	a := &e.l.attr
	*a = attrLine{name: ln[:n], line: line, col: col}
	a.key = lowerASCII(a.name)
	rest := ln[n:]
	spaced := false
	k := 0
	for k < len(rest) && isBlank(rest[k]) {
		k++
	}
	spaced = k > 0
	rest = rest[k:]
	opCol := col + n + k
	switch {
	case rest == "":
		e.report(service.SevError, CodeOperator, a.key, line, col, true, "Nothing after attribute: "+a.name)
		return
	case strings.HasPrefix(rest, "+="):
		a.op, rest = '+', rest[2:]
		opCol += 2
	case strings.HasPrefix(rest, "-="):
		a.op, rest = '-', rest[2:]
		opCol += 2
	case rest[0] == '=':
		a.op, rest = '=', rest[1:]
		opCol++
	default:
		name := a.name
		if !spaced {
			name = firstWord
		}
		e.report(service.SevError, CodeOperator, a.key, line, opCol, true, "Bad operator for attribute: "+clip(name))
		return
	}
	// Split the values, keeping columns.
	ws := e.l.words[:0]
	p := 0
	for p < len(rest) {
		for p < len(rest) && isBlank(rest[p]) {
			p++
		}
		if p == len(rest) {
			break
		}
		q := p
		for q < len(rest) && !isBlank(rest[q]) {
			q++
		}
		ws = append(ws, word{text: rest[p:q], col: opCol + p})
		p = q
	}
	e.l.words = ws
	a.values = ws
	if !spaced {
		e.warnAt(a, -1, WarnNoSpace, fmt.Sprintf("Attribute %s needs a space before operator; accepted", a.name))
	}
	e.dispatch(a)
}

// hashWord is the index of the first value word that starts with '#', or -1.
func hashWord(ws []word) int {
	for i, w := range ws {
		if w.text[0] == '#' {
			return i
		}
	}
	return -1
}

// wordsText joins words with single blanks, for messages.
func wordsText(ws []word) string {
	var b strings.Builder
	for i, w := range ws {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w.text)
	}
	return b.String()
}

func isNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// lowerASCII lower-cases without allocating when nothing changes.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// dispatch applies the attribute table's rules (where allowed, operator,
// already set, value count) and calls the attribute's handler.
//
// Problems that xinetd survives by ignoring the line (an unknown
// attribute, one not allowed where it is, a wrong number of values, `+=`
// on a fixed attribute) never make the defaults block fatal: the line is
// ignored with an error (a warning for unknown attributes), and the
// configuration is still served.
func (e *entry) dispatch(a *attrLine) {
	spec := attrSpecs[a.key]
	if spec == nil {
		e.unknown(a)
		return
	}
	if e.isDefaults && !spec.inDefaults {
		e.lineErr(a, -1, CodeAttrDefaults, fmt.Sprintf("attribute: %s should not be in default section; this line is ignored (as xinetd does)", a.name))
		return
	}
	if !e.isDefaults && !spec.inService {
		e.lineErr(a, -1, CodeAttrDefaults, fmt.Sprintf("attribute %s is only allowed in the defaults section; this line is ignored (as xinetd does)", a.name))
		return
	}
	e.tried.add(spec.bit)
	list := spec.kind == kindList || (e.isDefaults && spec.listInDefaults)
	switch {
	case e.isDefaults && spec.onceInDefaults:
		// log_type is list-kind in xinetd's defaults table but its parser
		// refuses a second value, in any file: fatal there, and here.
		if e.l.defs.onceSeen[spec.name] {
			e.errAt(a, -1, CodeAlreadySet, "Cannot set more than one "+spec.name+" attribute")
			return
		}
		if a.op == '-' {
			e.errAt(a, -1, CodeOperator, fmt.Sprintf("operator '%s' cannot be used for attribute '%s'", a.opText(), a.name))
			return
		}
	case !list:
		if e.set.has(spec.bit) || e.isDefaults && e.l.defs.onceSeen[spec.name] {
			// xinetd keeps the first value (also across the defaults
			// blocks of different files); so do we, but say so loudly.
			e.report(service.SevError, CodeAlreadySet, a.key, a.line, a.col, false,
				fmt.Sprintf("attribute already set: %s; this line is ignored", a.name))
			return
		}
		if a.op != '=' {
			msg := fmt.Sprintf("operator '%s' cannot be used for attribute '%s'", a.opText(), a.name)
			if e.isDefaults {
				e.lineErr(a, -1, CodeOperator, msg+"; this line is ignored (as xinetd does)")
			} else {
				e.errAt(a, -1, CodeOperator, msg)
			}
			return
		}
	}
	if spec.name == "bind" && len(a.values) > 1 && IsBindTemplate(a.values[0].text) {
		// A go-sockaddr template is one value, blanks and all.
		a.values = []word{{text: wordsText(a.values), col: a.values[0].col}}
	}
	if h := hashWord(a.values); h >= 0 {
		if spec.n > 0 && h == spec.n {
			// `per_source = 10 # per client`: the comment the writer
			// meant. xinetd counts the words, ignores the whole line and
			// runs the service without the limit.
			rest := wordsText(a.values[h:])
			a.values = a.values[:h]
			e.warnAt(a, h, WarnInlineComment, fmt.Sprintf("%q is read as a comment and %s = %s applies; xinetd 2.3.15 ignores the whole line (\"attribute %s expects %d values and %d values were specified\") and runs without it. Put comments on a line of their own",
				clip(rest), a.name, wordsText(a.values), a.name, spec.n, len(a.values)+strings.Count(rest, " ")+1))
		} else if spec.n > 0 {
			e.warnAt(a, h, WarnHashValue, fmt.Sprintf("%q is read as a value: after %s a '#' starts a comment only when exactly %d value(s) come before it; otherwise every word is a value, as xinetd reads it. A comment may always go on a line of its own",
				clip(a.values[h].text), a.name, spec.n))
		} else {
			e.warnAt(a, h, WarnHashValue, fmt.Sprintf("%q is a value, not a comment: every word of %s is a value, as xinetd reads it; a comment must start its own line", clip(a.values[h].text), a.name))
		}
	}
	switch {
	case spec.n > 0 && len(a.values) != spec.n:
		msg := fmt.Sprintf("attribute %s expects %d values and %d values were specified", a.name, spec.n, len(a.values))
		if e.isDefaults {
			e.lineErr(a, -1, CodeAttrCount, msg+"; this line is ignored (as xinetd does)")
		} else {
			e.errAt(a, -1, CodeAttrCount, msg+"; xinetd would ignore the line and run the service without it")
		}
		return
	case spec.atLeastOne && len(a.values) == 0:
		msg := fmt.Sprintf("attribute %s expects at least 1 value and none was given.", a.name)
		if e.isDefaults {
			e.lineErr(a, -1, CodeAttrCount, msg+" This line is ignored.")
		} else {
			e.errAt(a, -1, CodeAttrCount, msg)
		}
		return
	}
	e.set.add(spec.bit)
	if e.isDefaults {
		e.l.defs.onceSeen[spec.name] = true
	}
	if spec.handle(e, a) {
		e.origin(spec.name, a)
	}
}

// guardAttrs are the attributes whose misspelling would silently open a
// service the writer meant to restrict (or enable one meant to be off).
var guardAttrs = []string{"only_from", "no_access", "access_times", "disable"}

// foreignAttrs are attributes of patched xinetd builds that gxinetd does
// not have; each gets its own explanation instead of a did-you-mean.
var foreignAttrs = map[string]string{
	"kafel_rule": "kafel_rule (seccomp sandboxing with a kafel policy, an attribute of a patched xinetd) is not supported: this line is ignored and the server runs WITHOUT that system-call policy; write the policy as a seccomp profile (seccomp = default, or a profile file: see docs/sandbox.md)",
}

// unknown handles a line whose attribute gxinetd does not know. Like
// xinetd it ignores the line with a warning, except where the name is a
// near miss of an access restriction: ignoring `only_fron` would serve to
// everyone what the writer restricted, so that service is rejected (and
// in defaults the line is an error) until the name is fixed.
func (e *entry) unknown(a *attrLine) {
	switch {
	case obsoleteAttrs[a.key]:
		e.warnAt(a, -1, WarnObsolete, fmt.Sprintf("attribute %s is not supported by xinetd 2.3.15 or gxinetd; ignored", a.name))
		return
	case foreignAttrs[a.key] != "":
		e.warnAt(a, -1, WarnAttrUnknown, foreignAttrs[a.key])
		return
	}
	if g := suggest.Closest(a.name, guardAttrs); g != "" {
		msg := fmt.Sprintf("unknown attribute %s: did you mean %s? Ignoring a misspelt %s would leave the %s without the restriction its writer meant (xinetd ignores the line)",
			a.name, g, g, map[bool]string{true: "defaults", false: "service"}[e.isDefaults])
		if e.isDefaults {
			e.lineErr(a, -1, CodeAttrUnknown, msg+"; fix the name")
		} else {
			e.errAt(a, -1, CodeAttrUnknown, msg+"; the service is rejected until the name is fixed")
		}
		return
	}
	known := serviceAttrNames
	where := "bad service attribute: " + a.name
	if e.isDefaults {
		known = defaultsAttrNames
		where = "unknown attribute in the default section: " + a.name
	}
	e.warnAt(a, -1, WarnAttrUnknown, where+didYouMean(a.name, known)+"; this line is ignored (as xinetd does)")
}
