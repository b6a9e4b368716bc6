package parser

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/gxinetd/gxinetd/internal/pathsafe"
	"github.com/gxinetd/gxinetd/internal/service"
)

// The ownership rule itself is internal/pathsafe's; this file applies it
// (with Options.CheckOwnership, i.e. when running as root) to what
// xinetd.conf names: configuration files and include directories,
// servers (trusting the service's own run-as user) and banners.

// ownKey is one ownership question: a path and who is trusted.
type ownKey struct {
	path  string
	trust pathsafe.Trust
	exec  bool // CheckExec: "#!" interpreters too
}

// unsafePath applies the rule to path, once per Load for each path and
// trust. It returns the refusal, or nil when the path is safe or cannot be
// walked (missing, a loop: whoever opens it reports that).
func (l *loader) unsafePath(path string, t pathsafe.Trust) *pathsafe.Error {
	k := ownKey{path: absPath(path), trust: t}
	fl := flightOf(l.mu, func(c *cacheLocks) *flight { return &c.owned })
	return cached(fl, l.owned, k, func() *pathsafe.Error {
		_, err := pathsafe.Check(k.path, t)
		var e *pathsafe.Error
		errors.As(err, &e)
		return e
	})
}

// absPath makes a relative path absolute against the working directory
// without cleaning it: ".." must be walked the way the kernel walks it.
func absPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	wd, err := os.Getwd()
	if err != nil {
		return p // pathsafe refuses it as relative
	}
	return wd + "/" + p
}

// checkBanner refuses a banner file (read and sent by root) that others
// could change or point elsewhere, such as at /etc/shadow. A banner that
// does not exist yet is left to the daemon, which checks again before
// every send.
func (e *entry) checkBanner(a *attrLine, path string) bool {
	if !e.l.opt.CheckOwnership || path == "" {
		return true
	}
	if ue := e.l.unsafePath(path, pathsafe.Trust{}); ue != nil {
		e.errAt(a, 0, CodeOwnership, a.name+" "+ue.Error())
		return false
	}
	return true
}

// checkLogFile refuses a FILE log that others could point elsewhere:
// root appends records to it (and creates its rotations beside it), so a
// link a user plants there, say to /etc/shadow, would have root write
// into that file. An existing log file is checked with everything that
// leads to it; a log file not created yet, through its directory, which
// may be a sticky one such as /tmp (only root's own file can then appear
// there under that name: the kernel's protected_symlinks and
// protected_regular keep a user's link or file from being used). A
// directory writable only by a group other than root (Ubuntu's /var/log
// is root:syslog 0775) draws a warning, not a refusal: the members of
// such a group are system accounts, and xinetd logs there.
func (e *entry) checkLogFile(a *attrLine, path string) bool {
	if !e.l.opt.CheckOwnership || path == "" {
		return true
	}
	target, trailer := path, ""
	if _, err := os.Lstat(path); err != nil {
		target, trailer = filepath.Dir(path), " (the directory it will be created in)"
	}
	ue := e.l.unsafePath(target, pathsafe.Trust{})
	if ue == nil {
		return true
	}
	switch {
	case ue.Problem == pathsafe.GroupWritable || ue.Problem == pathsafe.ACLGroup:
		e.warnAt(a, 1, WarnLogPath, "log file "+path+trailer+": "+ue.Error()+"; that group's members could make root write elsewhere")
		return true
	case target != path && ue.At == target && ue.Problem == pathsafe.WorldWritable && ue.Mode&0o1000 != 0:
		return true // a sticky directory: see above
	}
	e.errAt(a, 1, CodeOwnership, "log file "+path+trailer+": "+ue.Error())
	return false
}

// checkServerOwner refuses a server that someone other than root or the
// service's own user could replace. It runs once the entry is complete,
// when user, group and groups are known, and points at the server line.
func (c *checker) checkServerOwner() {
	s := c.s
	if !c.l.opt.CheckOwnership || s.Server == "" || !strings.HasPrefix(s.Server, "/") {
		return // relative servers are refused on their own line
	}
	if s.Sandbox.Chroot != "" {
		return // judged inside the chroot: checkSandbox
	}
	trust := pathsafe.ForUser(s.User, s.Group, s.Groups, c.l.sys)
	ue := c.l.execVerdict(ownKey{path: s.Server, trust: trust, exec: true})
	if ue != nil {
		c.errAttr(CodeOwnership, "server", c.e.serverCol, "server "+ue.Error())
	}
}

// errAttr is err positioned at the line that set attr, at column col
// when known (the value's, as errAt points).
func (c *checker) errAttr(code, attr string, col int, msg string) {
	pos := c.s.Src
	if o, ok := c.s.Origins.Get(attr); ok && o.Line > 0 {
		pos = o
		pos.Origin = ""
		if col > 0 {
			pos.Col = col
		}
	}
	d := service.Diag{Pos: pos, Severity: service.SevError, Code: code, Service: c.s.ID, Attr: attr, Msg: msg, IncludedFrom: c.e.incFrom}
	c.l.cfg.Diags = append(c.l.cfg.Diags, d)
	c.s.Reasons = append(c.s.Reasons, d)
	c.s.Status = service.StatusRejected
}

// execVerdict is pathsafe.CheckExec once per Load for each key.
func (l *loader) execVerdict(k ownKey) *pathsafe.Error {
	fl := flightOf(l.mu, func(c *cacheLocks) *flight { return &c.owned })
	return cached(fl, l.owned, k, func() *pathsafe.Error {
		_, err := pathsafe.CheckExec(k.path, k.trust)
		var ue *pathsafe.Error
		errors.As(err, &ue)
		return ue
	})
}
