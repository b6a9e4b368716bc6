package pathsafe

import (
	"errors"
	"io/fs"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// MaxLinks is how many symbolic links one resolution may follow, the
// kernel's own limit (MAXSYMLINKS); more is ELOOP.
const MaxLinks = 40

// maxScripts is how many "#!" interpreters may nest, the kernel's limit
// (BINPRM_MAX_RECURSION).
const maxScripts = 4

// Info describes the file a successful Check reached.
type Info struct {
	// Real is the path with every symbolic link, "." and ".." resolved.
	Real string
	// Stat is the final file's lstat result (never a link).
	Stat unix.Stat_t
}

// IsRegular reports whether the file is a regular file.
func (i Info) IsRegular() bool { return i.Stat.Mode&unix.S_IFMT == unix.S_IFREG }

// IsDir reports whether the file is a directory.
func (i Info) IsDir() bool { return i.Stat.Mode&unix.S_IFMT == unix.S_IFDIR }

// Check applies the ownership rule (see the package documentation) to
// path, which must be absolute. It returns an *Error when someone
// untrusted could change what path names, and an *fs.PathError when a
// component is missing, not a directory or the links loop; callers report
// those as they report a missing file.
func Check(path string, t Trust) (Info, error) {
	w := walker{orig: path, t: t}
	return w.walk(path)
}

// CheckExec is Check for a program about to be executed: a script's
// "#!" interpreter (and its own, four deep) must pass the same rule. The
// Info is the program's own.
func CheckExec(path string, t Trust) (Info, error) {
	w := walker{orig: path, t: t}
	return w.checkExec(path)
}

// CheckExecIn is CheckExec for a program run chrooted into root, an
// absolute directory: root must pass Check with root alone trusted
// (whoever can write it can put anything in it), and path is walked
// inside root as the kernel walks it for the chrooted exec: an absolute
// symbolic link, "..", or a "#!" interpreter never leads out of root.
// Info.Real is the path reached, as seen from the host.
func CheckExecIn(root, path string, t Trust) (Info, error) {
	if _, err := Check(root, Trust{}); err != nil {
		return Info{}, err
	}
	if root == "/" {
		return CheckExec(path, t)
	}
	w := walker{orig: strings.TrimSuffix(root, "/") + path, t: t, root: strings.TrimSuffix(root, "/")}
	return w.checkExec(path)
}

func (w *walker) checkExec(path string) (Info, error) {
	info, err := w.walk(path)
	if err != nil || !info.IsRegular() {
		return info, err
	}
	cur := info
	for depth := 0; ; depth++ {
		interp, err := scripts.interpreter(cur)
		if err != nil {
			return info, err
		}
		if interp == "" {
			return info, nil
		}
		if depth == maxScripts {
			return info, &fs.PathError{Op: "exec", Path: cur.Real, Err: unix.ELOOP}
		}
		w.via = append(w.via, hop{cur.Real, " #! ", interp})
		if !strings.HasPrefix(interp, "/") {
			// The kernel opens it relative to the server's working
			// directory, which is nothing the configuration pins down.
			return info, w.fail(interp, Relative, nil)
		}
		if cur, err = w.walk(interp); err != nil {
			return info, err
		}
		if !cur.IsRegular() {
			return info, nil // the exec fails and says why
		}
	}
}

// dirEnt is one directory the walk has reached and judged.
type dirEnt struct {
	path string
	st   unix.Stat_t
	// open is the way untrusted users can write the directory (None when
	// they cannot), with the uid or gid concerned.
	open Problem
	who  int
}

// walker is one Check: the path asked about (for messages), the trust,
// and the symbolic links (and interpreters) followed so far. root, when
// set, is where the walk starts and what "/" means (CheckExecIn).
type walker struct {
	orig string
	t    Trust
	via  []hop
	root string
}

// top is the directory a walk starts from and absolute links return to.
func (w *walker) top() string {
	if w.root == "" {
		return "/"
	}
	return w.root
}

// hop is one link followed ("from -> to") or interpreter ("from #! to"),
// kept in pieces: only a refusal needs the text.
type hop struct{ from, sep, to string }

// walk resolves path from / as the kernel does, judging every step.
func (w *walker) walk(path string) (Info, error) {
	if !strings.HasPrefix(path, "/") {
		return Info{}, w.fail(path, Relative, nil)
	}
	var rootSt unix.Stat_t
	if err := unix.Lstat(w.top(), &rootSt); err != nil {
		return Info{}, &fs.PathError{Op: "lstat", Path: w.top(), Err: err}
	}
	root, err := w.enterDir(w.top(), &rootSt)
	if err != nil {
		return Info{}, err
	}
	stack := make([]dirEnt, 1, 8) // the directories from / down to the current one
	stack[0] = root
	todo := splitPath(path, nil)
	links := 0
	if len(todo) == 0 {
		return w.final(w.top(), &rootSt)
	}
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		top := &stack[len(stack)-1]
		if name == "." || name == ".." {
			if name == ".." && len(stack) > 1 {
				stack = stack[:len(stack)-1]
				top = &stack[len(stack)-1]
			}
			if len(todo) == 0 {
				return w.final(top.path, &top.st)
			}
			continue
		}
		full := join(top.path, name)
		var st unix.Stat_t
		if err := unix.Lstat(full, &st); err != nil {
			return Info{}, &fs.PathError{Op: "lstat", Path: full, Err: err}
		}
		if err := w.entry(top, full, &st); err != nil {
			return Info{}, err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			links++
			if links > MaxLinks {
				return Info{}, &fs.PathError{Op: "lstat", Path: full, Err: unix.ELOOP}
			}
			target, err := readlink(full, int(st.Size))
			if err != nil {
				return Info{}, &fs.PathError{Op: "readlink", Path: full, Err: err}
			}
			if target == "" {
				return Info{}, &fs.PathError{Op: "readlink", Path: full, Err: unix.ENOENT}
			}
			w.via = append(w.via, hop{full, " -> ", target})
			if target[0] == '/' {
				stack = stack[:1]
			}
			todo = splitPath(target, todo)
		case unix.S_IFDIR:
			if len(todo) == 0 {
				return w.final(full, &st)
			}
			d, err := w.enterDir(full, &st)
			if err != nil {
				return Info{}, err
			}
			stack = append(stack, d)
		default:
			if len(todo) > 0 {
				return Info{}, &fs.PathError{Op: "lstat", Path: full + "/" + todo[0], Err: unix.ENOTDIR}
			}
			return w.final(full, &st)
		}
	}
	// Only a trailing symbolic link whose target was "." or ".." ends here.
	top := &stack[len(stack)-1]
	return w.final(top.path, &top.st)
}

// enterDir judges a directory the walk passes through: its owner must be
// trusted; who else may write it matters for its entries (entry).
func (w *walker) enterDir(path string, st *unix.Stat_t) (dirEnt, error) {
	if !w.t.trusts(st.Uid) {
		return dirEnt{}, w.fail(path, Owner, st)
	}
	open, who := w.writers(path, st)
	return dirEnt{path: path, st: *st, open: open, who: who}, nil
}

// entry judges whether untrusted users could replace the entry full of
// directory d (rename, unlink, or create it anew).
func (w *walker) entry(d *dirEnt, full string, st *unix.Stat_t) error {
	if d.open == None {
		return nil
	}
	if d.st.Mode&unix.S_ISVTX != 0 {
		if w.t.trusts(st.Uid) {
			return nil
		}
		e := w.fail(full, StickyEntry, st)
		e.Dir, e.DirMode = d.path, uint32(d.st.Mode&0o7777)
		return e
	}
	e := w.fail(d.path, d.open, &d.st)
	e.Who = d.who
	return e
}

// final judges the file or directory the path names.
func (w *walker) final(path string, st *unix.Stat_t) (Info, error) {
	if !w.t.trusts(st.Uid) {
		return Info{}, w.fail(path, Owner, st)
	}
	if open, who := w.writers(path, st); open != None {
		e := w.fail(path, open, st)
		e.Who = who
		return Info{}, e
	}
	return Info{Real: path, Stat: *st}, nil
}

// writers says how untrusted users may write a file or directory: every
// user (o+w), a group other than root (g+w), or an ACL entry. Only the
// owner is left out: enterDir and final judge it.
func (w *walker) writers(path string, st *unix.Stat_t) (Problem, int) {
	if st.Mode&0o002 != 0 {
		return WorldWritable, 0
	}
	if st.Mode&0o020 == 0 {
		// With an ACL the group bits are its mask, which bounds every
		// named entry and the owning group: nothing but the owner writes.
		return None, 0
	}
	acl, err := readACL(path)
	if err != nil {
		// An ACL that cannot be read may grant anything.
		return GroupWritable, int(st.Gid)
	}
	if acl == nil {
		if st.Gid != 0 {
			return GroupWritable, int(st.Gid)
		}
		return None, 0
	}
	for _, e := range acl {
		if e.perm&aclWrite == 0 {
			continue
		}
		switch e.tag {
		case aclGroupObj:
			if st.Gid != 0 {
				return GroupWritable, int(st.Gid)
			}
		case aclUser:
			if !w.t.trusts(e.id) {
				return ACLUser, int(e.id)
			}
		case aclGroup:
			if e.id != 0 {
				return ACLGroup, int(e.id)
			}
		}
	}
	return None, 0
}

func (w *walker) fail(at string, p Problem, st *unix.Stat_t) *Error {
	e := &Error{Path: w.orig, At: at, Problem: p, Trusted: w.t.UID}
	if st != nil {
		e.UID, e.GID, e.Mode = int(st.Uid), int(st.Gid), uint32(st.Mode&0o7777)
	}
	for _, h := range w.via {
		e.Via = append(e.Via, h.from+h.sep+h.to)
	}
	return e
}

// splitPath puts the components of p in front of rest. A trailing slash
// becomes a trailing "." so that, as for the kernel, it demands a
// directory.
func splitPath(p string, rest []string) []string {
	parts := strings.Split(p, "/")
	out := make([]string, 0, len(parts)+1+len(rest))
	for _, s := range parts {
		if s != "" {
			out = append(out, s)
		}
	}
	if len(out) > 0 && strings.HasSuffix(p, "/") {
		out = append(out, ".")
	}
	return append(out, rest...)
}

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

func readlink(path string, size int) (string, error) {
	if size <= 0 || size > unix.PathMax {
		size = unix.PathMax
	}
	buf := make([]byte, size+1)
	for {
		n, err := unix.Readlink(path, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		if len(buf) > unix.PathMax {
			return "", unix.ENAMETOOLONG
		}
		buf = make([]byte, 2*len(buf))
	}
}

// interpreter returns the program a "#!" line names, or "".
func interpreter(path string) (string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return "", &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var buf [256]byte // the kernel reads BINPRM_BUF_SIZE bytes
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return "", &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	b := buf[:n]
	if len(b) < 2 || b[0] != '#' || b[1] != '!' {
		return "", nil
	}
	b = b[2:]
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != 0 {
		j++
	}
	return string(b[i:j]), nil
}

// scriptCache remembers which files are scripts, so that starting the same
// server again costs no open and read. A file's contents cannot change
// without its ctime changing (no system call sets ctime), so an entry
// keyed by device, inode, ctime and size is never stale; the files are
// safe when asked about, so only a trusted user could change them anyway.
type scriptCache struct {
	mu sync.Mutex
	m  map[fileKey]string
}

type fileKey struct {
	dev, ino, size  uint64
	ctimeS, ctimeNS int64
}

// maxScriptCache bounds the cache; it is cleared when full, which only
// costs the next starts a read.
const maxScriptCache = 1024

var scripts = &scriptCache{m: map[fileKey]string{}}

func (c *scriptCache) interpreter(i Info) (string, error) {
	k := fileKey{dev: i.Stat.Dev, ino: i.Stat.Ino, size: uint64(i.Stat.Size), ctimeS: i.Stat.Ctim.Sec, ctimeNS: i.Stat.Ctim.Nsec}
	c.mu.Lock()
	interp, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return interp, nil
	}
	interp, err := interpreter(i.Real)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if len(c.m) >= maxScriptCache {
		clear(c.m)
	}
	c.m[k] = interp
	c.mu.Unlock()
	return interp, nil
}
