package parser

import (
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestProxyAttributes runs the PROXY protocol attributes through good and
// bad values and the rules that tie them to the rest of an entry.
func TestProxyAttributes(t *testing.T) {
	accepted, rejected := service.StatusAccepted, service.StatusRejected
	redirect := "service r\n{\n type = UNLISTED\n socket_type = stream\n port = 5000\n wait = no\n user = root\n redirect = 127.0.0.1 80\n%s}\n"
	for _, c := range []struct {
		name, text string
		status     service.Status
		code       string
		check      func(*service.Service) bool
	}{
		{"both versions", svcWith("proxy_protocol = v1 v2", "proxy_from = 10.0.0.0/8 192.0.2.7"), accepted, "",
			func(s *service.Service) bool {
				return s.ProxyProtocol == service.ProxyV1|service.ProxyV2 && len(s.ProxyFrom.Entries) == 2 && s.ProxyTimeout == 0
			}},
		{"v2 only, upper case", svcWith("proxy_protocol = V2", "proxy_from = 127.0.0.1"), accepted, "",
			func(s *service.Service) bool { return s.ProxyProtocol == service.ProxyV2 }},
		{"bad version", svcWith("proxy_protocol = v3", "proxy_from = 127.0.0.1"), rejected, CodeAttrValue, nil},
		{"no version", svcWith("proxy_protocol =", "proxy_from = 127.0.0.1"), rejected, CodeAttrCount, nil},
		{"no proxy_from", svcWith("proxy_protocol = v1"), rejected, CodeEntry, nil},
		{"empty proxy_from", svcWith("proxy_protocol = v1", "proxy_from ="), accepted, WarnObsolete, nil},
		{"proxy_from names", svcWith("proxy_protocol = v2", "proxy_from = 10.1.{2,3} .example.com"), accepted, "",
			func(s *service.Service) bool { return len(s.ProxyFrom.Entries) == 3 }},
		{"proxy_from bad address", svcWith("proxy_protocol = v2", "proxy_from = 300.1.1.1/8"), rejected, CodeAttrValue, nil},
		{"proxy_from alone", svcWith("proxy_from = 127.0.0.1"), accepted, WarnObsolete, nil},
		{"proxy_timeout", svcWith("proxy_protocol = v1", "proxy_from = 127.0.0.1", "proxy_timeout = 10"), accepted, "",
			func(s *service.Service) bool { return s.ProxyTimeout == 10 }},
		{"proxy_timeout zero", svcWith("proxy_protocol = v1", "proxy_from = 127.0.0.1", "proxy_timeout = 0"), rejected, CodeAttrValue, nil},
		{"proxy_timeout word", svcWith("proxy_protocol = v1", "proxy_from = 127.0.0.1", "proxy_timeout = soon"), rejected, CodeAttrValue, nil},
		{"proxy_timeout alone", svcWith("proxy_timeout = 5"), accepted, WarnObsolete, nil},
		{"wait = yes server", strings.Replace(svcWith("proxy_protocol = v1", "proxy_from = 127.0.0.1"), "wait = no", "wait = yes", 1), rejected, CodeEntry, nil},
		{"wait = yes builtin", "service echo\n{\n type = INTERNAL\n socket_type = stream\n wait = yes\n proxy_protocol = v2\n proxy_from = 127.0.0.1\n}\n", accepted, "", nil},
		{"dgram", "service echo\n{\n type = INTERNAL\n socket_type = dgram\n wait = yes\n proxy_protocol = v2\n proxy_from = 127.0.0.1\n}\n", rejected, CodeEntry, nil},
		{"tcpmux client", "service mux\n{\n type = UNLISTED TCPMUX\n socket_type = stream\n wait = no\n user = root\n server = /bin/cat\n proxy_protocol = v1\n proxy_from = 127.0.0.1\n}\n", rejected, CodeEntry, nil},
		{"redirect out v1", strings.Replace(redirect, "%s", " redirect_proxy_protocol = v1\n", 1), accepted, "",
			func(s *service.Service) bool { return s.RedirectProxyProtocol == 1 }},
		{"redirect out v2, in and out", strings.Replace(redirect, "%s", " redirect_proxy_protocol = 2\n proxy_protocol = v2\n proxy_from = 10.0.0.1\n", 1), accepted, "",
			func(s *service.Service) bool {
				return s.RedirectProxyProtocol == 2 && s.ProxyProtocol == service.ProxyV2
			}},
		{"redirect out both", strings.Replace(redirect, "%s", " redirect_proxy_protocol = v1 v2\n", 1), rejected, CodeAttrCount, nil},
		{"redirect out bad", strings.Replace(redirect, "%s", " redirect_proxy_protocol = yes\n", 1), rejected, CodeAttrValue, nil},
		{"redirect out without redirect", svcWith("redirect_proxy_protocol = v2"), rejected, CodeEntry, nil},
		{"defaults", "defaults\n{\n proxy_from = 10.0.0.0/8\n proxy_timeout = 7\n}\n" +
			svcWith("proxy_protocol = v2", "proxy_from += 192.0.2.1"), accepted, "",
			func(s *service.Service) bool {
				return len(s.ProxyFrom.Entries) == 2 && s.ProxyTimeout == 7 && s.Origins.At("proxy_timeout").Origin == "defaults"
			}},
		{"defaults overridden", "defaults\n{\n proxy_from = 10.0.0.0/8\n proxy_timeout = 7\n}\n" +
			svcWith("proxy_protocol = v2", "proxy_from = 192.0.2.1", "proxy_timeout = 1"), accepted, "",
			func(s *service.Service) bool {
				return len(s.ProxyFrom.Entries) == 1 && s.ProxyFrom.Entries[0].Text == "192.0.2.1" && s.ProxyTimeout == 1
			}},
		{"defaults give proxy_from, unused quietly", "defaults\n{\n proxy_from = 10.0.0.0/8\n}\n" + svcWith(), accepted, "",
			func(s *service.Service) bool { return s.ProxyProtocol == 0 }},
		{"proxy_protocol not in defaults", "defaults\n{\n proxy_protocol = v1\n}\n" + svcWith(), accepted, CodeAttrDefaults, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := parseText(t, c.text)
			s := cfg.Services[len(cfg.Services)-1]
			if s.Status != c.status {
				t.Fatalf("status %s, want %s\n%v", s.Status, c.status, cfg.Diags)
			}
			if c.code != "" && !hasCode(cfg.Diags, c.code) {
				t.Errorf("no %s among %v", c.code, cfg.Diags)
			}
			if c.code == "" && len(cfg.Diags) > 0 {
				t.Errorf("unexpected diagnostics: %v", cfg.Diags)
			}
			if c.check != nil && !c.check(s) {
				t.Errorf("check failed: %+v", s)
			}
		})
	}
}
