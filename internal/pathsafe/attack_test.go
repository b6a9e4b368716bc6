package pathsafe

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestAttacker is the rule's property test: on random trees (owners
// root, a user and a run-as user; modes with and without group, world and
// sticky bits; ACLs; symbolic links anywhere) Check refuses a path exactly
// when a real attacker, running as the user with the group users, can
// change what the path names: rename or remove any entry the kernel walks
// through (then put his own in its place), chmod anything he owns, write
// the final file, or add a file to the final directory.
func TestAttacker(t *testing.T) {
	needRoot(t)
	r := rand.New(rand.NewPCG(20261123, 1))
	top := newBase(t)
	const trials = 1000
	var safe, unsafe, skipped int
	for i := 0; i < trials; i++ {
		trust := Trust{}
		if i%2 == 1 {
			trust = Trust{UID: ctf}
		}
		base := filepath.Join(top, fmt.Sprint(i))
		if err := os.Mkdir(base, 0o755); err != nil {
			t.Fatal(err)
		}
		nodes := randomTree(r, trust)
		build(t, base, nodes)
		path := pickPath(r, base, nodes)
		_, err := Check(path, trust)
		var pe *fs.PathError
		if errors.As(err, &pe) {
			skipped++ // missing or looping: nothing to attack
			continue
		}
		entries, final, finalDir, rerr := walkEntries(base, path)
		if rerr != nil {
			t.Fatalf("trial %d: the kernel's walk failed where Check did not: %v", i, rerr)
		}
		how := attack(t, entries, final, finalDir)
		switch {
		case err == nil && how != "":
			t.Errorf("trial %d: %s accepted (trust %+v), but the attacker could %s\n%s", i, path, trust, how, dump(nodes))
		case err != nil && how == "":
			t.Errorf("trial %d: refused (%v), but the attacker could do nothing\n%s", i, err, dump(nodes))
		case err == nil:
			safe++
		default:
			unsafe++
		}
	}
	t.Logf("%d trials: %d safe, %d unsafe, %d skipped", trials, safe, unsafe, skipped)
	if safe < trials/10 || unsafe < trials/10 {
		t.Errorf("the generator is lopsided: %d safe, %d unsafe", safe, unsafe)
	}
}

func randomTree(r *rand.Rand, trust Trust) []node {
	owners := []int{0, 0, 0, alice}
	aclUsers := []uint32{alice}
	if trust.UID != 0 {
		owners = append(owners, ctf, ctf)
		aclUsers = append(aclUsers, ctf)
	}
	dirModes := []os.FileMode{0o755, 0o755, 0o755, 0o775, 0o777, 0o777 | os.ModeSticky, 0o777 | os.ModeSticky, 0o775 | os.ModeSticky}
	fileModes := []os.FileMode{0o644, 0o644, 0o755, 0o664, 0o666}
	gids := []int{0, 0, users}
	dirs := []string{""}
	var nodes []node
	var all []string
	n := 2 + r.IntN(7)
	for i := 0; i < n; i++ {
		parent := dirs[r.IntN(len(dirs))]
		name := filepath.Join(parent, fmt.Sprintf("n%d", i))
		nd := node{path: name, uid: owners[r.IntN(len(owners))], gid: gids[r.IntN(len(gids))]}
		switch k := r.IntN(10); {
		case k < 4 || len(all) == 0:
			nd.kind, nd.mode = 'd', dirModes[r.IntN(len(dirModes))]
			nd.sticky = nd.mode&os.ModeSticky != 0
			nd.mode &^= os.ModeSticky
			dirs = append(dirs, name)
		case k < 6:
			nd.kind, nd.mode = 'f', fileModes[r.IntN(len(fileModes))]
		default:
			nd.kind = 'l'
			tgt := all[r.IntN(len(all))]
			if r.IntN(2) == 0 {
				nd.target = "@/" + tgt
			} else {
				rel, _ := filepath.Rel(filepath.Dir(name), tgt)
				nd.target = rel
			}
		}
		if nd.kind != 'l' && r.IntN(8) == 0 {
			if r.IntN(2) == 0 {
				nd.acl = fullACL(aclEntry{tag: aclUser, perm: 7, id: aclUsers[r.IntN(len(aclUsers))]})
			} else {
				nd.acl = fullACL(aclEntry{tag: aclGroup, perm: 7, id: users})
			}
		}
		nodes = append(nodes, nd)
		all = append(all, name)
	}
	return nodes
}

// pickPath names one node, sometimes through a link to a directory.
func pickPath(r *rand.Rand, base string, nodes []node) string {
	nd := nodes[r.IntN(len(nodes))]
	p := base + "/" + nd.path
	if nd.kind == 'l' && r.IntN(2) == 0 {
		if ents, err := os.ReadDir(p); err == nil && len(ents) > 0 {
			p += "/" + ents[r.IntN(len(ents))].Name()
		}
	}
	return p
}

// walkEntries lists what the kernel walks through for path (below base):
// every entry looked up, as directory-resolved path plus name, and the
// final file.
func walkEntries(base, path string) (entries []string, final string, finalDir bool, err error) {
	cur := "/"
	todo := splitPath(path, nil)
	for links := 0; len(todo) > 0; {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		full := filepath.Join(cur, name)
		fi, err := os.Lstat(full)
		if err != nil {
			return nil, "", false, err
		}
		if strings.HasPrefix(full, base+"/") {
			entries = append(entries, full)
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			if links++; links > MaxLinks {
				return nil, "", false, unix.ELOOP
			}
			tgt, err := os.Readlink(full)
			if err != nil {
				return nil, "", false, err
			}
			if filepath.IsAbs(tgt) {
				cur = "/"
			}
			todo = splitPath(tgt, todo)
		case fi.IsDir():
			cur = full
		default:
			return entries, full, false, nil
		}
	}
	return entries, cur, true, nil
}

// attack runs on a thread of its own with the user's credentials (set
// with raw system calls, which change that thread alone; the thread is
// never given back to the runtime, so it dies with the goroutine) and
// says what it managed to do, or "".
func attack(t *testing.T, entries []string, final string, finalDir bool) string {
	t.Helper()
	out := make(chan string, 1)
	go func() {
		runtime.LockOSThread()
		groups := []uint32{users}
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 1, uintptr(unsafe.Pointer(&groups[0])), 0); e != 0 {
			out <- "!setgroups: " + e.Error()
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, alice, alice, alice); e != 0 {
			out <- "!setresgid: " + e.Error()
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, alice, alice, alice); e != 0 {
			out <- "!setresuid: " + e.Error()
			return
		}
		for _, e := range entries {
			if err := os.Rename(e, e+".attacker"); err == nil {
				out <- "rename " + e
				return
			}
			var st unix.Stat_t
			if unix.Lstat(e, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFLNK {
				if err := unix.Chmod(e, 0o777); err == nil {
					out <- "chmod " + e
					return
				}
			}
		}
		if finalDir {
			if fd, err := unix.Open(final+"/attacker", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644); err == nil {
				unix.Close(fd)
				out <- "add a file to " + final
				return
			}
		} else if fd, err := unix.Open(final, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0); err == nil {
			unix.Close(fd)
			out <- "write " + final
			return
		}
		out <- ""
	}()
	how := <-out
	if strings.HasPrefix(how, "!") {
		t.Fatalf("cannot become uid %d: %s", alice, how[1:])
	}
	return how
}

func dump(nodes []node) string {
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "  %c %-12s uid %-4d gid %-3d mode %04o sticky %-5v acl %v %s\n", n.kind, n.path, n.uid, n.gid, n.mode, n.sticky, n.acl != nil, n.target)
	}
	return b.String()
}
