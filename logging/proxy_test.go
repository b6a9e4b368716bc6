package logging

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestProxyField: a connection that came through a PROXY protocol
// balancer logs the real client as the remote end and the balancer as
// "proxy": in the structured formats on every record that names the
// client, in the xinetd format only after START's from=, never in FAIL
// lines, which fail2ban's xinetd filter matches to the end of the line.
func TestProxyField(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	svc := &service.Service{Name: "imap", ID: "imap", LogOnSuccess: sHost | sPID, LogOnFailure: fHost}
	client, local, lb := ap("192.0.2.10:40000"), ap("198.51.100.1:143"), ap("10.0.0.2:51000")
	start := Record{Event: EventStart, Time: at, Service: svc, PID: 7, Remote: client, Local: local, Proxy: lb}
	fail := Record{Event: EventFail, Time: at, Service: svc, Reason: "address", Remote: client, Local: local, Proxy: lb}

	if got := string(FormatXinetd(nil, &start)); got != "START: imap pid=7 from=192.0.2.10 proxy=10.0.0.2" {
		t.Errorf("xinetd START: %q", got)
	}
	got := string(FormatXinetd(nil, &fail))
	if got != "FAIL: imap address from=192.0.2.10" {
		t.Errorf("xinetd FAIL: %q", got)
	}
	// fail2ban's filter.d/xinetd-fail.conf failregex, after its prefix.
	f2b := regexp.MustCompile(`^FAIL: \S+ address from=(?P<host>\S+)$`)
	if m := f2b.FindStringSubmatch(got); m == nil || m[1] != "192.0.2.10" {
		t.Errorf("fail2ban's filter does not find the client in %q", got)
	}
	// Without HOST, START says nothing about either address.
	quiet := start
	quiet.Service = &service.Service{Name: "imap", ID: "imap", LogOnSuccess: sPID}
	if got := string(FormatXinetd(nil, &quiet)); got != "START: imap pid=7" {
		t.Errorf("xinetd START without HOST: %q", got)
	}

	for _, r := range []Record{start, fail} {
		lf := string(FormatLogfmt(nil, &r))
		if !strings.Contains(lf, " remote=192.0.2.10 remote_port=40000 local=198.51.100.1 proxy=10.0.0.2 proxy_port=51000") {
			t.Errorf("logfmt %s: %q", r.Event, lf)
		}
		var v map[string]any
		if err := json.Unmarshal(FormatJSON(nil, &r), &v); err != nil {
			t.Fatal(err)
		}
		if v["remote"] != "192.0.2.10" || v["proxy"] != "10.0.0.2" || v["proxy_port"] != float64(51000) {
			t.Errorf("JSON %s: %v", r.Event, v)
		}
	}
	// Not proxied: no proxy field at all.
	direct := start
	direct.Proxy = netip.AddrPort{}
	if lf := string(FormatLogfmt(nil, &direct)); strings.Contains(lf, "proxy") {
		t.Errorf("direct connection: %q", lf)
	}
	if x := string(FormatXinetd(nil, &direct)); strings.Contains(x, "proxy") {
		t.Errorf("direct connection: %q", x)
	}
}
