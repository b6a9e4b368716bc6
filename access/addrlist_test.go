package access

import (
	"bufio"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

func TestAddressRules(t *testing.T) {
	res := newFakeResolver().hosts(`
127.0.0.1 localhost
127.0.0.2 host2.example.com host2
127.0.0.3 host3.other.org
127.0.0.4 WEIRD.Example.COM
127.0.0.5 good.bad.example.com
10.1.2.3 inside.example.com
`)
	tests := []struct {
		name   string
		only   []string
		onlySt bool
		no     []string
		peer   string
		allow  bool
	}{
		{"neither list allows everyone", nil, false, nil, "192.0.2.1", true},
		{"only_from set but empty refuses everyone", nil, true, nil, "127.0.0.1", false},
		{"exact only_from admits", []string{"127.0.0.1"}, true, nil, "127.0.0.1", true},
		{"exact only_from refuses others", []string{"127.0.0.1"}, true, nil, "127.0.0.2", false},
		{"implicit mask: 127.0.0.0 is a /24", []string{"127.0.0.0"}, true, nil, "127.0.0.200", true},
		{"implicit mask: 127.1 is one address", []string{"127.0.0.1"}, true, nil, "127.0.0.2", false},
		{"0.0.0.0 matches every IPv4 client", []string{"0.0.0.0"}, true, nil, "203.0.113.9", true},
		{"0.0.0.0 does not match IPv6", []string{"0.0.0.0"}, true, nil, "2001:db8::1", false},
		{"network /31", []string{"127.0.0.2/31"}, true, nil, "127.0.0.3", true},
		{"network /31 excludes neighbour", []string{"127.0.0.2/31"}, true, nil, "127.0.0.4", false},
		{"no_access alone refuses its match", nil, false, []string{"127.0.0.3"}, "127.0.0.3", false},
		{"no_access alone admits others", nil, false, []string{"127.0.0.3"}, "127.0.0.4", true},
		{"most specific no_access beats broader only_from", []string{"127.0.0.0/8"}, true, []string{"127.0.0.2"}, "127.0.0.2", false},
		{"broader only_from still admits the rest", []string{"127.0.0.0/8"}, true, []string{"127.0.0.2"}, "127.0.0.3", true},
		{"most specific only_from beats broader no_access", []string{"127.0.0.2"}, true, []string{"127.0.0.0/8"}, "127.0.0.2", true},
		{"broader no_access refuses the rest", []string{"127.0.0.2"}, true, []string{"127.0.0.0/8"}, "127.0.0.1", false},
		{"nested: no_access /25 inside only_from /24", []string{"127.0.0.0/24"}, true, []string{"127.0.0.0/25"}, "127.0.0.4", false},
		{"nested: outside the /25 admitted", []string{"127.0.0.0/24"}, true, []string{"127.0.0.0/25"}, "127.0.0.200", true},
		{"tie between the lists refuses", []string{"10.0.0.0/8"}, true, []string{"10.0.0.0/8"}, "10.1.1.1", false},
		{"v4-mapped client matches IPv4 entry", []string{"127.0.0.1"}, true, nil, "::ffff:127.0.0.1", true},
		{"v4-mapped client refused by IPv4 no_access", nil, false, []string{"127.0.0.0/8"}, "::ffff:127.0.0.9", false},
		{"IPv6 v4-mapped prefix matches IPv4 client", []string{"::ffff:127.0.0.0/104"}, true, nil, "127.0.0.1", true},
		{"IPv6 v4-mapped prefix refuses ::1", []string{"::ffff:127.0.0.0/104"}, true, nil, "::1", false},
		{"::/0 matches everything", []string{"::/0"}, true, nil, "::1", true},
		{":: matches only the unspecified address", []string{"::"}, true, nil, "::1", false},
		{"IPv6 /128 matches", []string{"2001:db8::1/128"}, true, nil, "2001:db8::1", true},
		{"IPv6 zone is stripped", []string{"fe80::1"}, true, nil, "[fe80::1%lo]:5", true},
		{"host name matches its confirmed address", []string{"localhost"}, true, nil, "127.0.0.1", true},
		{"host name is compared with the canonical name only", []string{"host2"}, true, nil, "127.0.0.2", false},
		{"domain suffix, case-insensitive", []string{".example.com"}, true, nil, "127.0.0.4", true},
		{"domain refuses other domains", []string{".example.com"}, true, nil, "127.0.0.3", false},
		{"host name beats domain", []string{"good.bad.example.com"}, true, []string{".bad.example.com"}, "127.0.0.5", true},
		{"deeper domain beats shallower", []string{".example.com"}, true, []string{".bad.example.com"}, "127.0.0.5", false},
		{"deeper only_from domain beats shallower no_access", []string{".bad.example.com"}, true, []string{".example.com"}, "127.0.0.5", true},
		{"domain against network: refused (incomparable)", []string{".example.com"}, true, []string{"10.1.2.0/24"}, "10.1.2.3", false},
		{"no_access domain inside only_from network refuses", []string{"10.0.0.0/8"}, true, []string{".example.com"}, "10.1.2.3", false},
		{"exact address beats no_access domain", []string{"10.1.2.3"}, true, []string{".example.com"}, "10.1.2.3", true},
		{"host name beats no_access network", []string{"inside.example.com"}, true, []string{"10.0.0.0/8"}, "10.1.2.3", true},
		{"host name against exact address is a tie", []string{"inside.example.com"}, true, []string{"10.1.2.3"}, "10.1.2.3", false},
		{"address without a name never matches names", []string{".example.com"}, true, nil, "192.0.2.77", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := svc("s")
			s.OnlyFrom = list(t, tc.onlySt || len(tc.only) > 0, tc.only...)
			s.NoAccess = list(t, len(tc.no) > 0, tc.no...)
			e, _ := newEngine(t, Global{Resolver: res}, s)
			d := e.Decide(context.Background(), Request{Service: s, Peer: ap(tc.peer), Now: t0})
			if d.Allow != tc.allow {
				t.Fatalf("Allow = %v (%s: %s), want %v", d.Allow, d.Reason, d.Detail, tc.allow)
			}
			if !d.Allow && d.Reason != ReasonAddress {
				t.Fatalf("reason %v, want address", d.Reason)
			}
			d.Lease.Release()
		})
	}
}

func TestTieNotifiesXinetdText(t *testing.T) {
	s := svc("tie")
	s.OnlyFrom = list(t, true, "10.0.0.0/8")
	s.NoAccess = list(t, true, "10.0.0.0/8")
	e, n := newEngine(t, Global{}, s)
	e.Decide(context.Background(), Request{Service: s, Peer: ap("10.9.9.9"), Now: t0})
	if n.count("error: Service=tie: only_from list and no_access list match equally the address 10.9.9.9") != 1 {
		t.Fatalf("notes %q", n.all())
	}
}

func TestUnknownPeerAllowedEvenWithOnlyFrom(t *testing.T) {
	s := svc("waitstream")
	s.Wait = true
	s.OnlyFrom = list(t, true, "127.0.0.1")
	e, _ := newEngine(t, Global{}, s)
	d := e.Decide(context.Background(), Request{Service: s, Now: t0})
	if !d.Allow {
		t.Fatalf("unknown peer refused: %v %s", d.Reason, d.Detail)
	}
	d.Lease.Release()
}

// TestXinetdSample11 replays xinetd's own verdicts (sample 11) through the
// engine. Service a2 is the documented difference: its only_from entry is
// more specific than its no_access network, so gxinetd admits 127.0.0.2.
func TestXinetdSample11(t *testing.T) {
	hosts, err := os.ReadFile("testdata/xinetd-11-hosts")
	if err != nil {
		t.Fatal(err)
	}
	res := newFakeResolver().hosts(string(hosts))
	type lists struct {
		only  []string
		set   bool
		no    []string
		minus bool
	}
	conf := map[string]lists{
		"a1":  {only: []string{"127.0.0.0/8"}, set: true, no: []string{"127.0.0.2"}},
		"a2":  {only: []string{"127.0.0.2"}, set: true, no: []string{"127.0.0.0/8"}},
		"a3":  {only: []string{"127.0.0.0"}, set: true},
		"a4":  {only: []string{"localhost", "host2"}, set: true},
		"a5":  {set: true},
		"a6":  {no: []string{"127.0.0.3"}},
		"a8":  {only: []string{".example.com"}, set: true},
		"a9":  {only: []string{"0.0.0.0"}, set: true},
		"a10": {only: []string{"127.0.0.1", "127.0.0.3"}, set: true},
		"a11": {only: []string{"127.0.0.2"}, set: true},
		"a12": {set: true},
		"a13": {only: []string{"0.0.0.0"}, set: true},
		"a14": {only: []string{"127.0.0.1"}, set: true},
		"a15": {only: []string{"127.0.0.2/31"}, set: true},
		"a16": {only: []string{"127.0.0.0/24"}, set: true, no: []string{"127.0.0.0/25"}},
	}
	var svcs []*service.Service
	byID := map[string]*service.Service{}
	for id, l := range conf {
		s := svc(id)
		s.OnlyFrom = list(t, l.set, l.only...)
		s.NoAccess = list(t, len(l.no) > 0, l.no...)
		svcs = append(svcs, s)
		byID[id] = s
	}
	e, _ := newEngine(t, Global{Resolver: res}, svcs...)

	f, err := os.Open("testdata/xinetd-11-access.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	startRE := regexp.MustCompile(`START: (\S+) pid=\d+ from=(\S+)`)
	failRE := regexp.MustCompile(`FAIL: (\S+) address from=(\S+)`)
	type key struct{ id, from string }
	var order []key
	refused := map[key]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := startRE.FindStringSubmatch(sc.Text()); m != nil {
			order = append(order, key{m[1], m[2]})
		}
		if m := failRE.FindStringSubmatch(sc.Text()); m != nil {
			refused[key{m[1], m[2]}] = true
		}
	}
	if len(order) < 50 {
		t.Fatalf("sample parsed badly: %d requests", len(order))
	}
	for _, k := range order {
		s := byID[k.id]
		if s == nil {
			t.Fatalf("service %s missing from the table", k.id)
		}
		want := !refused[k]
		if k.id == "a2" && k.from == "127.0.0.2" {
			want = true // most-specific entry rule
		}
		d := e.Decide(context.Background(), Request{Service: s, Peer: ap(k.from), Now: t0})
		if d.Allow != want {
			t.Errorf("%s from %s: Allow=%v (%s), xinetd-derived want %v", k.id, k.from, d.Allow, d.Detail, want)
		}
		d.Lease.Release()
	}
}

func TestSpecificityConflicts(t *testing.T) {
	s := svc("sc")
	s.OnlyFrom = list(t, true, "127.0.0.2", "10.0.0.0/8", "good.example.com", ".a.example.com")
	s.NoAccess = list(t, true, "127.0.0.0/8", "10.0.0.0/8", ".example.com", "192.168.0.0/16")
	got := SpecificityConflicts(s)
	wantSubs := []string{
		"only_from 127.0.0.2 (test.conf:1) is more specific than no_access 127.0.0.0/8",
		"only_from good.example.com (test.conf:1) is more specific than no_access 127.0.0.0/8",
		"only_from good.example.com (test.conf:1) is more specific than no_access 10.0.0.0/8",
		"only_from good.example.com (test.conf:1) is more specific than no_access .example.com",
		"only_from good.example.com (test.conf:1) is more specific than no_access 192.168.0.0/16",
		"only_from .a.example.com (test.conf:1) is more specific than no_access .example.com",
		"only_from 127.0.0.2 (test.conf:1) is more specific than no_access .example.com",
	}
	if len(got) != len(wantSubs) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(wantSubs), strings.Join(got, "\n"))
	}
	for _, g := range got {
		// The diagnostic carrying the line names the service already.
		if strings.Contains(g, "service ") {
			t.Errorf("line names its service itself (it would read \"service sc: service sc:\"): %s", g)
		}
	}
	for _, w := range wantSubs {
		found := false
		for _, g := range got {
			found = found || strings.Contains(g, w)
		}
		if !found {
			t.Errorf("missing %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
	// Equal entries (10.0.0.0/8 in both) and incomparable ones are no conflict.
	for _, g := range got {
		if strings.Contains(g, "only_from 10.0.0.0/8") {
			t.Errorf("unexpected conflict %q", g)
		}
	}
}

func TestNameLookups(t *testing.T) {
	res := newFakeResolver().hosts("192.0.2.10 real.example.com\n198.51.100.7 evil.example.net\n")
	// A forged PTR: 198.51.100.66 claims to be real.example.com, which
	// resolves to 192.0.2.10 only.
	res.ptr[mustAddr("198.51.100.66")] = []string{"real.example.com."}
	res.block[mustAddr("203.0.113.5")] = true
	res.fail[mustAddr("203.0.113.6")] = true

	only := svc("only")
	only.OnlyFrom = list(t, true, ".example.com")
	no := svc("no")
	no.NoAccess = list(t, true, ".example.net")
	e, n := newEngine(t, Global{Resolver: res, LookupTimeout: 50 * time.Millisecond}, only, no)
	ctx := context.Background()
	check := func(s *service.Service, peer string, want bool) Decision {
		t.Helper()
		d := e.Decide(ctx, Request{Service: s, Peer: ap(peer), Now: t0})
		if d.Allow != want {
			t.Fatalf("%s from %s: Allow=%v (%s), want %v", s.ID, peer, d.Allow, d.Detail, want)
		}
		d.Lease.Release()
		return d
	}
	check(only, "192.0.2.10", true)
	check(only, "198.51.100.66", false) // forged PTR refused
	start := time.Now()
	check(only, "203.0.113.5", false) // timeout refuses
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("lookup blocked %v", el)
	}
	check(no, "198.51.100.7", false)
	check(no, "192.0.2.10", true)
	check(no, "203.0.113.6", false) // name unknown, no_access has names: refuse
	// Cache: repeating a request does not ask the resolver again.
	before := res.ptrHits.Load()
	for i := 0; i < 5; i++ {
		check(only, "192.0.2.10", true)
	}
	if res.ptrHits.Load() != before {
		t.Fatalf("cache not used: %d extra lookups", res.ptrHits.Load()-before)
	}
	// After the TTL the name is looked up again.
	d := e.Decide(ctx, Request{Service: only, Peer: ap("192.0.2.10"), Now: t0.Add(DefaultNameTTL + time.Second)})
	d.Lease.Release()
	if res.ptrHits.Load() != before+1 {
		t.Fatalf("expired entry not refreshed: %d lookups", res.ptrHits.Load()-before)
	}
	// No lookup when names cannot change the outcome.
	plain := svc("plain")
	plain.OnlyFrom = list(t, true, "192.0.2.0/24", ".example.com")
	before = res.ptrHits.Load()
	d = e.Decide(ctx, Request{Service: plain, Peer: ap("192.0.2.99"), Now: t0})
	d.Lease.Release()
	if !d.Allow || res.ptrHits.Load() != before {
		t.Fatalf("needless lookup or refusal: %v, %d lookups", d.Allow, res.ptrHits.Load()-before)
	}
	_ = n
}

func TestNameCacheBounded(t *testing.T) {
	res := newFakeResolver()
	s := svc("names")
	s.OnlyFrom = list(t, true, ".example.com")
	e, n := newEngine(t, Global{Resolver: res, NameCacheSize: 64}, s)
	for i := 0; i < 1000; i++ {
		a := netipAddrFrom(uint32(0x0a000000 + i))
		d := e.Decide(context.Background(), Request{Service: s, Peer: a, Now: t0})
		d.Lease.Release()
	}
	if sz := e.Snapshot().Tables.Names; sz > 64 {
		t.Fatalf("name cache grew to %d", sz)
	}
	if n.count("name cache full") != 1 {
		t.Fatalf("cap notice should be logged once per interval: %q", n.all())
	}
}
