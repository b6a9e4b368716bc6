package pathsafe

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCheck feeds arbitrary paths (dots, slashes, links, loops) into
// Check over a fixed tree. Whatever the path, Check must not panic, an
// accepted path must be the very file the kernel opens, and a refusal can
// only come from the one world-writable directory of the tree (or from
// above it). It needs
// no root: the tree is the test user's, and that user is trusted.
func FuzzCheck(f *testing.F) {
	base := f.TempDir()
	uid := os.Getuid()
	trust := Trust{}
	if uid != 0 {
		trust = Trust{UID: uid}
	}
	mk := func(fn func() error) {
		if err := fn(); err != nil {
			f.Fatal(err)
		}
	}
	mk(func() error { return os.MkdirAll(filepath.Join(base, "a/b/c"), 0o755) })
	mk(func() error { return os.WriteFile(filepath.Join(base, "a/b/f"), []byte("#!/bin/sh\n"), 0o755) })
	mk(func() error { return os.Mkdir(filepath.Join(base, "ww"), 0o755) })
	mk(func() error { return os.Chmod(filepath.Join(base, "ww"), 0o777) })
	mk(func() error { return os.WriteFile(filepath.Join(base, "ww/g"), nil, 0o644) })
	for _, l := range [][2]string{{"a/up", ".."}, {"a/b/c/abs", base + "/a/b/f"}, {"a/loop1", "loop2"}, {"a/loop2", "loop1"},
		{"a/toww", "../ww/g"}, {"a/b/rel", "../b/./f"}, {"a/dir", "b/"}, {"a/empty", "./"}} {
		mk(func() error { return os.Symlink(l[1], filepath.Join(base, l[0])) })
	}
	for _, s := range []string{"a/b/f", "a/up/a/b/f", "a/b/c/abs", "a/loop1", "a/toww", "a/b/rel", "a/dir/f", "a/dir/../b/f",
		"a/b/f/", "a/b/c/../../b/./f", "a/empty/b", "ww/g", "..", "a/b/c/abs/.", "a//b//f", "a/up/up"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		if len(rel) > 512 || strings.ContainsRune(rel, 0) {
			return
		}
		path := base + "/" + rel
		info, err := Check(path, trust)
		var e *Error
		var pe *fs.PathError
		switch {
		case err == nil:
			fi, serr := os.Stat(path)
			if serr != nil {
				t.Fatalf("%q accepted, but the kernel cannot reach it: %v", rel, serr)
			}
			real, rerr := os.Lstat(info.Real)
			if rerr != nil || !os.SameFile(fi, real) {
				t.Fatalf("%q: Real %s is not the file the kernel reaches", rel, info.Real)
			}
		case errors.As(err, &e):
			// Above the tree the walk may end on /tmp itself, which
			// is rightly refused as a directory to read files from.
			ww := base + "/ww"
			inTree := e.At == base || strings.HasPrefix(e.At, base+"/")
			if inTree && e.At != ww && !strings.HasPrefix(e.At, ww+"/") {
				t.Fatalf("%q refused at %s: %v", rel, e.At, err)
			}
		case errors.As(err, &pe):
		default:
			t.Fatalf("%q: unexpected error %T %v", rel, err, err)
		}
	})
}
