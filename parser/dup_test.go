package parser

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// refCheckDuplicates is checkDuplicates as first written, one map per
// port: the sort-based version must report exactly the same messages in
// the same order.
func refCheckDuplicates(l *loader) {
	wild := map[portKey][]*service.Service{}
	bound := map[portKey][]*service.Service{}
	exact := map[boundKey]*service.Service{}
	byRPC := map[portKey][]*service.Service{}
	ids := map[string]*service.Service{}
	for _, e := range l.entries {
		s := e.svc
		if s.Status != "" || s.IsTCPMuxClient() {
			continue
		}
		c := &checker{l: l, e: e, s: s}
		var clash *service.Service
		if s.Type.Has(service.TypeRPC) && s.Port == 0 {
			k := portKey{s.RPCNumber, s.ProtoNum}
			for _, t := range byRPC[k] {
				if s.RPCLow <= t.RPCHigh && t.RPCLow <= s.RPCHigh {
					clash = t
					break
				}
			}
			if clash == nil {
				byRPC[k] = append(byRPC[k], s)
			}
		} else if s.Port != 0 {
			k := portKey{s.Port, s.ProtoNum}
			sp := spaceOf(s)
			first := func(list []*service.Service) {
				for _, t := range list {
					if clash == nil && sp.overlaps(spaceOf(t)) {
						clash = t
					}
				}
			}
			first(wild[k])
			bk := boundKey{k, sp.addr, sp.iface}
			if sp.wildcard() {
				first(bound[k])
			} else if t, ok := exact[bk]; ok && sp.overlaps(spaceOf(t)) {
				clash = t
			}
			if clash == nil {
				if sp.wildcard() {
					wild[k] = append(wild[k], s)
				} else {
					bound[k] = append(bound[k], s)
					if _, ok := exact[bk]; !ok {
						exact[bk] = s
					}
				}
			}
		}
		id := strings.ToLower(s.ID)
		if clash != nil {
			if strings.EqualFold(clash.ID, s.ID) {
				c.err(CodeDuplicate, fmt.Sprintf("service: %s id: %s not unique or is a duplicate - DISABLING (same port as %s)", s.Name, s.ID, clash.Src))
			} else {
				c.err(CodeDuplicate, fmt.Sprintf("service: %s id: %s is unique but its identical to service: %s id: %s - DISABLING (same port and address, %s)", s.Name, s.ID, clash.Name, clash.ID, clash.Src))
			}
			continue
		}
		if t, ok := ids[id]; ok {
			c.warn(WarnDuplicateID, "id", fmt.Sprintf("service %s has id %s, also used by service %s at %s; log records and the enabled/disabled lists cannot tell them apart", s.Name, s.ID, t.Name, t.Src))
		} else {
			ids[id] = s
		}
	}
}

// randomClashes writes services that collide in every way checkDuplicates
// knows: ports, protocols, bind addresses, interfaces, families, RPC
// version ranges and ids.
func randomClashes(r *rand.Rand, n int) string {
	var b strings.Builder
	binds := []string{"", "", "127.0.0.1", "127.0.0.2", "::1", "lo", "eth0"}
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "service s%d\n{\n\tsocket_type = %s\n\twait = no\n\tuser = root\n\tserver = /bin/cat\n",
			i, []string{"stream", "dgram"}[r.Intn(2)])
		if r.Intn(5) == 0 {
			lo := 1 + r.Intn(3)
			fmt.Fprintf(&b, "\ttype = RPC UNLISTED\n\trpc_number = %d\n\trpc_version = %d-%d\n", 100000+r.Intn(2), lo, lo+r.Intn(2))
		} else {
			fmt.Fprintf(&b, "\ttype = UNLISTED\n\tport = %d\n", 7000+r.Intn(3))
		}
		if bd := binds[r.Intn(len(binds))]; bd != "" {
			fmt.Fprintf(&b, "\tbind = %s\n", bd)
		}
		switch r.Intn(6) {
		case 0:
			b.WriteString("\tflags = IPv4\n")
		case 1:
			b.WriteString("\tflags = IPv6\n")
		case 2:
			b.WriteString("\tflags = IPv6\n\tv6only = yes\n")
		}
		if r.Intn(4) == 0 {
			fmt.Fprintf(&b, "\tid = S%d\n", r.Intn(n))
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func TestCheckDuplicatesMatchesReference(t *testing.T) {
	run := func(text string, check func(*loader)) service.Diags {
		l := newLoader("dup.conf", testOptions())
		l.parseFile("dup.conf", nil, text, nil)
		l.cfg.Defaults = l.defs.build()
		l.applyEnabled()
		for _, e := range l.entries {
			if e.svc.Status == "" {
				l.complete(e)
			}
		}
		check(l)
		return l.cfg.Diags
	}
	r := rand.New(rand.NewSource(1))
	sawDup, sawID := false, false
	for round := 0; round < 150; round++ {
		text := randomClashes(r, 5+r.Intn(40))
		got := run(text, (*loader).checkDuplicates)
		want := run(text, refCheckDuplicates)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d differs:\n got %v\nwant %v\ninput:\n%s", round, got, want, text)
		}
		sawDup = sawDup || hasCode(got, CodeDuplicate)
		sawID = sawID || hasCode(got, WarnDuplicateID)
	}
	if !sawDup || !sawID {
		t.Fatalf("the generator made no clash (dup %v, id %v)", sawDup, sawID)
	}
}
