package inetd

import (
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestProxyOptions: the PROXY protocol attributes as options of the
// protocol field, and the same whole-entry rules as in xinetd.conf.
func TestProxyOptions(t *testing.T) {
	db := testDB(t)
	for _, tc := range []struct {
		line   string
		status service.Status
		check  func(*service.Service) bool
	}{
		{"ftp stream tcp,proxy_protocol=v1,proxy_protocol=v2,proxy_from=10.0.0.0/8,proxy_from=192.0.2.7,proxy_timeout=9 nowait root /usr/sbin/x x",
			service.StatusAccepted, func(s *service.Service) bool {
				return s.ProxyProtocol == service.ProxyV1|service.ProxyV2 && s.ProxyTimeout == 9 && len(s.ProxyFrom.Entries) == 2 &&
					s.ProxyFrom.Entries[0].Prefix.String() == "10.0.0.0/8" && s.ProxyFrom.Entries[1].Prefix.String() == "192.0.2.7/32" &&
					s.Origins.At("proxy_from").Line == 1
			}},
		{"echo stream tcp6,proxy_protocol=2,proxy_from=2001:db8::/32 nowait root internal", service.StatusAccepted,
			func(s *service.Service) bool { return s.ProxyProtocol == service.ProxyV2 && s.Builtin == "echo" }},
		{"echo stream tcp,proxy_protocol=v2,proxy_from=127.0.0.1 wait root internal", service.StatusAccepted, nil},
		{"ftp stream tcp,proxy_protocol=v3,proxy_from=127.0.0.1 nowait root /usr/sbin/x x", service.StatusRejected, nil},
		{"ftp stream tcp,proxy_protocol=v1 nowait root /usr/sbin/x x", service.StatusRejected, nil},
		{"ftp stream tcp,proxy_from=127.0.0.1 nowait root /usr/sbin/x x", service.StatusRejected, nil},
		{"ftp stream tcp,proxy_protocol=v1,proxy_from=host.example nowait root /usr/sbin/x x", service.StatusRejected, nil},
		{"ftp stream tcp,proxy_protocol=v1,proxy_from=127.0.0.1,proxy_timeout=0 nowait root /usr/sbin/x x", service.StatusRejected, nil},
		{"ftp stream tcp,proxy_protocol=v1,proxy_from=127.0.0.1 wait root /usr/sbin/x x", service.StatusRejected, nil},
		{"tftp dgram udp,proxy_protocol=v2,proxy_from=127.0.0.1 wait root /usr/sbin/x x", service.StatusRejected, nil},
		{"ftp stream tcp,proxy_colour=v1 nowait root /usr/sbin/x x", service.StatusRejected, nil},
	} {
		svcs, diags := Parse("t.conf", []byte(tc.line+"\n"), Options{Sys: db, Dialect: "linux"})
		if len(svcs) != 1 {
			t.Fatalf("%s: %d services\n%v", tc.line, len(svcs), diags)
		}
		s := svcs[0]
		if s.Status != tc.status {
			t.Errorf("%s: status %s, want %s\n%v", tc.line, s.Status, tc.status, diags)
			continue
		}
		if tc.status == service.StatusRejected && !hasCode(diags, CodeProtoOpt) {
			t.Errorf("%s: no %s among %v", tc.line, CodeProtoOpt, diags)
		}
		if tc.check != nil && !tc.check(s) {
			t.Errorf("%s: check failed: %+v", tc.line, s)
		}
	}
}
