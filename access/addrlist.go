package access

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/gxinetd/gxinetd/internal/service"
)

// fullLen is the prefix length of one address in the common 128-bit space
// every entry is compiled into (an IPv4 /n becomes the v4-mapped /96+n),
// so IPv4 entries match v4-mapped clients and ranks compare across families.
const fullLen = 128

func normPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr().WithZone("")
	bits := p.Bits()
	if a.Is4() {
		a = netip.AddrFrom16(a.As16())
		bits += 96
	}
	return netip.PrefixFrom(a, bits).Masked()
}

// normAddr puts a client address into the same space: IPv4 as v4-mapped.
func normAddr(a netip.Addr) netip.Addr { return netip.AddrFrom16(a.As16()) }

// slot records, for one compiled prefix, the entry of each list that has it
// (index+1; 0 = not in that list).
type slot struct{ only, no int32 }

// addrTable is only_from and no_access compiled for longest-prefix match.
type addrTable struct {
	onlySet   bool
	only, no  []service.AddrEntry
	lens      []int // distinct prefix lengths, longest first
	prefixes  map[netip.Prefix]slot
	hosts     map[string]slot // host names
	domains   map[string]slot // ".domain" suffixes
	onlyNames bool
	noNames   bool
	// details are "only_from TEXT" / "no_access TEXT" per entry, built
	// once so that reporting the deciding entry does not allocate.
	onlyDetail, noDetail []string
}

func compileLists(only, no service.AddrList) *addrTable {
	t := &addrTable{
		onlySet:  only.Set,
		only:     only.Entries,
		no:       no.Entries,
		prefixes: map[netip.Prefix]slot{},
		hosts:    map[string]slot{},
		domains:  map[string]slot{},
	}
	seen := map[int]bool{}
	add := func(entries []service.AddrEntry, isOnly bool) {
		for i, e := range entries {
			idx := int32(i + 1)
			put := func(s slot) slot {
				if isOnly {
					if s.only == 0 {
						s.only = idx
					}
				} else if s.no == 0 {
					s.no = idx
				}
				return s
			}
			switch e.Kind {
			case service.AddrNumeric, service.AddrNet:
				if !e.Prefix.IsValid() {
					continue
				}
				p := normPrefix(e.Prefix)
				t.prefixes[p] = put(t.prefixes[p])
				if !seen[p.Bits()] {
					seen[p.Bits()] = true
					t.lens = append(t.lens, p.Bits())
				}
			case service.AddrHost:
				n := strings.ToLower(strings.TrimSuffix(e.Name, "."))
				if n == "" {
					continue
				}
				t.hosts[n] = put(t.hosts[n])
				t.markNames(isOnly)
			case service.AddrDomain:
				n := strings.ToLower(strings.TrimSuffix(e.Name, "."))
				if !strings.HasPrefix(n, ".") {
					n = "." + n
				}
				if n == "." {
					continue
				}
				t.domains[n] = put(t.domains[n])
				t.markNames(isOnly)
			}
		}
	}
	add(only.Entries, true)
	add(no.Entries, false)
	sort.Sort(sort.Reverse(sort.IntSlice(t.lens)))
	for _, e := range only.Entries {
		t.onlyDetail = append(t.onlyDetail, "only_from "+e.Text)
	}
	for _, e := range no.Entries {
		t.noDetail = append(t.noDetail, "no_access "+e.Text)
	}
	return t
}

func (t *addrTable) markNames(isOnly bool) {
	if isOnly {
		t.onlyNames = true
	} else {
		t.noNames = true
	}
}

// side is what one list matched for a client: the longest prefix, an
// exact host name, the deepest domain (labels = number of dots).
type side struct {
	pLen    int
	pIdx    int32
	host    int32
	dLabels int
	dIdx    int32
}

func (s side) any() bool { return s.pLen >= 0 || s.host != 0 || s.dLabels > 0 }

// matchPrefixes fills the prefix parts of both sides; a is normalised.
func (t *addrTable) matchPrefixes(a netip.Addr) (o, n side) {
	o.pLen, n.pLen = -1, -1
	for _, l := range t.lens {
		p, err := a.Prefix(l)
		if err != nil {
			continue
		}
		s, ok := t.prefixes[p]
		if !ok {
			continue
		}
		if s.only != 0 && o.pLen < 0 {
			o.pLen, o.pIdx = l, s.only
		}
		if s.no != 0 && n.pLen < 0 {
			n.pLen, n.pIdx = l, s.no
		}
		if o.pLen >= 0 && n.pLen >= 0 {
			break
		}
	}
	return o, n
}

// matchName fills the name parts of both sides for a confirmed host name.
func (t *addrTable) matchName(name string, o, n *side) {
	if s, ok := t.hosts[name]; ok {
		o.host, n.host = s.only, s.no
	}
	if len(t.domains) == 0 {
		return
	}
	labels := strings.Count(name, ".")
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if s, ok := t.domains[name[i:]]; ok {
			if s.only != 0 && o.dLabels == 0 {
				o.dLabels, o.dIdx = labels, s.only
			}
			if s.no != 0 && n.dLabels == 0 {
				n.dLabels, n.dIdx = labels, s.no
			}
		}
		labels--
	}
}

// dominates reports whether some match of a is strictly more specific
// than every match of b. Longer prefixes beat shorter ones; a host name
// ranks as one address; domains rank by depth among themselves, below
// host names and exact addresses, and cannot be compared with networks.
func dominates(a, b side) bool {
	if a.pLen >= 0 && b.pLen < a.pLen && b.host == 0 && (b.dLabels == 0 || a.pLen == fullLen) {
		return true
	}
	if a.host != 0 && b.host == 0 && b.pLen < fullLen {
		return true
	}
	return a.dLabels > 0 && b.pLen < 0 && b.host == 0 && b.dLabels < a.dLabels
}

// verdict is the outcome of the list check.
type verdict int

const (
	vAllow verdict = iota
	vNoAccess
	vNotInOnly
	vTie
)

func (t *addrTable) decide(o, n side) verdict {
	switch {
	case !n.any():
		if !t.onlySet || o.any() {
			return vAllow
		}
		return vNotInOnly
	case !o.any():
		return vNoAccess
	case dominates(o, n):
		return vAllow
	case dominates(n, o):
		return vNoAccess
	}
	return vTie
}

func (t *addrTable) detail(s side, isOnly bool) string {
	idx := s.pIdx
	switch {
	case s.host != 0 && (s.pLen < fullLen):
		idx = s.host
	case s.pLen < 0 && s.dLabels > 0:
		idx = s.dIdx
	}
	if idx == 0 {
		return ""
	}
	if isOnly {
		return t.onlyDetail[idx-1]
	}
	return t.noDetail[idx-1]
}

// SpecificityConflicts lists, one line each, the only_from / no_access
// pairs of s where gxinetd's most-specific-entry rule can admit a client
// that xinetd 2.3.15 refuses because it matches both lists. Pairs that
// depend on a name lookup are reported as possible.
func SpecificityConflicts(s *service.Service) []string {
	var out []string
	for _, o := range s.OnlyFrom.Entries {
		for _, n := range s.NoAccess.Entries {
			how := pairConflict(o, n)
			if how == "" {
				continue
			}
			// No "service X:" here: the diagnostic that carries the
			// line names its service itself.
			out = append(out, fmt.Sprintf("only_from %s (%s) is more specific than no_access %s (%s): %s",
				o.Text, o.Src, n.Text, n.Src, how))
		}
	}
	return out
}

func pairConflict(o, n service.AddrEntry) string {
	const definite = "gxinetd admits clients matching both, xinetd 2.3.15 refuses them"
	const possible = "if the client's name and address match both, gxinetd admits it and xinetd 2.3.15 refuses it"
	isPrefix := func(e service.AddrEntry) bool {
		return (e.Kind == service.AddrNumeric || e.Kind == service.AddrNet) && e.Prefix.IsValid()
	}
	lower := func(e service.AddrEntry) string {
		v := strings.ToLower(strings.TrimSuffix(e.Name, "."))
		if e.Kind == service.AddrDomain && !strings.HasPrefix(v, ".") {
			v = "." + v
		}
		return v
	}
	switch {
	case isPrefix(o) && isPrefix(n):
		po, pn := normPrefix(o.Prefix), normPrefix(n.Prefix)
		if po.Bits() > pn.Bits() && pn.Contains(po.Addr()) {
			return definite
		}
	case o.Kind == service.AddrHost && isPrefix(n):
		if normPrefix(n.Prefix).Bits() < fullLen {
			return possible
		}
	case isPrefix(o) && n.Kind == service.AddrDomain:
		if normPrefix(o.Prefix).Bits() == fullLen {
			return possible
		}
	case o.Kind == service.AddrHost && n.Kind == service.AddrDomain:
		if strings.HasSuffix(lower(o), lower(n)) {
			return definite
		}
	case o.Kind == service.AddrDomain && n.Kind == service.AddrDomain:
		lo, ln := lower(o), lower(n)
		if len(lo) > len(ln) && strings.HasSuffix(lo, ln) {
			return definite
		}
	}
	return ""
}
