package parser

import (
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestBindTemplate: go-sockaddr templates as bind values. The loopback
// interface is the one every host (and every CI sandbox) has.
func TestBindTemplate(t *testing.T) {
	const lo = `{{ GetAllInterfaces | include "name" "^lo$" | join "address" " " }}`
	accepted, rejected := service.StatusAccepted, service.StatusRejected
	svcOn := func(port, bind string) string {
		return strings.Replace(svcWith("bind = "+bind), "port = 5000", "port = "+port, 1)
	}
	for _, c := range []struct {
		name, text string
		status     service.Status
		code, msg  string
		check      func(*service.Service) bool
	}{
		{"loopback", svcWith("bind = " + lo), accepted, NoticeBindTemplate, "bind template gives 127.0.0.1 ::1 on this host",
			func(s *service.Service) bool {
				return s.Bind.Template == lo && s.Bind.Text == lo && !s.Bind.Addr.IsValid() && s.Bind.Interface == "" && s.Family == service.FamilyDual
			}},
		{"blanks kept as one value", svcWith(`bind = {{GetAllInterfaces|include "name" "^lo$"|include "type" "IPv4"|attr "address"}}`), accepted,
			NoticeBindTemplate, "gives 127.0.0.1 on", nil},
		{"interface synonym", svcWith("interface = " + lo), accepted, NoticeBindTemplate, "", nil},
		{"unknown function", svcWith("bind = {{ GetNothing }}"), rejected, CodeAttrValue, `function "GetNothing" not defined`, nil},
		{"unclosed", svcWith("bind = {{ GetPrivateIP "), rejected, CodeAttrValue, "bad bind template", nil},
		{"gives nothing here", svcWith(`bind = {{ GetAllInterfaces | include "name" "^nosuch0$" | join "address" " " }}`), accepted,
			WarnInterface, "gives no address on this host now", nil},
		{"gives a name, not an address", svcWith(`bind = {{ GetAllInterfaces | include "name" "^lo$" | attr "name" }}`), accepted,
			WarnInterface, `fails on this host now (the template gives "lo", which is not an address)`, nil},
		{"two words without a template", svcWith("bind = 127.0.0.1 127.0.0.2"), rejected, CodeAttrCount, "", nil},
		{"from defaults", "defaults\n{\n bind = " + lo + "\n}\n" + svcWith(), accepted, NoticeBindTemplate, "",
			func(s *service.Service) bool {
				return s.Bind.Template == lo && s.Origins.At("bind").Origin == "defaults"
			}},
		{"same template, same port", svcOn("5000", lo) + strings.Replace(svcOn("5000", lo), "service test", "service test2", 1), rejected,
			CodeDuplicate, "", nil},
		{"other template, same port", svcOn("5000", lo) + strings.Replace(svcOn("5000", "{{ GetPrivateIP }}"), "service test", "service test2", 1),
			accepted, "", "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := parseText(t, c.text)
			s := cfg.Services[len(cfg.Services)-1]
			if s.Status != c.status {
				t.Fatalf("status %s, want %s\n%v", s.Status, c.status, cfg.Diags)
			}
			if c.code != "" {
				found := false
				for _, d := range cfg.Diags {
					if d.Code == c.code && strings.Contains(d.Msg, c.msg) {
						found = true
					}
				}
				if !found {
					t.Errorf("no %s %q among\n%v", c.code, c.msg, cfg.Diags)
				}
			}
			if c.check != nil && !c.check(s) {
				t.Errorf("check failed: %+v", s.Bind)
			}
		})
	}
}

func TestBindTemplateAddrs(t *testing.T) {
	addrs, err := BindTemplateAddrs(`{{ GetAllInterfaces | include "name" "^lo$" | join "address" " " }} 127.0.0.1 [::1] 10.1.2.3/8`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.String())
	}
	// Sorted, without duplicates, prefixes reduced to their address.
	if strings.Join(got, " ") != "10.1.2.3 127.0.0.1 ::1" {
		t.Errorf("got %v", got)
	}
	if _, err := BindTemplateAddrs(`{{ "not-an-address" }}`); err == nil {
		t.Error("a word that is not an address must be an error")
	}
}
