package daemon

import (
	"errors"

	"github.com/gxinetd/gxinetd/internal/pathsafe"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/spawn"
)

// The ownership rule (internal/pathsafe) is applied again at every use,
// not only when the configuration is read: a server made world-writable,
// or replaced by a file a user owns, after it was loaded must never be
// started as root again, and no SIGHUP is needed for that. The check is a
// handful of lstat calls (BenchmarkCheckExec), and a path that passes can
// be changed only by root or the server's own user, so executing or
// opening it right after reaches what was checked (docs/design.md).

// ReasonOwnership is the FAIL reason of a server start the rule refused.
const ReasonOwnership = "ownership"

// unsafeExec applies the rule to a program about to run with cred (nil:
// the daemon's own). It returns nil when the daemon is not root, when the
// path is safe, and when it cannot be walked at all (missing: exec then
// fails and says so).
func (d *Daemon) unsafeExec(path string, cred *spawn.Cred) *pathsafe.Error {
	if !d.o.CheckOwnership {
		return nil
	}
	_, err := pathsafe.CheckExec(path, credTrust(cred))
	var ue *pathsafe.Error
	errors.As(err, &ue)
	return ue
}

// unsafeRead is unsafeExec for a file the daemon reads and sends (a
// banner): root alone is trusted.
func (d *Daemon) unsafeRead(path string) *pathsafe.Error {
	if !d.o.CheckOwnership {
		return nil
	}
	_, err := pathsafe.Check(path, pathsafe.Trust{})
	var ue *pathsafe.Error
	errors.As(err, &ue)
	return ue
}

// credTrust trusts the user a program runs as, unless it also gets group
// root (pathsafe.RunAs).
func credTrust(c *spawn.Cred) pathsafe.Trust {
	if c == nil {
		return pathsafe.Trust{}
	}
	gids := make([]int, 0, 1+len(c.Groups))
	gids = append(gids, int(c.GID))
	for _, g := range c.Groups {
		gids = append(gids, int(g))
	}
	return pathsafe.RunAs(int(c.UID), gids...)
}

// refuseServer reports a server start the rule refused: an error line
// naming the path, owner, mode and fix, a FAIL record (reason
// "ownership"), both within the refusal budget, and the service's
// exec-failure count.
func (d *Daemon) refuseServer(r *svcRun, svc *service.Service, c spawn.Conn, ue *pathsafe.Error) {
	r.cnt.execFail.Add(1)
	// Every client of the service meets the refusal: its lines are
	// written within the refusal budget.
	if !d.mayLogRefusal(c.Remote.Addr()) {
		return
	}
	d.log.Logf(logging.LevelError, "spawn", "service %s: not starting server %v", svc.ID, ue)
	rec := logging.Record{Event: logging.EventFail, Service: svc, Local: c.Local, Reason: ReasonOwnership, ReasonCode: ReasonOwnership}
	if c.RemoteKnown {
		rec.Remote = c.Remote
	}
	d.record(rec)
}
