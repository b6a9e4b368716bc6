package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestFleetRecipe runs the recipe of docs/fleet.md (examples/fleet/) on
// loopback: haproxy from examples/fleet/haproxy.cfg in front of two
// gxinetd "hosts" running examples/fleet/gxinetd.conf, checked first as
// the recipe's Ansible task does (gxinetd -t -f), and scraped as its
// Prometheus job does. What differs from the files is only what must: the
// hosts' and balancer's addresses become 127.0.0.1 and test ports, the
// two hosts get different ports (they share one machine here), the
// template names the loopback interface, the server is a script, the log
// a file, and haproxy balances round-robin so that both hosts serve.
func TestFleetRecipe(t *testing.T) {
	needCmd(t, "haproxy")
	ports := freePorts(t, 7)
	front := ports[0]
	dir := newDir(t)
	lgScript(t, filepath.Join(dir, "envcat.sh"), "env\necho ---\nexec cat")
	raw, err := os.ReadFile("../examples/fleet/gxinetd.conf")
	if err != nil {
		t.Fatal(err)
	}
	type host struct {
		svc, health, metrics int
		conf                 string
		d                    *daemon
	}
	hosts := []*host{{svc: ports[1], health: ports[2], metrics: ports[3]}, {svc: ports[4], health: ports[5], metrics: ports[6]}}
	for i, h := range hosts {
		hdir := filepath.Join(dir, fmt.Sprintf("host%d", i+1))
		os.Mkdir(hdir, 0o755)
		conf := strings.NewReplacer(
			"{{ GetPrivateIP }}", `{{ GetAllInterfaces | include "name" "^lo$" | include "type" "IPv4" | attr "address" }}`,
			"log_type        = SYSLOG daemon info", "log_type        = FILE "+hdir+"/services.json",
			"proxy_from      = 10.0.0.2 10.0.0.3", "proxy_from      = 127.0.0.1",
			"only_from      = 10.0.0.2 10.0.0.3", "only_from      = 127.0.0.1",
			"metrics         = 0.0.0.0:9101", fmt.Sprintf("metrics         = 127.0.0.1:%d", h.metrics),
			"metrics_only_from = 10.0.0.50", "metrics_only_from = 127.0.0.1",
			"no_access      = 198.51.100.0/24", "no_access      = 127.0.0.66",
			"port           = 1143", fmt.Sprintf("port           = %d", h.svc),
			"port           = 1113", fmt.Sprintf("port           = %d", h.health),
			"user           = nobody", "user           = "+currentUser(t),
			"server         = /usr/sbin/imapd", "server         = "+filepath.Join(dir, "envcat.sh"),
		).Replace(string(raw))
		h.conf = filepath.Join(hdir, "gxinetd.conf")
		if err := os.WriteFile(h.conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		// The Ansible task's validate.
		if out, err := exec.Command(gxinetd, "-t", "-f", h.conf).CombinedOutput(); err != nil ||
			!strings.Contains(string(out), "bind template gives 127.0.0.1 on this host") {
			t.Fatalf("gxinetd -t -f (validate): %v\n%s", err, out)
		}
		h.d = start(t, hdir, h.conf)
	}

	hc, err := os.ReadFile("../examples/fleet/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	hcfg := strings.NewReplacer(
		"maxconn 20000", "maxconn 1000", // the test's descriptor limit
		"bind :143", fmt.Sprintf("bind 127.0.0.1:%d", front),
		"balance leastconn", "balance roundrobin",
		"check port 1113 check-send-proxy", "check check-send-proxy",
		"\tserver host1 10.0.0.11:1143\n", fmt.Sprintf("\tserver host1 127.0.0.1:%d port %d\n", hosts[0].svc, hosts[0].health),
		"\tserver host2 10.0.0.12:1143\n", fmt.Sprintf("\tserver host2 127.0.0.1:%d port %d\n", hosts[1].svc, hosts[1].health),
		"\tserver host3 10.0.0.13:1143\n", "",
	).Replace(string(hc))
	if strings.Contains(hcfg, "10.0.0.") {
		t.Fatalf("haproxy.cfg not fully rewritten:\n%s", hcfg)
	}
	startHAProxy(t, dir, hcfg, fmt.Sprintf("127.0.0.1:%d", front))

	// The balancer's health checks reach the builtin with a PROXY header
	// (a LOCAL one: the check's own addresses), on both hosts.
	for _, h := range hosts {
		recs := lgWaitRecords(t, filepath.Join(filepath.Dir(h.conf), "services.json"), "json",
			lgRecord{"event": "START", "id": "fleet-health"}, 15*time.Second)
		if r := lgFind(recs, lgRecord{"event": "START", "id": "fleet-health"})[0]; !lgIsLoopback(r["remote"]) || r["proxy"] != "" {
			t.Errorf("health check record: %v", r)
		}
	}

	// Clients through the balancer: each server sees its own client.
	const n = 10
	for i := 0; i < n; i++ {
		src := fmt.Sprintf("127.0.0.%d", 10+i)
		c, err := dialFrom(src, fmt.Sprintf("127.0.0.1:%d", front))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(15 * time.Second))
		io.WriteString(c, "a001 LOGOUT\n")
		c.(*net.TCPConn).CloseWrite()
		out, _ := io.ReadAll(c)
		c.Close()
		env, echoed, _ := strings.Cut(string(out), "---\n")
		if e := envOf(env); e["REMOTE_HOST"] != src || echoed != "a001 LOGOUT\n" {
			t.Errorf("client %s: server saw %q, read %q", src, e["REMOTE_HOST"], echoed)
		}
	}
	// A client in no_access, refused by whichever host gets it.
	c, err := dialFrom("127.0.0.66", fmt.Sprintf("127.0.0.1:%d", front))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Errorf("client in no_access served: %q", b)
	}
	c.Close()

	// Prometheus: scrape every host.
	served, refused := 0, 0
	metric := func(body, series string) int {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\d+)$`)
		m := re.FindStringSubmatch(body)
		if m == nil {
			return 0
		}
		var v int
		fmt.Sscan(m[1], &v)
		return v
	}
	deadline := waitBound(10 * time.Second)
	for {
		served, refused = 0, 0
		var each []int
		for _, h := range hosts {
			status, body := lgScrape(t, "127.0.0.1", fmt.Sprintf("127.0.0.1:%d", h.metrics))
			if status != 200 {
				t.Fatalf("scrape: %d", status)
			}
			v := metric(body, `gxinetd_connections_total{service="fleet-imap"}`)
			each = append(each, v)
			served += v
			refused += metric(body, `gxinetd_refused_total{service="fleet-imap",reason="address"}`)
		}
		// startHAProxy's check that haproxy listens went through too.
		if (served == n || served == n+1) && refused == 1 && each[0] > 0 && each[1] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics: served %v (want %d over both hosts), refused %d (want 1)", each, n, refused)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
