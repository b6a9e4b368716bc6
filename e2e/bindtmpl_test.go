package e2e

// bind = {{ go-sockaddr template }}: one configuration for a fleet whose
// hosts' addresses differ (GitHub issue 16).

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestBindTemplateLoopback: a template that gives the loopback addresses
// is listened on, on those addresses only, and -t says what it gives.
func TestBindTemplateLoopback(t *testing.T) {
	ports := freePorts(t, 2)
	dir := newDir(t)
	tmpl := `{{ GetAllInterfaces | include "name" "^lo$" | include "type" "IPv4" | join "address" " " }}`
	conf := baseDefaults + daytimeSvc("tmpl", "{{P0}}", "\tbind = "+tmpl) +
		daytimeSvc("wild", "{{P1}}", "")
	path := render(t, dir, conf, ports)
	out, err := exec.Command(gxinetd, "-t", "-f", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "notice N-BIND-TEMPLATE: service tmpl: bind: bind template gives 127.0.0.1 on this host") {
		t.Fatalf("-t: %v\n%s", err, out)
	}
	d := start(t, dir, path)
	if !reachable(t, fmt.Sprintf("127.0.0.1:%d", ports[0])) {
		t.Fatalf("template bind does not serve 127.0.0.1:\n%s", d.daemonLog())
	}
	// Only what the template gave: not the other loopback addresses.
	if reachable(t, fmt.Sprintf("127.0.0.2:%d", ports[0])) {
		t.Error("template bind listens beyond the template's addresses")
	}
	if !reachable(t, fmt.Sprintf("127.0.0.2:%d", ports[1])) {
		t.Error("a service without bind must listen everywhere")
	}
}

// TestBindTemplateFollowsAddresses: inside a network namespace of the
// test's own, the template's result changes with the interface's
// addresses, and the listeners follow, with a log line each way.
func TestBindTemplateFollowsAddresses(t *testing.T) {
	ns := netnsSetup(t, "10.214.0.1")
	ports := freePorts(t, 1)
	dir := newDir(t)
	tmpl := `{{ GetAllInterfaces | include "network" "10.214.0.0/16" | join "address" " " }}`
	conf := baseDefaults + daytimeSvc("fleet", "{{P0}}", "\tbind = "+tmpl)
	path := render(t, dir, conf, ports)
	out, err := exec.Command("ip", "netns", "exec", ns, gxinetd, "-t", "-f", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "bind template gives 10.214.0.1 on this host") {
		t.Fatalf("-t in the namespace: %v\n%s", err, out)
	}
	d := startInNS(t, ns, dir, path)
	at := func(a string) string { return fmt.Sprintf("%s:%d", a, ports[0]) }
	if got, err := daytimeInNS(ns, at("10.214.0.1")); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("template address not served: %q, %v\n%s", got, err, d.daemonLog())
	}
	if _, err := daytimeInNS(ns, at("127.0.0.1")); err == nil {
		t.Fatal("listening beyond the template's addresses")
	}
	ipNS(t, ns, "addr", "add", "10.214.0.2/32", "dev", "gxt0")
	d.waitLog(`service fleet: bind template \{\{.*\}\} now gives 10\.214\.0\.1 10\.214\.0\.2; listening on`, 10*time.Second)
	if got, err := daytimeInNS(ns, at("10.214.0.2")); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("new address not served: %q, %v", got, err)
	}
	ipNS(t, ns, "addr", "del", "10.214.0.2/32", "dev", "gxt0")
	d.waitLog(`service fleet: address tcp/10\.214\.0\.2:\d+ is no longer given by bind template`, 10*time.Second)
	if _, err := daytimeInNS(ns, at("10.214.0.2")); err == nil {
		t.Error("a vanished address is still served")
	}
	// Nothing left: the service waits, and comes back.
	ipNS(t, ns, "addr", "del", "10.214.0.1/32", "dev", "gxt0")
	d.waitLog(`address tcp/10\.214\.0\.1:\d+ is no longer given by bind template`, 10*time.Second)
	ipNS(t, ns, "addr", "add", "10.214.1.9/32", "dev", "gxt0")
	d.waitLog(`now gives 10\.214\.1\.9; listening on`, 10*time.Second)
	if got, err := daytimeInNS(ns, at("10.214.1.9")); err != nil || !dayTimeRE.MatchString(got) {
		t.Fatalf("address added after all were gone not served: %q, %v", got, err)
	}
}
