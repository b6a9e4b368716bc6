package access

import (
	"errors"

	"github.com/gxinetd/gxinetd/access/tcpwrap"
	"github.com/gxinetd/gxinetd/internal/pathsafe"
)

// unsafeTable applies the ownership rule (internal/pathsafe) to a
// tcp_wrappers table before it is read: its spawn and twist commands run
// through /bin/sh, as root for root's services, so a hosts.allow that a
// user can change is a root shell. Such a table is replaced by one rule
// that matches every daemon and client and denies (tcp_wrappers' own
// answer to a table it cannot read), and the reason is logged. It returns
// nil when the table may be read (or the check is off).
func (e *Engine) unsafeTable(path string) *tcpwrap.Rules {
	if !e.g.CheckOwnership {
		return nil
	}
	_, err := pathsafe.Check(path, pathsafe.Trust{})
	if !errors.Is(err, pathsafe.ErrUnsafe) {
		return nil
	}
	e.notify("error", "tcp_wrappers table "+err.Error()+"; every service it could apply to is refused until this is fixed")
	return &tcpwrap.Rules{File: path, Rules: []*tcpwrap.Rule{{File: path, Broken: err}}}
}
