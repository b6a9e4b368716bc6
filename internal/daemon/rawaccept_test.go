package daemon

import (
	"testing"

	"github.com/gxinetd/gxinetd/access"
	"github.com/gxinetd/gxinetd/access/tcpwrap"
	"github.com/gxinetd/gxinetd/internal/service"
)

func TestRawAcceptable(t *testing.T) {
	ext := &service.Service{SocketType: service.SockStream, Server: "/bin/cat"}
	cases := []struct {
		name string
		svc  *service.Service
		want bool
	}{
		{"external nowait", ext, true},
		{"external wait hands over the listener", &service.Service{SocketType: service.SockStream, Wait: true}, false},
		{"daytime writes and closes", &service.Service{SocketType: service.SockStream, Type: service.TypeInternal, Builtin: "daytime"}, true},
		{"time writes and closes", &service.Service{SocketType: service.SockStream, Type: service.TypeInternal, Builtin: "time"}, true},
		{"echo reads: needs the poller", &service.Service{SocketType: service.SockStream, Type: service.TypeInternal, Builtin: "echo"}, false},
		{"redirect proxies from the descriptor", &service.Service{SocketType: service.SockStream, Redirect: &service.Redirect{Host: "127.0.0.1", Port: 1}}, true},
		{"datagrams", &service.Service{SocketType: service.SockDgram}, false},
		{"unix sockets", &service.Service{SocketType: service.SockStream, Family: service.FamilyUnix}, false},
	}
	for _, c := range cases {
		if got := rawAcceptable(c.svc); got != c.want {
			t.Errorf("%s: rawAcceptable = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNeedsConn(t *testing.T) {
	plain := access.Decision{Allow: true}
	if needsConn(&service.Service{}, &plain) {
		t.Error("a plain allowed request needs no net.Conn")
	}
	for name, s := range map[string]*service.Service{
		"banner_success": {BannerSuccess: "/x"},
		"banner":         {Banner: "/x"},
		"ident":          {LogOnSuccess: service.LogSuccessUserID},
	} {
		if !needsConn(s, &plain) {
			t.Errorf("%s must take the full path", name)
		}
	}
	wrapped := access.Decision{Allow: true, Wrap: &tcpwrap.Action{Twist: "echo no"}}
	if !needsConn(&service.Service{}, &wrapped) {
		t.Error("tcp_wrappers actions must take the full path")
	}
}
