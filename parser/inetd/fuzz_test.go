package inetd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// FuzzParseInetd checks that any input parses without a panic, that
// every diagnostic points inside the input, and that accepted services
// are complete and have unique ids.
func FuzzParseInetd(f *testing.F) {
	files, _ := filepath.Glob("testdata/golden/*.conf")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil && len(data) < 8192 {
			f.Add(data, "")
		}
	}
	f.Add([]byte("a:\n\tb\n#@\n[::1]:x stream tcp nowait root internal\n"), "freebsd")
	f.Add([]byte("x on a=b\n c;\n:a:b:c:/d stream unix wait root internal\n"), "netbsd")
	f.Add([]byte("tcpmux/+x stream tcp nowait/1/2/3 root:wheel/c /x 'a b\n"), "openbsd")
	db := testDB(f)
	// .include lines read nothing from the disk here.
	oldOpen := openInclude
	f.Cleanup(func() { openInclude = oldOpen })
	openInclude = func(string) (*os.File, error) { return nil, os.ErrNotExist }
	f.Add([]byte("x on protocol=tcp4, wait=no, user=root, args=\"a\\x41\" 'b c';\n.include \"inc/*\"\n"), "")
	f.Fuzz(func(t *testing.T, data []byte, dialect string) {
		if len(data) > 1<<16 {
			return
		}
		switch dialect {
		case "freebsd", "openbsd", "netbsd", "linux":
		default:
			dialect = ""
		}
		svcs, diags := Parse("f.conf", data, Options{Sys: db, Dialect: dialect})
		lines := bytes.Split(data, []byte("\n"))
		for _, d := range diags {
			if d.Pos.Line == 0 || d.Pos.File != "f.conf" {
				continue
			}
			if d.Pos.Line > len(lines) || d.Pos.Col < 1 || d.Pos.Col > len(lines[d.Pos.Line-1])+2 {
				t.Fatalf("diagnostic outside the input: %v", d)
			}
		}
		ids := map[string]bool{}
		for _, s := range svcs {
			if s.Src.Line < 1 || s.Src.Line > len(lines) || s.EndLine < s.Src.Line {
				t.Fatalf("service %s at %v..%d outside the input", s.ID, s.Src, s.EndLine)
			}
			k := strings.ToLower(s.ID)
			if ids[k] || s.ID == "" {
				t.Fatalf("id %q empty or not unique", s.ID)
			}
			ids[k] = true
			if s.Status == service.StatusAccepted {
				if s.Name == "" || s.User == nil || s.SocketType == service.SockUnset || len(s.Reasons) != 0 {
					t.Fatalf("accepted service incomplete: %+v", s)
				}
				if !s.IsInternal() && (s.Server == "" || len(s.Argv) == 0) {
					t.Fatalf("accepted external service without server/argv: %+v", s)
				}
			} else if s.Status == service.StatusRejected && len(s.Reasons) == 0 {
				t.Fatalf("rejected service without a reason: %+v", s)
			}
		}
	})
}
