package parser

import (
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2/lexer"

	"github.com/gxinetd/gxinetd/internal/service"
)

// Reading a large file on several goroutines. A generated configuration
// is mostly `service` blocks after a defaults block, and each block is
// read on its own: the defaults it copies are final once the last
// defaults block and include are behind, and what else it asks for
// (users, ports, server files, host names) goes through the loader's
// caches. So the stretch of a file after its last `defaults`, `include`
// and `includedir` line is cut at service headers into one chunk per
// processor; each chunk is lexed and read by a worker loader of its own
// with the positions of the whole text (newRangeLexer), and the workers'
// entries, messages and profile files are appended in chunk order: the
// result is the serial one, message for message. The same holds for the
// whole-entry step of finish (complete), cut into ranges of entries.
//
// Why the cut is exact: the lexer decides a line's role from the line
// alone (classify) and folds only runs that a Service token ends, so a
// chunk that starts at a line it classifies as Service yields the tokens
// the whole text yields from there; walkAST's segments start at such
// tokens, and a stray run ends at one. The pre-scan below uses the same
// classify, and anything that is not such a file (a defaults block or an
// include among the services, too few services) is read serially.
// TestParallelMatchesSerial and FuzzParallel compare both on every seed
// and on arbitrary input.

// minParallelEntries is the number of service blocks (or entries to
// complete) from which the work is shared out: below it the goroutines
// cost more than they save (a block takes 3-6 µs).
const minParallelEntries = 256

// parallelism returns how many workers share a file's blocks or the
// entries to complete, and from how many on: GOMAXPROCS (at most 8) and
// minParallelEntries, unless a test set Options.workers and minParallel.
func (l *loader) parallelism() (workers, from int) {
	workers, from = min(runtime.GOMAXPROCS(0), 8), minParallelEntries
	if l.opt.workers != 0 {
		workers = l.opt.workers
	}
	if l.opt.minParallel != 0 {
		from = l.opt.minParallel
	}
	return workers, from
}

// cacheLocks guards the loader's caches while workers share them. A
// value is worked out outside the lock (a DNS query, a stat, a file read:
// no worker waits on another's I/O while holding a lock it needs), and a
// worker that asks for a key already being worked out waits for that
// answer instead of asking again, so that a name is still looked up once
// per Load, as when reading serially.
type cacheLocks struct {
	hosts, servers, owned, profiles, ifaces flight
}

// flight is one cache's lock and the keys being worked out.
type flight struct {
	mu   sync.Mutex
	busy map[any]chan struct{}
}

// cached returns m[k], working it out with f when it is not there. fl is
// nil when the file is read serially; m must not be nil.
func cached[K comparable, V any](fl *flight, m map[K]V, k K, f func() V) V {
	if fl == nil {
		v, ok := m[k]
		if !ok {
			v = f()
			m[k] = v
		}
		return v
	}
	fl.mu.Lock()
	for {
		if v, ok := m[k]; ok {
			fl.mu.Unlock()
			return v
		}
		ch, ok := fl.busy[k]
		if !ok {
			break
		}
		fl.mu.Unlock()
		<-ch
		fl.mu.Lock()
	}
	ch := make(chan struct{})
	if fl.busy == nil {
		fl.busy = map[any]chan struct{}{}
	}
	fl.busy[k] = ch
	fl.mu.Unlock()
	defer func() {
		// Also when f panics: whoever waits must not wait for ever (the
		// panic then reaches them as a missing key, worked out again).
		fl.mu.Lock()
		delete(fl.busy, k)
		fl.mu.Unlock()
		close(ch)
	}()
	v := f()
	fl.mu.Lock()
	m[k] = v
	fl.mu.Unlock()
	return v
}

// flightOf is c's cache chosen by pick, or nil when reading serially.
func flightOf(c *cacheLocks, pick func(*cacheLocks) *flight) *flight {
	if c == nil {
		return nil
	}
	return pick(c)
}

// profileUse is a worker's list of the seccomp profile files it read
// successfully, each once, in the order it first used them: the serial
// read appends a profile to cfg.Files on first use, and the merge does
// the same from these lists in chunk order.
type profileUse struct {
	seen  map[string]bool
	files []string
}

func (p *profileUse) note(file string, err error) {
	if p == nil || err != nil || p.seen[file] {
		return
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.seen[file] = true
	p.files = append(p.files, file)
}

var noPos lexer.Position

// chunk is a part of a file's text that starts at a service header.
type chunk struct {
	off, line int // where it starts, and the number of lines before it
}

// planChunks finds where src may be cut: the returned chunks start at
// service headers after the last defaults, include and includedir line,
// in order, and end where the next begins (the last at len(src)).
// Everything before the first is read serially. nil means: read it all
// serially.
func planChunks(src string, workers, from int) []chunk {
	if workers < 2 || len(src) < from*16 {
		return nil
	}
	var heads []chunk
	line := 0
	for off := 0; off < len(src); line++ {
		start := off
		end := strings.IndexByte(src[start:], '\n')
		if end < 0 {
			end = len(src)
			off = end
		} else {
			end += start
			off = end + 1
		}
		text := src[start:end]
		if n := len(text); n > 0 && text[n-1] == '\r' {
			text = text[:n-1]
		}
		i := 0
		for i < len(text) && isBlank(text[i]) {
			i++
		}
		// Only a line starting with one of these letters can be a
		// header or an include (classify), and no longer line is.
		if i == len(text) || len(text) > maxLineLen {
			continue
		}
		if text[i] < utf8.RuneSelf && !maybeHeader(text[i:]) {
			continue
		}
		tok, _ := classify(strings.TrimRight(text[i:], " \t"), noPos)
		switch tok.Type {
		case tokService:
			heads = append(heads, chunk{off: start, line: line})
		case tokDefaults, tokInclude, tokIncludeDir:
			heads = heads[:0]
		}
	}
	if len(heads) < max(from, 1) {
		return nil
	}
	out := make([]chunk, 0, workers)
	for k := range workers {
		if c := heads[k*len(heads)/workers]; len(out) == 0 || c.off != out[len(out)-1].off {
			out = append(out, c)
		}
	}
	return out
}

// maybeHeader is a quick test that passes every line starting with an
// ASCII byte that classify may take for a header or an include: its
// first seven letters, in any case, are "service", "default" or
// "include". (classify's strings.EqualFold also folds U+017F and U+212A
// to s and k; a line starting with a non-ASCII byte goes to classify.)
func maybeHeader(t string) bool {
	if len(t) < 7 {
		return false
	}
	var w [7]byte
	for j := range w {
		w[j] = t[j] | 0x20 // ASCII letters to lower case; other bytes never match
	}
	switch string(w[:]) {
	case "service", "default", "include":
		return true
	}
	return false
}

// worker is a loader for one chunk or range: it shares the caches
// (through l.mu's flights), the defaults read so far, the include stack and the options, and
// collects its own entries, messages and profile files.
func (l *loader) worker() *loader {
	return &loader{
		opt: l.opt, sys: l.sys, env: l.env, maxDepth: l.maxDepth,
		cfg:   &service.Config{Main: l.cfg.Main, Defaults: l.cfg.Defaults},
		stack: l.stack[:len(l.stack):len(l.stack)],
		defs:  l.defs,
		hosts: l.hosts, servers: l.servers, owned: l.owned, profiles: l.profiles, ifaces: l.ifaces,
		mu:   l.mu,
		prof: &profileUse{},
	}
}

// share runs fn for workers 0..n-1, the first on this goroutine.
func (l *loader) share(ws []*loader, fn func(k int, w *loader)) {
	var wg sync.WaitGroup
	for k := 1; k < len(ws); k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(k, ws[k])
		}()
	}
	fn(0, ws[0])
	wg.Wait()
}

// startShared makes n workers over caches shared through l.mu until
// endShared.
func (l *loader) startShared(n int) []*loader {
	if l.profiles == nil {
		l.profiles = map[string]profileRead{}
	}
	l.mu = &cacheLocks{}
	ws := make([]*loader, n)
	for k := range ws {
		ws[k] = l.worker()
	}
	return ws
}

// endShared takes the workers' messages and profile files in order.
// known is the set of profile files read before the workers started.
func (l *loader) endShared(ws []*loader, known map[string]bool) {
	l.mu = nil
	for _, w := range ws {
		l.cfg.Diags = append(l.cfg.Diags, w.cfg.Diags...)
		for _, f := range w.prof.files {
			if !known[f] {
				known[f] = true
				l.cfg.Files = append(l.cfg.Files, f)
			}
		}
	}
}

func (l *loader) knownProfiles() map[string]bool {
	known := make(map[string]bool, len(l.profiles))
	for f, r := range l.profiles {
		if r.err == nil {
			known[f] = true
		}
	}
	return known
}

// walkParallel reads src as walkAST with visit would, the chunks' entries
// on workers; visit handles the part before the first chunk. It returns
// the CRLF count, the first CRLF line, and the first internal error.
func (l *loader) walkParallel(path, src string, chunks []chunk, visit func(l *loader, strayRun *bool, it item)) (crlf, firstCRLF int, err error) {
	note := func(lx *lineLexer, e error) {
		if lx.crlfLines > 0 {
			if crlf == 0 {
				firstCRLF = lx.firstCRLF
			}
			crlf += lx.crlfLines
		}
		if e != nil && err == nil {
			err = e
		}
	}
	strayRun := false
	lx := newRangeLexer(path, src, 0, chunks[0].off, 0)
	note(lx, walkLexer(lx, func(it item) { visit(l, &strayRun, it) }))

	known := l.knownProfiles()
	ws := l.startShared(len(chunks))
	lxs := make([]*lineLexer, len(chunks))
	errs := make([]error, len(chunks))
	l.share(ws, func(k int, w *loader) {
		end := len(src)
		if k+1 < len(chunks) {
			end = chunks[k+1].off
		}
		lxs[k] = newRangeLexer(path, src, chunks[k].off, end, chunks[k].line)
		stray := false
		errs[k] = walkLexer(lxs[k], func(it item) { visit(w, &stray, it) })
	})
	n := len(l.entries)
	for _, w := range ws {
		n += len(w.entries)
	}
	l.entries = slices.Grow(l.entries, n-len(l.entries))
	for k, w := range ws {
		note(lxs[k], errs[k])
		l.entries = append(l.entries, w.entries...)
		w.entries = nil
	}
	l.endShared(ws, known)
	return crlf, firstCRLF, err
}

// completeAll runs complete on every entry that needs it, in ranges of
// entries on workers when there are many.
func (l *loader) completeAll() {
	all := l.entries
	n, from := l.parallelism()
	if n < 2 || len(all) < max(from, 1) {
		for _, e := range all {
			if e.svc.Status != service.StatusDisabled && !e.unread {
				l.complete(e)
			}
		}
		return
	}
	known := l.knownProfiles()
	ws := l.startShared(n)
	l.share(ws, func(k int, w *loader) {
		for _, e := range all[k*len(all)/n : (k+1)*len(all)/n] {
			if e.svc.Status != service.StatusDisabled && !e.unread {
				w.complete(e)
				// finish's normalize would do it serially; done here,
				// it finds nothing left to do.
				e.svc.Origins.Compact()
			}
		}
	})
	l.endShared(ws, known)
}
