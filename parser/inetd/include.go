package inetd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/participle/v2/lexer"

	"github.com/gxinetd/gxinetd/internal/service"
)

// NetBSD's `.include <glob-path>` reads other files at that point: the
// path is absolute or relative to the including file's directory, may be
// quoted and may hold glob patterns (the matches are read in name order;
// NetBSD leaves the order open); anything after it on the line is
// ignored. The included files start with the including file's default
// listen address, and what they change does not come back. A file that
// includes itself, directly or not, is reported and not read again.

// maxIncludeDepth bounds nested .include lines.
const maxIncludeDepth = 32

// openInclude opens an included file; the fuzzer replaces it.
var openInclude = os.Open

// maxIncludedFile bounds one included file.
const maxIncludedFile = 64 << 20

func (p *parser) include(t lexer.Token) {
	at := p.pos(t.Pos.Line, 1)
	fail := func(code, format string, a ...any) {
		p.diags = append(p.diags, service.Diag{Pos: at, Severity: service.SevError, Code: code, Msg: fmt.Sprintf(format, a...)})
	}
	rest := strings.TrimPrefix(t.Value, ".include")
	if rest != "" && !isBlank(rest[0]) {
		fail(CodeIncludeErr, "bad directive %q: .include must be followed by a path", clip(t.Value))
		return
	}
	rest = strings.TrimLeft(rest, " \t")
	var path string
	if rest != "" && (rest[0] == '"' || rest[0] == '\'') {
		end := strings.IndexByte(rest[1:], rest[0])
		if end < 0 {
			fail(CodeIncludeErr, "unterminated %c quote in .include", rest[0])
			return
		}
		path = rest[1 : end+1]
	} else if f := strings.Fields(rest); len(f) > 0 {
		path = f[0]
	}
	if path == "" {
		fail(CodeIncludeErr, ".include without a path")
		return
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(p.file), path)
	}
	matches, err := filepath.Glob(path)
	if err != nil {
		fail(CodeIncludeErr, "bad pattern %q in .include: %v", path, err)
		return
	}
	if len(matches) == 0 {
		if !strings.ContainsAny(path, "*?[") {
			fail(CodeIncludeErr, "cannot read included file %s: no such file", path)
			return
		}
		p.diags = append(p.diags, service.Diag{Pos: at, Severity: service.SevWarning, Code: CodeInclude,
			Msg: fmt.Sprintf(".include %s matches no file", path)})
		return
	}
	for _, m := range matches {
		p.includeFile(m, at)
	}
}

// includeFile reads one included file in place.
func (p *parser) includeFile(path string, at service.Source) {
	fail := func(code, format string, a ...any) {
		p.diags = append(p.diags, service.Diag{Pos: at, Severity: service.SevError, Code: code, Msg: fmt.Sprintf(format, a...)})
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	chain := append([]string{p.rootAbs()}, p.incStack...)
	for _, f := range chain {
		if f == abs {
			names := append(append([]string{p.root}, p.incNames...), path)
			fail(CodeIncludeCycle, "include cycle: %s: that file is already being read", strings.Join(names, " -> "))
			return
		}
	}
	if len(p.incStack) >= maxIncludeDepth {
		fail(CodeIncludeErr, "includes nested deeper than %d: %s not read", maxIncludeDepth, path)
		return
	}
	if p.opt.CheckOwnership {
		if d, bad := checkFileOwner(path); bad {
			d.Pos, d.Fatal, d.Code = at, false, CodeIncludeErr
			p.diags = append(p.diags, d)
			return
		}
	}
	f, err := openInclude(path)
	if err != nil {
		fail(CodeIncludeErr, "cannot read included file %s: %v", path, errText(err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		fail(CodeIncludeErr, "included %s is not a regular file: not read", path)
		return
	}
	if fi.Size() > maxIncludedFile {
		fail(CodeIncludeErr, "included %s is larger than %d MiB: not read", path, maxIncludedFile>>20)
		return
	}
	data, err := io.ReadAll(io.LimitReader(f, maxIncludedFile+1))
	if err != nil || len(data) > maxIncludedFile {
		fail(CodeIncludeErr, "cannot read included file %s: %v", path, err)
		return
	}

	// Read it with this parser, as if its lines stood here; positions
	// name the included file, and every message gets the include chain.
	saved := struct {
		file      string
		src       string
		lineStart []int
		defAddrs  []addrSpec
	}{p.file, p.src, p.lineStart, p.defAddrs}
	p.incStack = append(p.incStack, abs)
	p.incNames = append(p.incNames, path)
	p.files = append(p.files, path)
	mark, markOut := len(p.diags), len(p.out)
	p.file = path
	p.lineStart = nil
	p.read(data)
	p.file, p.src, p.lineStart, p.defAddrs = saved.file, saved.src, saved.lineStart, saved.defAddrs
	p.incStack = p.incStack[:len(p.incStack)-1]
	p.incNames = p.incNames[:len(p.incNames)-1]
	for i := mark; i < len(p.diags); i++ {
		p.diags[i].IncludedFrom = append(p.diags[i].IncludedFrom, at)
	}
	for _, s := range p.out[markOut:] {
		for i := range s.Reasons {
			s.Reasons[i].IncludedFrom = append(s.Reasons[i].IncludedFrom, at)
		}
	}
}

// rootAbs is the main file's absolute path, for cycle checks.
func (p *parser) rootAbs() string {
	abs, err := filepath.Abs(p.root)
	if err != nil {
		return p.root
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}

func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
