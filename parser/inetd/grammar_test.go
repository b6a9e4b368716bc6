package inetd

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/participle/v2/lexer"
)

// grammarOnly parses a whole text with participle, without walk's fast
// path: the reference the fast path must agree with.
func grammarOnly(src string, quoting bool) (*astFile, error) {
	pl, err := lexer.Upgrade(newLineLexer("x.conf", src, quoting))
	if err != nil {
		return nil, err
	}
	return inetdParser().ParseFromLexer(pl)
}

// walked returns describe of every node walk visits.
func walked(t testing.TB, src string, quoting bool) []string {
	t.Helper()
	var out []string
	err := walk(newLineLexer("x.conf", src, quoting), func(ln *astLine) { out = append(out, describe(ln)) })
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	return out
}

// parsed returns describe of every node of a grammar-only parse.
func parsed(t testing.TB, src string, quoting bool) []string {
	t.Helper()
	f, err := grammarOnly(src, quoting)
	if err != nil {
		t.Fatalf("participle: %v", err)
	}
	var out []string
	for _, ln := range f.Lines {
		out = append(out, describe(ln))
	}
	return out
}

// kind names a node's alternative.
func kind(ln *astLine) string {
	switch {
	case ln.Comment != nil:
		return "comment"
	case ln.IPsec != nil:
		return "ipsec"
	case ln.Include != nil:
		return "include"
	case ln.Blank != nil:
		return "blank"
	case ln.IndentedComment != nil:
		return "indented-comment"
	case ln.Oversized != nil:
		return "oversized"
	case ln.Binary != nil:
		return "binary"
	case ln.AddrDefault != nil:
		return "addr-default"
	case ln.Entry != nil && ln.Entry.KeyValue != nil:
		return "key-value"
	case ln.Entry != nil:
		return "entry"
	case ln.Orphan != nil:
		return "orphan"
	}
	return "none"
}

func tok(name string, t *lexer.Token) string {
	if t == nil {
		return ""
	}
	v := t.Value
	if len(v) > 40 {
		v = fmt.Sprintf("<%d bytes>", len(v))
	}
	return fmt.Sprintf(" %s=%q@%d:%d", name, v, t.Pos.Line, t.Pos.Column)
}

// describe renders a node with every token it holds, by role.
func describe(ln *astLine) string {
	var b strings.Builder
	b.WriteString(kind(ln))
	for _, f := range []struct {
		n string
		t *lexer.Token
	}{{"text", ln.Comment}, {"text", ln.IPsec}, {"text", ln.Include}, {"text", ln.Blank},
		{"text", ln.IndentedComment}, {"text", ln.Oversized}, {"text", ln.Binary}} {
		b.WriteString(tok(f.n, f.t))
	}
	if a := ln.AddrDefault; a != nil {
		b.WriteString(tok("addr", &a.Tok))
	}
	if o := ln.Orphan; o != nil {
		b.WriteString(tok("blanks", &o.Blanks))
		for i := range o.Words {
			b.WriteString(tok("word", &o.Words[i]))
		}
	}
	if e := ln.Entry; e != nil {
		b.WriteString(tok("addr", e.Addr) + tok("service", e.Service) + tok("addr-line", e.AddrDefault))
		if kv := e.KeyValue; kv != nil {
			b.WriteString(tok("onoff", &kv.OnOff))
			for i := range kv.Tokens {
				name := "kv"
				if kv.Tokens[i].Type == tokKeyValueLine {
					name = "kv-line"
				}
				b.WriteString(tok(name, &kv.Tokens[i]))
			}
		}
		for _, f := range []struct {
			n string
			w *astWord
		}{{"socket", (*astWord)(e.SocketType)}, {"proto", (*astWord)(e.Protocol)}, {"wait", (*astWord)(e.Wait)},
			{"user", (*astWord)(e.User)}, {"server", (*astWord)(e.Server)}} {
			if f.w != nil {
				b.WriteString(tok(f.n, &f.w.Tok))
			}
		}
		for _, a := range e.Args {
			b.WriteString(tok("arg", &a.Tok))
		}
	}
	return b.String()
}

// TestGrammarLineKinds checks that the grammar tells every kind of line
// apart, in both quoting modes, and that walk's fast path agrees.
func TestGrammarLineKinds(t *testing.T) {
	long := strings.Repeat("x", MaxLine+1)
	cases := []struct {
		name    string
		src     string
		quoting bool
		want    []string
	}{
		{"comment", "# a comment\n", false, []string{"comment"}},
		{"ipsec", "#@ ipsec esp/transport//require\n", false, []string{"ipsec"}},
		{"include", ".include /etc/inetd.d\n", false, []string{"include"}},
		{"blank", "\n \t\nx:\n", false, []string{"blank", "blank", "addr-default"}},
		{"indented comment", "  # not an argument\n", false, []string{"indented-comment"}},
		{"oversized", long + "\n# after\n", false, []string{"oversized", "comment"}},
		{"binary", "echo\x00 stream\n", false, []string{"binary"}},
		{"addr default", "127.0.0.1:\n*:\n", false, []string{"addr-default", "addr-default"}},
		{"quoted addr default", "'127.0.0.1:'\n", true, []string{"addr-default"}},
		{"literal quote addr", "'127.0.0.1:'\n", false, []string{"entry"}},
		{"entry", "echo stream tcp nowait root internal\n", false, []string{"entry"}},
		{"addr entry", "127.0.0.1:echo stream tcp nowait root internal\n", false, []string{"entry"}},
		{"continued entry", "echo stream\n\ttcp nowait\n root internal\n", false, []string{"entry"}},
		{"addr line continued", "127.0.0.1:\n stream tcp nowait root internal\n", false, []string{"entry"}},
		{"unterminated quote addr", "'x:\necho stream tcp nowait root internal\n", true, []string{"entry", "entry"}},
		{"key value", "ftp on socktype=stream\n# inside\n\nprotocol=tcp;\n  more\n", false, []string{"key-value", "orphan"}},
		{"key value cut", "ftp off a=b\n" + long + "\n", false, []string{"key-value", "oversized"}},
		{"orphan", "# c\n  stray words\n", false, []string{"comment", "orphan"}},
		{"entry ended by comment", "echo stream tcp\n# c\n nowait root internal\n", false, []string{"entry", "comment", "orphan"}},
		{"crlf", "echo stream tcp nowait root internal\r\n\r\n", false, []string{"entry", "blank"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := grammarOnly(c.src, c.quoting)
			if err != nil {
				t.Fatalf("participle: %v", err)
			}
			var got []string
			for _, ln := range f.Lines {
				got = append(got, kind(ln))
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("kinds %v, want %v", got, c.want)
			}
			if w, g := parsed(t, c.src, c.quoting), walked(t, c.src, c.quoting); !reflect.DeepEqual(w, g) {
				t.Errorf("fast path differs:\n got %q\nwant %q", g, w)
			}
		})
	}
}

// TestGrammarFields checks the role and the position of every word.
func TestGrammarFields(t *testing.T) {
	cases := []struct {
		name    string
		src     string
		quoting bool
		want    string
	}{
		{"one line", "echo\tstream tcp nowait root internal\n", false,
			`entry service="echo"@1:1 socket="stream"@1:6 proto="tcp"@1:13 wait="nowait"@1:17 user="root"@1:24 server="internal"@1:29`},
		{"continuations", "10.0.0.1:echo stream\n  tcp nowait.10\n\troot:wheel /bin/x x -y\n", false,
			`entry addr="10.0.0.1:"@1:1 service="echo"@1:10 socket="stream"@1:15 proto="tcp"@2:3 wait="nowait.10"@2:7 user="root:wheel"@3:2 server="/bin/x"@3:13 arg="x"@3:20 arg="-y"@3:22`},
		{"no service name", "x: stream tcp\n", false,
			`entry addr="x:"@1:1 service=""@1:3 socket="stream"@1:4 proto="tcp"@1:11`},
		{"bracketed v6", "[::1]:echo stream tcp6\n", false,
			`entry addr="[::1]:"@1:1 service="echo"@1:7 socket="stream"@1:12 proto="tcp6"@1:19`},
		{"quoted first word", "'127.0.0.1:echo' stream tcp nowait root /bin/x 'a b'c\n", true,
			`entry addr="'127.0.0.1:"@1:1 service="echo'"@1:12 socket="stream"@1:18 proto="tcp"@1:25 wait="nowait"@1:29 user="root"@1:36 server="/bin/x"@1:41 arg="'a b'"@1:48 arg="c"@1:53`},
		{"quoted empty name", "'x:' stream\n", true,
			`entry addr="'x:'"@1:1 service=""@1:5 socket="stream"@1:6`},
		{"unterminated", "echo stream 'tcp nowait\n", true,
			`entry service="echo"@1:1 socket="stream"@1:6 proto="'tcp nowait"@1:13`},
		{"addr line continued", "127.0.0.1:\n stream tcp\n", false,
			`entry addr-line="127.0.0.1:"@1:1 socket="stream"@2:2 proto="tcp"@2:9`},
		{"key value", "svc on a=b,\n c=d; e\n", false,
			`key-value service="svc"@1:1 onoff="on"@1:5 kv="a=b,"@1:8 kv-line=" "@2:1 kv="c=d;"@2:2 kv="e"@2:7`},
		{"orphan", "\n\t stray w\n", false,
			"blank text=\"\"@1:1\norphan blanks=\"\\t \"@2:1 word=\"stray\"@2:3 word=\"w\"@2:9"},
		{"indented comment", "   # c\n", false, `indented-comment text="# c"@1:4`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := strings.Join(parsed(t, c.src, c.quoting), "\n"); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
			if got := strings.Join(walked(t, c.src, c.quoting), "\n"); got != c.want {
				t.Errorf("fast path: got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

// checkFastPath asserts that walk and a plain participle parse give the
// same nodes in the same order.
func checkFastPath(t testing.TB, src string, quoting bool) {
	t.Helper()
	if w, g := parsed(t, src, quoting), walked(t, src, quoting); !reflect.DeepEqual(w, g) {
		t.Fatalf("fast path and grammar differ on %q:\n got %q\nwant %q", src, g, w)
	}
}

func TestFastPathMatchesGrammar(t *testing.T) {
	cases := map[string]string{}
	files, _ := filepath.Glob("testdata/golden/*.conf")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases[filepath.Base(f)] = string(b)
	}
	if len(cases) == 0 {
		t.Fatal("no golden inputs")
	}
	pieces := []string{
		"echo stream tcp nowait root internal\n",
		"echo stream\n tcp nowait root internal\n",
		"127.0.0.1:\n",
		"x on a=b\n",
		"c=d;\n",
		"  more words\n",
		"# c\n",
		"'q:\n",
	}
	for i := range pieces {
		for j := range pieces {
			for k := range pieces {
				cases[fmt.Sprintf("mix%d%d%d", i, j, k)] = pieces[i] + pieces[j] + pieces[k]
			}
		}
	}
	for name, src := range cases {
		for _, quoting := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/quoting=%v", name, quoting), func(t *testing.T) { checkFastPath(t, src, quoting) })
		}
	}
}

// TestFastPathUsed makes sure regular lines never reach participle (its
// per-token bookkeeping was the reason for the fast path): a walk's
// allocations must not grow with the number of regular lines.
func TestFastPathUsed(t *testing.T) {
	allocs := func(entries int) float64 {
		var b strings.Builder
		for i := 0; i < entries; i++ {
			fmt.Fprintf(&b, "# entry %d\n127.0.0.1:%d\tstream\ttcp\tnowait\troot\t/bin/srv srv -a %d\n\n", i, 10000+i, i)
		}
		src := b.String()
		n := 0
		a := testing.AllocsPerRun(5, func() {
			n = 0
			if err := walk(newLineLexer("x.conf", src, false), func(*astLine) { n++ }); err != nil {
				t.Fatal(err)
			}
		})
		if n != 3*entries {
			t.Fatalf("walked %d lines, want %d", n, 3*entries)
		}
		return a
	}
	small, large := allocs(10), allocs(400)
	if large > small+2 {
		t.Errorf("walk made %.0f allocations for 30 lines and %.0f for 1200; the fast path is not being taken", small, large)
	}
}

func TestGrammarEBNF(t *testing.T) {
	const path = "../../docs/grammar-inetd.ebnf"
	if *update {
		if err := os.WriteFile(path, []byte(Grammar()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if Grammar() != string(want) {
		t.Errorf("grammar changed; run go test -update and review docs/grammar-inetd.ebnf:\n%s", Grammar())
	}
}

// FuzzGrammar checks that the grammar is total (no input makes
// participle fail), that walk's fast path gives the same nodes as the
// grammar alone, and that every token lies inside the input.
func FuzzGrammar(f *testing.F) {
	files, _ := filepath.Glob("testdata/golden/*.conf")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil && len(data) < 8192 {
			f.Add(data, false)
		}
	}
	f.Add([]byte("a:\n\tb\n#@\n[::1]:x stream tcp nowait root internal\n"), true)
	f.Add([]byte("x on a=b\n c;\n:a:b:c:/d stream unix wait root internal\n  y\n"), true)
	f.Add([]byte("'x:\n\"y:\" z\n'q:'\n .include\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, quoting bool) {
		if len(data) > 1<<16 {
			return
		}
		src := string(data)
		fl, err := grammarOnly(src, quoting)
		if err != nil {
			t.Fatalf("grammar failed on %q: %v", src, err)
		}
		for _, ln := range fl.Lines {
			if lineOf(ln) < 1 {
				t.Fatalf("node without a line: %s", describe(ln))
			}
		}
		checkFastPath(t, src, quoting)
		lx := newLineLexer("x.conf", src, quoting)
		for i := 0; i <= len(src)+1; i++ {
			tk, _ := lx.Next()
			if tk.EOF() {
				return
			}
			if end := tk.Pos.Offset + len(tk.Value); tk.Pos.Offset < 0 || end > len(src) || src[tk.Pos.Offset:end] != tk.Value {
				t.Fatalf("token %v is not the input at its offset", tk)
			}
		}
		t.Fatalf("lexer made more tokens than the input has bytes")
	})
}
