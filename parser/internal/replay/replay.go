// Package replay feeds participle tokens that a hand-written lexer has
// already produced. Both configuration grammars (parser and parser/inetd)
// lex with their own fast lexers and hand participle only the irregular
// regions, as token lists.
package replay

import "github.com/alecthomas/participle/v2/lexer"

// Lexer replays Toks, which must end with the EOF token; past the end it
// keeps returning that EOF token, as participle expects of a lexer.
type Lexer struct {
	Toks []lexer.Token
	i    int
}

// Next returns the next token.
func (t *Lexer) Next() (lexer.Token, error) {
	if t.i >= len(t.Toks) {
		return t.Toks[len(t.Toks)-1], nil
	}
	t.i++
	return t.Toks[t.i-1], nil
}
