package access

import (
	"path/filepath"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestInstant: a decision may be made on a goroutine that must not block
// only when nothing in it can look up a name or run a tcp_wrappers
// action.
func TestInstant(t *testing.T) {
	dir := t.TempDir()
	rules := writeFile(t, filepath.Join(dir, "hosts.allow"), "daytime: 10.0.0.0/8\n")
	names := writeFile(t, filepath.Join(dir, "hosts.names"), "daytime: .example.org\n")
	empty := writeFile(t, filepath.Join(dir, "hosts.empty"), "# nothing\n")
	daytime := func(edit func(s *service.Service)) *service.Service {
		s := svc("daytime")
		s.Flags = 0
		s.Type = service.TypeInternal
		s.Server, s.Argv = "", nil
		if edit != nil {
			edit(s)
		}
		return s
	}
	cases := []struct {
		name  string
		allow string
		svc   *service.Service
		want  bool
	}{
		{"addresses only", empty, daytime(func(s *service.Service) { s.OnlyFrom = list(t, true, "127.0.0.1", "10.0.0.0/8") }), true},
		{"a host name in only_from", empty, daytime(func(s *service.Service) { s.OnlyFrom = list(t, true, "localhost") }), false},
		{"a domain in no_access", empty, daytime(func(s *service.Service) { s.NoAccess = list(t, true, ".example.org") }), false},
		{"hosts.allow has a rule for it", rules, daytime(nil), false},
		{"hosts.allow names a domain", names, daytime(nil), false},
		{"hosts.allow has a rule, NOLIBWRAP", rules, daytime(func(s *service.Service) { s.Flags = service.FlagNoLibwrap }), true},
	}
	for _, c := range cases {
		e, _ := newEngine(t, Global{HostsAllow: c.allow, HostsDeny: filepath.Join(dir, "none")}, c.svc)
		if got := e.Instant(c.svc); got != c.want {
			t.Errorf("%s: Instant = %v, want %v", c.name, got, c.want)
		}
	}
}
