package daemon

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/gxinetd/gxinetd/internal/pathsafe"
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/logging"
	"github.com/gxinetd/gxinetd/parser"
	"github.com/gxinetd/gxinetd/spawn"
)

// armMaxDuration starts the wall-clock limit of a server whose service
// has max_duration: when it fires, the server gets SIGTERM and, after the
// daemon's grace period, SIGKILL (the process and its process group, as
// when a service is removed). Rlimits bound CPU time, not a server that
// sleeps or waits on its client; this bounds both.
func (d *Daemon) armMaxDuration(ch *child) {
	if ch.svc.MaxDuration <= 0 {
		return
	}
	limit := time.Duration(ch.svc.MaxDuration) * time.Second
	ch.limit = time.AfterFunc(limit, func() { d.endOverdue(ch, limit) })
}

// endOverdue ends a server that ran past its max_duration. It runs in the
// timer's own goroutine and holds no lock while it waits out the grace.
func (d *Daemon) endOverdue(ch *child, limit time.Duration) {
	select {
	case <-ch.done:
		return // exited as the timer fired
	default:
	}
	ch.overdue.Store(true)
	d.log.Logf(logging.LevelWarning, "max_duration", "service %s: server %d ran for its max_duration of %v; sending signal %d",
		ch.svc.ID, ch.pid, limit, int(syscall.SIGTERM))
	spawn.Terminate(ch.proc, d.o.Grace)
}

// exitReason is the EXIT record's reason= when gxinetd itself ended the
// server: its max_duration ran out, or its seccomp filter killed it
// (SECCOMP_RET_KILL_PROCESS ends the process with SIGSYS).
func exitReason(ch *child, ws syscall.WaitStatus) string {
	switch {
	case ch.overdue.Load():
		return "max_duration"
	case ws.Signaled() && ws.Signal() == syscall.SIGSYS && ch.svc.Sandbox.Seccomp != nil:
		return "seccomp"
	}
	return ""
}

// sandboxSupport is spawn.SandboxSupport; tests replace it to see a host
// that cannot.
var sandboxSupport = spawn.SandboxSupport

// checkSandboxHost rejects every accepted service whose sandbox this
// build, on this host, with this process's privileges, cannot provide
// (E-SANDBOX-HOST, at the attribute at fault): the check mode says so for
// this host, and the daemon never runs such a server less isolated than
// configured. Check mode and reload share it through loadWith.
func checkSandboxHost(cfg *service.Config) {
	for _, s := range cfg.Services {
		if s.Status != service.StatusAccepted || s.Sandbox.IsZero() || s.IsInternal() || s.IsRedirect() {
			continue
		}
		serr := sandboxSupport(&s.Sandbox)
		if serr == nil {
			continue
		}
		pos := s.Src
		if o, ok := s.Origins.Get(serr.Attr); ok && o.Line > 0 {
			pos = o
			pos.Origin = ""
		}
		d := service.Diag{Pos: pos, Severity: service.SevError, Code: parser.CodeSandboxHost, Service: s.ID, Attr: serr.Attr,
			Msg: fmt.Sprintf("%v - DISABLING", serr.Err)}
		s.Status = service.StatusRejected
		s.Reasons = append(s.Reasons, d)
		cfg.Diags = append(cfg.Diags, d)
	}
}

// unsafeServer is unsafeExec for a server's Spec: a chrooted server is
// judged inside its root, where its exec will find it.
func (d *Daemon) unsafeServer(spec *spawn.Spec) *pathsafe.Error {
	if spec.Sandbox == nil || spec.Sandbox.Root == "" {
		return d.unsafeExec(spec.Path, spec.Cred)
	}
	if !d.o.CheckOwnership {
		return nil
	}
	_, err := pathsafe.CheckExecIn(spec.Sandbox.Root, spec.Path, credTrust(spec.Cred))
	var ue *pathsafe.Error
	errors.As(err, &ue)
	return ue
}
