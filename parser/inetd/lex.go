package inetd

import (
	"io"
	"strings"

	"github.com/alecthomas/participle/v2/lexer"
	"github.com/gxinetd/gxinetd/internal/service"
)

// The lexer decides what each physical line is (comment, blank,
// continuation, entry line...) and splits entry lines into words. It
// works a line at a time because that is how every inetd reads the
// file: a line's kind depends only on its first characters, except in
// NetBSD's key=value notation, which runs until a word ending in ';'
// and is therefore a lexer mode. Which word is which field, how
// continuation lines attach to an entry, and when an `addr:` line is an
// entry rather than a default-address line are left to the grammar
// (grammar.go).
//
// Token values are substrings of the input, quotes included, so lexing
// allocates nothing per word; wordText removes the quotes when a field
// is read.

// Token types. participle reserves -1 for EOF.
const (
	tokComment         lexer.TokenType = -(iota + 2) // # in column 1
	tokIPsec                                         // #@ in column 1
	tokInclude                                       // NetBSD .include
	tokBlank                                         // empty or blanks only
	tokIndentedComment                               // blanks, then #
	tokOversized                                     // longer than MaxLine
	tokBinary                                        // holds a NUL byte
	tokAddrDefault                                   // a line that is one word ending in ':'
	tokAddr                                          // the listen-address prefix of an entry's first word
	tokService                                       // the rest of that word (maybe empty), or all of it
	tokField                                         // any other word
	tokContinuation                                  // the leading blanks of a continuation line
	tokOnOff                                         // second word on or off: NetBSD's key=value notation
	tokKeyValueLine                                  // the start of a further line of that notation
)

var tokenSymbols = map[string]lexer.TokenType{
	"EOF":             lexer.EOF,
	"Comment":         tokComment,
	"IPsec":           tokIPsec,
	"Include":         tokInclude,
	"Blank":           tokBlank,
	"IndentedComment": tokIndentedComment,
	"Oversized":       tokOversized,
	"Binary":          tokBinary,
	"AddrDefault":     tokAddrDefault,
	"Addr":            tokAddr,
	"Service":         tokService,
	"Field":           tokField,
	"Continuation":    tokContinuation,
	"OnOff":           tokOnOff,
	"KeyValueLine":    tokKeyValueLine,
}

// lineDef is the participle lexer.Definition for inetd.conf. quoting
// selects FreeBSD's and NetBSD's quoted words.
type lineDef struct{ quoting bool }

func (lineDef) Symbols() map[string]lexer.TokenType { return tokenSymbols }

func (d lineDef) Lex(filename string, r io.Reader) (lexer.Lexer, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return newLineLexer(filename, string(b), d.quoting), nil
}

func (d lineDef) LexString(filename, s string) (lexer.Lexer, error) {
	return newLineLexer(filename, s, d.quoting), nil
}

func (d lineDef) LexBytes(filename string, b []byte) (lexer.Lexer, error) {
	return newLineLexer(filename, string(b), d.quoting), nil
}

// lineLexer emits the tokens of one physical line at a time.
type lineLexer struct {
	name    string
	src     string
	off     int
	line    int
	quoting bool
	// kv is set inside NetBSD's key=value notation: every line that is
	// not blank or a comment belongs to the entry until a word ends in
	// ';'. The blank and comment lines inside it are dropped, as NetBSD
	// reads them.
	kv bool
	// q holds the rest of the current line's tokens, the next one first.
	q     []lexer.Token
	qBuf  [12]lexer.Token
	words []string // scratch for one line's words
	cols  []int

	// The first line with a CRLF end, and the column of its '\r', which
	// the validation pass reports once per file.
	crlfLine int
	crlfCol  int
}

func newLineLexer(name, src string, quoting bool) *lineLexer {
	return &lineLexer{name: name, src: src, quoting: quoting}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func (l *lineLexer) Next() (lexer.Token, error) {
	for len(l.q) == 0 {
		if l.off >= len(l.src) {
			return lexer.EOFToken(lexer.Position{Filename: l.name, Offset: len(l.src), Line: l.line + 1, Column: 1}), nil
		}
		l.scanLine()
	}
	t := l.q[0]
	l.q = l.q[1:]
	return t, nil
}

// nextLine returns the physical line at off (without its '\n') and the
// offset after it.
func (l *lineLexer) nextLine(off int) (string, int) {
	if nl := strings.IndexByte(l.src[off:], '\n'); nl >= 0 {
		return l.src[off : off+nl], off + nl + 1
	}
	return l.src[off:], len(l.src)
}

func (l *lineLexer) emit(typ lexer.TokenType, value string, start, col int) {
	l.q = append(l.q, lexer.Token{Type: typ, Value: value,
		Pos: lexer.Position{Filename: l.name, Offset: start + col - 1, Line: l.line, Column: col}})
}

// scanLine queues the tokens of the next physical line (none for a
// line inside key=value notation that is dropped).
func (l *lineLexer) scanLine() {
	start := l.off
	raw, next := l.nextLine(start)
	l.off = next
	l.line++
	l.q = l.qBuf[:0]
	// The size and NUL checks see the line as written, carriage return
	// included; both end a key=value entry.
	if len(raw) > MaxLine {
		l.kv = false
		l.emit(tokOversized, raw, start, 1)
		return
	}
	if strings.IndexByte(raw, 0) >= 0 {
		l.kv = false
		l.emit(tokBinary, raw, start, 1)
		return
	}
	if n := len(raw); n > 0 && raw[n-1] == '\r' {
		raw = raw[:n-1]
		if l.crlfLine == 0 {
			l.crlfLine, l.crlfCol = l.line, n
		}
	}
	s := raw
	trimmed := strings.TrimLeft(s, " \t")
	indent := len(s) - len(trimmed)
	if l.kv {
		if trimmed != "" && trimmed[0] != '#' {
			l.emit(tokKeyValueLine, s[:indent], start, 1)
			l.splitWords(s)
			l.emitWords(start, 0)
			if kvLineEnds(s) {
				l.kv = false
			}
		}
		return
	}
	switch {
	case trimmed == "":
		l.emit(tokBlank, s, start, 1)
	case s[0] == '#':
		if strings.HasPrefix(s, "#@") {
			l.emit(tokIPsec, s, start, 1)
		} else {
			l.emit(tokComment, s, start, 1)
		}
	case indent > 0:
		if trimmed[0] == '#' {
			l.emit(tokIndentedComment, trimmed, start, indent+1)
			return
		}
		l.emit(tokContinuation, s[:indent], start, 1)
		l.splitWords(s)
		l.emitWords(start, 0)
	case strings.HasPrefix(s, ".include"):
		l.emit(tokInclude, s, start, 1)
	default:
		l.entryLine(s, start)
	}
}

// entryLine queues the words of a line that starts an entry: the first
// word as an address prefix and a service, or the whole line as an
// AddrDefault when it is one word ending in ':'.
func (l *lineLexer) entryLine(s string, start int) {
	l.splitWords(s)
	w0, c0 := l.words[0], l.cols[0]
	text, _, unterminated := wordText(w0, l.quoting)
	if len(l.words) == 1 && strings.HasSuffix(text, ":") && !unterminated {
		l.emit(tokAddrDefault, w0, start, c0)
		return
	}
	if i := addrSplit(text); i >= 0 {
		// i indexes text; the raw word has the opening quote before it.
		cut := i + 1
		if len(w0) != len(text) {
			cut++
		}
		if text[i+1:] == "" {
			// No name after the prefix: an empty Service token keeps
			// the word one unit for the grammar.
			l.emit(tokAddr, w0, start, c0)
			l.emit(tokService, "", start, c0+len(w0))
		} else {
			l.emit(tokAddr, w0[:cut], start, c0)
			l.emit(tokService, w0[cut:], start, c0+cut)
		}
	} else {
		l.emit(tokService, w0, start, c0)
	}
	first := 1
	if len(l.words) > 1 {
		if t, _, _ := wordText(l.words[1], l.quoting); t == "on" || t == "off" {
			l.emit(tokOnOff, l.words[1], start, l.cols[1])
			first = 2
			l.kv = !kvLineEnds(s[l.cols[1]-1+len(l.words[1]):])
		}
	}
	l.emitWords(start, first)
}

// kvLineEnds reports whether a line of NetBSD's key=value notation
// holds the ';' that ends the definition: outside quotes (which may
// escape a quote with a backslash) and before a '#' comment.
func kvLineEnds(s string) bool {
	i := unquotedIndex(s, "#;")
	return i >= 0 && s[i] == ';'
}

// unquotedIndex is the index of the first byte of s that is one of stop
// and stands outside quotes ("..." or '...', in which a backslash
// escapes the next byte), or -1.
func unquotedIndex(s, stop string) int {
	q := byte(0)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case q != 0 && c == '\\':
			i++
		case q != 0 && c == q:
			q = 0
		case q != 0:
		case c == '"' || c == '\'':
			q = c
		case strings.IndexByte(stop, c) >= 0:
			return i
		}
	}
	return -1
}

func (l *lineLexer) emitWords(start, from int) {
	for i := from; i < len(l.words); i++ {
		l.emit(tokField, l.words[i], start, l.cols[i])
	}
}

// splitWords fills l.words and l.cols with the raw words of s and their
// columns. With quoting, a word that starts with a quote runs to the
// matching quote, blanks included, as FreeBSD's and NetBSD's inetd read
// it (there are no escapes, and the next word may follow the closing
// quote directly); an unterminated quote takes the rest of the line.
func (l *lineLexer) splitWords(s string) {
	l.words, l.cols = l.words[:0], l.cols[:0]
	for i := 0; i < len(s); {
		for i < len(s) && isBlank(s[i]) {
			i++
		}
		if i >= len(s) {
			break
		}
		start := i
		if l.quoting && (s[i] == '"' || s[i] == '\'') {
			j := strings.IndexByte(s[i+1:], s[i])
			if j < 0 {
				i = len(s)
			} else {
				i += j + 2
			}
		} else {
			for i < len(s) && !isBlank(s[i]) {
				i++
			}
		}
		l.words = append(l.words, s[start:i])
		l.cols = append(l.cols, start+1)
	}
}

// wordText returns a raw word's text: without its quotes when the
// dialect quotes and the word starts with one. unterminated reports a
// quote without its match (the text then runs to the end of the line).
func wordText(raw string, quoting bool) (text string, quoted, unterminated bool) {
	if !quoting || raw == "" || raw[0] != '"' && raw[0] != '\'' {
		return raw, false, false
	}
	if n := len(raw); n >= 2 && raw[n-1] == raw[0] {
		return raw[1 : n-1], true, false
	}
	return raw[1:], true, true
}

// token is one word of an entry with its 1-based position.
type token struct {
	text   string
	line   int
	col    int
	quoted bool
}

// rawEntry is one entry as words, in field order: the service (with its
// address prefix), socket type, protocol, wait, user, server, then the
// arguments, whichever lines they were written on.
type rawEntry struct {
	toks    []token
	line    int
	endLine int
	// kv marks NetBSD's key=value notation (`svc on key=value, ...;`).
	kv bool
	// errs are lexical errors (an unterminated quote) that reject the
	// entry; notes are notices about the words (literal quotes).
	errs  service.Diags
	notes service.Diags
}

func (p *parser) pos(line, col int) service.Source {
	return service.Source{File: p.file, Line: line, Col: col}
}

// fileDiag records a diagnostic about the file rather than an entry.
func (p *parser) fileDiag(sev service.Severity, code string, line, col int, msg string) {
	p.diags = append(p.diags, service.Diag{Pos: p.pos(line, col), Severity: sev, Code: code, Msg: msg})
}
