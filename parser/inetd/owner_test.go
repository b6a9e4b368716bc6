package inetd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// tnode is one file, directory or link of a test tree; "@" in a link
// target, a body or a configuration stands for the tree's base.
type tnode struct {
	path     string
	kind     byte // 'd', 'f', 'l'
	mode     os.FileMode
	uid, gid int
	target   string
	body     string
}

func mkTree(t *testing.T, base string, nodes []tnode) {
	t.Helper()
	for _, n := range nodes {
		p := filepath.Join(base, n.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch n.kind {
		case 'd':
			err = os.Mkdir(p, 0o755)
		case 'f':
			err = os.WriteFile(p, []byte(strings.ReplaceAll(n.body, "@", base)), 0o644)
		case 'l':
			err = os.Symlink(strings.ReplaceAll(n.target, "@", base), p)
		}
		if err == nil {
			err = os.Lchown(p, n.uid, n.gid)
		}
		if err == nil && n.kind != 'l' {
			mode := n.mode
			if mode == 0 {
				mode = 0o755
				if n.kind == 'f' {
					mode = 0o644
				}
			}
			err = os.Chmod(p, mode)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestOwnershipRule is the same rule as xinetd.conf's (internal/pathsafe)
// on inetd.conf: the file and every server walked component by component,
// links included, trusting a server's own run-as user.
func TestOwnershipRule(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks need root (chown to another uid)")
	}
	const script = "#!/bin/sh\nexec cat\n"
	sticky := os.ModeSticky | 0o777
	tests := []struct {
		name   string
		nodes  []tnode
		conf   string // written to @/etc/inetd.conf unless confAt
		confAt string // the path Load is given, relative to the tree
		code   string // the refusal expected ("" for none)
		msgs   []string
	}{
		{name: "root's server in a sticky world-writable directory",
			nodes: []tnode{{path: "tmp", kind: 'd', mode: sticky}, {path: "tmp/srv", kind: 'f', mode: 0o755, body: script}},
			conf:  "ftp stream tcp nowait root @/tmp/srv srv\n"},
		{name: "a user's server in a sticky directory",
			nodes: []tnode{{path: "tmp", kind: 'd', mode: sticky}, {path: "tmp/srv", kind: 'f', mode: 0o755, uid: 1001, body: script}},
			conf:  "ftp stream tcp nowait root @/tmp/srv srv\n", code: CodeServerPerm,
			msgs: []string{"server @/tmp/srv is owned by uid 1001 (mode 0755) in @/tmp, a sticky directory"}},
		{name: "run-as owner accepted",
			nodes: []tnode{{path: "ctf", kind: 'd', uid: 1001, gid: 1001}, {path: "ctf/game", kind: 'f', mode: 0o755, uid: 1001, gid: 1001, body: script}},
			conf:  "ftp stream tcp nowait first.last @/ctf/game game\n"},
		{name: "the same file for a root service refused with the path named",
			nodes: []tnode{{path: "ctf", kind: 'd', uid: 1001, gid: 1001}, {path: "ctf/game", kind: 'f', mode: 0o755, uid: 1001, gid: 1001, body: script}},
			conf:  "ftp stream tcp nowait root @/ctf/game game\n", code: CodeServerPerm,
			msgs: []string{"server @/ctf/game: @/ctf is owned by uid 1001, not root (mode 0755); fix: chown root @/ctf"}},
		{name: "server through a link to a user's link (root shell)",
			nodes: []tnode{{path: "bin/true", kind: 'f', mode: 0o755, body: script}, {path: "home", kind: 'd', uid: 1001},
				{path: "home/b", kind: 'l', target: "@/bin/true", uid: 1001}, {path: "srv/game", kind: 'l', target: "../home/b"}},
			conf: "ftp stream tcp nowait root @/srv/game game\n", code: CodeServerPerm,
			msgs: []string{"@/home is owned by uid 1001", "reached through @/srv/game -> ../home/b"}},
		{name: "inetd.conf through a user's link in a sticky directory",
			nodes: []tnode{{path: "etc/inetd.conf", kind: 'f', body: "ftp stream tcp nowait root /bin/sh sh\n"}, {path: "tmp", kind: 'd', mode: sticky},
				{path: "tmp/inetd.conf", kind: 'l', target: "@/etc/inetd.conf", uid: 1001}},
			confAt: "tmp/inetd.conf", code: CodeFilePerm,
			msgs: []string{"refusing inetd.conf @/tmp/inetd.conf is owned by uid 1001", "fix: chown -h root @/tmp/inetd.conf"}},
		{name: "inetd.conf in a world-writable directory",
			nodes:  []tnode{{path: "ww", kind: 'd', mode: 0o777}, {path: "ww/inetd.conf", kind: 'f', body: "ftp stream tcp nowait root /bin/sh sh\n"}},
			confAt: "ww/inetd.conf", code: CodeFilePerm,
			msgs: []string{"@/ww is writable by everyone (mode 0777, owner uid 0); fix: chmod o-w @/ww"}},
		{name: "inetd.conf writable by group root",
			nodes:  []tnode{{path: "etc/inetd.conf", kind: 'f', mode: 0o664, body: "ftp stream tcp nowait root /bin/sh sh\n"}},
			confAt: "etc/inetd.conf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			os.Chmod(base, 0o755)
			mkTree(t, base, tc.nodes)
			path := filepath.Join(base, "etc/inetd.conf")
			if tc.confAt != "" {
				path = filepath.Join(base, tc.confAt)
			} else {
				os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, []byte(strings.ReplaceAll(tc.conf, "@", base)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			svcs, diags := Load(path, Options{Sys: testDB(t), CheckOwnership: true})
			if tc.code == "" {
				if len(svcs) != 1 || svcs[0].Status != service.StatusAccepted {
					t.Fatalf("refused: %v", diags)
				}
				return
			}
			var found *service.Diag
			for i := range diags {
				if diags[i].Code == tc.code {
					found = &diags[i]
				}
			}
			if found == nil {
				t.Fatalf("no %s: %v", tc.code, diags)
			}
			for _, m := range tc.msgs {
				if m = strings.ReplaceAll(m, "@", base); !strings.Contains(found.Msg, m) {
					t.Errorf("message lacks %q:\n%s", m, found.Msg)
				}
			}
			if tc.code == CodeServerPerm {
				// The server field: line 1, its column.
				conf := strings.ReplaceAll(tc.conf, "@", base)
				if found.Pos.Line != 1 || found.Pos.Col < 1 || !strings.HasPrefix(conf[found.Pos.Col-1:], base) {
					t.Errorf("points at %v, want the server field", found.Pos)
				}
				if len(svcs) != 1 || svcs[0].Status != service.StatusRejected {
					t.Errorf("service not rejected: %v", svcs)
				}
			} else if len(svcs) != 0 || !found.Fatal {
				t.Errorf("a refused file gave services or no fatal diagnostic: %v", diags)
			}
		})
	}
}
