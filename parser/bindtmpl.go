package parser

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// Bind templates: `bind = {{ GetPrivateIP }}` and the rest of
// go-sockaddr's template language, which Consul and Nomad users already
// write, so that one configuration serves a fleet of hosts whose
// addresses differ. The parser checks the syntax (an error rejects the
// service) and evaluates the template once on this host for the check
// mode; the daemon evaluates it again whenever it looks for the
// service's addresses, and follows changes as it does for interfaces.

// IsBindTemplate reports whether a bind value is a go-sockaddr template.
func IsBindTemplate(v string) bool { return strings.Contains(v, "{{") }

// checkBindTemplate parses a template without running it (see
// sockaddrtmpl.go for the language).
func checkBindTemplate(tmpl string) error {
	_, err := compileTemplate(tmpl)
	return err
}

// bindTemplateTTL is how long one evaluation is reused: every service of
// a configuration that shares a template is served by one evaluation at
// start-up, and the daemon's interface poller (every two seconds) always
// sees a fresh one.
const bindTemplateTTL = time.Second

var tmplCache struct {
	mu sync.Mutex
	m  map[string]tmplResult
}

type tmplResult struct {
	at    time.Time
	addrs []netip.Addr
	err   error
}

// BindTemplateAddrs evaluates a bind template on this host and returns
// the addresses it gives, sorted and without duplicates (none is not an
// error: the daemon then waits for some). Every word of the output must
// be an address (or ADDRESS/BITS, whose address is taken). Results are
// shared for up to a second; the slice must not be modified.
func BindTemplateAddrs(tmpl string) ([]netip.Addr, error) {
	now := time.Now()
	tmplCache.mu.Lock()
	if r, ok := tmplCache.m[tmpl]; ok && now.Sub(r.at) < bindTemplateTTL && !now.Before(r.at) {
		tmplCache.mu.Unlock()
		return r.addrs, r.err
	}
	tmplCache.mu.Unlock()
	addrs, err := evalBindTemplate(tmpl)
	tmplCache.mu.Lock()
	if tmplCache.m == nil || len(tmplCache.m) > 256 {
		tmplCache.m = map[string]tmplResult{}
	}
	tmplCache.m[tmpl] = tmplResult{at: now, addrs: addrs, err: err}
	tmplCache.mu.Unlock()
	return addrs, err
}

func evalBindTemplate(tmpl string) ([]netip.Addr, error) {
	out, err := parseSockaddrTemplate(tmpl)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	for _, w := range strings.Fields(out) {
		a, err := netip.ParseAddr(strings.Trim(w, "[]"))
		if err != nil {
			p, perr := netip.ParsePrefix(w)
			if perr != nil {
				return nil, fmt.Errorf("the template gives %q, which is not an address", w)
			}
			a = p.Addr()
		}
		addrs = append(addrs, a.Unmap())
	}
	slices.SortFunc(addrs, func(x, y netip.Addr) int { return x.Compare(y) })
	return slices.Compact(addrs), nil
}

// bindTemplate handles `bind = {{ ... }}`: a syntax error rejects the
// service; otherwise the check mode says what the template gives here.
func (e *entry) bindTemplate(a *attrLine, w string) bool {
	if err := checkBindTemplate(w); err != nil {
		e.valueErr(a, 0, "bad bind template: "+err.Error())
		return false
	}
	addrs, err := BindTemplateAddrs(w)
	switch {
	case err != nil:
		e.warnAt(a, 0, WarnInterface, "bind template fails on this host now ("+err.Error()+"); the daemon listens when it gives an address")
	case len(addrs) == 0:
		e.warnAt(a, 0, WarnInterface, "bind template gives no address on this host now; the daemon listens when it gives one")
	default:
		words := make([]string, len(addrs))
		for i, x := range addrs {
			words[i] = x.String()
		}
		e.noteAt(a, 0, NoticeBindTemplate, "bind template gives "+strings.Join(words, " ")+" on this host")
	}
	return true
}

func (e *entry) noteAt(a *attrLine, w int, code, msg string) {
	col := a.col
	if w >= 0 && w < len(a.values) {
		col = a.values[w].col
	}
	e.report(service.SevNotice, code, a.key, a.line, col, false, msg)
}
