package daemon

import (
	"net/netip"
	"regexp"
	"sort"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
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

// interfaceAddrs lists the addresses of an interface in the wanted family,
// in a stable order.
func interfaceAddrs(name string, fam service.Family) []netip.Addr {
	all, err := ifaceAddrs(name)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range all {
		switch {
		case fam == service.FamilyIPv4 && !a.Is4():
		case fam == service.FamilyIPv6 && !a.Is6():
		default:
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// ifacePoll is how often interface binds are re-examined: DHCP and PPP
// address changes reach the listeners within this time.
var ifacePoll = 2 * time.Second

// followInterfaces moves the listeners of `bind = IFACE` services when the
// interface's addresses change, and opens those that were waiting for an
// address to appear.
func (d *Daemon) followInterfaces() {
	t := time.NewTicker(ifacePoll)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		if d.stopping.Load() {
			return
		}
		d.mu.Lock()
		for _, r := range d.runs {
			s := r.svc.Load()
			if s.Bind.Interface == "" || r.removed || r.suspended {
				continue
			}
			want := map[sockKey]bool{}
			for _, k := range d.wantedKeys(s) {
				want[k] = true
			}
			changed := false
			for k, sr := range r.socks {
				if !want[k] {
					go func(sr *sockRun) { sr.halt(); sr.s.Close() }(sr)
					delete(r.socks, k)
					changed = true
					d.log.Logf(logging.LevelNotice, "iface", "service %s: address %s left interface %s; stopped listening there", s.ID, k, s.Bind.Interface)
				}
			}
			missing := false
			for k := range want {
				if _, ok := r.socks[k]; !ok {
					missing = true
				}
			}
			if missing {
				before := len(r.socks)
				d.openRunLocked(r, nil)
				if len(r.socks) > before {
					changed = true
					d.log.Logf(logging.LevelNotice, "iface", "service %s: interface %s now has %s; listening on %s", s.ID, s.Bind.Interface, addrList(want), r.listenText())
				}
			}
			if changed && len(r.socks) == 0 {
				r.pending = true
			}
		}
		d.mu.Unlock()
	}
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
