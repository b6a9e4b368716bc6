package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
	"github.com/gxinetd/gxinetd/parser"
	"github.com/gxinetd/gxinetd/parser/inetd"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const testRoot = "testdata/root"

func testDB() *sysdb.DB { return &sysdb.DB{Root: testRoot} }

// caseArgs reads testdata/<case>.args (optional extra flags).
func caseArgs(t *testing.T, name string) []string {
	data, err := os.ReadFile("testdata/" + name + ".args")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

func runXconv(args []string, stdin string) (int, string, string) {
	var out, errb bytes.Buffer
	rc := run(args, strings.NewReader(stdin), &out, &errb)
	return rc, out.String(), errb.String()
}

func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update and review the diff):\n--- got\n%s", file, got)
	}
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.inetd.conf")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".inetd.conf")
		t.Run(name, func(t *testing.T) {
			args := append(append([]string{"-root", testRoot}, caseArgs(t, name)...), in)
			rc, out, stderr := runXconv(args, "")
			checkGolden(t, "testdata/"+name+".xinetd.conf.golden", out)
			checkGolden(t, "testdata/"+name+".stderr.golden", fmt.Sprintf("exit %d\n%s", rc, stderr))
			if rc == exitFailed {
				t.Fatalf("xconv failed: %s", stderr)
			}
			roundTrip(t, in, caseArgs(t, name), out)
		})
	}
}

var serverLine = regexp.MustCompile(`(?m)^(\tserver\s*= )(/.*)$`)

// parseOutput reads xconv's output with the xinetd.conf parser. That
// parser insists, as xinetd does, that servers exist; the servers of
// realistic inetd.conf files do not exist here, so each is created as
// an executable stub under dir and the output is pointed at it. The
// returned prefix is what to strip from Server to compare.
func parseOutput(dir, out string) (*service.Config, string, error) {
	var ferr error
	text := serverLine.ReplaceAllStringFunc(out, func(m string) string {
		sub := serverLine.FindStringSubmatch(m)
		p := filepath.Join(dir, sub[2])
		if !strings.HasPrefix(p, dir+"/") {
			ferr = fmt.Errorf("server %s escapes the stub directory", sub[2])
			return m
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			ferr = err
			return m
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			ferr = fmt.Errorf("server %s is also a directory of another server", sub[2])
			return m
		} else if err != nil {
			if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
				ferr = err
				return m
			}
		}
		return sub[1] + p
	})
	if ferr != nil {
		return nil, "", ferr
	}
	return parser.Parse("xconv-output", []byte(text), xinetdOptions()), dir, nil
}

// xinetdOptions keeps the xinetd.conf parser off the network.
func xinetdOptions() parser.Options {
	return parser.Options{
		Sys: testDB(),
		LookupHost: func(ctx context.Context, host string) ([]netip.Addr, error) {
			// Every name has both families, like localhost.
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
		},
		IsInterface: func(string) bool { return false },
	}
}

// served is what must survive the conversion: the port, the program
// and its argv, and who runs it.
type served struct {
	Port       int
	Protocol   string
	SocketType service.SocketType
	Wait       bool
	Server     string
	Argv       string
	User       string
	Builtin    string
	// The limits, which must mean the same after the conversion.
	Instances, PerSource service.Limit
	CPS                  service.CPS
	PerMinute, PerIPMin  int
	Groups               bool
	// Unix-domain services.
	UnixPath  string
	UnixMode  uint32
	UnixOwner string
	UnixGroup string
}

func servedOf(s *service.Service) served {
	v := served{Port: s.Port, Protocol: s.Protocol, SocketType: s.SocketType, Wait: s.Wait,
		Server: s.Server, Argv: strings.Join(s.Argv, " "), Builtin: s.Builtin,
		Instances: s.Instances, PerSource: s.PerSource, CPS: s.CPS, PerMinute: s.Inetd.PerMinute,
		PerIPMin: s.Inetd.PerIPPerMinute, Groups: s.Groups || s.IsInternal()}
	if s.User != nil {
		v.User = fmt.Sprintf("%s/%d", s.User.Name, s.User.ID)
	}
	if s.Family == service.FamilyUnix {
		v.UnixPath, v.UnixMode = s.UnixPath, s.UnixMode
		if s.UnixOwner != nil {
			v.UnixOwner = fmt.Sprint(s.UnixOwner.ID)
		}
		if s.UnixGroup != nil {
			v.UnixGroup = fmt.Sprint(s.UnixGroup.ID)
		}
		v.PerSource, v.PerIPMin = service.Unlimited, 0 // no address to count by
	}
	return v
}

// roundTrip parses xconv's output with the xinetd.conf parser and checks
// that every convertible inetd.conf entry serves the same thing.
func roundTrip(t *testing.T, in string, args []string, out string) {
	t.Helper()
	dialect, daemonDir := "", "/usr/sbin"
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-dialect":
			dialect = args[i+1]
		case "-daemon-dir":
			daemonDir = args[i+1]
		}
	}
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	svcs, diags := inetd.Parse(in, data, inetd.Options{Sys: testDB(), Dialect: dialect, KeepUnknownNames: true})
	shadowed := map[string]bool{}
	unknownHere := map[string]bool{} // converted by name; only the target host can check them
	for _, d := range diags {
		if d.Code == inetd.CodeUnknownName {
			unknownHere[strings.ToLower(d.Service)] = true
		}
		if d.Code == inetd.CodeDuplicate {
			shadowed[d.Service] = true // could never bind; xconv writes it with disable = yes
		}
	}
	want := map[string]served{}
	for _, s := range svcs {
		if s.Status != service.StatusAccepted || s.SocketType == service.SockRDM || shadowed[s.ID] {
			continue
		}
		if unknownHere[strings.ToLower(s.Name)] {
			continue
		}
		v := servedOf(s)
		if s.SocketType == service.SockDgram && !s.IsInternal() {
			v.Wait = true // xinetd.conf has no dgram nowait; xconv reports the change
		}
		if s.IsInternal() {
			// Options of builtins (FreeBSD's auth) have no xinetd.conf
			// form; xconv reports them as lost.
			v.Argv = ""
		}
		if path.Base(s.Server) == "tcpd" {
			// tcpd runs argv[0] (from its daemon directory when relative).
			v.Server = path.Join(daemonDir, s.Argv[0])
			argv := append([]string(nil), s.Argv...)
			if strings.HasPrefix(argv[0], "/") {
				v.Server = argv[0]
				argv[0] = path.Base(argv[0])
			}
			v.Argv = strings.Join(argv, " ")
		}
		want[strings.ToLower(s.ID)] = v
	}
	cfg, prefix, err := parseOutput(t.TempDir(), out)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range cfg.Diags {
		if d.Severity == service.SevError && !unknownHere[strings.ToLower(d.Service)] && !unknownHere[strings.ToLower(strings.SplitN(d.Service, "-", 2)[0])] {
			t.Errorf("xinetd.conf parser: %s", d)
		}
	}
	got := map[string]served{}
	for _, s := range cfg.Accepted() {
		v := servedOf(s)
		v.Server = strings.TrimPrefix(v.Server, prefix)
		got[strings.ToLower(s.ID)] = v
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("service %s lost in the conversion", id)
			continue
		}
		if g != w {
			t.Errorf("service %s changed:\n  inetd.conf  %+v\n  xinetd.conf %+v", id, w, g)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok && !unknownHere[strings.SplitN(id, "-", 2)[0]] {
			t.Errorf("service %s appeared from nowhere", id)
		}
	}
}

func TestStdinAndFlags(t *testing.T) {
	rc, out, stderr := runXconv([]string{"-root", testRoot}, "echo stream tcp nowait root internal\n")
	if rc != exitOK || !strings.Contains(out, "id          = echo-stream") || stderr != "" {
		t.Errorf("stdin: rc %d\n%s\n%s", rc, out, stderr)
	}
	if !strings.Contains(out, "converted from stdin") {
		t.Errorf("header does not name stdin:\n%s", out)
	}
	if rc, _, _ := runXconv([]string{"-no-such-flag"}, ""); rc != exitFailed {
		t.Errorf("bad flag: rc %d", rc)
	}
	if rc, _, _ := runXconv([]string{"a", "b"}, ""); rc != exitFailed {
		t.Errorf("two files: rc %d", rc)
	}
	if rc, _, stderr := runXconv([]string{"testdata/does-not-exist"}, ""); rc != exitFailed || !strings.Contains(stderr, "does-not-exist") {
		t.Errorf("missing file: rc %d %s", rc, stderr)
	}
	if rc, _, stderr := runXconv([]string{"-dialect", "solaris"}, "echo stream tcp nowait root internal\n"); rc != exitFailed || !strings.Contains(stderr, "E-DIALECT") {
		t.Errorf("bad dialect: rc %d %s", rc, stderr)
	}
	if rc, _, _ := runXconv([]string{"-h"}, ""); rc != exitOK {
		t.Errorf("-h: rc %d", rc)
	}
}

func TestDropInDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "xinetd.d")
	conf := "echo stream tcp nowait root internal\necho dgram udp wait root internal\n" +
		"ftp stream tcp4 nowait root /bin/true true\nftp stream tcp6 nowait root /bin/true true\n" +
		"/run/x stream unix nowait root /bin/true true\n"
	rc, out, stderr := runXconv([]string{"-root", testRoot, "-d", dir}, conf)
	if rc != exitOK || out != "" || stderr != "" {
		t.Fatalf("rc %d out %q stderr %s", rc, out, stderr)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		if strings.Contains(e.Name(), ".") {
			t.Errorf("xinetd skips file names with dots: %s", e.Name())
		}
	}
	if got := strings.Join(names, " "); got != "echo-dgram echo-stream ftp-tcp4 ftp-tcp6 svc_run_x" {
		t.Errorf("files: %s", got)
	}
	// The directory must read back as a configuration.
	main := filepath.Join(t.TempDir(), "xinetd.conf")
	if err := os.WriteFile(main, []byte("includedir "+dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := parser.Load(main, xinetdOptions())
	if len(cfg.Accepted()) != 5 || cfg.Diags.HasErrors() {
		t.Errorf("drop-ins read back as %d services: %v", len(cfg.Accepted()), cfg.Diags)
	}
	// A second run must not overwrite anything.
	if rc, _, stderr := runXconv([]string{"-root", testRoot, "-d", dir}, conf); rc != exitFailed || !strings.Contains(stderr, "already exists") {
		t.Errorf("overwrite: rc %d %s", rc, stderr)
	}
}

// TestRatesAreExact: inetd's per-minute rates become cpm and
// per_source_cpm, which mean the same thing (nowait.30 used to become
// cps = 1 600, where a second connection within one second shut the
// service for ten minutes), and inetd's lack of a per-second limit is
// written out. The conversion is exact: exit 0.
func TestRatesAreExact(t *testing.T) {
	cases := []struct {
		args []string
		line string
		want []string
	}{
		{nil, "ftp stream tcp nowait.30 root /bin/true true\n", []string{"cps         = 0 0", "cpm         = 30"}},
		{[]string{"-dialect", "freebsd"}, "ftp stream tcp nowait/0/20/3 root /bin/true true\n",
			[]string{"cpm            = 256", "per_source_cpm = 20", "per_source     = 3"}},
		{[]string{"-dialect", "netbsd"}, "ftp stream tcp nowait root /bin/true true\n", []string{"cpm         = 40", "(the netbsd default)"}},
		{nil, "ftp stream tcp nowait.0 root /bin/true true\n", []string{"cpm         = 0", "no limit on invocations"}},
	}
	for _, c := range cases {
		rc, out, stderr := runXconv(append([]string{"-root", testRoot}, c.args...), c.line)
		if rc != exitOK {
			t.Errorf("%q: exit %d, want 0 (exact)\n%s", c.line, rc, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: output lacks %q:\n%s", c.line, w, out)
			}
		}
		if strings.Contains(out, "cps         = 1") {
			t.Errorf("%q: a per-second limit crept in:\n%s", c.line, out)
		}
	}
}

// TestUnknownNamesAreConverted: names this machine does not know are the
// target host's business; the entry is converted with a note and the
// conversion is still exact.
func TestUnknownNamesAreConverted(t *testing.T) {
	in := "gopherd stream tcp nowait gopher:gophers /usr/sbin/gopherd gopherd\n" +
		"7070 stream tcp nowait nosuchuser /bin/true true\n" +
		"nosuchprog/1 dgram rpc/udp wait root /usr/sbin/rpc.x rpc.x\n"
	rc, out, stderr := runXconv([]string{"-root", testRoot}, in)
	if rc != exitOK {
		t.Errorf("exit %d, want 0\n%s", rc, stderr)
	}
	for _, w := range []string{"service gopherd", "user        = gopher", "group       = gophers", `# xconv: service gopherd/tcp is not in`,
		`# xconv: user "gopher" is not in`, `# xconv: group "gophers" is not in`, "user        = nosuchuser", "port        = 7070",
		"service nosuchprog", `# xconv: RPC program "nosuchprog" is not in`, "rpc_version = 1"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "not converted") {
		t.Errorf("an entry was dropped:\n%s", out)
	}
}

// TestKeyValueAndInclude: NetBSD's key=value definitions and the files
// .include reads are converted, the included entries where the
// .include stands.
func TestKeyValueAndInclude(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "inetd.d"), 0o755)
	main := filepath.Join(dir, "inetd.conf")
	os.WriteFile(main, []byte("ftp on protocol = tcp4, wait = no, user = root, # comment\n\texec = /bin/true, args = \"true\" 'a b';\n"+
		".include \"inetd.d/*\"\ndaytime stream tcp4 nowait root internal\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "inetd.d", "echo"), []byte("echo stream tcp4 nowait root internal\n"), 0o644)
	rc, out, stderr := runXconv([]string{"-root", testRoot, main}, "")
	if rc != exitLossy || !strings.Contains(stderr, `argument "a b" cannot be written`) {
		t.Errorf("exit %d (an argument with a blank cannot be carried over)\n%s", rc, stderr)
	}
	i, j, k := strings.Index(out, "service ftp"), strings.Index(out, "service echo"), strings.Index(out, "service daytime")
	if i < 0 || j < i || k < j || !strings.Contains(out, ".include \"inetd.d/*\": the entries it read follow") {
		t.Errorf("order or content wrong:\n%s", out)
	}
}

// TestProxyOptionsConverted: gxinetd's PROXY protocol options of the
// inetd.conf protocol field become the xinetd.conf attributes, exactly.
func TestProxyOptionsConverted(t *testing.T) {
	in := "ftp stream tcp,proxy_protocol=v1,proxy_protocol=v2,proxy_from=10.0.0.0/29,proxy_from=192.0.2.7,proxy_timeout=5 nowait root /bin/true true\n"
	rc, out, stderr := runXconv([]string{"-root", testRoot}, in)
	if rc != exitOK {
		t.Errorf("exit %d, want 0 (exact)\n%s", rc, stderr)
	}
	for _, w := range []string{"proxy_protocol = v1 v2", "proxy_from     = 10.0.0.0/29 192.0.2.7", "proxy_timeout  = 5"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}
