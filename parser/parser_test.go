package parser

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

const okSvc = "service %s\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tport = %d\n\twait = no\n\tuser = root\n\tserver = /bin/cat\n}\n"

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, path string, opt Options) *service.Config {
	t.Helper()
	cfg := Load(path, opt)
	checkRoundTrip(t, cfg)
	return cfg
}

func TestDefaults(t *testing.T) {
	t.Run("bad value is fatal", func(t *testing.T) {
		cfg := parseText(t, "defaults\n{\n\tinstances = many\n}\n"+fmt.Sprintf(okSvc, "a", 5000))
		if cfg.Usable() || !cfg.Diags.HasFatal() {
			t.Fatalf("want fatal: %v", cfg.Diags)
		}
		if findService(cfg, "a").Status != service.StatusAccepted {
			t.Error("services are still reported on")
		}
	})
	t.Run("two log_type fatal", func(t *testing.T) {
		cfg := parseText(t, "defaults\n{\n\tlog_type = SYSLOG daemon\n\tlog_type = SYSLOG auth\n}\n")
		if cfg.Usable() {
			t.Fatalf("want fatal: %v", cfg.Diags)
		}
	})
	// What xinetd survives by ignoring the line never stops gxinetd: the
	// line is ignored, the rest of the defaults apply, the services are
	// served, and the check mode names the line.
	for _, c := range []struct {
		line, code string
		check      func(d service.Defaults) bool
	}{
		{"user = root", CodeAttrDefaults, nil},
		{"frobnicate = 1", WarnAttrUnknown, nil},
		{"kafel_rule = x", WarnAttrUnknown, nil},
		{"only_fron = 10.0.0.1", CodeAttrUnknown, nil},
		{"max_load = 10 20", CodeAttrCount, func(d service.Defaults) bool { return d.MaxLoad == 0 && d.Instances == 4 }},
		{"max_load += 10", CodeOperator, nil},
		{"per_source = 10 # the maximum instances of this service per source IP address", WarnInlineComment,
			func(d service.Defaults) bool { return d.PerSource == 10 }},
		{"cps = 25 30 # connections per second, then a pause", WarnInlineComment,
			func(d service.Defaults) bool { return d.CPS == service.CPS{Rate: 25, Wait: 30} }},
	} {
		t.Run("survives "+c.line, func(t *testing.T) {
			cfg := parseText(t, "defaults\n{\n\tinstances = 4\n\t"+c.line+"\n\tbanner = /etc/issue\n}\n"+fmt.Sprintf(okSvc, "a", 5000))
			if !cfg.Usable() || !hasCode(cfg.Diags, c.code) {
				t.Fatalf("want usable with %s: %v", c.code, cfg.Diags)
			}
			if s := findService(cfg, "a"); s.Status != service.StatusAccepted || s.Banner != "/etc/issue" {
				t.Errorf("service %s, banner %q: the rest of the defaults must still apply", s.Status, s.Banner)
			}
			if c.check != nil && !c.check(cfg.Defaults) {
				t.Errorf("defaults: %+v", cfg.Defaults)
			}
			if c.check == nil && cfg.Defaults.Instances != 4 && !strings.HasPrefix(c.line, "instances") {
				t.Errorf("instances %v", cfg.Defaults.Instances)
			}
		})
	}
	t.Run("cpm and per_source_cpm reach services", func(t *testing.T) {
		cfg := parseText(t, "defaults\n{\n\tcpm = 256\n\tper_source_cpm = 20\n}\n"+fmt.Sprintf(okSvc, "a", 5000)+
			strings.Replace(fmt.Sprintf(okSvc, "b", 5001), "}", "\tcpm = 30\n}", 1))
		a, b := findService(cfg, "a"), findService(cfg, "b")
		if a.Inetd.PerMinute != 256 || a.Inetd.PerIPPerMinute != 20 || a.Origins.At("cpm").Origin != "defaults" {
			t.Errorf("a: %+v %v", a.Inetd, a.Origins.At("cpm"))
		}
		if b.Inetd.PerMinute != 30 || b.Inetd.PerIPPerMinute != 20 {
			t.Errorf("b: %+v", b.Inetd)
		}
	})
	t.Run("second block in one file ignored", func(t *testing.T) {
		cfg := parseText(t, "defaults\n{\n\tinstances = 3\n}\ndefaults\n{\n\tinstances = 4\n\tper_source = 2\n}\n"+fmt.Sprintf(okSvc, "a", 5000))
		if !hasCode(cfg.Diags, CodeDefaultsDup) || cfg.Defaults.Instances != 3 || cfg.Defaults.PerSource != service.Unlimited {
			t.Fatalf("%v %+v", cfg.Diags, cfg.Defaults)
		}
		if !cfg.Usable() {
			t.Error("a second defaults block is not fatal")
		}
	})
	t.Run("list equals adds", func(t *testing.T) {
		cfg := parseText(t, "defaults\n{\n\tonly_from = 10.0.0.1\n\tonly_from = 10.0.0.2\n\tlog_on_success = PID\n\tlog_on_success = HOST\n\tno_access = 10.0.0.3 10.0.0.4\n\tno_access -= 10.0.0.3\n}\n"+fmt.Sprintf(okSvc, "a", 5000))
		d := cfg.Defaults
		if len(d.OnlyFrom.Entries) != 2 || d.LogOnSuccess != service.LogSuccessPID|service.LogSuccessHost || len(d.NoAccess.Entries) != 1 {
			t.Fatalf("%+v", d)
		}
		s := findService(cfg, "a")
		if len(s.OnlyFrom.Entries) != 2 || s.Origins.At("only_from").Origin != "defaults" || s.Origins.At("only_from").Line != 4 {
			t.Errorf("%+v %v", s.OnlyFrom, s.Origins.At("only_from"))
		}
	})
	t.Run("late defaults", func(t *testing.T) {
		cfg := parseText(t, fmt.Sprintf(okSvc, "early", 5000)+"defaults\n{\n\tonly_from = 10.0.0.1\n\tinstances = 4\n\tlog_on_success = PID\n}\n"+fmt.Sprintf(okSvc, "late", 5001))
		early, late := findService(cfg, "early"), findService(cfg, "late")
		if early.OnlyFrom.Set || !late.OnlyFrom.Set {
			t.Errorf("only_from reaches only later services: %+v %+v", early.OnlyFrom, late.OnlyFrom)
		}
		if early.Instances != 4 || early.LogOnSuccess != service.LogSuccessPID {
			t.Errorf("scalars and log flags reach every service: %v %v", early.Instances, early.LogOnSuccess)
		}
		if !hasCode(cfg.Diags, WarnDefaultsLate) {
			t.Errorf("no late-defaults warning: %v", cfg.Diags)
		}
	})
	t.Run("builtin defaults", func(t *testing.T) {
		cfg := parseText(t, fmt.Sprintf(okSvc, "a", 5000))
		s := findService(cfg, "a")
		if s.Instances != service.Unlimited || s.PerSource != service.Unlimited || s.CPS != (service.CPS{Rate: 50, Wait: 10}) ||
			s.PerSourcePrefix4 != 32 || s.PerSourcePrefix6 != 128 || s.Origins.At("cps").Origin != "default" {
			t.Errorf("%+v", s)
		}
	})
	t.Run("gxinetd globals", func(t *testing.T) {
		cfg := parseText(t, "defaults\n{\n\tmetrics = 127.0.0.1:9101\n\tmetrics_only_from = 127.0.0.1\n\tlog_format = logfmt\n\tper_source_prefix = 24 64\n\tenabled = a\n\tdisabled = a\n}\n"+fmt.Sprintf(okSvc, "a", 5000)+fmt.Sprintf(okSvc, "b", 5001))
		d := cfg.Defaults
		if d.Metrics != "127.0.0.1:9101" || !d.MetricsOnlyFrom.Set || d.LogFormat != service.LogFormatLogfmt || d.PerSourcePrefix4 != 24 {
			t.Fatalf("%+v %v", d, cfg.Diags)
		}
		a, b := findService(cfg, "a"), findService(cfg, "b")
		if a.Status != service.StatusDisabled || b.Status != service.StatusDisabled || a.LogFormat != "" {
			t.Errorf("enabled/disabled: %s %s", a.Status, b.Status)
		}
	})
}

func TestFillFromDefaults(t *testing.T) {
	cfg := parseText(t, "defaults\n{\n\tinstances = 9\n\tbind = 127.0.0.1\n\tlog_type = FILE /var/log/x\n\tlog_on_success = PID\n}\n")
	s := &service.Service{Name: "inetd", Instances: 3, Origins: service.OriginsOf(map[string]service.Source{"instances": {File: "/etc/inetd.conf", Line: 2, Origin: "inetd.conf"}})}
	FillFromDefaults(&cfg.Defaults, s)
	if s.Instances != 3 {
		t.Errorf("own value kept: %v", s.Instances)
	}
	if s.CPS.Rate != 50 || s.Origins.At("cps").Origin != "default" {
		t.Errorf("built-in cps: %+v", s.CPS)
	}
	if !s.LogType.Common || s.LogOnSuccess != service.LogSuccessPID || s.Origins.At("log_type").Origin != "defaults" || s.Origins.At("log_type").Line != 5 {
		t.Errorf("log from defaults: %+v %v", s.LogType, s.Origins.At("log_type"))
	}
	if s.Bind.Addr.String() != "127.0.0.1" || s.Family != service.FamilyIPv4 {
		t.Errorf("bind: %+v %v", s.Bind, s.Family)
	}
	// An empty Defaults still gives xinetd's built-in values.
	var empty service.Defaults
	s2 := &service.Service{}
	FillFromDefaults(&empty, s2)
	if s2.Instances != service.Unlimited || s2.CPS.Wait != 10 {
		t.Errorf("zero defaults: %+v", s2)
	}
}

func TestIncludes(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "xinetd.conf")
	write(t, main, "include sub/one\nincludedir d\ninclude loop\ninclude d\ninclude missing\n"+fmt.Sprintf(okSvc, "main", 5000))
	write(t, filepath.Join(dir, "sub/one"), fmt.Sprintf(okSvc, "one", 5001)+"include ../sub/two\n")
	write(t, filepath.Join(dir, "sub/two"), fmt.Sprintf(okSvc, "two", 5002)+"service bad\n{\n\tbogus = 1\n}\n")
	write(t, filepath.Join(dir, "d/B"), fmt.Sprintf(okSvc, "B", 5003))
	write(t, filepath.Join(dir, "d/a"), fmt.Sprintf(okSvc, "a", 5004))
	write(t, filepath.Join(dir, "d/x.conf"), fmt.Sprintf(okSvc, "skipped", 5005))
	write(t, filepath.Join(dir, "d/old~"), fmt.Sprintf(okSvc, "skipped2", 5006))
	write(t, filepath.Join(dir, "d/.hidden"), fmt.Sprintf(okSvc, "skipped3", 5007))
	if err := os.Mkdir(filepath.Join(dir, "d/subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "d/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "loop"), "include loop2\n")
	write(t, filepath.Join(dir, "loop2"), "include loop\n")
	cfg := load(t, main, testOptions())

	var names []string
	for _, s := range cfg.Services {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "one two bad B a main" {
		t.Errorf("read order: %s", got)
	}
	if len(cfg.Files) != 7 {
		t.Errorf("files: %v", cfg.Files)
	}
	skipped := 0
	for _, d := range cfg.Diags {
		switch d.Code {
		case NoticeSkippedFile:
			skipped++
		case CodeIncludeCycle:
			if !strings.Contains(d.Msg, "loop -> ") || !strings.Contains(d.Msg, "loop2") {
				t.Errorf("cycle message lacks the chain: %s", d.Msg)
			}
		case CodeAttrUnknown:
			if len(d.IncludedFrom) != 2 || d.IncludedFrom[1].File != main || d.IncludedFrom[1].Line != 1 {
				t.Errorf("include chain: %+v", d.IncludedFrom)
			}
		}
	}
	if skipped != 3 {
		t.Errorf("want 3 skipped-file notices, got %d: %v", skipped, cfg.Diags)
	}
	for _, want := range []string{"subdir is not a regular file", "fifo is not a regular file", "is a directory", "include cycle", "Unable to open included configuration file"} {
		if !strings.Contains(cfg.Diags.Error(), want) {
			t.Errorf("missing %q in\n%v", want, cfg.Diags)
		}
	}
	if !cfg.Usable() {
		t.Error("include problems are not fatal")
	}
}

func TestIncludeDepth(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 10; i++ {
		write(t, filepath.Join(dir, fmt.Sprintf("f%d", i)), fmt.Sprintf("include f%d\n", i+1)+fmt.Sprintf(okSvc, fmt.Sprintf("s%d", i), 5000+i))
	}
	opt := testOptions()
	opt.MaxIncludeDepth = 4
	cfg := load(t, filepath.Join(dir, "f0"), opt)
	if len(cfg.Services) != 4 || !strings.Contains(cfg.Diags.Error(), "nesting deeper than 4") {
		t.Errorf("%d services\n%v", len(cfg.Services), cfg.Diags)
	}
}

func TestMainFile(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, path string }{
		{"missing", filepath.Join(dir, "nope")},
		{"directory", dir},
	} {
		cfg := load(t, c.path, testOptions())
		if cfg.Usable() || len(cfg.Diags) != 1 || cfg.Diags[0].Code != CodeFile {
			t.Errorf("%s: %v", c.name, cfg.Diags)
		}
	}
}

func TestLexical(t *testing.T) {
	t.Run("crlf", func(t *testing.T) {
		text := strings.ReplaceAll(fmt.Sprintf(okSvc, "a", 5000), "\n", "\r\n")
		cfg := parseText(t, text)
		if findService(cfg, "a").Status != service.StatusAccepted || !hasCode(cfg.Diags, WarnCRLF) {
			t.Errorf("%v", cfg.Diags)
		}
	})
	t.Run("comments and case", func(t *testing.T) {
		cfg := parseText(t, "# top\n   # indented\nSERVICE a\n{\n # inside\n\tTYPE = unlisted\n\n\tSocket_Type = STREAM\n\tport = 5000\n\twait = NO\n\tuser = root\n\tserver = /bin/cat\n}\n")
		if s := findService(cfg, "a"); s.Status != service.StatusAccepted || s.EndLine != 13 {
			t.Errorf("%+v %v", s, cfg.Diags)
		}
	})
	t.Run("columns", func(t *testing.T) {
		cfg := parseText(t, svcWith("  groups  =  maybe"))
		d := cfg.Diags[0]
		if d.Pos.Line != 9 || d.Pos.Col != 15 || d.Attr != "groups" {
			t.Errorf("position %+v", d)
		}
	})
	t.Run("did you mean", func(t *testing.T) {
		cfg := parseText(t, svcWith("only_form = 1.2.3.4"))
		if !strings.Contains(cfg.Diags.Error(), "did you mean only_from?") {
			t.Errorf("%v", cfg.Diags)
		}
	})
	t.Run("stray lines reported once per run", func(t *testing.T) {
		cfg := parseText(t, "junk one\njunk two\n}\n"+fmt.Sprintf(okSvc, "a", 5000)+"{\n")
		n := 0
		for _, d := range cfg.Diags {
			if d.Code == CodeSyntax {
				n++
			}
		}
		if n != 2 || findService(cfg, "a").Status != service.StatusAccepted {
			t.Errorf("%d syntax errors: %v", n, cfg.Diags)
		}
	})
}

// TestHostile feeds input nobody should write and checks for clear
// messages, bounded time and no panic.
func TestHostile(t *testing.T) {
	long := strings.Repeat("x", maxLineLen+10)
	for _, c := range []struct {
		name, text, code string
	}{
		{"long line in entry", svcWith("server_args = " + long), CodeLineTooLong},
		{"long line at top", long + "\n" + fmt.Sprintf(okSvc, "a", 5000), CodeLineTooLong},
		{"nul byte", svcWith("server_args = a\x00b"), CodeSyntax},
		{"binary", "\x7fELF\x02\x01\x01\x00\x00\n\xff\xfe{\n}\n" + fmt.Sprintf(okSvc, "a", 5000), CodeSyntax},
		{"only braces", "{\n{\n}\n}\n}\n", CodeSyntax},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := parseText(t, c.text)
			if !hasCode(cfg.Diags, c.code) {
				t.Errorf("no %s in %v", c.code, cfg.Diags)
			}
			for _, d := range cfg.Diags {
				if len(d.Msg) > 1000 {
					t.Errorf("message too long (%d bytes)", len(d.Msg))
				}
			}
		})
	}
	t.Run("100000 services", func(t *testing.T) {
		if testing.Short() {
			t.Skip("large input")
		}
		data := genConfig(100000)
		start := time.Now()
		cfg := Parse("big.conf", data, testOptions())
		if el := time.Since(start); el > 30*time.Second {
			t.Errorf("took %v", el)
		}
		// Ports repeat every 60000 services; the rest clash.
		if len(cfg.Services) != 100000 || len(cfg.Accepted()) < 60000 {
			t.Errorf("%d services, %d accepted", len(cfg.Services), len(cfg.Accepted()))
		}
	})
}

func TestGrammarGolden(t *testing.T) {
	const path = "../docs/grammar-xinetd.ebnf"
	if *update {
		if err := os.WriteFile(path, []byte(Grammar()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if Grammar() != string(want) {
		t.Errorf("grammar changed; run go test -update and review docs/grammar-xinetd.ebnf:\n%s", Grammar())
	}
}
