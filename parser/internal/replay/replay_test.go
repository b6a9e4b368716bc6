package replay

import (
	"testing"

	"github.com/alecthomas/participle/v2/lexer"
)

func TestReplayEndsWithEOFForever(t *testing.T) {
	toks := []lexer.Token{{Type: 1, Value: "a"}, {Type: lexer.EOF}}
	l := &Lexer{Toks: toks}
	for i, want := range []lexer.TokenType{1, lexer.EOF, lexer.EOF, lexer.EOF} {
		got, err := l.Next()
		if err != nil || got.Type != want {
			t.Fatalf("token %d = %v, %v; want type %v", i, got, err, want)
		}
	}
}
