package parser

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/sysdb"
)

var update = flag.Bool("update", false, "rewrite golden files with the current output")

const goldenSep = "----------\n"

// goldenFile is a golden file's path and its configuration text (the
// part before goldenSep).
type goldenFile struct{ path, in string }

// goldenInputs reads every testdata/golden/*.txt.
func goldenInputs(tb testing.TB) []goldenFile {
	tb.Helper()
	files, err := filepath.Glob("testdata/golden/*.txt")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no golden files: %v", err)
	}
	out := make([]goldenFile, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		in, _, _ := strings.Cut(string(b), goldenSep)
		out = append(out, goldenFile{f, in})
	}
	return out
}

// testHosts is the name service of the tests: no DNS, no /etc/hosts.
var testHosts = map[string][]netip.Addr{
	"localhost":     {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
	"host2":         {netip.MustParseAddr("127.0.0.2")},
	"ip6-localhost": {netip.MustParseAddr("::1")},
	"upstream":      {netip.MustParseAddr("127.0.0.9")},
}

func testLookup(_ context.Context, host string) ([]netip.Addr, error) {
	if a, ok := testHosts[strings.ToLower(host)]; ok {
		return append([]netip.Addr(nil), a...), nil
	}
	return nil, errors.New("no such host")
}

func testIsInterface(name string) bool { return name == "lo" || name == "eth0" }

// testOptions points every lookup at testdata/root and a fixed environment.
func testOptions() Options {
	return Options{
		Sys:         &sysdb.DB{Root: "testdata/root"},
		Env:         []string{"PATH=/usr/bin:/bin", "HOME=/root", "LANG=C"},
		LookupHost:  testLookup,
		IsInterface: testIsInterface,
	}
}

// TestGolden runs every testdata/golden/*.txt: configuration text, a
// separator line, then the expected diagnostics and model dump.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := strings.Cut(string(raw), goldenSep)
			if !ok && !*update {
				t.Fatalf("%s: no %q separator", f, strings.TrimSpace(goldenSep))
			}
			cfg := Parse(f, []byte(in), testOptions())
			// Relative paths the parser makes absolute (a relative
			// chroot) name the checkout; the golden files must not.
			got := strings.ReplaceAll(dumpConfig(cfg), wd+string(filepath.Separator), "")
			if *update {
				if err := os.WriteFile(f, []byte(in+goldenSep+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("output differs (run go test -update to accept)\n--- got\n%s\n--- want\n%s", got, want)
			}
			checkRoundTrip(t, cfg)
		})
	}
}
