package access

import (
	"context"
	"net/netip"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

func TestProxyTrusted(t *testing.T) {
	res := newFakeResolver().hosts("10.9.9.9 lb1.example.net\n10.9.9.8 lb2.other.org\n")
	pp := svc("pp")
	pp.ProxyProtocol = service.ProxyV1 | service.ProxyV2
	pp.ProxyFrom = list(t, true, "10.0.0.0/29", "192.0.2.7", "2001:db8::/32", "lb1.example.net")
	none := svc("none")
	none.ProxyProtocol = service.ProxyV2
	none.ProxyFrom = list(t, true)
	plain := svc("plain")
	plain.ProxyFrom = list(t, true, "10.0.0.0/8") // no proxy_protocol: trusts nobody
	e, _ := newEngine(t, Global{Resolver: res}, pp, none, plain)
	for _, tc := range []struct {
		s    *service.Service
		peer string
		want bool
	}{
		{pp, "10.0.0.1:5000", true},
		{pp, "10.0.0.7:5000", true},
		{pp, "10.0.0.8:5000", false},
		{pp, "[::ffff:10.0.0.3]:5000", true}, // a dual-stack listener's IPv4 peer
		{pp, "192.0.2.7:1", true},
		{pp, "192.0.2.8:1", false},
		{pp, "[2001:db8::99]:1", true},
		{pp, "[2001:db9::1]:1", false},
		{pp, "10.9.9.9:1", true},  // by its forward-confirmed name
		{pp, "10.9.9.8:1", false}, // a name, but not the one listed
		{none, "10.0.0.1:1", false},
		{plain, "10.0.0.1:1", false},
	} {
		if got := e.ProxyTrusted(context.Background(), tc.s, ap(tc.peer), t0); got != tc.want {
			t.Errorf("%s from %s: %v, want %v", tc.s.ID, tc.peer, got, tc.want)
		}
	}
	var unknown netip.AddrPort
	if e.ProxyTrusted(context.Background(), pp, unknown, t0) {
		t.Error("an unknown peer is trusted")
	}
}

// TestCountRefusal: refusals the daemon decides (the PROXY protocol
// ones) are counted with the engine's own, under their codes.
func TestCountRefusal(t *testing.T) {
	s := svc("pp")
	e, _ := newEngine(t, Global{}, s)
	e.CountRefusal(s, ReasonProxyUntrusted)
	e.CountRefusal(s, ReasonProxyUntrusted)
	e.CountRefusal(s, ReasonProxyTimeout)
	e.CountRefusal(s, ReasonProxyMalformed)
	e.CountRefusal(s, OK) // not a refusal: ignored
	got := e.Snapshot().Services["pp"].Refused
	if got[ReasonProxyUntrusted] != 2 || got[ReasonProxyTimeout] != 1 || got[ReasonProxyMalformed] != 1 || len(got) != 3 {
		t.Fatalf("refused = %v", got)
	}
	for r, code := range map[Reason]string{ReasonProxyUntrusted: "proxy_untrusted", ReasonProxyTimeout: "proxy_timeout",
		ReasonProxyMalformed: "proxy_malformed"} {
		if r.Code() != code || r.String() != code {
			t.Errorf("reason %d: %q %q", r, r.Code(), r.String())
		}
	}
}
