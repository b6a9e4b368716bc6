package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConvertClient(t *testing.T) {
	tests := []struct{ in, want, why string }{
		{"ALL", "", ""},
		{"192.168.1.", "192.168.1.0/24", ""},
		{"10.", "10.0.0.0/8", ""},
		{"10.0.0.0/255.0.0.0", "10.0.0.0/8", ""},
		{"10.0.0.0/8", "10.0.0.0/8", ""},
		{"10.1.2.0", "10.1.2.0/32", ""}, // an exact host for tcp_wrappers, a /24 for xinetd without /32
		{"10.1.2.3", "10.1.2.3", ""},
		{"[2001:db8::]/32", "2001:db8::/32", ""},
		{"[::1]", "::1", ""},
		{".example.com", ".example.com", ""},
		{"Host.Example.com", "host.example.com", ""},
		{"LOCAL", "", "name resolution"},
		{"KNOWN", "", "name resolution"},
		{"@admins", "", "netgroup"},
		{"/etc/trusted", "", "pattern file"},
		{"root@host", "", "ident"},
		{"*.example.com", "", "wildcard"},
		{"10.0.0.0/255.0.255.0", "", "not understood"},
		{"10.0.0.1/8", "", "not understood"},
	}
	for _, tc := range tests {
		c, why := convertClient(tc.in)
		if tc.why != "" {
			if !strings.Contains(why, tc.why) {
				t.Errorf("%s: why = %q, want it to mention %q", tc.in, why, tc.why)
			}
			continue
		}
		if why != "" {
			t.Errorf("%s: refused: %s", tc.in, why)
			continue
		}
		if tc.want == "" {
			if !c.all {
				t.Errorf("%s: want ALL", tc.in)
			}
			continue
		}
		if got := c.xinetd(); got != tc.want {
			t.Errorf("%s -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestConvertRules(t *testing.T) {
	tests := []struct {
		name, allow, deny, daemon string
		only, no                  string // "-" = unset
		problem                   string
	}{
		{"no rules", "", "", "d", "-", "-", ""},
		{"whitelist", "d: 10.0.0.0/8 192.0.2.1\n", "ALL: ALL\n", "d", "10.0.0.0/8 192.0.2.1", "-", ""},
		{"whitelist with except", "d: 10. EXCEPT 10.1.\n", "d: ALL\n", "d", "10.0.0.0/8", "10.1.0.0/16", ""},
		{"blacklist", "", "d: 192.0.2.0/24\n", "d", "-", "192.0.2.0/24", ""},
		{"deny all except", "", "d: ALL EXCEPT 127.0.0.1\n", "d", "127.0.0.1", "-", ""},
		{"allow all", "d: ALL\n", "ALL: ALL\n", "d", "-", "-", ""},
		{"other daemon", "x: 10.\n", "x: ALL\n", "d", "-", "-", ""},
		{"daemon except", "", "ALL EXCEPT d: ALL\n", "d", "-", "-", ""},
		{"deny everyone", "", "ALL: ALL\n", "d", "", "-", ""},
		{"allow option deny", "d: 192.0.2.1 : deny\n", "", "d", "-", "192.0.2.1", ""},
		{"overlap", "d: 10.1.\n", "d: 10.\n", "d", "", "", "allowed by an earlier rule"},
		{"spawn", "", "d: ALL : spawn echo %h\n", "d", "", "", "runs a shell command"},
		{"twist", "d: 10. : twist /bin/echo no\n", "", "d", "", "", "replaces the server"},
		{"daemon at host", "d@192.0.2.1: ALL\n", "", "d", "", "", "daemon@host"},
		{"except outside", "d: 10. EXCEPT 11.\n", "ALL: ALL\n", "d", "", "", "not inside"},
		{"deny except", "", "d: 10. EXCEPT 10.1.\n", "d", "", "", "most-specific"},
		{"allow after deny", "d: 10. : deny\nd: 11.\n", "", "d", "", "", "after a deny"},
		{"nested except", "d: 10. EXCEPT 10.1. EXCEPT 10.1.1.\n", "", "d", "", "", "nested EXCEPT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a, d := filepath.Join(dir, "allow"), filepath.Join(dir, "deny")
			if err := os.WriteFile(a, []byte(tc.allow), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(d, []byte(tc.deny), 0o644); err != nil {
				t.Fatal(err)
			}
			ra, err := readHosts(a, true)
			if err != nil {
				t.Fatal(err)
			}
			rd, err := readHosts(d, false)
			if err != nil {
				t.Fatal(err)
			}
			acc := convertRules(append(ra, rd...), tc.daemon)
			if tc.problem != "" {
				if !strings.Contains(strings.Join(acc.problems, "\n"), tc.problem) {
					t.Errorf("problems %q, want one about %q", acc.problems, tc.problem)
				}
				return
			}
			if len(acc.problems) > 0 {
				t.Fatalf("unexpected problems: %q", acc.problems)
			}
			only := "-"
			if acc.onlySet {
				only = strings.Join(acc.onlyFrom, " ")
			}
			no := "-"
			if len(acc.noAccess) > 0 {
				no = strings.Join(acc.noAccess, " ")
			}
			if only != tc.only || no != tc.no {
				t.Errorf("only_from %q no_access %q, want %q %q", only, no, tc.only, tc.no)
			}
		})
	}
}

func TestReadHostsContinuationAndEscapes(t *testing.T) {
	f := filepath.Join(t.TempDir(), "h")
	text := "# comment\nd1, d2 : 10. \\\n  11. : severity auth.info : allow\n[::1]:x: ALL\n"
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := readHosts(f, false)
	if err != nil || len(rs) != 2 {
		t.Fatalf("%v %v", rs, err)
	}
	r := rs[0]
	if r.line != 2 || !r.allow || strings.Join(r.daemons, ",") != "d1,d2" || strings.Join(r.clients, ",") != "10.,11." ||
		len(r.opts) != 1 || r.opts[0] != "severity auth.info" {
		t.Errorf("rule 1: %+v", r)
	}
	if rs[1].daemons[0] != "[::1]" || rs[1].clients[0] != "x" {
		t.Errorf("brackets: %+v", rs[1])
	}
	if rs, err := readHosts(filepath.Join(t.TempDir(), "missing"), true); err != nil || rs != nil {
		t.Errorf("missing file is empty: %v %v", rs, err)
	}
}
