package parser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// parseWith parses text read serially (workers 1) or cut into chunks
// wherever planChunks allows (minParallel 1).
func parseWith(name, text string, opt Options, workers int) *service.Config {
	opt.workers, opt.minParallel = workers, 1
	return Parse(name, []byte(text), opt)
}

// sameConfig fails the test when two configurations differ in anything
// the model or a message carries, order included.
func sameConfig(t testing.TB, text string, serial, par *service.Config, workers int) {
	t.Helper()
	a, err := json.Marshal(serial)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(par)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatalf("read in %d chunks differs from serial on %q:\nserial   %s\nparallel %s", workers, text, a, b)
	}
	if d1, d2 := dumpConfig(serial), dumpConfig(par); d1 != d2 {
		t.Fatalf("dump differs in %d chunks on %q:\nserial\n%s\nparallel\n%s", workers, text, d1, d2)
	}
}

// checkParallel compares the serial read of text with reads in 2, 3 and
// 5 chunks, and says whether any of them was cut at all.
func checkParallel(t testing.TB, name, text string, opt Options) (cut bool) {
	t.Helper()
	serial := parseWith(name, text, opt, 1)
	for _, w := range []int{2, 3, 5} {
		if planChunks(text, w, 1) != nil {
			cut = true
		}
		sameConfig(t, text, serial, parseWith(name, text, opt, w), w)
	}
	return cut
}

// svcBlock is one ordinary service block.
func svcBlock(name string, port int, extra ...string) string {
	return fmt.Sprintf("service %s\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tprotocol = tcp\n\twait = no\n\tuser = root\n\tport = %d\n\tserver = /bin/cat\n%s}\n",
		name, port, indent(extra))
}

func indent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\t" + l + "\n")
	}
	return b.String()
}

// TestParallelMatchesSerial reads files that a careless cut would get
// wrong, in chunks and serially, and wants the same model and the same
// messages (positions, order) from both.
func TestParallelMatchesSerial(t *testing.T) {
	defs := "defaults\n{\n\tinstances = 10\n\tonly_from = 127.0.0.1\n\tlog_on_failure = HOST\n}\n"
	many := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(f(i))
		}
		return b.String()
	}
	cases := map[string]string{
		"plain": defs + many(9, func(i int) string { return svcBlock(fmt.Sprintf("s%d", i), 3000+i) }),
		// A header word in a comment, in a value and as an attribute
		// name: none of them starts a block, so none may start a chunk.
		"service word elsewhere": defs + many(7, func(i int) string {
			return "# service fake" + fmt.Sprint(i) + "\n" + svcBlock(fmt.Sprintf("s%d", i), 3000+i,
				"server_args = service x {", "env = service=1", "# defaults", "#include /etc/passwd") +
				"   # service commented\n"
		}),
		"attribute named like a header": defs + svcBlock("a", 3001, "service = x", "include = y", "defaults = z") +
			svcBlock("b", 3002) + svcBlock("c", 3003, "includedir = /x"),
		"braces in values": defs + many(6, func(i int) string {
			return svcBlock(fmt.Sprintf("s%d", i), 3000+i, "server_args = } { }", "banner = {")
		}),
		// The middle chunk has the mistakes: each message keeps its
		// file:line:column and its place in the list.
		"errors in the middle": defs + svcBlock("a", 3001) + svcBlock("b", 3002) +
			"service bad1\n{\n\tport = nope\n\tsocket_type = stream\n\tbogus_attr = 1\n}\n" +
			"stray line here\nanother stray\n" +
			"service bad2\n{\n\tuser = nosuchuser\n\twait = maybe\n" + // no closing brace
			"service bad3\n\tport = 5\n}\n" + // no opening brace
			"service\n{\n}\n" + // no name
			svcBlock("c", 3003) + svcBlock("a", 3001) + "}\n{\n" + svcBlock("d", 3004),
		"CRLF": strings.ReplaceAll(defs+many(6, func(i int) string { return svcBlock(fmt.Sprintf("s%d", i), 3000+i) }), "\n", "\r\n"),
		"CRLF in the middle only": defs + svcBlock("a", 3001) + svcBlock("b", 3002) +
			strings.ReplaceAll(svcBlock("c", 3003)+svcBlock("d", 3004), "\n", "\r\n") + svcBlock("e", 3005),
		"no trailing newline":     strings.TrimSuffix(defs+many(5, func(i int) string { return svcBlock(fmt.Sprintf("s%d", i), 3000+i) }), "\n"),
		"unterminated last block": defs + svcBlock("a", 3001) + svcBlock("b", 3002) + "service c\n{\n\tport = 1",
		"indented and mixed-case headers": defs + many(6, func(i int) string {
			return strings.Replace(svcBlock(fmt.Sprintf("s%d", i), 3000+i), "service", []string{"  SERVICE", "\tService", "service"}[i%3], 1)
		}),
		"brace on the header line": defs + many(5, func(i int) string {
			return strings.Replace(svcBlock(fmt.Sprintf("s%d", i), 3000+i), "\n{", " {", 1)
		}),
		// A defaults block or an include after services: the services
		// before it must not see it, so nothing before it is cut.
		"defaults among the services": svcBlock("a", 3001) + svcBlock("b", 3002) + defs +
			svcBlock("c", 3003) + svcBlock("d", 3004) + svcBlock("e", 3005),
		"two defaults blocks": defs + svcBlock("a", 3001) + svcBlock("b", 3002) +
			"defaults\n{\n\tinstances = 3\n\tpassenv = PATH\n}\n" + svcBlock("c", 3003) + svcBlock("d", 3004),
		"include among the services": defs + svcBlock("a", 3001) + "include /nonexistent/x.conf\n" +
			svcBlock("b", 3002) + svcBlock("c", 3003) + "INCLUDEDIR /nonexistent/d\n" + svcBlock("e", 3005) + svcBlock("f", 3006),
		"long-s header":                 defs + svcBlock("a", 3001) + "ſervice b\n{\n\tport = 3002\n}\n" + svcBlock("c", 3003) + "defaultſ\n{\n}\n" + svcBlock("d", 3004),
		"duplicate ports across chunks": defs + many(8, func(i int) string { return svcBlock(fmt.Sprintf("s%d", i), 3000+i%3) }),
		"disabled and rejected": defs + many(8, func(i int) string {
			switch i % 4 {
			case 0:
				return svcBlock(fmt.Sprintf("s%d", i), 3000+i, "disable = yes")
			case 1:
				return svcBlock(fmt.Sprintf("s%d", i), 3000+i, "server = /nonexistent/bin")
			case 2:
				return svcBlock(fmt.Sprintf("s%d", i), 3000+i, "only_from += 10.0.0.0/8", "no_access = 10.1.0.0/16", "bind = hostname.example")
			}
			return svcBlock(fmt.Sprintf("s%d", i), 3000+i, "redirect = 127.0.0.1 80")
		}),
		"only strays and blocks": "junk\n" + svcBlock("a", 3001) + "junk2\n" + svcBlock("b", 3002) + "junk3\njunk4\n" + svcBlock("c", 3003) + "}\n",
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			if !checkParallel(t, "p.conf", text, testOptions()) && !strings.HasPrefix(name, "include") {
				t.Errorf("no plan cut this file: the test compares nothing")
			}
		})
	}
}

// TestParallelGolden reads every golden file in chunks: the output must
// be the golden one.
func TestParallelGolden(t *testing.T) {
	files := goldenInputs(t)
	cut := 0
	for _, f := range files {
		if checkParallel(t, f.path, f.in, testOptions()) {
			cut++
		}
	}
	if cut < len(files)/2 {
		t.Errorf("only %d of %d golden files were cut into chunks", cut, len(files))
	}
}

// TestParallelWithIncludes: included files are read (serially) before the
// chunks of the file that includes them, and a large included file is cut
// itself; both give the serial result.
func TestParallelWithIncludes(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc.conf")
	var big strings.Builder
	for i := range 12 {
		big.WriteString(svcBlock(fmt.Sprintf("inc%d", i), 4000+i))
	}
	big.WriteString("service broken\n{\n\tport = x\n")
	if err := os.WriteFile(inc, []byte(big.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(dir, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(d, fmt.Sprint("f", i)), []byte(svcBlock(fmt.Sprintf("dir%d", i), 5000+i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	main := "defaults\n{\n\tinstances = 4\n}\ninclude " + inc + "\nincludedir " + d + "\n"
	for i := range 10 {
		main += svcBlock(fmt.Sprintf("m%d", i), 3000+i)
	}
	// The included block left open must not swallow the includer's next
	// lines: each file is lexed on its own.
	checkParallel(t, filepath.Join(dir, "main.conf"), main, testOptions())
	if planChunks(big.String(), 2, 1) == nil {
		t.Fatal("the included file was not cut")
	}
}

// TestPlanChunks checks where files are cut, and that a file the pre-scan
// cannot vouch for is not cut at all.
func TestPlanChunks(t *testing.T) {
	b := svcBlock("a", 1) + svcBlock("b", 2) + svcBlock("c", 3) + svcBlock("d", 4)
	heads := func(src string) (out []int) { // line numbers (1-based) of service headers
		for i, l := range strings.Split(src, "\n") {
			if strings.HasPrefix(strings.TrimSpace(strings.ToLower(l)), "service ") && !strings.Contains(l, "=") {
				out = append(out, i+1)
			}
		}
		return out
	}
	check := func(src string, workers int, wantLines []int) {
		t.Helper()
		got := planChunks(src, workers, 1)
		var lines []int
		for _, c := range got {
			lines = append(lines, c.line+1)
			if c.off > 0 && src[c.off-1] != '\n' {
				t.Errorf("chunk at offset %d does not start a line", c.off)
			}
			if !strings.HasPrefix(strings.TrimLeft(strings.ToLower(src[c.off:]), " \t"), "service") {
				t.Errorf("chunk at line %d does not start at a header: %q", c.line+1, clip(src[c.off:]))
			}
		}
		if fmt.Sprint(lines) != fmt.Sprint(wantLines) {
			t.Errorf("chunks start at lines %v, want %v\n%s", lines, wantLines, src)
		}
	}
	h := heads(b)
	check(b, 2, []int{h[0], h[2]})
	check(b, 4, h)
	check(b, 9, h) // more workers than blocks: one chunk per block
	pre := "defaults\n{\n}\n# service x\n" + b
	hp := heads(pre)
	check(pre, 2, []int{hp[0], hp[2]})
	// Only the services after the last defaults or include are cut.
	late := svcBlock("x", 9) + "include /x\n" + b
	hl := heads(late)
	check(late, 2, []int{hl[1], hl[3]})
	check(svcBlock("x", 9)+b+"defaults\n{\n}\n", 2, nil)
	check(b+"  IncludeDir /x\n", 2, nil)
	check(b, 1, nil)
	if got := planChunks(b, 2, 5); got != nil {
		t.Errorf("4 blocks cut with a minimum of 5: %v", got)
	}
	// `service = x` and `service foo` inside a comment are not headers.
	odd := "# service a\n" + strings.Replace(b, "type = UNLISTED", "service = x", 1)
	check(odd, 4, heads(odd))
}

// FuzzParallel checks on arbitrary input that a file read in chunks gives
// exactly what the serial read gives: the same model, the same messages
// in the same order.
func FuzzParallel(f *testing.F) {
	for _, g := range goldenInputs(f) {
		f.Add(g.in)
	}
	for _, s := range []string{
		svcBlock("a", 1) + "# service b\n" + svcBlock("b", 2, "server_args = { service }"),
		"service a\r\n{\r\n\tport = 1\r\n}\r\nservice b\n{\n}\nservice c",
		"service a\n{\nservice b\n}\n{\nservice c\n\tport = 3\n}\n}\n",
		"defaults\n{\n}\n" + svcBlock("a", 1) + "defaults\n{\n\tinstances = 2\n}\n" + svcBlock("b", 1),
		svcBlock("a", 1) + "include /nonexistent\n" + svcBlock("b", 2) + "ſervice c\n{\n}\n",
	} {
		f.Add(s)
	}
	opt := testOptions()
	opt.MaxIncludeDepth = 1
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 1<<14 {
			return
		}
		serial := parseWith("fuzz.conf", text, opt, 1)
		for _, w := range []int{2, 3} {
			sameConfig(t, text, serial, parseWith("fuzz.conf", text, opt, w), w)
		}
	})
}

// TestParallelLookupsOverlap: two workers resolve two different names at
// the same time, and each name still once. Each test resolver waits until
// the other name's query has begun, so a worker that held the cache's
// lock across its query (the house rule: no waiting on I/O under a lock
// another goroutine needs) stopped the other one from ever asking: the
// read hung until the resolvers gave up, and both names came back
// unresolved.
func TestParallelLookupsOverlap(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{}
	begun := map[string]chan struct{}{"one.example": make(chan struct{}), "two.example": make(chan struct{})}
	other := map[string]string{"one.example": "two.example", "two.example": "one.example"}
	opt := testOptions()
	opt.LookupHost = func(_ context.Context, host string) ([]netip.Addr, error) {
		h := strings.ToLower(host)
		ch, ok := begun[h]
		if !ok {
			return testLookup(context.Background(), host)
		}
		mu.Lock()
		asked[h]++
		if asked[h] == 1 {
			close(ch)
		}
		mu.Unlock()
		select {
		case <-begun[other[h]]:
			return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
		case <-time.After(10 * time.Second):
			return nil, errors.New("the other query never began")
		}
	}
	var b strings.Builder
	b.WriteString("defaults\n{\n\tinstances = 10\n}\n")
	for i := range 8 {
		host := "one.example"
		if i >= 4 {
			host = "two.example"
		}
		b.WriteString(svcBlock(fmt.Sprintf("s%d", i), 3000+i, "only_from = "+host))
	}
	if planChunks(b.String(), 2, 1) == nil {
		t.Fatal("no plan cut this file: the test compares nothing")
	}
	cfg := parseWith("lookups.conf", b.String(), opt, 2)
	for _, d := range cfg.Diags {
		t.Errorf("unexpected message: %v", d)
	}
	for h, n := range asked {
		if n != 1 {
			t.Errorf("%s looked up %d times, want once", h, n)
		}
	}
	if len(asked) != 2 {
		t.Errorf("looked up %v, want both names", asked)
	}
}
