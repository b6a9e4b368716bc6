package parser

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestOwnership checks the root-only refusals on real files.
func TestOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks need root (chown to another uid)")
	}
	dir := t.TempDir()
	opt := testOptions()
	opt.CheckOwnership = true

	srv := filepath.Join(dir, "bin", "srv")
	write(t, srv, "#!/bin/sh\n")
	if err := os.Chmod(srv, 0o755); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "bin", "theirs")
	write(t, theirs, "#!/bin/sh\n")
	if err := os.Chmod(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 1001, 1001); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open", "srv")
	write(t, open, "#!/bin/sh\n")
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(open), 0o777); err != nil {
		t.Fatal(err)
	}
	svc := func(name string, port int, server string) string {
		return fmt.Sprintf("service %s\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tport = %d\n\twait = no\n\tuser = root\n\tserver = %s\n}\n", name, port, server)
	}

	main := filepath.Join(dir, "xinetd.conf")
	write(t, main, svc("good", 5000, srv)+svc("relative", 5001, "bin/srv")+svc("foreign", 5002, theirs)+
		svc("opendir", 5003, open)+"include inc/ok\ninclude inc/groupw\ninclude inc/foreign\nincludedir worldd\n")
	write(t, filepath.Join(dir, "inc/ok"), svc("incok", 5010, srv))
	write(t, filepath.Join(dir, "inc/groupw"), svc("incgw", 5011, srv))
	if err := os.Chmod(filepath.Join(dir, "inc/groupw"), 0o664); err != nil {
		t.Fatal(err)
	}
	// Writable by a group with ordinary members (group root would be fine).
	if err := os.Chown(filepath.Join(dir, "inc/groupw"), 0, 100); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "inc/foreign"), svc("incforeign", 5012, srv))
	if err := os.Chown(filepath.Join(dir, "inc/foreign"), 1001, 1001); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "worldd/x"), svc("world", 5013, srv))
	if err := os.Chmod(filepath.Join(dir, "worldd"), 0o777); err != nil {
		t.Fatal(err)
	}

	cfg := load(t, main, opt)
	if !cfg.Usable() {
		t.Fatalf("unexpected fatal: %v", cfg.Diags)
	}
	want := map[string]service.Status{"good": service.StatusAccepted, "relative": service.StatusRejected,
		"foreign": service.StatusRejected, "opendir": service.StatusRejected, "incok": service.StatusAccepted}
	for name, st := range want {
		s := findService(cfg, name)
		if s == nil || s.Status != st {
			t.Errorf("%s: %+v", name, s)
			continue
		}
		if st == service.StatusRejected && s.Reasons[0].Code != CodeOwnership {
			t.Errorf("%s: reason %v", name, s.Reasons)
		}
	}
	for _, name := range []string{"incgw", "incforeign", "world"} {
		if findService(cfg, name) != nil {
			t.Errorf("%s was loaded from a file non-root can change", name)
		}
	}
	n := 0
	for _, d := range cfg.Diags {
		if d.Code == CodeOwnership {
			n++
		}
	}
	if n != 6 {
		t.Errorf("want 6 ownership errors, got %d:\n%v", n, cfg.Diags)
	}

	// A main file others can write is fatal.
	if err := os.Chmod(main, 0o646); err != nil {
		t.Fatal(err)
	}
	if cfg := load(t, main, opt); cfg.Usable() || cfg.Diags[0].Code != CodeOwnership {
		t.Errorf("world-writable main file: %v", cfg.Diags)
	}
	// Without the check (not root) the same files load, except the
	// relative server, which is not found from the test's directory.
	opt.CheckOwnership = false
	if cfg := load(t, main, opt); len(cfg.Accepted()) != 7 {
		t.Errorf("without CheckOwnership: %d accepted\n%v", len(cfg.Accepted()), cfg.Diags)
	}
}

// tnode is one file, directory or link of a test tree; "@" in a link
// target or a body stands for the tree's base.
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

// TestOwnershipRule runs the one ownership rule (internal/pathsafe) as the
// xinetd.conf parser applies it: servers judged with the service's own
// user, symbolic links walked component by component, configuration files,
// include directories and banners.
func TestOwnershipRule(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks need root (chown to another uid)")
	}
	const script = "#!/bin/sh\nexec cat\n"
	sticky := os.ModeSticky | 0o777
	srvNodes := []tnode{{path: "bin/true", kind: 'f', mode: 0o755, body: script}}
	svc := func(name, user, server string, extra ...string) string {
		return fmt.Sprintf("service %s\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = 5000\n\twait = no\n\tuser = %s\n\tserver = %s\n%s}\n",
			name, user, server, strings.Join(extra, ""))
	}
	tests := []struct {
		name   string
		nodes  []tnode
		conf   string // the main file, at @/etc/xinetd.conf unless mainAt
		mainAt string
		status map[string]service.Status // services that must be there, with this status
		absent []string                  // services that must not have been read
		fatal  bool
		// msgs: substrings of one E-OWNERSHIP message; attr: the
		// attribute whose line it must point at ("" for include lines).
		msgs []string
		attr string
	}{
		{name: "server reached through a user's directory (root shell)",
			nodes: append(srvNodes, tnode{path: "home", kind: 'd', uid: 1001}, tnode{path: "home/game", kind: 'l', target: "@/bin/true", uid: 1001}),
			conf:  svc("game", "root", "@/home/game"), status: map[string]service.Status{"game": service.StatusRejected},
			msgs: []string{"server @/home/game: @/home is owned by uid 1001, not root (mode 0755)", "fix: chown root @/home"}, attr: "server"},
		{name: "server through a link to a user's link",
			nodes: append(srvNodes, tnode{path: "home", kind: 'd', uid: 1001}, tnode{path: "home/b", kind: 'l', target: "@/bin/true", uid: 1001},
				tnode{path: "srv/game", kind: 'l', target: "../home/b"}),
			conf: svc("game", "root", "@/srv/game"), status: map[string]service.Status{"game": service.StatusRejected},
			msgs: []string{"@/home is owned by uid 1001", "reached through @/srv/game -> ../home/b"}, attr: "server"},
		{name: "run-as owner accepted",
			nodes: []tnode{{path: "ctf", kind: 'd', uid: 1001, gid: 1001}, {path: "ctf/game", kind: 'f', mode: 0o755, uid: 1001, gid: 1001, body: script}},
			conf:  svc("game", "svc", "@/ctf/game"), status: map[string]service.Status{"game": service.StatusAccepted}},
		{name: "the same file for a root service refused with the path named",
			nodes: []tnode{{path: "ctf", kind: 'd', uid: 1001, gid: 1001}, {path: "ctf/game", kind: 'f', mode: 0o755, uid: 1001, gid: 1001, body: script}},
			conf:  svc("game", "root", "@/ctf/game"), status: map[string]service.Status{"game": service.StatusRejected},
			msgs: []string{"server @/ctf/game: @/ctf is owned by uid 1001, not root (mode 0755); fix: chown root @/ctf"}, attr: "server"},
		{name: "run-as owner with group root refused",
			nodes: []tnode{{path: "ctf", kind: 'd', uid: 1001, gid: 1001}, {path: "ctf/game", kind: 'f', mode: 0o755, uid: 1001, gid: 1001, body: script}},
			conf:  svc("game", "svc", "@/ctf/game", "\tgroup = root\n"), status: map[string]service.Status{"game": service.StatusRejected},
			msgs: []string{"@/ctf is owned by uid 1001"}, attr: "server"},
		{name: "root's server in a sticky world-writable directory",
			nodes: []tnode{{path: "tmp", kind: 'd', mode: sticky}, {path: "tmp/srv", kind: 'f', mode: 0o755, body: script}},
			conf:  svc("game", "root", "@/tmp/srv"), status: map[string]service.Status{"game": service.StatusAccepted}},
		{name: "a user's server in a sticky directory",
			nodes: []tnode{{path: "tmp", kind: 'd', mode: sticky}, {path: "tmp/srv", kind: 'f', mode: 0o755, uid: 1001, body: script}},
			conf:  svc("game", "root", "@/tmp/srv"), status: map[string]service.Status{"game": service.StatusRejected},
			msgs: []string{"@/tmp/srv is owned by uid 1001 (mode 0755) in @/tmp, a sticky directory others can write (mode 1777)"}, attr: "server"},
		{name: "group-writable server for a group with members",
			nodes: []tnode{{path: "srv", kind: 'f', mode: 0o775, gid: 100, body: script}},
			conf:  svc("game", "root", "@/srv"), status: map[string]service.Status{"game": service.StatusRejected},
			msgs: []string{"@/srv is writable by group 100 (mode 0775, owner uid 0); fix: chmod g-w @/srv"}, attr: "server"},
		{name: "script server with a user's interpreter",
			nodes: []tnode{{path: "home", kind: 'd', uid: 1001}, {path: "home/py", kind: 'f', mode: 0o755, uid: 1001}, {path: "srv", kind: 'f', mode: 0o755, body: "#!@/home/py\n"}},
			conf:  svc("game", "root", "@/srv"), status: map[string]service.Status{"game": service.StatusRejected},
			msgs: []string{"@/home is owned by uid 1001", "@/srv #! @/home/py"}, attr: "server"},
		{name: "include through a user's link in a sticky directory",
			nodes: []tnode{{path: "inc.conf", kind: 'f', body: svc("inc", "root", "/bin/sh")}, {path: "tmp", kind: 'd', mode: sticky},
				{path: "tmp/link", kind: 'l', target: "@/inc.conf", uid: 1001}},
			conf: "include @/tmp/link\n", absent: []string{"inc"},
			msgs: []string{"configuration file @/tmp/link is owned by uid 1001", "in @/tmp, a sticky directory", "fix: chown -h root @/tmp/link"}},
		{name: "include through a link in a user's directory",
			nodes: []tnode{{path: "inc.conf", kind: 'f', body: svc("inc", "root", "/bin/sh")}, {path: "home", kind: 'd', uid: 1001},
				{path: "home/link", kind: 'l', target: "@/inc.conf", uid: 1001}},
			conf: "include @/home/link\n", absent: []string{"inc"},
			msgs: []string{"configuration file @/home/link: @/home is owned by uid 1001"}},
		{name: "includedir through a user's link",
			nodes: []tnode{{path: "conf.d/inc", kind: 'f', body: svc("inc", "root", "/bin/sh")}, {path: "home", kind: 'd', uid: 1001},
				{path: "home/d", kind: 'l', target: "@/conf.d", uid: 1001}},
			conf: "includedir @/home/d\n", absent: []string{"inc"},
			msgs: []string{"include directory @/home/d: @/home is owned by uid 1001"}},
		{name: "include in a world-writable directory",
			nodes: []tnode{{path: "ww", kind: 'd', mode: 0o777}, {path: "ww/inc.conf", kind: 'f', body: svc("inc", "root", "/bin/sh")}},
			conf:  "include @/ww/inc.conf\n", absent: []string{"inc"},
			msgs: []string{"@/ww is writable by everyone (mode 0777, owner uid 0); fix: chmod o-w @/ww"}},
		{name: "include in a root-group-writable directory",
			nodes: []tnode{{path: "d", kind: 'd', mode: 0o775}, {path: "d/inc.conf", kind: 'f', body: svc("inc", "root", "/bin/sh")}},
			conf:  "include @/d/inc.conf\n", status: map[string]service.Status{"inc": service.StatusAccepted}},
		{name: "main file in a world-writable directory",
			nodes: []tnode{{path: "ww", kind: 'd', mode: 0o777}},
			conf:  svc("game", "root", "/bin/sh"), mainAt: "ww/xinetd.conf", fatal: true,
			msgs: []string{"configuration file @/ww/xinetd.conf: @/ww is writable by everyone"}},
		{name: "world-writable banner",
			nodes: []tnode{{path: "banner", kind: 'f', mode: 0o666}},
			conf:  svc("game", "root", "/bin/sh", "\tbanner_fail = @/banner\n"), status: map[string]service.Status{"game": service.StatusRejected},
			msgs: []string{"banner_fail @/banner is writable by everyone (mode 0666, owner uid 0); fix: chmod o-w @/banner"}, attr: "banner_fail"},
		{name: "banner through a user's directory",
			nodes: []tnode{{path: "home", kind: 'd', uid: 1001}, {path: "home/banner", kind: 'f'}},
			conf:  svc("game", "root", "/bin/sh", "\tbanner = @/home/banner\n"), status: map[string]service.Status{"game": service.StatusRejected},
			msgs: []string{"banner @/home/banner: @/home is owned by uid 1001"}, attr: "banner"},
		{name: "missing banner left to the daemon",
			conf:   svc("game", "root", "/bin/sh", "\tbanner = @/none\n"),
			status: map[string]service.Status{"game": service.StatusAccepted}},
		{name: "unsafe banner in defaults",
			nodes: []tnode{{path: "banner", kind: 'f', mode: 0o666}},
			conf:  "defaults\n{\n\tbanner_success = @/banner\n}\n" + svc("game", "root", "/bin/sh"), fatal: true,
			msgs: []string{"banner_success @/banner is writable by everyone"}, attr: "banner_success"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			os.Chmod(base, 0o755)
			mkTree(t, base, tc.nodes)
			mainAt := tc.mainAt
			if mainAt == "" {
				mainAt = "etc/xinetd.conf"
			}
			main := filepath.Join(base, mainAt)
			conf := strings.ReplaceAll(tc.conf, "@", base)
			write(t, main, conf)
			opt := testOptions()
			opt.CheckOwnership = true
			cfg := load(t, main, opt)
			if cfg.Diags.HasFatal() != tc.fatal {
				t.Errorf("fatal = %v, want %v:\n%v", cfg.Diags.HasFatal(), tc.fatal, cfg.Diags)
			}
			for name, st := range tc.status {
				if s := findService(cfg, name); s == nil || s.Status != st {
					t.Errorf("%s: %+v, want %s\n%v", name, s, st, cfg.Diags)
				}
			}
			for _, name := range tc.absent {
				if findService(cfg, name) != nil {
					t.Errorf("%s was read from a file others can change", name)
				}
			}
			if len(tc.msgs) == 0 {
				for _, d := range cfg.Diags {
					if d.Code == CodeOwnership {
						t.Errorf("unexpected refusal: %v", d)
					}
				}
				return
			}
			var found *service.Diag
			for i, d := range cfg.Diags {
				if d.Code == CodeOwnership {
					found = &cfg.Diags[i]
					break
				}
			}
			if found == nil {
				t.Fatalf("no %s diagnostic:\n%v", CodeOwnership, cfg.Diags)
			}
			for _, m := range tc.msgs {
				if m = strings.ReplaceAll(m, "@", base); !strings.Contains(found.Msg, m) {
					t.Errorf("message lacks %q:\n%s", m, found.Msg)
				}
			}
			// file:line:col of the attribute (or include line) that
			// named the file.
			// The main file itself has no line to point at.
			if found.Pos.File != main || tc.mainAt != "" {
				if found.Pos != (service.Source{File: main}) {
					t.Errorf("position %v, want the main file", found.Pos)
				}
				return
			}
			lines := strings.Split(conf, "\n")
			if found.Pos.Line < 1 || found.Pos.Line > len(lines) || found.Pos.Col < 1 {
				t.Fatalf("position %v", found.Pos)
			}
			line, col := lines[found.Pos.Line-1], found.Pos.Col-1
			if tc.attr == "" {
				// An include line: the directive.
				if !strings.HasPrefix(line[col:], "include") {
					t.Errorf("points at %v (%q), want the include line", found.Pos, line)
				}
				return
			}
			// An attribute: its line, at the path's column.
			if found.Attr != tc.attr || !strings.HasPrefix(strings.TrimSpace(line), tc.attr+" ") || !strings.HasPrefix(line[col:], base) {
				t.Errorf("points at %v (attr %q, line %q), want the %s line at its path", found.Pos, found.Attr, line, tc.attr)
			}
		})
	}
}

// TestOwnershipLogFiles: root appends service records to a FILE log, so
// a log path others could point elsewhere (a link to /etc/shadow planted
// in a directory they can write) is refused; a group-writable log
// directory (Ubuntu's /var/log is root:syslog 0775) only draws a
// warning; a file still to be created in a sticky directory is fine.
func TestOwnershipLogFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks need root (chown to another uid)")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	mk := func(p string, mode os.FileMode, uid, gid int) string {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	safe := mk("safe", 0o755, 0, 0)
	world := mk("world", 0o777, 0, 0)
	sticky := mk("sticky", os.ModeSticky|0o777, 0, 0)
	users := mk("users", 0o755, 1001, 1001)
	group := mk("group", 0o775, 0, 100)
	// A user's link in a world-writable directory, as an attacker plants it.
	planted := filepath.Join(sticky, "planted.log")
	if err := os.Symlink("/etc/shadow", planted); err != nil {
		t.Fatal(err)
	}
	os.Lchown(planted, 1001, 1001)
	cases := []struct {
		name, path string
		code       string // "" accepted without a message
	}{
		{"root's directory", filepath.Join(safe, "s.log"), ""},
		{"world-writable directory", filepath.Join(world, "s.log"), CodeOwnership},
		{"new file in a sticky directory", filepath.Join(sticky, "s.log"), ""},
		{"user's link in a sticky directory", planted, CodeOwnership},
		{"user's directory", filepath.Join(users, "s.log"), CodeOwnership},
		{"group-writable directory", filepath.Join(group, "s.log"), WarnLogPath},
	}
	opt := testOptions()
	opt.CheckOwnership = true
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			main := filepath.Join(t.TempDir(), "xinetd.conf")
			write(t, main, fmt.Sprintf("service echo\n{\n\ttype = INTERNAL UNLISTED\n\tsocket_type = stream\n\tport = 5000\n\twait = no\n\tlog_type = FILE %s\n}\n", c.path))
			cfg := load(t, main, opt)
			var got []string
			for _, d := range cfg.Diags {
				if d.Code == CodeOwnership || d.Code == WarnLogPath {
					got = append(got, d.Code)
					if d.Pos.Line != 7 || !strings.Contains(d.Msg, c.path) {
						t.Errorf("message %v: want line 7 and the path", d)
					}
				}
			}
			switch {
			case c.code == "" && len(got) != 0:
				t.Errorf("want no message, got %v", cfg.Diags)
			case c.code != "" && (len(got) != 1 || got[0] != c.code):
				t.Errorf("want %s, got %v", c.code, cfg.Diags)
			}
			accepted := len(cfg.Accepted()) == 1
			if accepted != (c.code != CodeOwnership) {
				t.Errorf("accepted = %v with %v", accepted, cfg.Diags)
			}
		})
	}
}
