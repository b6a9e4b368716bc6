package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/parser/inetd"
)

// FuzzXconv checks that xconv never panics and that, for input the
// inetd.conf parser accepts without errors, the output reads back
// without errors.
func FuzzXconv(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.inetd.conf")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data, false)
		}
	}
	f.Add([]byte("#echo stream tcp nowait root internal\n127.0.0.1:\nftp stream tcp nowait root /x 'a b'\n"), true)
	f.Add([]byte("x:y stream tcp nowait.1 root /usr/sbin/tcpd in.x a\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, keep bool) {
		if len(data) > 1<<14 {
			return
		}
		args := []string{"-root", testRoot}
		if keep {
			args = append(args, "-keep-disabled")
		}
		rc, out, _ := runXconv(args, string(data))
		if rc == exitFailed {
			return
		}
		_, diags := inetd.Parse("stdin", data, inetd.Options{Sys: testDB()})
		if diags.HasErrors() {
			return
		}
		cfg, _, err := parseOutput(t.TempDir(), out)
		if err != nil {
			return // servers that cannot be stubbed (a file where a directory must be)
		}
		for _, d := range cfg.Diags {
			if d.Severity == service.SevError {
				t.Fatalf("output does not parse: %s\ninput:\n%s\noutput:\n%s", d, data, out)
			}
		}
	})
}
