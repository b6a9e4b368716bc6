package pathsafe

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
)

const (
	alice = 1001 // an ordinary user, untrusted
	ctf   = 1002 // a server's run-as user
	users = 100  // a group with ordinary members
)

func TestCheck(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name  string
		nodes []node
		path  string // relative to the tree
		trust Trust
		exec  bool // CheckExec
		// want: "" safe; otherwise the Problem and the component at fault
		// (relative to the tree, "/" for the tree itself).
		want Problem
		at   string
		errn unix.Errno // a *fs.PathError with this errno instead
		real string     // when safe: the resolved path, relative ("" = path)
		via  string     // a substring of the message
	}{
		{name: "root file", nodes: []node{{path: "f", kind: 'f'}}, path: "f"},
		{name: "world-writable file", nodes: []node{{path: "f", kind: 'f', mode: 0o666}}, path: "f", want: WorldWritable, at: "f"},
		{name: "group-writable file, users", nodes: []node{{path: "f", kind: 'f', mode: 0o664, gid: users}}, path: "f", want: GroupWritable, at: "f"},
		{name: "group-writable file, root group", nodes: []node{{path: "f", kind: 'f', mode: 0o664}}, path: "f"},
		{name: "file owned by a user", nodes: []node{{path: "f", kind: 'f', uid: alice}}, path: "f", want: Owner, at: "f"},
		{name: "file owned by the run-as user", nodes: []node{{path: "f", kind: 'f', uid: ctf, gid: ctf, mode: 0o755}}, path: "f", trust: Trust{UID: ctf}},
		{name: "run-as user trusted, another user not", nodes: []node{{path: "f", kind: 'f', uid: alice}}, path: "f", trust: Trust{UID: ctf}, want: Owner, at: "f"},
		{name: "directory owned by a user", nodes: []node{{path: "d", kind: 'd', uid: alice}, {path: "d/f", kind: 'f'}}, path: "d/f", want: Owner, at: "d"},
		{name: "run-as user's directory", nodes: []node{{path: "d", kind: 'd', uid: ctf}, {path: "d/f", kind: 'f', uid: ctf, mode: 0o755}}, path: "d/f", trust: Trust{UID: ctf}},
		{name: "world-writable directory", nodes: []node{{path: "d", kind: 'd', mode: 0o777}, {path: "d/f", kind: 'f'}}, path: "d/f", want: WorldWritable, at: "d"},
		{name: "group-writable directory", nodes: []node{{path: "d", kind: 'd', mode: 0o775, gid: users}, {path: "d/f", kind: 'f'}}, path: "d/f", want: GroupWritable, at: "d"},
		{name: "root-group-writable directory", nodes: []node{{path: "d", kind: 'd', mode: 0o775}, {path: "d/f", kind: 'f'}}, path: "d/f"},
		{name: "root file in sticky /tmp-like directory", nodes: []node{{path: "tmp", kind: 'd', mode: 0o777, sticky: true}, {path: "tmp/f", kind: 'f'}}, path: "tmp/f"},
		{name: "user file in sticky directory", nodes: []node{{path: "tmp", kind: 'd', mode: 0o777, sticky: true}, {path: "tmp/f", kind: 'f', uid: alice}}, path: "tmp/f", want: StickyEntry, at: "tmp/f"},
		{name: "run-as user's file in sticky directory", nodes: []node{{path: "tmp", kind: 'd', mode: 0o777, sticky: true}, {path: "tmp/f", kind: 'f', uid: ctf}}, path: "tmp/f", trust: Trust{UID: ctf}},
		{name: "sticky directory owned by a user", nodes: []node{{path: "tmp", kind: 'd', mode: 0o777, sticky: true, uid: alice}, {path: "tmp/f", kind: 'f'}}, path: "tmp/f", want: Owner, at: "tmp"},
		{name: "root directory in sticky directory", nodes: []node{{path: "tmp", kind: 'd', mode: 0o777, sticky: true}, {path: "tmp/d", kind: 'd'}, {path: "tmp/d/f", kind: 'f'}}, path: "tmp/d/f"},
		{name: "user's link in sticky directory", nodes: []node{{path: "tmp", kind: 'd', mode: 0o777, sticky: true}, {path: "f", kind: 'f'}, {path: "tmp/l", kind: 'l', target: "../f", uid: alice}}, path: "tmp/l", want: StickyEntry, at: "tmp/l"},
		{name: "root's link in sticky directory", nodes: []node{{path: "tmp", kind: 'd', mode: 0o777, sticky: true}, {path: "f", kind: 'f'}, {path: "tmp/l", kind: 'l', target: "../f"}}, path: "tmp/l", real: "f"},
		{name: "user's link in root's directory", nodes: []node{{path: "f", kind: 'f'}, {path: "d/l", kind: 'l', target: "@/f", uid: alice}}, path: "d/l", real: "f"},
		{name: "sticky includedir", nodes: []node{{path: "tmp", kind: 'd', mode: 0o777, sticky: true}}, path: "tmp", want: WorldWritable, at: "tmp"},
		{name: "root-group-writable includedir", nodes: []node{{path: "d", kind: 'd', mode: 0o775}}, path: "d"},
		// The reproduction: the path as written runs through a directory
		// a user owns; the link's target is root's.
		{name: "link in a user's directory", nodes: []node{{path: "bin/true", kind: 'f', mode: 0o755}, {path: "home", kind: 'd', uid: alice},
			{path: "home/game", kind: 'l', target: "@/bin/true", uid: alice}}, path: "home/game", want: Owner, at: "home"},
		{name: "link to a user's link", nodes: []node{{path: "bin/true", kind: 'f', mode: 0o755}, {path: "home", kind: 'd', uid: alice},
			{path: "home/b", kind: 'l', target: "@/bin/true", uid: alice}, {path: "srv/game", kind: 'l', target: "../home/b"}},
			path: "srv/game", want: Owner, at: "home", via: "/srv/game -> ../home/b"},
		{name: "link target in a world-writable directory", nodes: []node{{path: "x", kind: 'd', mode: 0o777}, {path: "x/f", kind: 'f'},
			{path: "d/l", kind: 'l', target: "../x/f"}}, path: "d/l", want: WorldWritable, at: "x"},
		{name: "dot-dot through a user's directory", nodes: []node{{path: "f", kind: 'f'}, {path: "home", kind: 'd', uid: alice}, {path: "home/sub", kind: 'd', uid: alice}},
			path: "home/sub/../../f", want: Owner, at: "home"},
		{name: "dot-dot after a link goes up from the target", nodes: []node{{path: "other/deep", kind: 'd'}, {path: "other/f", kind: 'f'},
			{path: "f", kind: 'f', mode: 0o666}, {path: "l", kind: 'l', target: "other/deep"}}, path: "l/../f", real: "other/f"},
		{name: "link loop", nodes: []node{{path: "a", kind: 'l', target: "b"}, {path: "b", kind: 'l', target: "a"}}, path: "a", errn: unix.ELOOP},
		{name: "missing", nodes: []node{{path: "d", kind: 'd'}}, path: "d/none", errn: unix.ENOENT},
		{name: "not a directory", nodes: []node{{path: "f", kind: 'f'}}, path: "f/x", errn: unix.ENOTDIR},
		{name: "ACL lets a user write", nodes: []node{{path: "f", kind: 'f', mode: 0o664, acl: fullACL(aclEntry{tag: aclUser, perm: 7, id: alice})}}, path: "f", want: ACLUser, at: "f"},
		{name: "ACL lets the run-as user write", nodes: []node{{path: "f", kind: 'f', mode: 0o664, acl: fullACL(aclEntry{tag: aclUser, perm: 7, id: ctf})}}, path: "f", trust: Trust{UID: ctf}},
		{name: "ACL lets a group write", nodes: []node{{path: "f", kind: 'f', mode: 0o664, acl: fullACL(aclEntry{tag: aclGroup, perm: 6, id: users})}}, path: "f", want: ACLGroup, at: "f"},
		{name: "ACL read-only entries", nodes: []node{{path: "f", kind: 'f', mode: 0o664, acl: fullACL(aclEntry{tag: aclUser, perm: 4, id: alice})}}, path: "f"},
		{name: "ACL on a directory on the way", nodes: []node{{path: "d", kind: 'd', acl: fullACL(aclEntry{tag: aclUser, perm: 7, id: alice})}, {path: "d/f", kind: 'f'}}, path: "d/f", want: ACLUser, at: "d"},
		{name: "script with root's interpreter", nodes: []node{{path: "s", kind: 'f', mode: 0o755, body: "#!/bin/sh\necho\n"}}, path: "s", exec: true},
		{name: "script with a user's interpreter", nodes: []node{{path: "home", kind: 'd', uid: alice}, {path: "home/py", kind: 'f', uid: alice, mode: 0o755},
			{path: "s", kind: 'f', mode: 0o755, body: "#! @/home/py -u\n"}}, path: "s", exec: true, want: Owner, at: "home", via: "#! "},
		{name: "script interpreters nest too deep", nodes: []node{{path: "a", kind: 'f', mode: 0o755, body: "#!@/b\n"}, {path: "b", kind: 'f', mode: 0o755, body: "#!@/a\n"}},
			path: "a", exec: true, errn: unix.ELOOP},
		{name: "script with a relative interpreter", nodes: []node{{path: "s", kind: 'f', mode: 0o755, body: "#!python\n"}}, path: "s", exec: true, want: Relative},
		{name: "script not followed by Check", nodes: []node{{path: "home", kind: 'd', uid: alice}, {path: "s", kind: 'f', mode: 0o755, body: "#!@/home/py\n"}}, path: "s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := newBase(t)
			nodes := append([]node(nil), tc.nodes...)
			for i := range nodes {
				nodes[i].body = strings.ReplaceAll(nodes[i].body, "@", base)
			}
			build(t, base, nodes)
			path := base + "/" + tc.path // not Join: it would clean ".." lexically
			check := Check
			if tc.exec {
				check = CheckExec
			}
			info, err := check(path, tc.trust)
			switch {
			case tc.errn != 0:
				var pe *fs.PathError
				if !errors.As(err, &pe) || pe.Err != tc.errn {
					t.Fatalf("got %v (%T), want a path error %v", err, err, tc.errn)
				}
			case tc.want == None:
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				wantReal := path
				if tc.real != "" {
					wantReal = filepath.Join(base, tc.real)
				}
				if info.Real != wantReal {
					t.Errorf("Real = %s, want %s", info.Real, wantReal)
				}
				var st unix.Stat_t
				if err := unix.Stat(path, &st); err != nil || st.Ino != info.Stat.Ino || st.Dev != info.Stat.Dev {
					t.Errorf("Info.Stat is not the file the kernel reaches (%v)", err)
				}
			default:
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("got %v (%T), want %v", err, err, tc.want)
				}
				if !errors.Is(err, ErrUnsafe) {
					t.Errorf("errors.Is(err, ErrUnsafe) is false")
				}
				if e.Problem != tc.want {
					t.Errorf("problem %d, want %d: %v", e.Problem, tc.want, e)
				}
				if tc.at != "" {
					at := filepath.Join(base, tc.at)
					if e.At != at {
						t.Errorf("At = %s, want %s: %v", e.At, at, e)
					}
				}
				if e.Path != path {
					t.Errorf("Path = %s, want %s", e.Path, path)
				}
				msg := e.Error()
				if !strings.Contains(msg, e.At) || !strings.Contains(msg, "fix: ") {
					t.Errorf("message does not name the component and the fix: %s", msg)
				}
				if tc.via != "" && !strings.Contains(msg, tc.via) {
					t.Errorf("message does not say %q: %s", tc.via, msg)
				}
			}
		})
	}
}

// TestMessages pins the wording: the component, its owner, its mode and
// the command that fixes it.
func TestMessages(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{Path: "/srv/ctf/run", At: "/srv/ctf", Problem: Owner, UID: 1001, Mode: 0o755},
			"/srv/ctf/run: /srv/ctf is owned by uid 1001, not root (mode 0755); fix: chown root /srv/ctf"},
		{Error{Path: "/srv/x", At: "/srv/x", Problem: Owner, UID: 1001, Mode: 0o755, Trusted: 1002},
			"/srv/x is owned by uid 1001, not root or the service's user (uid 1002) (mode 0755); fix: chown root /srv/x"},
		{Error{Path: "/srv/x", At: "/srv", Problem: WorldWritable, Mode: 0o777},
			"/srv/x: /srv is writable by everyone (mode 0777, owner uid 0); fix: chmod o-w /srv"},
		{Error{Path: "/srv/x", At: "/srv/x", Problem: GroupWritable, Who: 100, Mode: 0o775},
			"/srv/x is writable by group 100 (mode 0775, owner uid 0); fix: chmod g-w /srv/x"},
		{Error{Path: "/srv/x", At: "/srv/x", Problem: ACLUser, Who: 1001, Mode: 0o775},
			"/srv/x has an ACL entry that lets uid 1001 write it (mode 0775, owner uid 0); fix: setfacl -x u:1001 /srv/x"},
		{Error{Path: "/srv/x", At: "/srv/x", Problem: ACLGroup, Who: 100, Mode: 0o775},
			"/srv/x has an ACL entry that lets group 100 write it (mode 0775, owner uid 0); fix: setfacl -x g:100 /srv/x"},
		{Error{Path: "/usr/sbin/game", At: "/tmp/game", Problem: StickyEntry, UID: 1001, Mode: 0o755, Dir: "/tmp", DirMode: 0o1777,
			Via: []string{"/usr/sbin/game -> /tmp/game"}},
			"/usr/sbin/game: /tmp/game is owned by uid 1001 (mode 0755) in /tmp, a sticky directory others can write (mode 1777), so its owner can replace it (reached through /usr/sbin/game -> /tmp/game); fix: chown -h root /tmp/game (or move it out of /tmp)"},
	}
	for _, tc := range tests {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

func TestRunAs(t *testing.T) {
	tests := []struct {
		uid  int
		gids []int
		want Trust
	}{
		{0, nil, Trust{}},
		{0, []int{5}, Trust{}},
		{1002, []int{1002}, Trust{UID: 1002}},
		{1002, []int{1002, 0}, Trust{}},
		{1002, []int{0}, Trust{}},
		{-1, nil, Trust{}},
	}
	for _, tc := range tests {
		if got := RunAs(tc.uid, tc.gids...); got != tc.want {
			t.Errorf("RunAs(%d, %v) = %+v, want %+v", tc.uid, tc.gids, got, tc.want)
		}
	}
}

func TestForUser(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("ctf:x:1002:1002::/home/ctf:/bin/sh\nop:x:1003:0::/:/bin/sh\nwheelie:x:1004:1004::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:wheelie\nctf:x:1002:\n"), 0o644)
	db := &sysdb.DB{Root: dir}
	cred := func(name string, id int) *service.Cred { return &service.Cred{Name: name, ID: id} }
	tests := []struct {
		name        string
		user, group *service.Cred
		initgroups  bool
		want        Trust
	}{
		{"no user", nil, nil, false, Trust{}},
		{"root", cred("root", 0), nil, false, Trust{}},
		{"named user", cred("ctf", 1002), nil, true, Trust{UID: 1002}},
		{"numeric user", cred("1002", 1002), nil, false, Trust{UID: 1002}},
		{"primary group root", cred("op", 1003), nil, false, Trust{}},
		{"group root given", cred("ctf", 1002), cred("root", 0), false, Trust{}},
		{"member of root, groups", cred("wheelie", 1004), nil, true, Trust{}},
		{"member of root, no groups", cred("wheelie", 1004), nil, false, Trust{UID: 1004}},
	}
	for _, tc := range tests {
		if got := ForUser(tc.user, tc.group, tc.initgroups, db); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestRelative(t *testing.T) {
	_, err := Check("etc/xinetd.conf", Trust{})
	var e *Error
	if !errors.As(err, &e) || e.Problem != Relative {
		t.Fatalf("relative path: %v", err)
	}
}

func TestParseACL(t *testing.T) {
	es := []aclEntry{{aclUserObj, 7, 0}, {aclUser, 6, 1001}, {aclGroupObj, 5, 0}, {aclMask, 7, 0}, {aclOther, 5, 0}}
	got, err := parseACL(encodeACL(es))
	if err != nil || len(got) != len(es) || got[1] != es[1] {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range [][]byte{nil, {2, 0, 0}, {1, 0, 0, 0}, append(encodeACL(es), 1)} {
		if _, err := parseACL(bad); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}
