package pathsafe

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCheckExec is what the daemon pays per server start: a system
// binary reached through Debian's /bin -> usr/bin link, and a script in a
// deeper tree whose interpreter is checked too.
func BenchmarkCheckExec(b *testing.B) {
	b.Run("bin-true", func(b *testing.B) {
		if _, err := CheckExec("/bin/true", Trust{}); err != nil {
			b.Skipf("/bin/true: %v", err)
		}
		for b.Loop() {
			if _, err := CheckExec("/bin/true", Trust{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("script", func(b *testing.B) {
		dir := b.TempDir()
		p := filepath.Join(dir, "srv/ctf/bin/game")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("#!/bin/sh\nexec cat\n"), 0o755); err != nil {
			b.Fatal(err)
		}
		trust := Trust{}
		if uid := os.Getuid(); uid != 0 {
			trust = Trust{UID: uid}
		}
		if _, err := CheckExec(p, trust); err != nil {
			b.Skipf("%s: %v", p, err)
		}
		for b.Loop() {
			if _, err := CheckExec(p, trust); err != nil {
				b.Fatal(err)
			}
		}
	})
}
