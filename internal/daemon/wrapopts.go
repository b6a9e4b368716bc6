package daemon

import (
	"os"
	"strconv"

	"github.com/gxinetd/gxinetd/access"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/spawn"
)

// wrapOverrides turns the process options of the tcp_wrappers rule that
// allowed a request into changes to its server (nil when none).
func (d *Daemon) wrapOverrides(svc *service.Service, w *access.WrapAction) (*spawn.Overrides, error) {
	if w == nil {
		return nil, nil
	}
	return d.procOverrides(svc, w.Proc)
}

// procOverrides resolves hosts_options(5) nice, umask, user and setenv.
// `user` works as in tcpd: setgid to the group (or the user's primary
// group), then setuid; gxinetd also drops the supplementary groups the
// daemon has. A user or group that does not exist refuses the request,
// as tcpd exits there; a daemon that is not root cannot change users and
// says so.
func (d *Daemon) procOverrides(svc *service.Service, p *access.WrapProc) (*spawn.Overrides, error) {
	if p == nil {
		return nil, nil
	}
	o := &spawn.Overrides{Umask: p.Umask, Env: p.Env}
	if p.Nice != nil {
		o.Nice = *p.Nice
	}
	if p.User == "" {
		return o, nil
	}
	if os.Geteuid() != 0 {
		d.log.Logf(logging.LevelWarning, "libwrap", "service %s: tcp_wrappers option user %s ignored: gxinetd is not running as root", svc.ID, p.User)
		return o, nil
	}
	uid, gid, ok := 0, 0, false
	if u, found := d.db.LookupUser(p.User); found {
		uid, gid, ok = u.UID, u.GID, true
	} else if n, err := strconv.Atoi(p.User); err == nil && n >= 0 {
		uid, gid, ok = n, n, true
		if u, found := d.db.LookupUID(n); found {
			gid = u.GID
		}
	}
	if !ok {
		d.log.Logf(logging.LevelError, "libwrap", "service %s: tcp_wrappers option user: unknown user %q: request refused", svc.ID, p.User)
		return nil, errUnknownWrapUser
	}
	if p.Group != "" {
		if g, found := d.db.LookupGroup(p.Group); found {
			gid = g.GID
		} else if n, err := strconv.Atoi(p.Group); err == nil && n >= 0 {
			gid = n
		} else {
			d.log.Logf(logging.LevelError, "libwrap", "service %s: tcp_wrappers option user: unknown group %q: request refused", svc.ID, p.Group)
			return nil, errUnknownWrapUser
		}
	}
	o.Cred = &spawn.Cred{UID: uint32(uid), GID: uint32(gid)}
	return o, nil
}

type wrapUserError struct{}

func (wrapUserError) Error() string { return "tcp_wrappers option user: unknown user or group" }

var errUnknownWrapUser error = wrapUserError{}
