package inetd

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/gxinetd/gxinetd/internal/service"
)

// token is one word of an entry with its 1-based position.
type token struct {
	text   string
	line   int
	col    int
	quoted bool
}

// rawEntry is one entry as words: its first line plus any continuation
// lines (lines that start with a blank).
type rawEntry struct {
	toks    []token
	line    int
	endLine int
	// kv marks NetBSD's key=value notation (`svc on key=value, ...;`),
	// which runs until a word that ends with ';'.
	kv bool
	// errs are lexical errors (an unterminated quote) that reject the
	// entry; notes are notices about the words (literal quotes).
	errs  service.Diags
	notes service.Diags
}

// read splits the text into entries, handing each to p.entry, and
// reports what it skips.
func (p *parser) read(data []byte) {
	var cur *rawEntry
	// Entries are handled as soon as they end, so that diagnostics come
	// out in line order and default-address lines apply to what follows.
	flush := func() {
		if cur != nil {
			p.entry(cur)
			cur = nil
		}
	}
	crlfNoted := false
	lineNo := 0
	for start := 0; start <= len(data); {
		var raw []byte
		if nl := bytes.IndexByte(data[start:], '\n'); nl >= 0 {
			raw = data[start : start+nl]
			start += nl + 1
		} else {
			raw = data[start:]
			start = len(data) + 1
		}
		lineNo++
		if len(raw) > MaxLine {
			flush()
			p.fileDiag(service.SevError, CodeLineTooLong, lineNo, 1,
				fmt.Sprintf("line is %d bytes long (the limit is %d): line ignored", len(raw), MaxLine))
			continue
		}
		if i := bytes.IndexByte(raw, 0); i >= 0 {
			flush()
			p.fileDiag(service.SevError, CodeBinary, lineNo, i+1, "NUL byte in line (binary data?): line ignored")
			continue
		}
		if n := len(raw); n > 0 && raw[n-1] == '\r' {
			raw = raw[:n-1]
			if !crlfNoted {
				crlfNoted = true
				p.fileDiag(service.SevWarning, CodeCRLF, lineNo, n,
					"CRLF line ends: the carriage returns are removed (the inetds would make them part of the last word)")
			}
		}
		s := string(raw)
		trimmed := strings.TrimLeft(s, " \t")

		if cur != nil && cur.kv {
			if trimmed != "" && trimmed[0] != '#' {
				p.tokenize(s, lineNo, cur)
				cur.endLine = lineNo
			}
			if kvDone(cur) {
				flush()
			}
			continue
		}
		switch {
		case trimmed == "":
			flush()
		case s[0] == '#':
			flush()
			if strings.HasPrefix(s, "#@") {
				p.fileDiag(service.SevWarning, CodeIPsec, lineNo, 1,
					"IPsec policy lines (#@) are not supported: the policy is not applied to the entries that follow")
			}
		case s[0] == ' ' || s[0] == '\t':
			if trimmed[0] == '#' {
				flush()
				p.fileDiag(service.SevWarning, CodeIndentComment, lineNo, len(s)-len(trimmed)+1,
					"indented comment read as a comment (FreeBSD and OpenBSD inetd would append its words to the previous entry's arguments); start comments in column 1")
				continue
			}
			if cur == nil {
				p.fileDiag(service.SevError, CodeContinuation, lineNo, len(s)-len(trimmed)+1,
					"line starts with a blank, which continues the previous entry, but there is none: line ignored")
				continue
			}
			p.tokenize(s, lineNo, cur)
			cur.endLine = lineNo
		case strings.HasPrefix(s, ".include"):
			flush()
			p.fileDiag(service.SevWarning, CodeInclude, lineNo, 1,
				"NetBSD .include is not supported: the named files are not read")
		default:
			flush()
			cur = &rawEntry{line: lineNo, endLine: lineNo}
			p.tokenize(s, lineNo, cur)
			if len(cur.toks) >= 2 && (cur.toks[1].text == "on" || cur.toks[1].text == "off") {
				cur.kv = true
				if kvDone(cur) {
					flush()
				}
			}
		}
	}
	flush()
}

func kvDone(e *rawEntry) bool {
	for _, t := range e.toks {
		if strings.HasSuffix(t.text, ";") {
			return true
		}
	}
	return false
}

// tokenize appends the words of one line to e. In quoting dialects a
// word that starts with a quote runs to the matching quote, blanks
// included, as FreeBSD's and NetBSD's inetd read it; there are no
// escapes.
func (p *parser) tokenize(s string, line int, e *rawEntry) {
	literalQuote := false
	for i := 0; i < len(s); {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		start := i
		if p.d.quoting && (s[i] == '"' || s[i] == '\'') {
			q := s[i]
			j := strings.IndexByte(s[i+1:], q)
			if j < 0 {
				e.errs = append(e.errs, service.Diag{Pos: p.pos(line, start+1), Severity: service.SevError, Code: CodeQuote,
					Msg: fmt.Sprintf("unterminated %c quote", q)})
				e.toks = append(e.toks, token{text: s[i+1:], line: line, col: start + 1, quoted: true})
				return
			}
			e.toks = append(e.toks, token{text: s[i+1 : i+1+j], line: line, col: start + 1, quoted: true})
			i += j + 2
			continue
		}
		for i < len(s) && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		w := s[start:i]
		if !p.d.quoting && !literalQuote && (w[0] == '"' || w[0] == '\'') {
			literalQuote = true
			e.notes = append(e.notes, service.Diag{Pos: p.pos(line, start+1), Severity: service.SevNotice, Code: CodeDialectNotice,
				Msg: fmt.Sprintf("quotes are ordinary characters in dialect %s (as in OpenBSD and Debian inetd); FreeBSD and NetBSD would treat %c as a quote", p.d.name, w[0])})
		}
		e.toks = append(e.toks, token{text: w, line: line, col: start + 1})
	}
}

func (p *parser) pos(line, col int) service.Source {
	return service.Source{File: p.file, Line: line, Col: col}
}

// fileDiag records a diagnostic about the file rather than an entry.
func (p *parser) fileDiag(sev service.Severity, code string, line, col int, msg string) {
	p.diags = append(p.diags, service.Diag{Pos: p.pos(line, col), Severity: sev, Code: code, Msg: msg})
}
