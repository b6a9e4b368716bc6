package access

import (
	"context"
	"net/netip"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// ProxyTrusted reports whether the connection's own peer may send a
// PROXY protocol header for s: whether it matches s's proxy_from, as an
// only_from entry would (numeric entries at once; host and domain names
// through the same forward-confirmed lookups, bounded by the lookup
// timeout). A service without proxy_protocol trusts nobody.
func (e *Engine) ProxyTrusted(ctx context.Context, s *service.Service, peer netip.AddrPort, now time.Time) bool {
	_, c := e.state(s)
	t := c.proxyFrom
	if t == nil || !peer.IsValid() {
		return false
	}
	a := peer.Addr().Unmap().WithZone("")
	o, n := t.matchPrefixes(normAddr(a))
	if t.decide(o, n) == vAllow {
		return true
	}
	if t.onlyNames {
		if now.IsZero() {
			now = time.Now()
		}
		if name, ns := e.names.lookup(ctx, a, now); ns == nameOK {
			t.matchName(name, &o, &n)
		}
	}
	return t.decide(o, n) == vAllow
}

// CountRefusal counts a refusal the daemon decided itself, before the
// request reached Decide (the PROXY protocol reasons), so that the state
// dump and the metrics show it with the others.
func (e *Engine) CountRefusal(s *service.Service, r Reason) {
	st, _ := e.state(s)
	if r > OK && r < numReasons {
		st.refused[r].Add(1)
	}
}
