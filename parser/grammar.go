package parser

import (
	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
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

var xinetdParser = buildParser()

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
func Grammar() string { return xinetdParser.String() + "\n" }

// parseAST runs participle over one file's text. It also returns the
// lexer, whose counters (CRLF lines) the validation pass reports on.
func parseAST(name, src string) (*astFile, *lineLexer, error) {
	lx := newLineLexer(name, src)
	pl, err := lexer.Upgrade(lx)
	if err != nil {
		return nil, lx, err
	}
	f, err := xinetdParser.ParseFromLexer(pl)
	return f, lx, err
}
