package parser

import (
	"io"
	"strings"

	"github.com/alecthomas/participle/v2/lexer"
)

// The lexer works a line at a time: xinetd.conf has no quoting and no line
// continuation, so a line's role (entry header, brace, attribute, junk) can
// be decided from its first word. One token per line instead of one per
// word keeps the token stream short (and lets walkAST recognise a regular
// entry as two tokens); the words inside an attribute line are split
// later by the validation pass, which keeps their columns.

// Token types. participle reserves -1 for EOF.
const (
	tokService lexer.TokenType = -(iota + 2)
	tokDefaults
	tokInclude
	tokIncludeDir
	tokLBrace
	tokRBrace
	tokLine
	tokBody
)

// maxLineLen is the longest line accepted. Longer lines are refused with a
// message instead of being split or truncated (xinetd's own limit is about
// 16 KiB and silently cuts the line).
const maxLineLen = 64 << 10

var tokenSymbols = map[string]lexer.TokenType{
	"EOF":        lexer.EOF,
	"Service":    tokService,
	"Defaults":   tokDefaults,
	"Include":    tokInclude,
	"IncludeDir": tokIncludeDir,
	"LBrace":     tokLBrace,
	"RBrace":     tokRBrace,
	"Line":       tokLine,
	"Body":       tokBody,
}

// lineDef is the participle lexer.Definition for xinetd.conf.
type lineDef struct{}

func (lineDef) Symbols() map[string]lexer.TokenType { return tokenSymbols }

func (lineDef) Lex(filename string, r io.Reader) (lexer.Lexer, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return newLineLexer(filename, string(b)), nil
}

func (lineDef) LexString(filename, s string) (lexer.Lexer, error) {
	return newLineLexer(filename, s), nil
}

func (lineDef) LexBytes(filename string, b []byte) (lexer.Lexer, error) {
	return newLineLexer(filename, string(b)), nil
}

// lineLexer emits one token per significant line, with two foldings
// that keep participle's per-token cost off the common path: a run of
// consecutive attribute lines (with comments and blank lines between them)
// becomes one Line token, and a well-formed `{`, attribute lines, `}`
// sequence becomes one Body token. Anything irregular (a missing brace, a
// header inside a block) is left unfolded for the grammar to place. The
// validation pass splits folded tokens into lines again, keeping each
// line's number and each word's column. Token values are substrings of
// the input, so lexing allocates nothing per line.
type lineLexer struct {
	name string
	src  string
	off  int
	end  int // the lexer stops here: len(src), or a chunk's end (parallel.go)
	line int
	// la holds tokens read ahead and put back, the next one last. At most
	// three are ever held, so laBuf keeps them off the heap.
	la    []lexer.Token
	laBuf [4]lexer.Token

	// Facts the validation pass reports once per file.
	crlfLines int
	firstCRLF int
}

func newLineLexer(name, src string) *lineLexer {
	return newRangeLexer(name, src, 0, len(src), 0)
}

// newRangeLexer lexes src[off:end] with the positions the whole text
// gives it: off must start a line, line is the number of lines before it,
// and end must start a line or be len(src).
func newRangeLexer(name, src string, off, end, line int) *lineLexer {
	l := &lineLexer{name: name, src: src, off: off, end: end, line: line}
	l.la = l.laBuf[:0]
	return l
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func (l *lineLexer) Next() (lexer.Token, error) {
	t := l.run()
	if t.Type != tokLBrace {
		return t, nil
	}
	b := l.run()
	var c lexer.Token
	switch b.Type {
	case tokRBrace:
		c = b
	case tokLine:
		c = l.run()
		if c.Type != tokRBrace {
			l.unread(c)
			l.unread(b)
			return t, nil
		}
	default:
		l.unread(b)
		return t, nil
	}
	t.Type = tokBody
	t.Value = l.src[t.Pos.Offset : c.Pos.Offset+1]
	return t, nil
}

func (l *lineLexer) unread(t lexer.Token) { l.la = append(l.la, t) }

// raw returns the next token of one significant line.
func (l *lineLexer) raw() lexer.Token {
	if n := len(l.la); n > 0 {
		t := l.la[n-1]
		l.la = l.la[:n-1]
		return t
	}
	t, brace, ok := l.scan()
	if !ok {
		return lexer.EOFToken(lexer.Position{Filename: l.name, Offset: l.end, Line: l.line + 1, Column: 1})
	}
	if brace != nil {
		l.la = append(l.la, *brace)
	}
	return t
}

// run is raw with consecutive Line tokens folded into one.
func (l *lineLexer) run() lexer.Token {
	t := l.raw()
	if t.Type != tokLine {
		return t
	}
	end := t.Pos.Offset + len(t.Value)
	for {
		n := l.raw()
		if n.Type != tokLine {
			l.unread(n)
			break
		}
		end = n.Pos.Offset + len(n.Value)
	}
	t.Value = l.src[t.Pos.Offset:end]
	return t
}

// scan returns the next significant line as a token, and the '{' split off
// a `service NAME {` header, if any.
func (l *lineLexer) scan() (tok lexer.Token, brace *lexer.Token, ok bool) {
	for l.off < l.end {
		start := l.off
		end := strings.IndexByte(l.src[start:l.end], '\n')
		if end < 0 {
			end = l.end
			l.off = end
		} else {
			end += start
			l.off = end + 1
		}
		l.line++
		text := l.src[start:end]
		if n := len(text); n > 0 && text[n-1] == '\r' {
			text = text[:n-1]
			if l.crlfLines == 0 {
				l.firstCRLF = l.line
			}
			l.crlfLines++
		}
		i := 0
		for i < len(text) && isBlank(text[i]) {
			i++
		}
		if i == len(text) || text[i] == '#' {
			continue
		}
		pos := lexer.Position{Filename: l.name, Offset: start + i, Line: l.line, Column: i + 1}
		body := strings.TrimRight(text[i:], " \t")
		if len(text) > maxLineLen {
			return lexer.Token{Type: tokLine, Value: body, Pos: pos}, nil, true
		}
		tok, brace = classify(body, pos)
		return tok, brace, true
	}
	return lexer.Token{}, nil, false
}

// classify decides a line's role from its first word. A keyword followed
// by an operator (`include = x`) is an attribute line, so that the
// validation pass can say "unknown attribute" instead of "bad include".
func classify(body string, pos lexer.Position) (lexer.Token, *lexer.Token) {
	switch body {
	case "{":
		return lexer.Token{Type: tokLBrace, Value: body, Pos: pos}, nil
	case "}":
		return lexer.Token{Type: tokRBrace, Value: body, Pos: pos}, nil
	}
	w := body
	rest := ""
	if j := strings.IndexAny(body, " \t"); j >= 0 {
		w, rest = body[:j], strings.TrimLeft(body[j:], " \t")
	}
	var typ lexer.TokenType
	switch {
	case strings.EqualFold(w, "service"):
		typ = tokService
	case strings.EqualFold(w, "defaults"):
		typ = tokDefaults
	case strings.EqualFold(w, "include"):
		typ = tokInclude
	case strings.EqualFold(w, "includedir"):
		typ = tokIncludeDir
	default:
		return lexer.Token{Type: tokLine, Value: body, Pos: pos}, nil
	}
	if strings.HasPrefix(rest, "=") || strings.HasPrefix(rest, "+=") || strings.HasPrefix(rest, "-=") {
		return lexer.Token{Type: tokLine, Value: body, Pos: pos}, nil
	}
	// `service foo {` (and `defaults {`): xinetd refuses it; we split off
	// the brace so the grammar sees the usual shape and the validation pass
	// only warns.
	var brace *lexer.Token
	if (typ == tokService || typ == tokDefaults) && rest != "" {
		if k := len(body) - 1; body[k] == '{' && (k == 0 || isBlank(body[k-1])) {
			bp := pos
			bp.Offset += k
			bp.Column += k
			brace = &lexer.Token{Type: tokLBrace, Value: "{", Pos: bp}
			body = strings.TrimRight(body[:k], " \t")
		}
	}
	return lexer.Token{Type: typ, Value: body, Pos: pos}, brace
}
