package tcpwrap

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// Pattern files (hosts_access(5)): a pattern that starts with '/' names
// a file of host patterns separated by blanks and newlines, and matches
// when any of them does. tcp_wrappers reads the file at every match; the
// engine reads it with the tables and reads everything again when any of
// the files changes (Policy.Files). As in tcp_wrappers, a file that
// cannot be read matches nothing, with a warning (silently for a missing
// file there; gxinetd says so).

// maxPatternFile bounds one pattern file; maxFileDepth bounds files that
// name other files.
const (
	maxPatternFile = 1 << 20
	maxFileDepth   = 8
)

// readPatternFile is replaced by tests and the fuzzer; it reads a regular
// file without blocking on a FIFO or device.
var readPatternFile = func(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPatternFile+1))
	if err == nil && len(b) > maxPatternFile {
		err = fmt.Errorf("larger than %d bytes", maxPatternFile)
	}
	return b, err
}

// resolveFiles reads the pattern files of a list (and of files they
// name), returning warnings for those that cannot be read.
func resolveFiles(l *list, table string, line int, chain []string) []error {
	var errs []error
	for ; l != nil; l = l.except {
		for i := range l.pats {
			p := &l.pats[i]
			if p.kind == patUserHost && p.host != nil {
				p = p.host
			}
			switch p.kind {
			case patFile:
				errs = append(errs, readFilePattern(p, table, line, chain)...)
			case patNetgroup:
				errs = append(errs, netgroupWarning(p, table, line)...)
			}
		}
	}
	return errs
}

func readFilePattern(p *pattern, table string, line int, chain []string) []error {
	warn := func(msg string) []error {
		return []error{&ParseError{File: table, Line: line, Warning: true, Msg: msg}}
	}
	for _, c := range chain {
		if c == p.text {
			return warn(fmt.Sprintf("pattern file %s includes itself (%s): it matches nothing there", p.text, strings.Join(append(chain, p.text), " -> ")))
		}
	}
	if len(chain) >= maxFileDepth {
		return warn(fmt.Sprintf("pattern file %s: files nested deeper than %d match nothing", p.text, maxFileDepth))
	}
	data, err := readPatternFile(p.text)
	if err != nil {
		why := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			why = pe.Err.Error()
		}
		return warn(fmt.Sprintf("pattern file %s cannot be read (%s): it matches no client, as in tcp_wrappers", p.text, why))
	}
	p.sub = p.sub[:0]
	var errs []error
	for _, tok := range strings.Fields(string(data)) {
		q, err := parseHostPattern(tok)
		if err != nil {
			errs = append(errs, warn(fmt.Sprintf("pattern file %s: %v: that pattern matches nothing", p.text, err))...)
			continue
		}
		p.sub = append(p.sub, q)
	}
	next := append(append([]string(nil), chain...), p.text)
	for i := range p.sub {
		switch p.sub[i].kind {
		case patFile:
			errs = append(errs, readFilePattern(&p.sub[i], table, line, next)...)
		case patNetgroup:
			errs = append(errs, netgroupWarning(&p.sub[i], table, line)...)
		}
	}
	return errs
}

// netgroupWarning says, once per pattern, that a netgroup cannot be
// checked in this build.
func netgroupWarning(p *pattern, table string, line int) []error {
	if NetgroupSupported() {
		return nil
	}
	return []error{&ParseError{File: table, Line: line, Warning: true,
		Msg: fmt.Sprintf("netgroup @%s cannot be checked: this gxinetd was built without cgo, so it cannot ask NSS (innetgr); the pattern matches no client, as in a tcp_wrappers built without NETGROUP", p.text)}}
}

// Files lists the pattern files the tables read, so that a caller that
// keeps the tables can notice when one of them changes.
func (p *Policy) Files() []string {
	if p == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	var walk func(pats []pattern)
	walk = func(pats []pattern) {
		for i := range pats {
			q := &pats[i]
			if q.kind == patUserHost && q.host != nil {
				q = q.host
			}
			if q.kind == patFile {
				if !seen[q.text] {
					seen[q.text] = true
					out = append(out, q.text)
				}
				walk(q.sub)
			}
		}
	}
	for _, rs := range []*Rules{p.Allow, p.Deny} {
		if rs == nil {
			continue
		}
		for _, r := range rs.Rules {
			for _, l := range []*list{r.Daemons, r.Clients} {
				for ; l != nil; l = l.except {
					walk(l.pats)
				}
			}
		}
	}
	return out
}
