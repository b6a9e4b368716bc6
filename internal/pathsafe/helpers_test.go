package pathsafe

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// node is one thing a test tree holds. Paths are relative to the tree's
// base; a link's target is written as is, except that a leading "@" is
// replaced by the base (an absolute target inside the tree).
type node struct {
	path   string
	kind   byte // 'd' directory, 'f' file, 'l' symbolic link
	mode   os.FileMode
	uid    int
	gid    int
	target string
	body   string      // file contents
	acl    []aclEntry  // written as the access ACL when set
	sticky bool        // adds the sticky bit to a directory
	extra  os.FileMode // set-id bits
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the trees are built with chown to other users (CI runs the tests as root)")
	}
}

// newBase is a root-owned 0755 directory reachable by other users (the
// test's own temporary directory is made searchable for them).
func newBase(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	return dir
}

// build creates the nodes in order under base.
func build(t testing.TB, base string, nodes []node) {
	t.Helper()
	for _, n := range nodes {
		p := filepath.Join(base, n.path)
		var err error
		switch n.kind {
		case 'd':
			err = os.MkdirAll(p, 0o755)
		case 'f':
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.WriteFile(p, []byte(n.body), 0o644)
			}
		case 'l':
			tgt := n.target
			if strings.HasPrefix(tgt, "@") {
				tgt = base + tgt[1:]
			}
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.Symlink(tgt, p)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, n.uid, n.gid); err != nil {
			t.Fatal(err)
		}
		if n.kind == 'l' {
			continue
		}
		mode := n.mode
		if mode == 0 {
			mode = 0o755
			if n.kind == 'f' {
				mode = 0o644
			}
		}
		mode |= n.extra
		if n.sticky {
			mode |= os.ModeSticky
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if n.acl != nil {
			if err := unix.Lsetxattr(p, aclXattr, encodeACL(n.acl), 0); err != nil {
				t.Skipf("cannot set a POSIX ACL on %s: %v", p, err)
			}
		}
	}
}

// encodeACL is parseACL's inverse.
func encodeACL(es []aclEntry) []byte {
	b := make([]byte, 4, 4+8*len(es))
	binary.LittleEndian.PutUint32(b, aclVersion)
	for _, e := range es {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

// fullACL is an ACL granting the extra entries, with a mask that lets
// them through (rwx) and the base entries of mode 0775.
func fullACL(extra ...aclEntry) []aclEntry {
	es := []aclEntry{{tag: aclUserObj, perm: 7}}
	for _, e := range extra {
		if e.tag == aclUser {
			es = append(es, e)
		}
	}
	es = append(es, aclEntry{tag: aclGroupObj, perm: 5})
	for _, e := range extra {
		if e.tag == aclGroup {
			es = append(es, e)
		}
	}
	return append(es, aclEntry{tag: aclMask, perm: 7}, aclEntry{tag: aclOther, perm: 5})
}
