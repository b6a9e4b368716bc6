package parser

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/pathsafe"
	"github.com/gxinetd/gxinetd/internal/seccomp"
	"github.com/gxinetd/gxinetd/internal/service"
)

// The sandbox attributes (issue 17, docs/sandbox.md): every one is allowed
// in defaults, and a service that does not set one inherits it.

// Diagnostic codes of the sandbox attributes.
const (
	CodeSandbox     = "E-SANDBOX"      // a sandbox setting that cannot work (missing directory, unsafe chroot)
	CodeSandboxHost = "E-SANDBOX-HOST" // this host (kernel, build, privileges) cannot provide it
	CodeSeccomp     = "E-SECCOMP"      // a seccomp profile that cannot be used
	WarnSandbox     = "W-SANDBOX"      // a sandbox setting with no or partial effect
)

// addSandboxAttrs registers the sandbox attributes, every one allowed in
// services and in defaults (attrs.go's init calls it, before attributes
// are numbered).
func addSandboxAttrs(add func(name string, kind attrKind, n int, h func(*entry, *attrLine) bool)) {
	add("chroot", kindFixed, 1, hChroot)
	add("no_new_privs", kindFixed, 1, hNoNewPrivs)
	add("namespaces", kindList, 0, hNamespaces)
	add("private_tmp", kindFixed, 1, hPrivateTmp)
	add("read_only_paths", kindList, 0, hReadOnlyPaths)
	add("writable_paths", kindList, 0, hWritablePaths)
	add("read_only_root", kindFixed, 1, hReadOnlyRoot)
	add("seccomp", kindFixed, 1, hSeccomp)
	add("max_duration", kindFixed, 1, hMaxDuration)
}

func hChroot(e *entry, a *attrLine) bool {
	w := a.values[0].text
	if !filepath.IsAbs(w) {
		// Relative to the directory of the file that names it, as banner
		// and log paths are; made absolute, since the child resolves it.
		abs, err := filepath.Abs(e.filePath(w))
		if err != nil {
			e.valueErr(a, 0, "chroot "+w+": "+err.Error())
			return false
		}
		w = abs
	}
	dir := filepath.Clean(w)
	if dir == "/" {
		dir = "" // chroot = / switches an inherited chroot off
	}
	e.svc.Sandbox.Chroot = dir
	if dir != "" && !e.isDefaults && e.svc.Server != "" {
		// The server line came first and was judged on the host's file
		// system; inside the chroot is where it must exist instead.
		e.dropServerDiags()
	}
	return true
}

// dropServerDiags forgets what hServer said about the server path, which
// complete() judges again inside the chroot.
func (e *entry) dropServerDiags() {
	kept, keptRej := e.diags[:0], e.rejecting[:0]
	for i, d := range e.diags {
		if d.Attr == "server" && (d.Code == CodeServer || d.Code == CodeOwnership || d.Code == WarnRelativePath) {
			continue
		}
		kept = append(kept, d)
		keptRej = append(keptRej, e.rejecting[i])
	}
	e.diags, e.rejecting = kept, keptRej
	e.rejected = false
	for _, r := range e.rejecting {
		e.rejected = e.rejected || r
	}
	if !e.svc.Origins.Has("server") && e.serverSrc.Line > 0 {
		e.svc.Origins.Set("server", e.serverSrc)
	}
}

// chrootSoFar is the chroot known when the server line is read: the
// entry's own, or the defaults read so far.
func (e *entry) chrootSoFar() string {
	if e.svc.Sandbox.Chroot != "" {
		return e.svc.Sandbox.Chroot
	}
	if _, set := e.l.defs.origins["chroot"]; set && !e.isDefaults && !e.set.has(attrSpecs["chroot"].bit) {
		return e.l.defs.svc.Sandbox.Chroot
	}
	return ""
}

func hNoNewPrivs(e *entry, a *attrLine) bool { return yesNoAttr(e, a, &e.svc.Sandbox.NoNewPrivs) }

func hReadOnlyRoot(e *entry, a *attrLine) bool { return yesNoAttr(e, a, &e.svc.Sandbox.ReadOnlyRoot) }

// yesNoAttr sets *dst from an attribute that takes yes or no.
func yesNoAttr(e *entry, a *attrLine, dst *bool) bool {
	v, ok := yesNo(a.values[0].text)
	if !ok {
		e.valueErr(a, 0, "Bad value for "+a.name+": "+a.values[0].text+" (yes or no)")
		return false
	}
	*dst = v
	return true
}

func hNamespaces(e *entry, a *attrLine) bool {
	return bitsOp(e, a, &e.svc.Sandbox.Namespaces, service.ParseNamespace, "namespaces", service.NamespaceNames())
}

func hPrivateTmp(e *entry, a *attrLine) bool {
	w := a.values[0].text
	if v, ok := yesNo(w); ok {
		e.svc.Sandbox.PrivateTmp, e.svc.Sandbox.PrivateTmpSize = v, 0
		return true
	}
	n, ok := sizeValue(w)
	if !ok || n < 1<<20 {
		e.valueErr(a, 0, "Bad value for private_tmp: "+w+" (yes, no, or a size of at least 1m)")
		return false
	}
	e.svc.Sandbox.PrivateTmp, e.svc.Sandbox.PrivateTmpSize = true, int64(n)
	return true
}

func hReadOnlyPaths(e *entry, a *attrLine) bool {
	return e.pathListOp(a, &e.svc.Sandbox.ReadOnlyPaths)
}

func hWritablePaths(e *entry, a *attrLine) bool {
	return e.pathListOp(a, &e.svc.Sandbox.WritablePaths)
}

// pathListOp applies one read_only_paths / writable_paths line. A path is
// absolute, as the server sees it (inside its chroot), and may start
// with '-' to mean "skip it when it does not exist".
func (e *entry) pathListOp(a *attrLine, list *[]string) bool {
	add := make([]string, 0, len(a.values))
	for i, w := range a.values {
		p := strings.TrimPrefix(w.text, "-")
		if !path.IsAbs(p) {
			e.valueErr(a, i, a.name+" takes absolute paths (as the server sees them): "+w.text)
			return false
		}
		clean := path.Clean(p)
		if strings.HasPrefix(w.text, "-") {
			clean = "-" + clean
		}
		add = append(add, clean)
	}
	switch e.listOp(a) {
	case '=':
		*list = add
	case '+':
		*list = append(append([]string(nil), *list...), add...)
	case '-':
		drop := make(map[string]bool, len(add))
		for _, p := range add {
			drop[strings.TrimPrefix(p, "-")] = true
		}
		var kept []string
		for _, p := range *list {
			if !drop[strings.TrimPrefix(p, "-")] {
				kept = append(kept, p)
			}
		}
		*list = kept
	}
	if len(*list) == 0 {
		*list = nil // as the JSON of the model reads it back
	}
	return true
}

func hMaxDuration(e *entry, a *attrLine) bool {
	n, ok := secondsValue(e, a)
	e.svc.MaxDuration = n
	return ok
}

// maxProfileFile bounds a seccomp profile file.
const maxProfileFile = 1 << 20

func hSeccomp(e *entry, a *attrLine) bool {
	w := a.values[0].text
	switch {
	case strings.EqualFold(w, "none"):
		e.svc.Sandbox.Seccomp = nil // switches an inherited profile off
		return true
	case !strings.ContainsRune(w, '/'):
		if _, ok := seccomp.Builtin(w); ok {
			e.svc.Sandbox.Seccomp = &service.Seccomp{Profile: w}
			return true
		}
		// A bare name that is no built-in profile is a file beside the
		// configuration file (challenge.seccomp), when there is one.
		if _, err := os.Stat(e.filePath(w)); err != nil {
			e.errAt(a, 0, CodeSeccomp, fmt.Sprintf("unknown seccomp profile %q: a built-in profile (%s), none, or a profile file (no file %s either)", w, strings.Join(seccomp.BuiltinNames(), ", "), e.filePath(w)))
			return false
		}
	}
	file := e.filePath(w)
	text, err := e.l.readProfile(file)
	if err != nil {
		e.errAt(a, 0, CodeSeccomp, fmt.Sprintf("seccomp profile %s: %v", file, err))
		return false
	}
	if _, errs := seccomp.Parse(file, []byte(text)); len(errs) > 0 {
		for _, pe := range errs {
			// The position is in the profile file; the entry is what
			// the message rejects.
			e.diags = append(e.diags, service.Diag{Pos: srcOf(file, pe.Line, pe.Col), Severity: service.SevError,
				Code: CodeSeccomp, Attr: "seccomp", Msg: pe.Msg, IncludedFrom: []service.Source{a.src(e.file)}})
			e.rejecting = append(e.rejecting, !e.isDefaults)
			if e.isDefaults {
				e.diags[len(e.diags)-1].Fatal = true
			}
		}
		e.rejected = e.rejected || !e.isDefaults
		return false
	}
	e.svc.Sandbox.Seccomp = &service.Seccomp{Profile: w, File: file, Text: text}
	return true
}

// profileRead is a profile file as read once per Load.
type profileRead struct {
	text string
	err  error
}

// readProfile reads a seccomp profile file once per Load, with the
// ownership rule of configuration files when running as root: whoever
// can rewrite the profile can lift the sandbox.
func (l *loader) readProfile(file string) (string, error) {
	if l.profiles == nil { // serial reads only: startShared makes it
		l.profiles = map[string]profileRead{}
	}
	fl := flightOf(l.mu, func(c *cacheLocks) *flight { return &c.profiles })
	r := cached(fl, l.profiles, file, func() profileRead {
		text, err := l.loadProfile(file)
		if l.prof == nil && err == nil {
			l.cfg.Files = append(l.cfg.Files, file)
		}
		return profileRead{text, err}
	})
	if l.prof != nil {
		l.prof.note(file, r.err) // the merge lists it, in file order
	}
	return r.text, r.err
}

// loadProfile reads a profile file for readProfile.
func (l *loader) loadProfile(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", errors.New(errText(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", errors.New(errText(err))
	}
	if !fi.Mode().IsRegular() {
		return "", errors.New("not a regular file")
	}
	if l.opt.CheckOwnership {
		if ue := l.unsafePath(file, pathsafe.Trust{}); ue != nil {
			return "", errors.New(ue.Error() + "; refusing to read it")
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxProfileFile+1))
	if err != nil {
		return "", errors.New(errText(err))
	}
	if len(b) > maxProfileFile {
		return "", fmt.Errorf("too large (the limit is %d KiB)", maxProfileFile>>10)
	}
	return string(b), nil
}

// errAtAttr rejects the service with a message placed at the attribute
// that caused it (inherited attributes point at the defaults line).
func (c *checker) errAtAttr(code, attr, msg string) {
	pos := c.s.Src
	if o, ok := c.s.Origins.Get(attr); ok && o.Line > 0 {
		pos = o
		pos.Origin = ""
	}
	d := service.Diag{Pos: pos, Severity: service.SevError, Code: code, Service: c.s.ID, Attr: attr, Msg: msg, IncludedFrom: c.e.incFrom}
	c.l.cfg.Diags = append(c.l.cfg.Diags, d)
	c.s.Reasons = append(c.s.Reasons, d)
	c.s.Status = service.StatusRejected
}

// checkSandbox applies the whole-entry rules of the sandbox attributes
// once defaults are merged: the chroot and every path must exist in the
// server's view, the server must be found inside the chroot, and
// settings that cannot take effect are pointed out.
func (l *loader) checkSandbox(c *checker) {
	s := c.s
	sb := &s.Sandbox
	if len(sb.ReadOnlyPaths) == 0 {
		sb.ReadOnlyPaths = nil
	}
	if len(sb.WritablePaths) == 0 {
		sb.WritablePaths = nil
	}
	if c.e.serverDeferred && sb.Chroot == "" && s.Server != "" {
		// A chroot known when the server line was read was switched
		// off later (chroot = /): judge the path on the host after all.
		if sc := l.judgeServer(s.Server); sc.code != "" {
			c.errAtAttr(sc.code, "server", sc.msg)
		}
	}
	if sb.IsZero() && s.MaxDuration == 0 {
		return
	}
	if s.IsInternal() || s.IsRedirect() {
		for _, attr := range service.SandboxAttrs {
			if setByEntry(s, attr) {
				c.warn(WarnSandbox, attr, fmt.Sprintf("%s has no effect on service %s: it starts no server", attr, s.ID))
			}
		}
		return
	}
	if sb.Namespaces.Has(service.NsPID) && !sb.EffectiveNamespaces().Has(service.NsMount) {
		c.warn(WarnSandbox, "namespaces", "namespaces has pid without mount: the server's /proc still shows the host's processes (add mount, and gxinetd mounts a /proc of the new namespace)")
	}
	if o, ok := s.Origins.Get("no_new_privs"); ok && o.Line > 0 && !sb.NoNewPrivs && sb.Seccomp != nil {
		c.warn(WarnSandbox, "no_new_privs", "no_new_privs = no is overridden: a seccomp profile always sets no_new_privs")
	}
	root := "/"
	if sb.Chroot != "" {
		root = sb.Chroot
		fi, err := os.Stat(sb.Chroot)
		switch {
		case err != nil:
			c.errAtAttr(CodeSandbox, "chroot", fmt.Sprintf("chroot %s: %s", sb.Chroot, errText(err)))
			return
		case !fi.IsDir():
			c.errAtAttr(CodeSandbox, "chroot", fmt.Sprintf("chroot %s is not a directory", sb.Chroot))
			return
		}
		if l.opt.CheckOwnership {
			if ue := l.unsafePath(sb.Chroot, pathsafe.Trust{}); ue != nil {
				c.errAtAttr(CodeOwnership, "chroot", "chroot "+ue.Error())
				return
			}
		}
		if s.Server != "" {
			l.checkServerIn(c, root, s.Server)
		}
	}
	inView := func(attr, p string, wantDir bool) {
		opt := strings.HasPrefix(p, "-")
		p = strings.TrimPrefix(p, "-")
		fi, err := statNoLinks(root, p)
		where := p
		if root != "/" {
			where = p + " (in chroot " + root + ")"
		}
		switch {
		case err != nil && opt && errors.Is(err, os.ErrNotExist):
		case err != nil:
			c.errAtAttr(CodeSandbox, attr, fmt.Sprintf("%s %s: %s", attr, where, errText(err)))
		case wantDir && !fi.IsDir():
			c.errAtAttr(CodeSandbox, attr, fmt.Sprintf("%s %s is not a directory", attr, where))
		}
	}
	for _, p := range sb.ReadOnlyPaths {
		inView("read_only_paths", p, false)
	}
	for _, p := range sb.WritablePaths {
		inView("writable_paths", p, false)
	}
	if sb.PrivateTmp {
		inView("private_tmp", "/tmp", true)
	}
	if sb.PrivateTmp && s.Server != "" {
		// An empty tmpfs is mounted there before the exec.
		for _, dir := range []string{"/tmp/", "/var/tmp/"} {
			if strings.HasPrefix(path.Clean(s.Server), dir) {
				c.errAtAttr(CodeSandbox, "private_tmp", fmt.Sprintf("server %s is under %s, which private_tmp replaces with an empty file system before the server starts", s.Server, strings.TrimSuffix(dir, "/")))
			}
		}
	}
}

// checkServerIn judges the server path inside a chroot, as the server's
// exec will see it: symbolic links resolve inside it.
func (l *loader) checkServerIn(c *checker, root, server string) {
	if !path.IsAbs(server) {
		c.errAtAttr(CodeServer, "server", fmt.Sprintf("server %s must be an absolute path inside chroot %s", server, root))
		return
	}
	fi, err := statIn(root, server)
	if err != nil {
		c.errAtAttr(CodeServer, "server", fmt.Sprintf("Unable to stat: %s in chroot %s (%s)", server, root, errText(err)))
		return
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		c.errAtAttr(CodeServer, "server", fmt.Sprintf("Server %s in chroot %s is not executable", server, root))
		return
	}
	if l.opt.CheckOwnership {
		s := c.s
		_, err := pathsafe.CheckExecIn(root, server, pathsafe.ForUser(s.User, s.Group, s.Groups, l.sys))
		var ue *pathsafe.Error
		if errors.As(err, &ue) {
			c.errAtAttr(CodeOwnership, "server", "server "+ue.Error())
		}
	}
}

// statNoLinks stats p inside root as the child opens the paths it
// mounts on: with no symbolic link in any component (a link there is
// ELOOP when the server starts, so the check mode says so now).
func statNoLinks(root, p string) (os.FileInfo, error) {
	if root == "" {
		root = "/"
	}
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dir)
	rel := strings.TrimPrefix(path.Clean(p), "/")
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(dir, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS})
	if errors.Is(err, unix.ENOSYS) {
		return statIn(root, p)
	}
	if errors.Is(err, unix.ELOOP) {
		return nil, &os.PathError{Op: "stat", Path: p, Err: errors.New("a symbolic link is in the way: write the path it leads to (the paths the view is made of must have none)")}
	}
	if err != nil {
		return nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return f.Stat()
}

// statIn stats p as a process whose root is root sees it: symbolic
// links, absolute ones included, resolve inside root (openat2 with
// RESOLVE_IN_ROOT; kernels before 5.6 fall back to joining the paths).
func statIn(root, p string) (os.FileInfo, error) {
	if root == "/" || root == "" {
		return os.Stat(p)
	}
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, strings.TrimPrefix(p, "/"), &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if errors.Is(err, unix.ENOSYS) {
		return os.Stat(filepath.Join(root, p))
	}
	if err != nil {
		return nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return f.Stat()
}
