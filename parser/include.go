package parser

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/participle/v2/lexer"

	"github.com/gxinetd/gxinetd/internal/pathsafe"
	"github.com/gxinetd/gxinetd/internal/service"
)

// include handles an `include FILE` or `includedir DIR` line.
func (l *loader) include(t *lexer.Token) {
	pos := srcOf(t.Pos.Filename, t.Pos.Line, t.Pos.Column)
	words := strings.Fields(t.Value)
	kw := strings.ToLower(words[0])
	if len(words) < 2 {
		l.fileDiag(service.SevError, CodeInclude, pos, kw+" needs a path")
		return
	}
	if len(words) > 2 {
		l.fileDiag(service.SevWarning, WarnTrailing, pos, fmt.Sprintf("words after the %s path are ignored: %s", kw, clip(strings.Join(words[2:], " "))))
	}
	target := words[1]
	if !filepath.IsAbs(target) {
		// xinetd resolves against its working directory, which becomes /
		// after start-up; the including file's directory is what users mean.
		target = filepath.Join(dirOf(t.Pos.Filename), target)
	}
	if kw == "includedir" {
		l.includeDir(target, pos)
		return
	}
	l.includeFile(target, pos)
}

// enterable checks depth and cycles before a file is opened. fi is the
// file's stat result when known.
func (l *loader) enterable(path string, fi os.FileInfo, pos service.Source) bool {
	if len(l.stack) >= l.maxDepth {
		l.fileDiag(service.SevError, CodeInclude, pos,
			fmt.Sprintf("include nesting deeper than %d files; %s is not read", l.maxDepth, path))
		return false
	}
	for i, fr := range l.stack {
		same := fr.path == path
		if !same && fi != nil && fr.fi != nil {
			same = os.SameFile(fi, fr.fi)
		}
		if same {
			var chain []string
			for _, f := range l.stack[i:] {
				chain = append(chain, f.path)
			}
			chain = append(chain, path)
			l.fileDiag(service.SevError, CodeIncludeCycle, pos,
				"include cycle: "+strings.Join(chain, " -> ")+"; not following it")
			return false
		}
	}
	return true
}

func (l *loader) includeFile(path string, pos service.Source) {
	fi, _ := os.Stat(path)
	if !l.enterable(path, fi, pos) {
		return
	}
	data, fi, ok := l.readFile(path, &pos, false)
	if !ok {
		return
	}
	l.parseFile(path, fi, data, &pos)
}

// includeDir reads every file of a directory in byte order, skipping the
// names xinetd skips (any '.', or a trailing '~') with a notice each.
func (l *loader) includeDir(dir string, pos service.Source) {
	if len(l.stack) >= l.maxDepth {
		l.fileDiag(service.SevError, CodeInclude, pos,
			fmt.Sprintf("include nesting deeper than %d files; %s is not read", l.maxDepth, dir))
		return
	}
	fi, err := os.Stat(dir)
	if err != nil {
		l.fileDiag(service.SevError, CodeInclude, pos, fmt.Sprintf("Unable to read included directory: %s (%s)", dir, errText(err)))
		return
	}
	if !fi.IsDir() {
		l.fileDiag(service.SevError, CodeInclude, pos, fmt.Sprintf("Unable to read included directory: %s (not a directory; use include for a file)", dir))
		return
	}
	if l.opt.CheckOwnership {
		// Whoever can add a file to the directory adds configuration:
		// no sticky exemption for the directory itself.
		if ue := l.unsafePath(dir, pathsafe.Trust{}); ue != nil {
			l.fileDiag(service.SevError, CodeOwnership, pos, "include directory "+ue.Error()+"; refusing to read it")
			return
		}
	}
	ents, err := os.ReadDir(dir) // sorted by name, byte order, as xinetd's strcmp
	if err != nil {
		l.fileDiag(service.SevError, CodeInclude, pos, fmt.Sprintf("Unable to read included directory: %s (%s)", dir, errText(err)))
		return
	}
	for _, de := range ents {
		name := de.Name()
		full := filepath.Join(dir, name)
		if strings.Contains(name, ".") || strings.HasSuffix(name, "~") {
			l.fileDiag(service.SevNotice, NoticeSkippedFile, pos,
				fmt.Sprintf("skipping %s: includedir ignores names containing '.' or ending in '~'", full))
			continue
		}
		st, err := os.Stat(full)
		if err != nil {
			l.fileDiag(service.SevError, CodeInclude, pos, fmt.Sprintf("%s: %s. It is being skipped.", full, errText(err)))
			continue
		}
		if !st.Mode().IsRegular() {
			l.fileDiag(service.SevError, CodeInclude, pos, fmt.Sprintf("%s is not a regular file. It is being skipped.", full))
			continue
		}
		l.includeFile(full, pos)
	}
}
