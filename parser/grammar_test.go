package parser

import (
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/alecthomas/participle/v2/lexer"
)

// parseAST collects walkAST's items into one tree, copying what the fast
// path reuses.
func parseAST(name, src string) (*astFile, *lineLexer, error) {
	f := &astFile{}
	lx, err := walkAST(name, src, func(it item) {
		switch {
		case it.block != nil:
			b := *it.block
			if b.Folded != nil {
				body := *b.Folded
				b.Folded = &body
			}
			f.Blocks = append(f.Blocks, &b)
		case it.include != nil:
			f.Includes = append(f.Includes, &astInclude{Tok: *it.include})
		case it.stray != nil:
			f.Strays = append(f.Strays, &astStray{Tok: *it.stray})
		}
	})
	return f, lx, err
}

// grammarOnly parses a whole file with participle, without parseAST's
// fast path: the reference the fast path must agree with.
func grammarOnly(name, src string) (*astFile, error) {
	pl, err := lexer.Upgrade(newLineLexer(name, src))
	if err != nil {
		return nil, err
	}
	return xinetdParser().ParseFromLexer(pl)
}

// flatItem is one top-level item with its tokens by value, so that two
// trees compare with reflect.DeepEqual regardless of how they were
// allocated.
type flatItem struct {
	Kind string
	Toks []lexer.Token
}

func flatten(f *astFile) []flatItem {
	var out []flatItem
	tok := func(t *lexer.Token) lexer.Token {
		if t == nil {
			return lexer.Token{Type: 999}
		}
		return *t
	}
	for _, it := range mergeItems(f) {
		switch {
		case it.block != nil:
			b := it.block
			fi := flatItem{Kind: "block", Toks: []lexer.Token{b.Head, tok(b.Folded)}}
			if b.Open != nil {
				fi.Kind = "block-open"
				fi.Toks = append(fi.Toks, b.Open.Brace, tok(b.Open.Lines), tok(b.Open.Close))
			}
			if b.Bare != nil {
				fi.Kind = "block-bare"
				fi.Toks = append(fi.Toks, b.Bare.Lines, tok(b.Bare.Close))
			}
			out = append(out, fi)
		case it.include != nil:
			out = append(out, flatItem{Kind: "include", Toks: []lexer.Token{*it.include}})
		case it.stray != nil:
			out = append(out, flatItem{Kind: "stray", Toks: []lexer.Token{*it.stray}})
		}
	}
	return out
}

// checkFastPath asserts that parseAST and a plain participle parse give
// the same items in the same order.
func checkFastPath(t testing.TB, src string) {
	t.Helper()
	got, _, err := parseAST("x.conf", src)
	if err != nil {
		t.Fatalf("parseAST: %v", err)
	}
	want, err := grammarOnly("x.conf", src)
	if err != nil {
		t.Fatalf("participle: %v", err)
	}
	g, w := flatten(got), flatten(want)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("fast path and grammar differ on %q:\n got %+v\nwant %+v", src, g, w)
	}
}

func TestFastPathMatchesGrammar(t *testing.T) {
	cases := map[string]string{
		"empty":              "",
		"comments only":      "# x\n\n   # y\n",
		"generated":          string(genConfig(40)),
		"regular then odd":   "service a\n{\n\tport = 1\n}\nservice b\n{\n\tport = 2\n",
		"odd then regular":   "service b\n\tport = 2\n}\nservice a\n{\n\tport = 1\n}\n",
		"leading strays":     "port = 1\n{\n}\n}\nservice a\n{\n}\n",
		"stray body":         "service a\n{\n}\n{\n\tx = 1\n}\nservice b\n{\n}\n",
		"brace same line":    "service a {\n\tport = 1\n}\ndefaults {\n}\n",
		"header only":        "service a\nservice b\n{\n}\ndefaults\n",
		"includes":           "include /x\nservice a\n{\n}\nincludedir /d\ninclude\nincludedir\n",
		"include with lines": "include /x\nport = 1\n}\nservice a\n{\n}\n",
		"open no close":      "service a\n{\nservice b\n{\n\tport = 1\n}\n",
		"nested header":      "service a\n{\n\tport = 1\nservice b\n{\n}\n}\n",
		"double close":       "defaults\n{\n}\n}\n}\nservice a\n{\n}\n",
		"crlf":               "service a\r\n{\r\n\tport = 1\r\n}\r\n",
		"no final newline":   "service a\n{\n}",
		"keyword attr":       "service a\n{\n\tinclude = 1\n}\ninclude = 2\n",
		"empty bodies":       "service a\n{\n}\nservice b\n{\n}\nservice c\n{\n}\n",
	}
	for _, g := range goldenInputs(t) {
		cases[filepath.Base(g.path)] = g.in
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) { checkFastPath(t, src) })
	}
	// Every order of regular and irregular pieces.
	pieces := []string{"service a\n{\n}\n", "service b\n{\n", "}\n", "include /x\n", "x = 1\n", "defaults {\n}\n"}
	for i := range pieces {
		for j := range pieces {
			for k := range pieces {
				src := pieces[i] + pieces[j] + pieces[k]
				t.Run(fmt.Sprintf("mix%d%d%d", i, j, k), func(t *testing.T) { checkFastPath(t, src) })
			}
		}
	}
}

// TestFastPathUsed makes sure a clean file never reaches participle (its
// allocations were the reason for the fast path), by counting the
// allocations of a walk.
func TestFastPathUsed(t *testing.T) {
	src := string(genConfig(200))
	n := 0
	allocs := testing.AllocsPerRun(5, func() {
		n = 0
		if _, err := walkAST("x.conf", src, func(item) { n++ }); err != nil {
			t.Fatal(err)
		}
	})
	if n != 201 {
		t.Fatalf("walked %d items, want 201", n)
	}
	// The lexer and the walk's own state: nothing per entry.
	if allocs > 10 {
		t.Errorf("walkAST made %.0f allocations for 200 entries; the fast path is not being taken", allocs)
	}
}
