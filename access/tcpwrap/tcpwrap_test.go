package tcpwrap

import (
	"flag"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// sections splits a test case file into its "-- name --" sections.
func sections(t *testing.T, data string) map[string]string {
	t.Helper()
	out := map[string]string{}
	cur := ""
	for _, line := range strings.SplitAfter(data, "\n") {
		if strings.HasPrefix(line, "-- ") && strings.HasSuffix(strings.TrimSpace(line), " --") {
			cur = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "-- "), " --")
			continue
		}
		out[cur] += line
	}
	return out
}

// parseQuery reads "daemon addr [name=N] [state=paranoid|unknown] [user=U] [local=A]".
func parseQuery(t *testing.T, line string) (string, Client) {
	t.Helper()
	f := strings.Fields(line)
	c := Client{Addr: netip.MustParseAddr(f[1]), Port: 40000, LocalPort: 23}
	name, state := "", NameUnknown
	for _, kv := range f[2:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "name":
			name, state = v, NameKnown
		case "state":
			if v == "paranoid" {
				state = NameParanoid
			} else {
				state = NameUnknown
			}
		case "user":
			c.User = v
		case "local":
			c.Local = netip.MustParseAddr(v)
		default:
			t.Fatalf("bad query word %q", kv)
		}
	}
	c.Lookup = func(netip.Addr) (string, NameState) { return name, state }
	return f[0], c
}

// procText is the golden form of process options.
func procText(p *ProcOptions) string {
	var out []string
	if p.Nice != nil {
		out = append(out, fmt.Sprintf("nice:%d", *p.Nice))
	}
	if p.Umask != nil {
		out = append(out, fmt.Sprintf("umask:%03o", *p.Umask))
	}
	if p.User != "" {
		out = append(out, "user:"+p.User+"."+p.Group)
	}
	for _, e := range p.Env {
		out = append(out, "env:"+e)
	}
	return strings.Join(out, ",")
}

func TestGolden(t *testing.T) {
	// Netgroups come from NSS; the golden answers must not depend on
	// the machine (or on cgo): no host is in any netgroup here.
	old := Netgroup
	t.Cleanup(func() { Netgroup = old })
	Netgroup = func(group, host string) bool { return group == "trusted" && host == "ws1.example.org" }
	cases, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, path := range cases {
		name := strings.TrimSuffix(filepath.Base(path), ".txt")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sec := sections(t, string(data))
			allow, errsA := Parse("hosts.allow", []byte(sec["hosts.allow"]))
			deny, errsD := Parse("hosts.deny", []byte(sec["hosts.deny"]))
			p := &Policy{Allow: allow, Deny: deny}
			var b strings.Builder
			for _, e := range append(errsA, errsD...) {
				fmt.Fprintf(&b, "error %v\n", e)
			}
			for _, q := range strings.Split(strings.TrimSpace(sec["queries"]), "\n") {
				d, c := parseQuery(t, q)
				ok, r := p.Check(d, c)
				verdict := "deny"
				if ok {
					verdict = "allow"
				}
				fmt.Fprintf(&b, "%s => %s", q, verdict)
				if r != nil {
					fmt.Fprintf(&b, " rule=%s", r.Where())
					if a := r.Action(d, c); a != nil {
						fmt.Fprintf(&b, " severity=%q banners=%q file=%q spawn=%q twist=%q", a.Severity, a.Banners, a.BannerFile, a.Spawn, a.Twist)
						if a.Proc != nil {
							fmt.Fprintf(&b, " proc=%s", procText(a.Proc))
						}
						if a.SpawnProc != nil {
							fmt.Fprintf(&b, " spawnproc=%s", procText(a.SpawnProc))
						}
					}
				}
				b.WriteString("\n")
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if b.String() != string(want) {
				t.Fatalf("mismatch for %s:\n--- got\n%s--- want\n%s", name, b.String(), want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	rs, errs := Load(filepath.Join(t.TempDir(), "missing"))
	if len(errs) != 0 || len(rs.Rules) != 0 {
		t.Fatalf("missing file: %v %v", rs, errs)
	}
	rs, errs = Load("testdata/xinetd-17-hosts.deny")
	if len(errs) != 0 || len(rs.Rules) != 3 || rs.Rules[2].Where() != "testdata/xinetd-17-hosts.deny:3" {
		t.Fatalf("sample 17: %+v %v", rs, errs)
	}
	if _, errs := Load(t.TempDir()); len(errs) == 0 {
		t.Fatal("reading a directory should fail")
	}
}

func TestBrokenRuleNeverAllows(t *testing.T) {
	// Every broken line in hosts.allow refuses instead of granting.
	for _, line := range []string{
		"sshd: @", "sshd: 10.0.0.0/33", "sshd: [::1", "sshd: ALL : umask 999", "sshd: ALL : nice x", "sshd: ALL : user",
		"sshd: ALL : bogus", "sshd: ALL : allow : deny", "sshd 10.0.0.1", "sshd: ALL EXCEPT",
		"sshd: ALL : aclexec /bin/true", "sshd: ALL : twist /x : spawn /y",
	} {
		rs, errs := Parse("hosts.allow", []byte(line))
		if len(errs) == 0 {
			t.Errorf("%q: no error", line)
			continue
		}
		if !strings.HasPrefix(errs[0].Error(), "hosts.allow:1: ") {
			t.Errorf("%q: error %q does not name file:line", line, errs[0])
		}
		ok, r := (&Policy{Allow: rs}).Check("sshd", Client{Addr: netip.MustParseAddr("10.0.0.1")})
		if ok || r == nil || r.Broken == nil {
			t.Errorf("%q: allowed=%v rule=%v", line, ok, r)
		}
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true}, {"a*c", "abbbc", true}, {"a*c", "abbb", false}, {"?", "x", true},
		{"?", "", false}, {"*.org", "a.b.org", true}, {"a*b*c", "aXbYc", true}, {"a*b*c", "aXcYb", false},
		{"****x", strings.Repeat("y", 1000), false},
	}
	for _, tc := range tests {
		if got := glob(tc.pat, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %v", tc.pat, tc.s, got)
		}
	}
}

func TestExpandIsShellSafe(t *testing.T) {
	e := &env{daemon: "in.d", client: "192.0.2.1", clientName: "x;rm -rf /`id`$(a)|b", nameState: NameKnown, user: "u'\"\\"}
	got := expand("run %h %u %d %a %% %z end%", e)
	want := "run x_rm_-rf_/_id___a__b u___ in.d 192.0.2.1 %  end%"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	a := &Action{env: *e}
	if a.Expand("hello %d") != "hello in.d" {
		t.Fatal(a.Expand("hello %d"))
	}
}

func TestBannerCRLFAndExpansion(t *testing.T) {
	a := &Action{env: env{daemon: "in.d", client: "192.0.2.1"}}
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"hello %a\n", "hello 192.0.2.1\r\n"},
		{"one\ntwo %d\n", "one\r\ntwo in.d\r\n"},
		{"dos\r\nline\r\n", "dos\r\nline\r\n"},
		{"no end %a", "no end 192.0.2.1"},
		{"\n\n", "\r\n\r\n"},
	} {
		if got := a.Banner(tc.in); got != tc.want {
			t.Errorf("Banner(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSelect(t *testing.T) {
	rs, _ := Parse("t", []byte("a: ALL\nb: ALL\nALL: 10.\nc*: ALL\nb@127.0.0.1: ALL\n"))
	sel := rs.Select("b")
	var lines []int
	for _, r := range sel.Rules {
		lines = append(lines, r.Line)
	}
	if fmt.Sprint(lines) != "[2 3 5]" {
		t.Fatalf("selected %v", lines)
	}
	if (&Policy{Allow: rs}).NeedsNames() {
		t.Fatal("address-only rules need no names")
	}
	rs2, _ := Parse("t", []byte("a: .example.com\n"))
	if !(&Policy{Deny: rs2}).NeedsNames() {
		t.Fatal("domain rule needs names")
	}
}

func FuzzHostsParse(f *testing.F) {
	for _, s := range []string{
		"sshd: 192.168.1.0/255.255.255.0 EXCEPT 192.168.1.1\n",
		"ALL: [::1]/128, .example.com : spawn echo %a\\: %h : allow\n",
		"a\\\n: b\n# c\n",
		"in.telnetd@10.0.0.1: alice@.example.org KNOWN UNKNOWN PARANOID LOCAL\n",
		"x: y : banners /etc/b : severity mail.info : twist /bin/false %%\n",
		"::::\n[:\n]\n",
		"sshd: /pf @ng : nice : umask 022 : user a.b : setenv X %a : spawn x\n",
	} {
		f.Add([]byte(s))
	}
	// Pattern files come from a fixed table, not the disk: one names
	// itself, one another, so nesting and cycles are exercised.
	oldRead := readPatternFile
	f.Cleanup(func() { readPatternFile = oldRead })
	readPatternFile = func(path string) ([]byte, error) {
		switch path {
		case "/pf":
			return []byte("10.0.0.0/8 /pf2 .example.com"), nil
		case "/pf2":
			return []byte("/pf @ng 192.0.2.1"), nil
		}
		return nil, fs.ErrNotExist
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, errs := Parse("f", data)
		lines := strings.Count(string(data), "\n") + 1
		for _, e := range errs {
			pe, ok := e.(*ParseError)
			if !ok || pe.Line < 1 || pe.Line > lines {
				t.Fatalf("error %v outside the input (%d lines)", e, lines)
			}
		}
		for _, r := range rs.Rules {
			if r.Line < 1 || r.Line > lines {
				t.Fatalf("rule at line %d of %d", r.Line, lines)
			}
			if r.Broken == nil && (r.Daemons == nil || r.Clients == nil) {
				t.Fatalf("unbroken rule without lists: %q", r.Text)
			}
		}
		c := Client{Addr: netip.MustParseAddr("192.0.2.1"), User: "u",
			Lookup: func(netip.Addr) (string, NameState) { return "h.example.com", NameKnown }}
		p := &Policy{Allow: rs}
		ok, r := p.Check("sshd", c)
		if r != nil && r.Broken != nil && ok {
			t.Fatal("broken rule allowed")
		}
		if r != nil {
			if a := r.Action("sshd", c); a != nil && strings.ContainsAny(a.Spawn+a.Twist, "\x00") && !strings.Contains(string(data), "\x00") {
				t.Fatal("expansion invented a NUL")
			}
		}
		if sel := rs.Select("sshd"); sel != nil {
			ok2, r2 := (&Policy{Allow: sel}).Check("sshd", c)
			if ok2 != ok || r2 != r {
				t.Fatalf("Select changed the answer: %v/%v vs %v/%v", ok2, r2, ok, r)
			}
		}
	})
}

// TestPatternFiles: a /path pattern matches the host patterns listed in
// the file (nested files too); a file that cannot be read, or a cycle,
// matches nothing, with a warning, as in tcp_wrappers.
func TestPatternFiles(t *testing.T) {
	dir := t.TempDir()
	inner := filepath.Join(dir, "inner")
	outer := filepath.Join(dir, "outer")
	loop := filepath.Join(dir, "loop")
	os.WriteFile(inner, []byte("192.0.2.7\n.example.org\n"), 0o644)
	os.WriteFile(outer, []byte("10.0.0.0/8   "+inner+"\n[2001:db8::]/32\n"), 0o644)
	os.WriteFile(loop, []byte(loop+"\n"), 0o644)
	table := fmt.Sprintf("sshd: %s\nftpd: %s\nmail: ALL EXCEPT %s\n", outer, filepath.Join(dir, "missing"), outer)
	rs, errs := Parse("hosts.allow", []byte(table))
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "missing cannot be read") || !errs[0].(*ParseError).Warning {
		t.Errorf("warnings: %v", errs)
	}
	p := &Policy{Allow: rs, Deny: &Rules{Rules: []*Rule{mustRule(t, "ALL: ALL")}}}
	for _, c := range []struct {
		daemon, addr, name string
		want               bool
	}{
		{"sshd", "10.1.2.3", "", true},
		{"sshd", "192.0.2.7", "", true},
		{"sshd", "198.51.100.1", "www.example.org", true},
		{"sshd", "2001:db8::5", "", true},
		{"sshd", "198.51.100.1", "", false},
		{"ftpd", "10.1.2.3", "", false},
		{"mail", "10.1.2.3", "", false},
		{"mail", "198.51.100.1", "", true},
	} {
		cl := Client{Addr: netip.MustParseAddr(c.addr)}
		cl.Lookup = func(netip.Addr) (string, NameState) {
			if c.name == "" {
				return "", NameUnknown
			}
			return c.name, NameKnown
		}
		if got, _ := p.Check(c.daemon, cl); got != c.want {
			t.Errorf("%s from %s (%s): %v, want %v", c.daemon, c.addr, c.name, got, c.want)
		}
	}
	if files := p.Files(); strings.Join(files, " ") != outer+" "+inner+" "+filepath.Join(dir, "missing") {
		t.Errorf("Files() = %v", files)
	}
	_, errs = Parse("hosts.allow", []byte("sshd: "+loop+"\n"))
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "includes itself") {
		t.Errorf("cycle: %v", errs)
	}
}

func mustRule(t *testing.T, line string) *Rule {
	t.Helper()
	rs, errs := Parse("t", []byte(line))
	if len(errs) != 0 || len(rs.Rules) != 1 {
		t.Fatalf("%q: %v", line, errs)
	}
	return rs.Rules[0]
}

// TestNetgroups: @group asks Netgroup with the client's verified name.
func TestNetgroups(t *testing.T) {
	old := Netgroup
	t.Cleanup(func() { Netgroup = old })
	Netgroup = func(group, host string) bool { return group == "admins" && host == "ws1.example.org" }
	rs, errs := Parse("hosts.allow", []byte("sshd: @admins\n"))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	for _, c := range []struct {
		name  string
		state NameState
		want  bool
	}{{"ws1.example.org", NameKnown, true}, {"ws2.example.org", NameKnown, false}, {"ws1.example.org", NameParanoid, false}, {"", NameUnknown, false}} {
		cl := Client{Addr: netip.MustParseAddr("10.0.0.1"), Lookup: func(netip.Addr) (string, NameState) { return c.name, c.state }}
		if got, _ := rs.Match("sshd", cl); got != c.want {
			t.Errorf("%s (%v): %v, want %v", c.name, c.state, got, c.want)
		}
	}
	if !(&Policy{Allow: rs}).NeedsNames() {
		t.Error("a netgroup needs the client's name")
	}
	Netgroup = nil
	if _, errs := Parse("hosts.allow", []byte("sshd: @admins\n")); len(errs) != 1 || !strings.Contains(errs[0].Error(), "without cgo") {
		t.Errorf("no NSS: %v", errs)
	}
}

// TestNetgroupNSS asks the C library about a group that does not exist.
func TestNetgroupNSS(t *testing.T) {
	if !NetgroupSupported() {
		t.Skip("built without cgo: netgroups cannot be asked for")
	}
	if Netgroup("gxinetd-test-no-such-netgroup", "localhost") {
		t.Error("a group that does not exist has members")
	}
}
