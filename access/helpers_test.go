package access

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// ent builds an only_from/no_access entry the way the parser stores it,
// including xinetd's implicit IPv4 mask for trailing zero octets.
func ent(t testing.TB, text string) service.AddrEntry {
	t.Helper()
	e := service.AddrEntry{Text: text, Src: service.Source{File: "test.conf", Line: 1}}
	switch {
	case strings.Contains(text, "/"):
		p, err := netip.ParsePrefix(text)
		if err != nil {
			t.Fatalf("bad prefix %q: %v", text, err)
		}
		e.Kind, e.Prefix = service.AddrNet, p.Masked()
	case strings.HasPrefix(text, "."):
		e.Kind, e.Name = service.AddrDomain, strings.ToLower(text)
	default:
		a, err := netip.ParseAddr(text)
		if err != nil {
			e.Kind, e.Name = service.AddrHost, strings.ToLower(text)
			return e
		}
		bits := a.BitLen()
		if a.Is4() {
			b := a.As4()
			for bits > 0 && b[bits/8-1] == 0 {
				bits -= 8
			}
		}
		e.Kind, e.Prefix = service.AddrNumeric, netip.PrefixFrom(a, bits)
	}
	return e
}

func list(t testing.TB, set bool, words ...string) service.AddrList {
	l := service.AddrList{Set: set}
	for _, w := range words {
		l.Entries = append(l.Entries, ent(t, w))
	}
	return l
}

func svc(id string) *service.Service {
	return &service.Service{
		Name: id, ID: id, SocketType: service.SockStream, Protocol: "tcp",
		Server: "/bin/echo", Argv: []string{"echo"},
		Instances: service.Unlimited, PerSource: service.Unlimited,
		PerSourcePrefix4: 32, PerSourcePrefix6: 128,
		Flags: service.FlagNoLibwrap,
	}
}

func ap(s string) netip.AddrPort {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 40000)
	}
	return netip.MustParseAddrPort(s)
}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// fakeResolver answers from a hosts-file style table. PTR answers may be
// forged by listing a name in ptr that does not resolve back.
type fakeResolver struct {
	mu      sync.Mutex
	ptr     map[netip.Addr][]string
	fwd     map[string][]netip.Addr
	block   map[netip.Addr]bool // LookupAddr waits for ctx to end
	fail    map[netip.Addr]bool // LookupAddr returns a temporary error
	ptrHits atomic.Int64
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{ptr: map[netip.Addr][]string{}, fwd: map[string][]netip.Addr{},
		block: map[netip.Addr]bool{}, fail: map[netip.Addr]bool{}}
}

// hosts loads /etc/hosts lines: the first name is the canonical (PTR) name.
func (f *fakeResolver) hosts(text string) *fakeResolver {
	for _, line := range strings.Split(text, "\n") {
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		a := netip.MustParseAddr(fs[0])
		f.ptr[a] = append(f.ptr[a], fs[1])
		for _, n := range fs[1:] {
			f.fwd[strings.ToLower(n)] = append(f.fwd[strings.ToLower(n)], a)
		}
	}
	return f
}

func (f *fakeResolver) LookupAddr(ctx context.Context, a netip.Addr) ([]string, error) {
	f.ptrHits.Add(1)
	f.mu.Lock()
	names, blk, fl := f.ptr[a], f.block[a], f.fail[a]
	f.mu.Unlock()
	if blk {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if fl {
		return nil, context.DeadlineExceeded
	}
	if len(names) == 0 {
		return nil, ErrNotFound
	}
	return names, nil
}

func (f *fakeResolver) LookupHost(ctx context.Context, name string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a := f.fwd[strings.ToLower(strings.TrimSuffix(name, "."))]; len(a) > 0 {
		return a, nil
	}
	return nil, ErrNotFound
}

// notes collects Notify messages.
type notes struct {
	mu  sync.Mutex
	msg []string
}

func (n *notes) add(level, msg string) {
	n.mu.Lock()
	n.msg = append(n.msg, level+": "+msg)
	n.mu.Unlock()
}

func (n *notes) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msg...)
}

func (n *notes) count(sub string) int {
	c := 0
	for _, m := range n.all() {
		if strings.Contains(m, sub) {
			c++
		}
	}
	return c
}

// newEngine returns an engine with empty tcp_wrappers tables in a temp dir.
func newEngine(t testing.TB, g Global, svcs ...*service.Service) (*Engine, *notes) {
	t.Helper()
	dir := t.TempDir()
	if g.HostsAllow == "" {
		g.HostsAllow = filepath.Join(dir, "hosts.allow")
	}
	if g.HostsDeny == "" {
		g.HostsDeny = filepath.Join(dir, "hosts.deny")
	}
	n := &notes{}
	if g.Notify == nil {
		g.Notify = n.add
	}
	if g.Resolver == nil {
		g.Resolver = newFakeResolver()
	}
	e := New(g)
	e.Configure(svcs)
	return e, n
}

func writeFile(t testing.TB, path, data string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// netipAddrFrom returns the IPv4 address v with a fixed port.
func netipAddrFrom(v uint32) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 40000)
}
