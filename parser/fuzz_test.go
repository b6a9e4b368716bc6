package parser

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseXinetd checks invariants on arbitrary input: no panic, every
// diagnostic about the input points inside it, and the Config survives a
// JSON round trip unchanged; and parseAST's fast path builds the same
// tree as participle over the whole file. Includes are refused (depth 1) so that the
// fuzzer cannot wander the file system.
func FuzzParseXinetd(f *testing.F) {
	// Seeds are the golden inputs cut into single entries: the fuzzer
	// minimises every new input, which is slow on whole files.
	for _, g := range goldenInputs(f) {
		for i, part := range strings.Split(g.in, "\nservice ") {
			if i > 0 {
				part = "service " + part
			}
			f.Add(part)
		}
	}
	for _, s := range []string{
		svcWith("only_from = 10.{1,2} ::1 .x loopback host2", "access_times = 1:00-2:00 23:00-01:00"),
		svcWith("log_type = FILE /x 1k 2k", "bind = eth0:ipv4", "redirect = upstream 80"),
		"service a {\n}\n}\n{\n",
		"defaults\n{\n\tonly_from += 1.2.3.4\n\tlog_type = SYSLOG daemon\n}\nservice\n",
		"service x\n{\n\tflags=NAMEINARGS\n\tserver_args=a\r\n}",
		"include\nincludedir\n\x00\n",
		svcWith("chroot = /usr", "namespaces = pid mount net", "seccomp = default", "private_tmp = 8m", "max_duration = 9"),
		svcWith("read_only_paths = /usr -/x", "writable_paths += /tmp", "read_only_root = yes", "no_new_privs = yes", "kafel_rule = x"),
	} {
		f.Add(s)
	}
	opt := testOptions()
	opt.MaxIncludeDepth = 1
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 1<<14 {
			return
		}
		const name = "fuzz.conf"
		checkFastPath(t, text)
		cfg := Parse(name, []byte(text), opt)
		lines := strings.Split(text, "\n")
		for _, d := range cfg.Diags {
			if d.Pos.File != name || d.Pos.Line == 0 {
				continue
			}
			if d.Pos.Line < 1 || d.Pos.Line > len(lines) {
				t.Fatalf("diagnostic outside the input (%d lines): %v", len(lines), d)
			}
			if d.Pos.Col < 0 || d.Pos.Col > len(lines[d.Pos.Line-1])+1 {
				t.Fatalf("column outside line %q: %v", lines[d.Pos.Line-1], d)
			}
			if d.Code == "" || d.Msg == "" {
				t.Fatalf("diagnostic without code or message: %+v", d)
			}
		}
		for _, s := range cfg.Services {
			if s.Status == "" {
				t.Fatalf("service without status: %+v", s)
			}
			if s.Status == "rejected" && len(s.Reasons) == 0 {
				t.Fatalf("rejected without reasons: %+v", s)
			}
		}
		if utf8.ValidString(text) {
			// encoding/json replaces invalid UTF-8, so only valid text can
			// be expected to round-trip byte for byte.
			checkRoundTrip(t, cfg)
		}
	})
}
