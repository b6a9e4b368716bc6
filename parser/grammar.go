package parser

import (
	"sync"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"

	"github.com/gxinetd/gxinetd/parser/internal/replay"
)

// The grammar sees only block structure. It is total: every token
// sequence the lexer can produce parses, so participle never stops at the
// first mistake. A missing brace, a stray line or a header inside a block
// all become parts of the tree that the validation pass reports with
// their positions, dropping only the entry concerned.

// astFile is one configuration file. The three lists are one
// alternation in the grammar; read order is restored from the offsets.
type astFile struct {
	Blocks   []*astBlock   `parser:"( @@"`
	Includes []*astInclude `parser:"| @@"`
	Strays   []*astStray   `parser:"| @@ )*"`
}

// astInclude is an `include FILE` or `includedir DIR` line.
type astInclude struct {
	Tok lexer.Token `parser:"@(Include | IncludeDir)"`
}

// astStray is a line outside any entry.
type astStray struct {
	Tok lexer.Token `parser:"@(LBrace | RBrace | Line | Body)"`
}

// astBlock is a `service NAME` or `defaults` entry: a Body token (the
// lexer's folding of a well-formed `{ ... }`), or the irregular pieces
// the validation pass reports on. Every alternative consumes a token, as
// participle requires.
type astBlock struct {
	Head   lexer.Token  `parser:"@(Service | Defaults)"`
	Folded *lexer.Token `parser:"( @Body"`
	Open   *astOpen     `parser:"| @@"`
	Bare   *astBare     `parser:"| @@ )?"`
}

// astOpen is a '{' the lexer could not fold: lines then maybe a '}'.
type astOpen struct {
	Brace lexer.Token  `parser:"@LBrace"`
	Lines *lexer.Token `parser:"@Line?"`
	Close *lexer.Token `parser:"@RBrace?"`
}

// astBare is an entry without its '{'.
type astBare struct {
	Lines lexer.Token  `parser:"@Line"`
	Close *lexer.Token `parser:"@RBrace?"`
}

// xinetdParser is built on first use: building a participle grammar is a
// millisecond of start-up that the daemon need not pay before reading
// its configuration, and never for a language it does not read.
var xinetdParser = sync.OnceValue(buildParser)

// buildParser names tokenSymbols so that Go initialises the symbol table
// before the grammar that refers to it.
func buildParser() *participle.Parser[astFile] {
	if len(tokenSymbols) == 0 {
		panic("parser: token table not initialised")
	}
	return participle.MustBuild[astFile](participle.Lexer(lineDef{}), participle.UseLookahead(1))
}

// Grammar returns the EBNF of the block-level grammar (the form checked
// into docs/grammar-xinetd.ebnf). Attribute lines are a single Line token
// whose words are split and validated outside the grammar.
func Grammar() string { return xinetdParser().String() + "\n" }

// walkAST calls visit with each top-level item of one file's text, in
// read order, and returns the lexer, whose counters (CRLF lines) the
// validation pass reports on. The pointers in an item are valid only
// during the call: the fast path reuses them.
//
// Most of a real file is regular: a `service NAME` or `defaults` header
// followed by a folded Body, and include lines. For those the lexer's
// tokens already are the grammar's nodes (astBlock{Head, Folded},
// astInclude), so they are built directly; participle parses the rest.
// This is exact, not a heuristic: every top-level item starts at a
// Service, Defaults, Include or IncludeDir token and no production takes
// one of those after its first token, so the token stream splits at them
// into independent segments, and parsing a run of irregular segments on
// its own gives the same items as parsing the whole file.
// TestFastPathMatchesGrammar and the fuzz target check that claim. On a
// 10,000-service file participle's per-token bookkeeping was the largest
// allocator; now it only runs where the input has mistakes, and no tree
// of the whole file is ever held.
func walkAST(name, src string, visit func(item)) (*lineLexer, error) {
	lx := newLineLexer(name, src)
	return lx, walkLexer(lx, visit)
}

// walkLexer is walkAST over the tokens of lx, which may cover a part of a
// file that starts at a top-level item (parallel.go).
func walkLexer(lx *lineLexer, visit func(item)) error {
	var (
		odd      []lexer.Token // a run of irregular segments, for participle
		cur      []lexer.Token // the segment being read while it may be regular
		buf      [3]lexer.Token
		rb       regularBlock // reused for every regular block
		inc      lexer.Token  // and every regular include
		firstErr error
	)
	cur = buf[:0]
	irregular := false
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
			for _, it := range mergeItems(f) {
				visit(it)
			}
		}
	}
	endSegment := func() {
		switch {
		case irregular, len(cur) == 0:
		case len(cur) == 1 && (cur[0].Type == tokInclude || cur[0].Type == tokIncludeDir):
			flush(cur[0].Pos)
			inc = cur[0]
			visit(item{off: inc.Pos.Offset, include: &inc})
		case len(cur) == 2 && (cur[0].Type == tokService || cur[0].Type == tokDefaults) && cur[1].Type == tokBody:
			flush(cur[0].Pos)
			rb.body = cur[1]
			rb.block = astBlock{Head: cur[0], Folded: &rb.body}
			visit(item{off: cur[0].Pos.Offset, block: &rb.block})
		default:
			odd = append(odd, cur...)
		}
		cur = cur[:0]
		irregular = false
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
		switch t.Type {
		case tokService, tokDefaults, tokInclude, tokIncludeDir:
			endSegment()
		}
		switch {
		case irregular:
			odd = append(odd, t)
		case len(cur) == 2:
			// Three tokens: no regular item is that long.
			odd = append(append(odd, cur...), t)
			cur = cur[:0]
			irregular = true
		default:
			cur = append(cur, t)
		}
	}
}

// regularBlock is a fast-path block and the Body token it points to.
type regularBlock struct {
	block astBlock
	body  lexer.Token
}

// parseTokens runs participle over tokens from the line lexer, which must
// end with its EOF token.
func parseTokens(toks []lexer.Token) (*astFile, error) {
	pl, err := lexer.Upgrade(&replay.Lexer{Toks: toks})
	if err != nil {
		return nil, err
	}
	return xinetdParser().ParseFromLexer(pl)
}
