package inetd

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gxinetd/gxinetd/internal/pathsafe"
	"github.com/gxinetd/gxinetd/internal/service"
)

// The ownership rule is internal/pathsafe's, the same for xinetd.conf:
// with Options.CheckOwnership (running as root) the file itself and every
// server are walked component by component, symbolic links included.

// checkFileOwner refuses an inetd.conf that someone other than root could
// change (or reach through a link or directory someone else controls).
// It runs before the file is opened, so what is then read is what was
// checked.
func checkFileOwner(path string) (service.Diag, bool) {
	_, err := pathsafe.Check(absPath(path), pathsafe.Trust{})
	var ue *pathsafe.Error
	if errors.As(err, &ue) {
		return service.Diag{Pos: service.Source{File: path}, Severity: service.SevError, Code: CodeFilePerm, Fatal: true,
			Msg: "refusing inetd.conf " + ue.Error() + " (it could name any program to run as root)"}, true
	}
	return service.Diag{}, false
}

// checkServer returns a code and message when the server is missing, not
// executable, or could be replaced by someone other than root or the
// user it runs as (trust).
func checkServer(server string, trust pathsafe.Trust) (string, string) {
	fi, err := os.Stat(server)
	if err != nil {
		return CodeServer, fmt.Sprintf("server %s: %v", server, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return CodeServer, fmt.Sprintf("server %s is not an executable file", server)
	}
	_, err = pathsafe.CheckExec(server, trust)
	var ue *pathsafe.Error
	switch {
	case errors.As(err, &ue):
		return CodeServerPerm, "server " + ue.Error()
	case err != nil:
		return CodeServer, fmt.Sprintf("server %s: %v", server, err)
	}
	return "", ""
}

// absPath makes a relative path absolute against the working directory
// without cleaning it: ".." must be walked the way the kernel walks it.
func absPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	return wd + "/" + p
}
