package daemon

import (
	"encoding/binary"
	"net/netip"
	"regexp"
	"sort"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	sockaddr "github.com/hashicorp/go-sockaddr"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/parser"
)

// ifaceAddrs lists an interface's addresses through go-sockaddr (its name
// matched exactly: go-sockaddr's own matching is an unanchored regexp).
// Replaceable in tests.
var ifaceAddrs = func(name string) ([]netip.Addr, error) {
	all, err := sockaddr.GetAllInterfaces()
	if err != nil {
		return nil, err
	}
	mine, _, err := sockaddr.IfByName("^"+regexp.QuoteMeta(name)+"$", all)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ifa := range mine {
		ip, ok := ifa.SockAddr.(sockaddr.IPAddr)
		if !ok {
			continue
		}
		ad, ok := netip.AddrFromSlice(*ip.NetIP())
		if !ok {
			continue
		}
		ad = ad.Unmap()
		if ad.Is6() && ad.IsLinkLocalUnicast() {
			ad = ad.WithZone(name)
		}
		out = append(out, ad)
	}
	return out, nil
}

// unusableV6 lists the IPv6 addresses the kernel does not let anyone
// bind yet: duplicate address detection is still running (tentative and
// not optimistic) or has failed. A new address is tentative for a second
// or two; listing it would only produce a bind error. Replaceable in
// tests.
var unusableV6 = func() map[netip.Addr]bool {
	b, err := syscall.NetlinkRIB(syscall.RTM_GETADDR, syscall.AF_INET6)
	if err != nil {
		return nil
	}
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return nil
	}
	out := map[netip.Addr]bool{}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWADDR || len(m.Data) < syscall.SizeofIfAddrmsg {
			continue
		}
		flags := uint32(m.Data[2]) // struct ifaddrmsg: family, prefixlen, flags, ...
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			continue
		}
		var addr netip.Addr
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFA_FLAGS: // the full 32-bit flags, when the kernel sends them
				if len(a.Value) >= 4 {
					flags = binary.NativeEndian.Uint32(a.Value)
				}
			case unix.IFA_ADDRESS, unix.IFA_LOCAL:
				if ad, ok := netip.AddrFromSlice(a.Value); ok {
					addr = ad
				}
			}
		}
		tentative := flags&unix.IFA_F_TENTATIVE != 0 && flags&unix.IFA_F_OPTIMISTIC == 0
		if addr.IsValid() && (tentative || flags&unix.IFA_F_DADFAILED != 0) {
			out[addr] = true
		}
	}
	return out
}

// interfaceAddrs lists the addresses of an interface in the wanted family,
// in a stable order, leaving out IPv6 addresses that cannot be bound yet.
func interfaceAddrs(name string, fam service.Family) []netip.Addr {
	all, err := ifaceAddrs(name)
	if err != nil {
		return nil
	}
	out := bindable(all, fam, false)
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// bindable keeps the addresses of family fam (any family when unset)
// that can be bound now: not IPv6 ones still tentative or otherwise
// unusable, and, with noLinkLocal, not link-local IPv6 ones either.
func bindable(all []netip.Addr, fam service.Family, noLinkLocal bool) []netip.Addr {
	var unusable map[netip.Addr]bool
	for _, a := range all {
		if a.Is6() {
			unusable = unusableV6()
			break
		}
	}
	var out []netip.Addr
	for _, a := range all {
		switch {
		case fam == service.FamilyIPv4 && !a.Is4():
		case fam == service.FamilyIPv6 && !a.Is6():
		case unusable[a.WithZone("")]:
		case noLinkLocal && a.Is6() && a.IsLinkLocalUnicast():
		default:
			out = append(out, a)
		}
	}
	return out
}

// bindTemplateAddrs evaluates a `bind = {{ ... }}` template on this host
// (go-sockaddr's template language, through the parser, which checked
// it). Replaceable in tests.
var bindTemplateAddrs = parser.BindTemplateAddrs

// tmplErrs remembers, per template, the last evaluation error logged, so
// that a template failing on every poll is reported once per change.
var tmplErrs sync.Map // template -> string

// templateAddrs lists the addresses a bind template gives now, in the
// service's family, leaving out IPv6 addresses that cannot be bound yet
// and link-local IPv6 ones (the template gives them without the zone
// they need).
func (d *Daemon) templateAddrs(s *service.Service) []netip.Addr {
	all, err := bindTemplateAddrs(s.Bind.Template)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if prev, _ := tmplErrs.Swap(s.Bind.Template, msg); prev != msg && msg != "" {
		d.log.Logf(logging.LevelError, "iface", "service %s: bind template %s: %v; will listen when it gives an address", s.ID, s.Bind.Template, err)
	}
	return bindable(all, s.Family, true)
}

// following reports whether a service's addresses can change under it:
// an interface or a template bind.
func following(s *service.Service) bool { return s.Bind.Interface != "" || s.Bind.Template != "" }

// bindWhat names what a following service binds to, for messages.
func bindWhat(s *service.Service) string {
	if s.Bind.Template != "" {
		return "bind template " + s.Bind.Template
	}
	return "interface " + s.Bind.Interface
}

// warmTemplates evaluates the bind templates of the running services
// before the poller takes the daemon's lock: a template may run `ip
// route` (go-sockaddr does, for the default route), which must not
// happen with the lock held. Within a second the results are reused.
func (d *Daemon) warmTemplates() {
	d.mu.Lock()
	var tmpls []string
	for _, r := range d.runs {
		if t := r.svc.Load().Bind.Template; t != "" && !r.removed.Load() {
			tmpls = append(tmpls, t)
		}
	}
	d.unlock()
	for _, t := range tmpls {
		bindTemplateAddrs(t)
	}
}

// warmConfigTemplates evaluates a new configuration's bind templates
// before the daemon's lock is taken to open its sockets (see
// warmTemplates). A configuration without templates costs one look at
// each service.
func warmConfigTemplates(cfg *service.Config) {
	seen := map[string]bool{}
	for _, s := range cfg.Services {
		if t := s.Bind.Template; t != "" && s.Status == service.StatusAccepted && !seen[t] {
			seen[t] = true
			bindTemplateAddrs(t)
		}
	}
}

// ifacePoll is how often interface binds are re-examined: DHCP and PPP
// address changes reach the listeners within this time.
var ifacePoll = 2 * time.Second

// followInterfaces moves the listeners of `bind = IFACE` and `bind = {{
// template }}` services when the addresses change, and opens those that
// were waiting for an address to appear.
func (d *Daemon) followInterfaces() {
	t := time.NewTicker(ifacePoll)
	defer t.Stop()
	// failing remembers, per service, the addresses whose socket could
	// not be opened at the last attempt (a port another program holds
	// there, say). They are not tried again on every tick, which would
	// log the same bind error every two seconds: the bind retry timer
	// keeps trying those that may come free (address in use or not yet
	// available), and a change of the interface's addresses makes the
	// poller try everything once more.
	failing := map[*svcRun]map[sockKey]bool{}
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		if !d.followOnce(failing) {
			return
		}
	}
}

// followOnce is one look at the interfaces; it reports false once the
// daemon is stopping.
func (d *Daemon) followOnce(failing map[*svcRun]map[sockKey]bool) bool {
	d.warmTemplates()
	d.change.Lock()
	defer d.change.Unlock()
	if d.stopping.Load() {
		return false
	}
	for r := range failing {
		if r.removed.Load() {
			delete(failing, r)
		}
	}
	// Holding change, the runs and their sockets can be read without mu:
	// the interfaces are listed first, outside it.
	wants := map[*svcRun]map[sockKey]bool{}
	for _, r := range d.runs {
		s := r.svc.Load()
		if !following(s) || r.removed.Load() || r.suspended {
			continue
		}
		want := map[sockKey]bool{}
		for _, k := range d.wantedKeys(s) {
			want[k] = true
		}
		wants[r] = want
	}
	// Addresses that left: their goroutines are halted with no lock held.
	var gone []*sockRun
	changed := map[*svcRun]bool{}
	d.mu.Lock()
	for _, r := range d.runs {
		want := wants[r]
		if want == nil {
			continue
		}
		s := r.svc.Load()
		for k, sr := range r.socks.all() {
			if !want[k] {
				gone = append(gone, sr)
				r.socks.del(k)
				changed[r] = true
				if s.Bind.Template != "" {
					d.logLocked(logging.LevelNotice, "iface", "service %s: address %s is no longer given by %s; stopped listening there", s.ID, k, bindWhat(s))
				} else {
					d.logLocked(logging.LevelNotice, "iface", "service %s: address %s left interface %s; stopped listening there", s.ID, k, s.Bind.Interface)
				}
			}
		}
	}
	d.unlock()
	if len(gone) > 0 {
		haltAll(gone)
		for _, sr := range gone {
			sr.s.Close()
		}
		d.rpc.kick()
	}
	d.mu.Lock()
	defer d.unlock()
	for _, r := range d.runs {
		want := wants[r]
		if want == nil {
			continue
		}
		s := r.svc.Load()
		fresh := false
		for k := range want {
			if !r.socks.has(k) && !failing[r][k] {
				fresh = true
			}
		}
		if fresh {
			before := len(r.socks)
			d.openRunLocked(r, nil)
			if len(r.socks) > before {
				changed[r] = true
				if s.Bind.Template != "" {
					d.logLocked(logging.LevelNotice, "iface", "service %s: %s now gives %s; listening on %s", s.ID, bindWhat(s), addrList(want), r.listenText())
				} else {
					d.logLocked(logging.LevelNotice, "iface", "service %s: interface %s now has %s; listening on %s", s.ID, s.Bind.Interface, addrList(want), r.listenText())
				}
			}
			failed := map[sockKey]bool{}
			for k := range want {
				if !r.socks.has(k) {
					failed[k] = true
				}
			}
			failing[r] = failed
		} else if f := failing[r]; f != nil {
			// Forget addresses that left the interface or got their
			// socket through the bind retry meanwhile.
			for k := range f {
				if r.socks.has(k) || !want[k] {
					delete(f, k)
				}
			}
		}
		if changed[r] && len(r.socks) == 0 {
			r.pending = true
		}
	}
	return true
}

func addrList(m map[sockKey]bool) string {
	var out []string
	for k := range m {
		out = append(out, k.addr.String())
	}
	sort.Strings(out)
	s := ""
	for i, a := range out {
		if i > 0 {
			s += " "
		}
		s += a
	}
	return s
}
