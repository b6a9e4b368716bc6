package daemon

import (
	"errors"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/spawn"
)

// The service records of one request come in xinetd's order (xinetd.md
// §7.3, §8, §11.4), whatever the log format. xinetd's parent writes START
// as soon as it has forked the request's child; the child then does the
// ident lookup (USERID, or NOID and exit 0) and execs the server, and the
// parent writes EXIT when it reaps the child. gxinetd looks the user up
// before it starts anything, so it holds those records back and writes
// them right after START. And a request whose server was started but never
// ran (execve or a step before it failed in the new process) gets START
// and EXIT as xinetd's failed child does, not silence.

// started writes a request's START record, then the records xinetd's child
// would have written after it (USERID).
func (d *Daemon) started(start logging.Record, after []logging.Record) {
	d.record(start)
	for _, rec := range after {
		d.record(rec)
	}
}

// userIDRecord is the USERID record of an ident answer, to be written
// after START.
func userIDRecord(svc *service.Service, remote, local netip.AddrPort, user string) logging.Record {
	return logging.Record{Event: logging.EventUserID, Service: svc, Remote: remote, Local: local, UserID: user}
}

// noIdent writes the records of an IDONLY request whose ident lookup
// failed: START, NOID, EXIT with status 0, as xinetd's child that did the
// lookup and exited. No process ran, so both carry pid 0.
func (d *Daemon) noIdent(svc *service.Service, remote, local netip.AddrPort, reason string, began time.Time) {
	d.record(logging.Record{Event: logging.EventStart, Service: svc, Remote: remote, Local: local})
	d.record(logging.Record{Event: logging.EventNoID, Service: svc, Remote: remote, Local: local, Reason: reason})
	d.record(logging.Record{Event: logging.EventExit, Service: svc, Remote: remote, Local: local, Duration: time.Since(began)})
}

// startFailed writes START (then after) and EXIT for a server whose start
// failed in the new process, and reports whether err was such a failure;
// a failure before any process existed (fork, a descriptor) writes
// nothing here. The server never ran, so the records carry pid 0. The
// status is not xinetd's: its child exits 0 after a failed execve (1
// after any other failed step), which reads as success; gxinetd uses the
// shell's 127 (not found) or 126 (not executable) for execve and 1 for
// the other steps (docs/logging.md).
func (d *Daemon) startFailed(svc *service.Service, c spawn.Conn, began time.Time, err error, after []logging.Record) bool {
	status, ok := failedStartStatus(err)
	if !ok {
		return false
	}
	rec := logging.Record{Event: logging.EventStart, Service: svc, Local: c.Local, Proxy: c.Proxy}
	if c.RemoteKnown {
		rec.Remote = c.Remote
	}
	d.started(rec, after)
	rec.Event, rec.ExitStatus, rec.Duration = logging.EventExit, status, time.Since(began)
	d.record(rec)
	return true
}

// failedStartStatus is the exit status recorded for a server start that
// failed in the new process (see startFailed); false for failures before
// any process existed.
func failedStartStatus(err error) (int, bool) {
	var se *spawn.StartError
	if !errors.As(err, &se) || se.Step == "fork" {
		return 0, false
	}
	if se.Step != "exec" {
		return 1, true
	}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return 127, true
	}
	return 126, true
}
