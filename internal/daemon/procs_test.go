package daemon

import (
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/spawn"
)

func TestWantsMoreProcs(t *testing.T) {
	echo := &service.Service{ID: "echo", Type: service.TypeInternal, Builtin: "echo"}
	redirect := &service.Service{ID: "web", Redirect: &service.Redirect{Host: "127.0.0.1", Port: 80}}
	server := &service.Service{ID: "ftp", Server: "/usr/sbin/in.ftpd"}
	cases := []struct {
		name string
		svcs []*service.Service
		want bool
	}{
		{"none", nil, false},
		{"builtins only", []*service.Service{echo}, false},
		{"a redirect", []*service.Service{echo, redirect}, true},
		{"a server", []*service.Service{echo, server}, spawn.StartHoldsProc},
	}
	for _, c := range cases {
		if got := wantsMoreProcs(c.svcs); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
