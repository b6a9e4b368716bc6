package parser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/alecthomas/participle/v2/lexer"

	"github.com/gxinetd/gxinetd/internal/pathsafe"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
)

// Options tunes how a configuration is read. The zero value reads the real
// system.
type Options struct {
	// Sys answers /etc/services, protocols, passwd, ... lookups; nil means
	// sysdb.System.
	Sys *sysdb.DB
	// CheckOwnership is set when running as root: configuration files,
	// included directories and banners that anyone but root could change
	// are refused, and so are servers that are not absolute paths or that
	// anyone but root or the service's own user could replace (the rule
	// is internal/pathsafe's; ownership.go applies it).
	CheckOwnership bool
	// Env is the start-up environment passenv is resolved against; nil
	// means os.Environ().
	Env []string
	// LookupHost resolves host names in bind, redirect and only_from at
	// parse time; nil uses net.DefaultResolver with a 2 s timeout.
	LookupHost func(ctx context.Context, host string) ([]netip.Addr, error)
	// IsInterface reports whether a network interface exists; nil uses
	// net.InterfaceByName.
	IsInterface func(name string) bool
	// MaxIncludeDepth bounds include nesting; 0 means 32.
	MaxIncludeDepth int

	// workers and minParallel replace GOMAXPROCS and minParallelEntries
	// (parallel.go) when set: tests read small files in chunks with them,
	// or serially (workers 1).
	workers, minParallel int
}

// maxFileSize bounds one configuration file. 100,000 services take about
// 15 MB, so the limit only ever stops a mistake (an include of a disk
// image, /dev/zero behind a symlink).
const maxFileSize = 64 << 20

const defaultIncludeDepth = 32

// Load reads the configuration file at path and everything it includes.
// The result is never nil; every problem is in cfg.Diags, and a Diag with
// Fatal set means the configuration as a whole cannot be used.
func Load(path string, opt Options) *service.Config {
	l := newLoader(path, opt)
	if data, fi, ok := l.readFile(path, nil, true); ok {
		l.parseFile(path, fi, data, nil)
	}
	return l.finish()
}

// Parse is Load for a main file already in memory, named name. Include
// directives inside it are still read from disk, relative to name's
// directory. No ownership check applies to the in-memory text itself.
func Parse(name string, data []byte, opt Options) *service.Config {
	l := newLoader(name, opt)
	l.cfg.Files = append(l.cfg.Files, name)
	l.parseFile(name, nil, string(data), nil)
	return l.finish()
}

// frame is one file on the include stack.
type frame struct {
	path string
	fi   os.FileInfo    // nil for in-memory text
	at   service.Source // the include line that opened it; zero for the main file
}

type hostAnswer struct {
	addrs []netip.Addr
	err   error
}

// loader holds the state of one Load: the files being read, the defaults
// as merged so far, every entry, and caches that keep a 10,000-service
// file from repeating lookups.
type loader struct {
	opt      Options
	sys      *sysdb.DB
	env      map[string]bool
	maxDepth int
	cfg      *service.Config
	stack    []frame
	defs     *defaultsState
	entries  []*readEntry
	scratch  entry // the block being read

	hosts    map[string]hostAnswer
	servers  map[string]serverCheck
	owned    map[ownKey]*pathsafe.Error // ownership verdicts (ownership.go)
	profiles map[string]profileRead     // seccomp profile files
	ifaces   map[string]bool
	words    []word   // scratch for attribute lines
	attr     attrLine // scratch for attribute lines

	// While entries are read on several goroutines (parallel.go), the
	// caches above are shared between them and guarded by mu; nil
	// otherwise. prof is a worker's record of the profile files it used.
	mu   *cacheLocks
	prof *profileUse
}

func newLoader(main string, opt Options) *loader {
	l := &loader{
		opt:     opt,
		sys:     opt.Sys,
		cfg:     &service.Config{Main: main},
		hosts:   map[string]hostAnswer{},
		servers: map[string]serverCheck{},
		owned:   map[ownKey]*pathsafe.Error{},
		ifaces:  map[string]bool{},
	}
	if l.sys == nil {
		l.sys = sysdb.System
	}
	l.maxDepth = opt.MaxIncludeDepth
	if l.maxDepth <= 0 {
		l.maxDepth = defaultIncludeDepth
	}
	env := opt.Env
	if env == nil {
		env = os.Environ()
	}
	l.env = make(map[string]bool, len(env))
	for _, kv := range env {
		if i := strings.IndexByte(kv, '='); i > 0 {
			l.env[kv[:i]] = true
		}
	}
	l.defs = newDefaultsState()
	return l
}

// chain is the include chain of the file being read, innermost first, as
// Diag.IncludedFrom wants it.
func (l *loader) chain() []service.Source {
	var out []service.Source
	for i := len(l.stack) - 1; i >= 0; i-- {
		if !l.stack[i].at.IsZero() {
			out = append(out, l.stack[i].at)
		}
	}
	return out
}

// add records a diagnostic, attaching the current include chain.
func (l *loader) add(d service.Diag) {
	if d.IncludedFrom == nil {
		d.IncludedFrom = l.chain()
	}
	l.cfg.Diags = append(l.cfg.Diags, d)
}

func (l *loader) fileDiag(sev service.Severity, code string, pos service.Source, msg string) {
	l.add(service.Diag{Pos: pos, Severity: sev, Code: code, Msg: msg})
}

// readFile opens, checks and reads one configuration file. main marks the
// top-level file, whose failure is fatal.
func (l *loader) readFile(path string, at *service.Source, main bool) (string, os.FileInfo, bool) {
	pos := service.Source{File: path}
	code := CodeInclude
	if at != nil {
		pos = *at
	}
	if main {
		code = CodeFile
	}
	fail := func(c, msg string) (string, os.FileInfo, bool) {
		l.add(service.Diag{Pos: pos, Severity: service.SevError, Code: c, Msg: msg, Fatal: main})
		return "", nil, false
	}
	if l.opt.CheckOwnership {
		// Before opening: a path that passes can be changed by root
		// alone, so the open below reaches what was checked.
		if ue := l.unsafePath(path, pathsafe.Trust{}); ue != nil {
			return fail(CodeOwnership, "configuration file "+ue.Error()+"; refusing to read it")
		}
	}
	f, err := os.Open(path)
	if err != nil {
		if main {
			return fail(code, fmt.Sprintf("open( %s ) failed: %s", path, errText(err)))
		}
		return fail(code, fmt.Sprintf("Unable to open included configuration file: %s (%s)", path, errText(err)))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(code, fmt.Sprintf("%s: %s", path, errText(err)))
	}
	if fi.IsDir() {
		hint := ""
		if !main {
			hint = "; use includedir to read a directory"
		}
		return fail(code, fmt.Sprintf("%s is a directory, not a configuration file%s", path, hint))
	}
	if !fi.Mode().IsRegular() {
		return fail(code, fmt.Sprintf("%s is not a regular file", path))
	}
	if fi.Size() > maxFileSize {
		return fail(code, fmt.Sprintf("%s is too large (%d bytes, the limit is %d MiB)", path, fi.Size(), maxFileSize>>20))
	}
	// Read straight into a string: the tokens and most values are
	// substrings of it, and a []byte would have to be copied once more.
	var b strings.Builder
	b.Grow(int(fi.Size()) + 1)
	if _, err := io.Copy(&b, io.LimitReader(f, maxFileSize+1)); err != nil {
		return fail(code, fmt.Sprintf("reading %s: %s", path, errText(err)))
	}
	data := b.String()
	if len(data) > maxFileSize {
		return fail(code, fmt.Sprintf("%s is too large (the limit is %d MiB)", path, maxFileSize>>20))
	}
	l.cfg.Files = append(l.cfg.Files, path)
	return data, fi, true
}

// errText is the part of an *os.PathError worth showing next to a path
// the message already names.
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// parseFile parses one file's text and processes its entries in order.
func (l *loader) parseFile(path string, fi os.FileInfo, src string, at *service.Source) {
	fr := frame{path: path, fi: fi}
	if at != nil {
		fr.at = *at
	}
	l.stack = append(l.stack, fr)
	defer func() { l.stack = l.stack[:len(l.stack)-1] }()

	fs := &fileState{path: path}
	mark := len(l.cfg.Diags)
	// visit is called with a worker loader for the items of a chunk read
	// in parallel (parallel.go); fs is then only read.
	visit := func(l *loader, strayRun *bool, it item) {
		switch {
		case it.block != nil:
			*strayRun = false
			l.block(fs, it.block)
		case it.include != nil:
			*strayRun = false
			l.include(it.include)
		case it.stray != nil:
			l.stray(it.stray, *strayRun)
			*strayRun = true
		}
	}
	var crlfLines, firstCRLF int
	var err error
	workers, from := l.parallelism()
	if chunks := planChunks(src, workers, from); chunks != nil {
		crlfLines, firstCRLF, err = l.walkParallel(path, src, chunks, visit)
	} else {
		strayRun := false
		var lx *lineLexer
		lx, err = walkAST(path, src, func(it item) { visit(l, &strayRun, it) })
		crlfLines, firstCRLF = lx.crlfLines, lx.firstCRLF
	}
	// The file-wide messages are known only at the end of the walk; they
	// go before the file's entries, where a reader looks first.
	var head service.Diags
	if err != nil {
		// The grammar is total, so this only happens on a bug; still
		// report it rather than lose the file silently.
		head = append(head, service.Diag{Pos: service.Source{File: path}, Severity: service.SevError, Code: CodeSyntax,
			Msg: "internal parser error: " + err.Error(), IncludedFrom: l.chain()})
	}
	if crlfLines > 0 {
		head = append(head, service.Diag{Pos: srcOf(path, firstCRLF, 0), Severity: service.SevWarning, Code: WarnCRLF,
			Msg:          fmt.Sprintf("%d line(s) end in CR LF; the CR is ignored (xinetd would make it part of the last word)", crlfLines),
			IncludedFrom: l.chain()})
	}
	if len(head) > 0 {
		l.cfg.Diags = append(l.cfg.Diags[:mark], append(head, l.cfg.Diags[mark:]...)...)
	}
}

// fileState is what the one-defaults-per-file rule needs.
type fileState struct {
	path         string
	defaultsSeen bool
}

type item struct {
	off     int
	block   *astBlock
	include *lexer.Token
	stray   *lexer.Token
}

// mergeItems restores read order across the grammar's three lists.
func mergeItems(f *astFile) []item {
	items := make([]item, 0, len(f.Blocks)+len(f.Includes)+len(f.Strays))
	for _, b := range f.Blocks {
		items = append(items, item{off: b.Head.Pos.Offset, block: b})
	}
	for _, inc := range f.Includes {
		items = append(items, item{off: inc.Tok.Pos.Offset, include: &inc.Tok})
	}
	for _, st := range f.Strays {
		items = append(items, item{off: st.Tok.Pos.Offset, stray: &st.Tok})
	}
	if len(f.Includes)+len(f.Strays) > 0 {
		sort.Slice(items, func(i, j int) bool { return items[i].off < items[j].off })
	}
	return items
}

// stray reports a top-level line that belongs to no entry. Only the first
// line of a run is reported: the rest is the same mistake.
func (l *loader) stray(t *lexer.Token, inRun bool) {
	if inRun {
		return
	}
	pos := srcOf(t.Pos.Filename, t.Pos.Line, t.Pos.Column)
	first := t.Value
	if i := strings.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	first = strings.TrimRight(first, "\r \t")
	if len(first) > maxLineLen {
		l.fileDiag(service.SevError, CodeLineTooLong, pos, fmt.Sprintf("line too long (%d bytes, the limit is %d)", len(first), maxLineLen))
		return
	}
	var msg string
	switch first {
	case "{":
		msg = "'{' without a service or defaults line before it (missing service keyword)"
	case "}":
		msg = "'}' without an open entry (missing service keyword)"
	default:
		msg = fmt.Sprintf("missing service keyword: %q is not inside a service or defaults entry", clip(first))
	}
	l.fileDiag(service.SevError, CodeSyntax, pos, msg)
}

// clip shortens text quoted in a message.
func clip(s string) string {
	const max = 60
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// finish runs the whole-configuration steps after every file is read.
func (l *loader) finish() *service.Config {
	l.cfg.Defaults = l.defs.build()
	l.applyEnabled()
	// Every entry gets every whole-entry check, also one whose lines
	// already rejected it, so that -t shows all its problems at once.
	l.completeAll()
	l.checkDuplicates()
	l.cfg.Services = make([]*service.Service, 0, len(l.entries))
	for _, e := range l.entries {
		s := e.svc
		if s.Status == "" {
			s.Status = service.StatusAccepted
		}
		normalize(s)
		l.cfg.Services = append(l.cfg.Services, s)
	}
	normalizeDefaults(&l.cfg.Defaults)
	if l.cfg.Files == nil {
		l.cfg.Files = []string{}
	}
	if l.cfg.Services == nil {
		l.cfg.Services = []*service.Service{}
	}
	if l.cfg.Diags == nil {
		l.cfg.Diags = service.Diags{}
	}
	return l.cfg
}

// applyEnabled switches off services by the defaults' enabled and disabled
// lists (ids, compared case-insensitively).
func (l *loader) applyEnabled() {
	d := &l.cfg.Defaults
	if !l.defs.enabledSet && len(d.Disabled) == 0 {
		return
	}
	set := func(list []string) map[string]bool {
		m := make(map[string]bool, len(list))
		for _, x := range list {
			m[strings.ToLower(x)] = true
		}
		return m
	}
	enabled, disabled := set(d.Enabled), set(d.Disabled)
	for _, e := range l.entries {
		s := e.svc
		if s.Status != "" || s.Name == "" {
			continue
		}
		var why string
		switch {
		case l.defs.enabledSet && !enabled[strings.ToLower(s.ID)]:
			why = fmt.Sprintf("id %s is not in the defaults' enabled list", s.ID)
		case disabled[strings.ToLower(s.ID)]:
			why = fmt.Sprintf("id %s is in the defaults' disabled list", s.ID)
		default:
			continue
		}
		s.Status = service.StatusDisabled
		l.cfg.Diags = append(l.cfg.Diags, service.Diag{Pos: s.Src, Severity: service.SevNotice, Code: NoticeDisabled,
			Service: s.ID, Msg: "disabled: " + why, IncludedFrom: e.incFrom})
	}
}

// normalize makes empty collections nil (or keeps them meaningful) so
// that the JSON form round-trips to an identical value.
func normalize(s *service.Service) {
	s.Origins.Compact()
	if len(s.Reasons) == 0 {
		s.Reasons = nil
	}
	if len(s.ServerArgs) == 0 {
		s.ServerArgs = nil
	}
	if len(s.Argv) == 0 {
		s.Argv = nil
	}
	if len(s.Env) == 0 {
		s.Env = nil
	}
	if len(s.AccessTimes) == 0 {
		s.AccessTimes = nil
	}
	for i := range s.Reasons {
		if len(s.Reasons[i].IncludedFrom) == 0 {
			s.Reasons[i].IncludedFrom = nil
		}
	}
}

func normalizeDefaults(d *service.Defaults) {
	d.Origins.Compact()
	if len(d.Enabled) == 0 {
		d.Enabled = nil
	}
	if len(d.Disabled) == 0 {
		d.Disabled = nil
	}
}

// lookupHost resolves a name once per Load.
func (l *loader) lookupHost(name string) ([]netip.Addr, error) {
	fl := flightOf(l.mu, func(c *cacheLocks) *flight { return &c.hosts })
	a := cached(fl, l.hosts, strings.ToLower(name), func() hostAnswer {
		var addrs []netip.Addr
		var err error
		if l.opt.LookupHost != nil {
			addrs, err = l.opt.LookupHost(context.Background(), name)
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", name)
			cancel()
		}
		for i, a := range addrs {
			addrs[i] = a.Unmap()
		}
		if err == nil && len(addrs) == 0 {
			err = fmt.Errorf("no addresses returned for: %s", name)
		}
		return hostAnswer{addrs, err}
	})
	return a.addrs, a.err
}

func (l *loader) isInterface(name string) bool {
	fl := flightOf(l.mu, func(c *cacheLocks) *flight { return &c.ifaces })
	return cached(fl, l.ifaces, name, func() bool {
		if l.opt.IsInterface != nil {
			return l.opt.IsInterface(name)
		}
		_, err := net.InterfaceByName(name)
		return err == nil
	})
}

// dirOf is the directory relative include paths are resolved against.
func dirOf(path string) string {
	d := filepath.Dir(path)
	if d == "" {
		return "."
	}
	return d
}
