package daemon

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/parser"
	"github.com/gxinetd/gxinetd/parser/inetd"
)

// The -d and SIGUSR1 dumps print what the parser resolved, so they are
// tested here, on configurations the real parser read: what package
// logging's golden tests build by hand cannot show what the parser fills
// in (such as the group a user implies).

// richEnv is the start-up environment of the machine xinetd's 01-rich
// samples were captured on (only passenv'd variables show).
var richEnv = []string{
	"PATH=/usr/local/go/bin:/root/go/bin:/root/.cargo/bin:/root/.cargo/bin:/root/.pyenv/plugins/pyenv-virtualenv/shims:/root/.pyenv/shims:/root/.pyenv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
}

// richResolver answers as the capture's network namespace did: localhost
// is 127.0.0.1 (and back), ::1 has no name.
func richLookupHost(_ context.Context, host string) ([]netip.Addr, error) {
	if host == "localhost" {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, errors.New("no such host")
}

func richLookupAddr(a netip.Addr) (string, bool) {
	if a == netip.MustParseAddr("127.0.0.1") {
		return "localhost", true
	}
	return "", false
}

// parseRich reads testdata/xinetd/01-rich.conf with the capture's paths
// (/tmp/xt/...) moved to a directory of the test's, where the server it
// names exists; it returns the configuration and that directory.
func parseRich(t *testing.T) (*service.Config, string) {
	t.Helper()
	raw, err := os.ReadFile("testdata/xinetd/01-rich.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "srv_env.sh"), []byte("#!/bin/sh\nenv\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rich.conf")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(raw), "/tmp/xt/", dir+"/")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := parser.Load(path, parser.Options{Sys: &sysdb.DB{Root: "testdata/root"}, Env: richEnv,
		LookupHost: richLookupHost, IsInterface: func(string) bool { return false }})
	for _, d := range cfg.Diags {
		if d.Severity == service.SevError || d.Fatal {
			t.Fatalf("01-rich.conf: %s", d.String())
		}
	}
	return cfg, dir
}

// TestConfigDumpOfParsedRich: the -d dump of 01-rich.conf as the parser
// reads it is xinetd's, byte for byte (no `group = N` line for a group
// only implied by `user`).
func TestConfigDumpOfParsedRich(t *testing.T) {
	cfg, dir := parseRich(t)
	var b bytes.Buffer
	logging.WriteConfigDumpWith(&b, cfg, logging.DumpOptions{LookupAddr: richLookupAddr, Environ: richEnv})
	got := strings.ReplaceAll(b.String(), dir+"/", "/tmp/xt/")
	want, err := os.ReadFile("testdata/xinetd/01-rich.config-dump.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("first difference at line %d:\n got %q\nwant %q", i+1, g, w)
			}
		}
	}
}

// TestStateDumpOfParsedRich: the SIGUSR1 dump prints each service as
// the -d dump does, one tab deeper, so it has no implied group line
// either.
func TestStateDumpOfParsedRich(t *testing.T) {
	cfg, _ := parseRich(t)
	var st logging.DumpState
	st.Config = cfg
	st.Dump = logging.DumpOptions{LookupAddr: richLookupAddr, Environ: richEnv}
	for _, s := range cfg.Accepted() {
		st.Services = append(st.Services, logging.DumpService{ID: s.ID, State: logging.StateActive})
	}
	var b bytes.Buffer
	logging.WriteStateDump(&b, &st)
	blocks := 0
	for _, block := range strings.Split(b.String(), "Service = ")[1:] {
		blocks++
		if strings.Contains(block, "\tgroup = ") != strings.Contains(block, "Service configuration: envsvc\n") {
			t.Errorf("state dump block, group line only where `group` is written (envsvc):\n%s", block)
		}
	}
	if blocks != len(cfg.Accepted()) {
		t.Errorf("state dump has %d service blocks, want %d", blocks, len(cfg.Accepted()))
	}
}

// TestConfigDumpGroupLineInetd: inetd.conf's user.group prints the group,
// a user alone does not (xinetd -inetd_compat, sample 08).
func TestConfigDumpGroupLineInetd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "inetd.conf")
	conf := "echo\tstream\ttcp\tnowait\troot\tinternal\n" +
		"finger\tstream\ttcp\tnowait\tnobody.nogroup\t/bin/cat\targv0name a1 a2\n" +
		"telnet\tstream\ttcp\tnowait\tnobody\t/bin/cat\tcat\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	svcs, diags := inetd.Load(path, inetd.Options{Sys: &sysdb.DB{Root: "testdata/root"}})
	for _, d := range diags {
		if d.Severity == service.SevError {
			t.Fatalf("%s", d.String())
		}
	}
	want := map[string]bool{"echo": false, "finger": true, "telnet": false}
	for _, s := range svcs {
		var b bytes.Buffer
		logging.WriteConfigDumpWith(&b, &service.Config{Services: []*service.Service{s}},
			logging.DumpOptions{LookupAddr: richLookupAddr, Environ: []string{}})
		line := "\tgroup = 65534\n"
		if got := strings.Contains(b.String(), "\tgroup = "); got != want[s.Name] || got && !strings.Contains(b.String(), line) || s.Group == nil {
			t.Errorf("%s: group line %v, want %v (group %+v):\n%s", s.Name, got, want[s.Name], s.Group, b.String())
		}
	}
	if len(svcs) != len(want) {
		t.Errorf("%d services, want %d", len(svcs), len(want))
	}
}
