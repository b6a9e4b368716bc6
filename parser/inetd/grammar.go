package inetd

import (
	"fmt"
	"strings"
	"sync"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/parser/internal/replay"
)

// The grammar places every line and every word: which lines form an
// entry (a first line and its continuation lines), which word is which
// field, where NetBSD's key=value notation ends, and whether an `addr:`
// line sets the default address or starts an entry. It is total: every
// token sequence the lexer can produce parses, so one bad line never
// stops the file; a line that cannot be an entry becomes a node the
// validation pass reports on. What a field means (dialects, limits,
// users, ports) is decided by the validation pass (fields.go, build.go).

// astFile is one inetd.conf.
type astFile struct {
	Lines []*astLine `parser:"@@*"`
}

// astLine is one line, or one entry with its continuation lines. Every
// alternative consumes a token, as participle requires.
type astLine struct {
	Comment         *lexer.Token    `parser:"  @Comment"`
	IPsec           *lexer.Token    `parser:"| @IPsec"`
	Include         *lexer.Token    `parser:"| @Include"`
	Blank           *lexer.Token    `parser:"| @Blank"`
	IndentedComment *lexer.Token    `parser:"| @IndentedComment"`
	Oversized       *lexer.Token    `parser:"| @Oversized"`
	Binary          *lexer.Token    `parser:"| @Binary"`
	AddrDefault     *astAddrDefault `parser:"| @@"`
	Entry           *astEntry       `parser:"| @@"`
	Orphan          *astOrphan      `parser:"| @@"`
}

// astAddrDefault is a line holding only `addr:`, which sets the listen
// address of the entries that follow. Continuation lines after it make
// it an entry instead (see astEntry), as the inetds read it.
type astAddrDefault struct {
	Tok lexer.Token `parser:"@AddrDefault (?! Continuation)"`
}

// astEntry is a service line. The fields may be spread over
// continuation lines. The first word may carry a listen-address prefix,
// split off by the lexer as an Addr token (then the Service token may be
// empty: `addr: stream ...` has no service name). For a unix socket the
// same split finds FreeBSD's :user:group:mode: prefix, as only the
// protocol tells the two apart, so the validation pass reads the first
// word whole. An `addr:` line followed by continuation lines starts an
// entry whose service name is missing.
type astEntry struct {
	Addr        *lexer.Token   `parser:"( @Addr?"`
	Service     *lexer.Token   `parser:"  @Service"`
	AddrDefault *lexer.Token   `parser:"| @AddrDefault )"`
	KeyValue    *astKeyValue   `parser:"( @@"`
	SocketType  *astSocketType `parser:"| @@"`
	Protocol    *astProtocol   `parser:"  ( @@"`
	Wait        *astWait       `parser:"    ( @@"`
	User        *astUser       `parser:"      ( @@"`
	Server      *astServer     `parser:"        ( @@"`
	Args        []*astArg      `parser:"          @@* )? )? )? )? )?"`
}

// astWord is one field: a word, on the entry's first line or after the
// blanks that start a continuation line. Each field has its own type so
// that the EBNF names it; they convert to astWord.
type astWord struct {
	Tok lexer.Token `parser:"Continuation? @Field"`
}

type (
	astSocketType astWord // stream, dgram... and NetBSD's ,accept-max and :accept-filter
	astProtocol   astWord // tcp, udp6, rpc/tcp, unix... and ,sndbuf=N,rcvbuf=N
	astWait       astWord // wait or nowait and its limits
	astUser       astWord // user[:group|.group][/login-class]
	astServer     astWord // an absolute path or internal
	astArg        astWord // argv[0] and the arguments
)

// astKeyValue is NetBSD's `service on|off key=value, ...;` notation,
// which gxinetd recognises in order to refuse it cleanly. It runs over
// any lines, indented or not, until a word ends in ';'.
type astKeyValue struct {
	OnOff lexer.Token `parser:"@OnOff"`
	// Tokens holds the words and the KeyValueLine tokens between them
	// (participle fills a []lexer.Token from one capture only).
	Tokens []lexer.Token `parser:"@( Field* ( KeyValueLine Field* )* )"`
}

// astOrphan is a continuation line with no entry to continue.
type astOrphan struct {
	Blanks lexer.Token   `parser:"@Continuation"`
	Words  []lexer.Token `parser:"@( Field* )"`
}

// inetdParser is built on first use: building a participle grammar is a
// millisecond of start-up that the daemon need not pay before reading
// its configuration, and never for a language it does not read.
var inetdParser = sync.OnceValue(buildParser)

// buildParser names tokenSymbols so that Go initialises the symbol table
// before the grammar that refers to it.
func buildParser() *participle.Parser[astFile] {
	if len(tokenSymbols) == 0 {
		panic("inetd: token table not initialised")
	}
	return participle.MustBuild[astFile](participle.Lexer(lineDef{}), participle.UseLookahead(1))
}

// Grammar returns the EBNF of the inetd.conf grammar (the form checked
// into docs/grammar-inetd.ebnf). Token names are the lexer's line and
// word kinds; what a word means is checked outside the grammar.
func Grammar() string { return inetdParser().String() + "\n" }

// walk calls visit with each line of the lexer's text (an entry with its
// continuation lines being one), in file order. The nodes are valid only
// during the call: the fast path reuses them.
//
// Most lines are regular: comments, blank lines, entries (continuation
// lines included). For those the lexer's tokens already are the
// grammar's nodes, so they are built directly; participle parses the
// rest (key=value entries, continuation lines with no entry). This is
// exact, not a heuristic: every line starts with an anchor token
// (Comment, IPsec, Include, Blank, IndentedComment, Oversized, Binary,
// AddrDefault, Addr, or a Service that does not follow an Addr), no
// production takes an anchor after its first token, and no production
// looks past the next anchor to decide. So the token stream splits at
// anchors into independent segments, and parsing a run of irregular
// segments on its own gives the same nodes as parsing the whole file.
// TestFastPathMatchesGrammar and FuzzGrammar check that claim. Without
// the fast path, reading a file of 1,000 one-line entries took nearly
// four times as long, with eight times the allocations.
func walk(lx *lineLexer, visit func(*astLine)) error {
	var (
		odd      []lexer.Token // a run of irregular segments, for participle
		cur      []lexer.Token // the segment being read
		fast     fastNodes
		firstErr error
		prev     lexer.TokenType
	)
	flush := func(next lexer.Position) {
		if len(odd) == 0 {
			return
		}
		f, err := parseTokens(append(odd, lexer.EOFToken(next)))
		if err != nil && firstErr == nil {
			firstErr = err
		}
		odd = odd[:0]
		if f != nil {
			for _, ln := range f.Lines {
				visit(ln)
			}
		}
	}
	endSegment := func() {
		if len(cur) == 0 {
			return
		}
		if ln := fast.build(cur); ln != nil {
			flush(cur[0].Pos)
			visit(ln)
		} else {
			odd = append(odd, cur...)
		}
		cur = cur[:0]
	}
	for {
		t, err := lx.Next()
		if err != nil {
			return err
		}
		if t.EOF() {
			endSegment()
			flush(t.Pos)
			return firstErr
		}
		if anchor(t.Type, prev) {
			endSegment()
		}
		cur = append(cur, t)
		prev = t.Type
	}
}

// anchor reports whether a token of type t, after one of type prev,
// starts a line of the grammar.
func anchor(t, prev lexer.TokenType) bool {
	switch t {
	case tokField, tokContinuation, tokOnOff, tokKeyValueLine:
		return false
	case tokService:
		return prev != tokAddr
	}
	return true
}

// fastNodes builds the nodes of regular lines, reusing its storage.
type fastNodes struct {
	line  astLine
	ad    astAddrDefault
	entry astEntry
	words [5]astWord
	args  []astArg
	argp  []*astArg
}

// build returns the node of a regular segment, or nil.
func (f *fastNodes) build(seg []lexer.Token) *astLine {
	f.line = astLine{}
	t := &seg[0]
	if len(seg) == 1 {
		switch t.Type {
		case tokComment:
			f.line.Comment = t
		case tokIPsec:
			f.line.IPsec = t
		case tokInclude:
			f.line.Include = t
		case tokBlank:
			f.line.Blank = t
		case tokIndentedComment:
			f.line.IndentedComment = t
		case tokOversized:
			f.line.Oversized = t
		case tokBinary:
			f.line.Binary = t
		case tokAddrDefault:
			f.ad.Tok = *t
			f.line.AddrDefault = &f.ad
		}
		if f.line != (astLine{}) {
			return &f.line
		}
	}
	// An entry: [Addr] Service, or an addr: line with continuation
	// lines, then words, each maybe after the Continuation that starts
	// its line.
	e := &f.entry
	*e = astEntry{}
	i := 1
	switch {
	case t.Type == tokAddr && len(seg) > 1 && seg[1].Type == tokService:
		e.Addr, e.Service = t, &seg[1]
		i = 2
	case t.Type == tokService:
		e.Service = t
	case t.Type == tokAddrDefault && len(seg) > 1 && seg[1].Type == tokContinuation:
		e.AddrDefault = t
	default:
		return nil
	}
	for k := i; k < len(seg); k++ {
		switch seg[k].Type {
		case tokField:
		case tokContinuation:
			if k+1 == len(seg) || seg[k+1].Type != tokField {
				return nil
			}
		default:
			return nil
		}
	}
	f.args, f.argp = f.args[:0], f.argp[:0]
	n := 0
	for _, w := range seg[i:] {
		if w.Type != tokField {
			continue
		}
		if n < len(f.words) {
			f.words[n] = astWord{Tok: w}
		} else {
			f.args = append(f.args, astArg{Tok: w})
		}
		n++
	}
	if n > 0 {
		e.SocketType = (*astSocketType)(&f.words[0])
	}
	if n > 1 {
		e.Protocol = (*astProtocol)(&f.words[1])
	}
	if n > 2 {
		e.Wait = (*astWait)(&f.words[2])
	}
	if n > 3 {
		e.User = (*astUser)(&f.words[3])
	}
	if n > 4 {
		e.Server = (*astServer)(&f.words[4])
	}
	for k := range f.args {
		f.argp = append(f.argp, &f.args[k])
	}
	if len(f.argp) > 0 {
		e.Args = f.argp
	}
	f.line.Entry = e
	return &f.line
}

// parseTokens runs participle over tokens from the line lexer, which must
// end with its EOF token.
func parseTokens(toks []lexer.Token) (*astFile, error) {
	pl, err := lexer.Upgrade(&replay.Lexer{Toks: toks})
	if err != nil {
		return nil, err
	}
	return inetdParser().ParseFromLexer(pl)
}

// read parses the text and hands every line to the validation pass, in
// file order.
func (p *parser) read(data []byte) {
	const eof = int(^uint(0) >> 1)
	p.src = string(data)
	p.lineStart = append(p.lineStart[:0], 0)
	for i := 0; i < len(p.src); i++ {
		if p.src[i] == '\n' {
			p.lineStart = append(p.lineStart, i+1)
		}
	}
	lx := newLineLexer(p.file, p.src, p.d.quoting)
	crlfDone := false
	// complete is called when the line at moment is read: a line-by-line
	// reader warns about the first CRLF line as it reads it, before it
	// finishes the entry that line completes.
	complete := func(moment int) {
		if !crlfDone && lx.crlfLine > 0 && lx.crlfLine <= moment {
			crlfDone = true
			p.fileDiag(service.SevWarning, CodeCRLF, lx.crlfLine, lx.crlfCol,
				"CRLF line ends: the carriage returns are removed (the inetds would make them part of the last word)")
		}
	}
	// An unfinished key=value entry is complete only at the next line
	// the grammar returns (or at the end).
	var pendingKV *rawEntry
	err := walk(lx, func(ln *astLine) {
		if pendingKV != nil {
			complete(lineOf(ln))
			p.entry(pendingKV)
			pendingKV = nil
		}
		if ln.Entry == nil {
			m := lineOf(ln)
			if ln.AddrDefault != nil {
				// Complete when the next line shows it is not continued.
				m++
			}
			complete(m)
			p.line(ln)
			return
		}
		e := p.rawEntry(ln.Entry)
		switch {
		case !e.kv:
			complete(e.endLine + 1)
		case kvDone(e):
			complete(e.endLine)
		default:
			pendingKV = e
			return
		}
		p.entry(e)
	})
	complete(eof)
	if pendingKV != nil {
		p.entry(pendingKV)
	}
	if err != nil {
		// The grammar is total, so this is a bug; what was read is kept.
		p.fileDiag(service.SevError, CodeFile, lx.line, 1, fmt.Sprintf("inetd.conf grammar: %v", err))
	}
}

// kvDone reports whether a key=value entry reached its ';'.
func kvDone(e *rawEntry) bool {
	for _, t := range e.toks {
		if strings.HasSuffix(t.text, ";") {
			return true
		}
	}
	return false
}

// lineOf is the first line of a node.
func lineOf(ln *astLine) int {
	for _, t := range [...]*lexer.Token{ln.Comment, ln.IPsec, ln.Include, ln.Blank, ln.IndentedComment, ln.Oversized, ln.Binary} {
		if t != nil {
			return t.Pos.Line
		}
	}
	switch {
	case ln.AddrDefault != nil:
		return ln.AddrDefault.Tok.Pos.Line
	case ln.Entry != nil:
		return ln.Entry.first().Pos.Line
	case ln.Orphan != nil:
		return ln.Orphan.Blanks.Pos.Line
	}
	return 0
}

// line reports on one line or handles one entry.
func (p *parser) line(ln *astLine) {
	switch {
	case ln.IPsec != nil:
		p.fileDiag(service.SevWarning, CodeIPsec, ln.IPsec.Pos.Line, 1,
			"IPsec policy lines (#@) are not supported: the policy is not applied to the entries that follow")
	case ln.IndentedComment != nil:
		t := ln.IndentedComment.Pos
		p.fileDiag(service.SevWarning, CodeIndentComment, t.Line, t.Column,
			"indented comment read as a comment (FreeBSD and OpenBSD inetd would append its words to the previous entry's arguments); start comments in column 1")
	case ln.Include != nil:
		p.include(*ln.Include)
	case ln.Oversized != nil:
		p.fileDiag(service.SevError, CodeLineTooLong, ln.Oversized.Pos.Line, 1,
			fmt.Sprintf("line is %d bytes long (the limit is %d): line ignored", len(ln.Oversized.Value), MaxLine))
	case ln.Binary != nil:
		i := indexNUL(ln.Binary.Value)
		p.fileDiag(service.SevError, CodeBinary, ln.Binary.Pos.Line, i+1, "NUL byte in line (binary data?): line ignored")
	case ln.Orphan != nil:
		b := ln.Orphan.Blanks
		p.fileDiag(service.SevError, CodeContinuation, b.Pos.Line, len(b.Value)+1,
			"line starts with a blank, which continues the previous entry, but there is none: line ignored")
	case ln.AddrDefault != nil:
		p.defaultAddress(p.word(ln.AddrDefault.Tok))
	}
}

func indexNUL(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// first is the token that starts the entry.
func (e *astEntry) first() *lexer.Token {
	switch {
	case e.Addr != nil:
		return e.Addr
	case e.Service != nil:
		return e.Service
	}
	return e.AddrDefault
}

// word turns a lexer token into a field word, without its quotes.
func (p *parser) word(t lexer.Token) token {
	text, quoted, _ := wordText(t.Value, p.d.quoting)
	return token{text: text, line: t.Pos.Line, col: t.Pos.Column, quoted: quoted}
}

// rawEntry lists an entry's words in field order. The first word is
// read whole: the address prefix and the service name are split again
// by serviceField, which knows (from the protocol) whether the word is a
// unix socket path instead.
func (p *parser) rawEntry(a *astEntry) *rawEntry {
	first := *a.first()
	if a.Addr != nil {
		first.Value += a.Service.Value
	}
	var buf [16]lexer.Token
	words := append(buf[:0], first)
	if a.KeyValue != nil {
		words = append(words, a.KeyValue.OnOff)
		for _, w := range a.KeyValue.Tokens {
			if w.Type == tokField {
				words = append(words, w)
			}
		}
	}
	for _, w := range []*astWord{(*astWord)(a.SocketType), (*astWord)(a.Protocol), (*astWord)(a.Wait), (*astWord)(a.User), (*astWord)(a.Server)} {
		if w != nil {
			words = append(words, w.Tok)
		}
	}
	for _, w := range a.Args {
		words = append(words, w.Tok)
	}
	e := &rawEntry{line: first.Pos.Line, kv: a.KeyValue != nil, toks: make([]token, len(words))}
	literalLine := 0
	for i, w := range words {
		t := p.word(w)
		e.toks[i] = t
		e.endLine = t.line
		if _, _, unterminated := wordText(w.Value, p.d.quoting); unterminated {
			e.errs = append(e.errs, service.Diag{Pos: p.pos(t.line, t.col), Severity: service.SevError, Code: CodeQuote,
				Msg: fmt.Sprintf("unterminated %c quote", w.Value[0])})
		}
		if !p.d.quoting && literalLine != t.line && t.text != "" && (t.text[0] == '"' || t.text[0] == '\'') {
			// Once per line, as the notice is about the line's reading.
			literalLine = t.line
			e.notes = append(e.notes, service.Diag{Pos: p.pos(t.line, t.col), Severity: service.SevNotice, Code: CodeDialectNotice,
				Msg: fmt.Sprintf("quotes are ordinary characters in dialect %s (as in OpenBSD and Debian inetd); FreeBSD and NetBSD would treat %c as a quote", p.d.name, t.text[0])})
		}
	}
	return e
}
