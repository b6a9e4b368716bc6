package inetd

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/gxinetd/gxinetd/internal/service"
)

// unsafeStat says why fi could be changed by someone other than root, or
// "" when it cannot. Directories with the sticky bit still let their
// writers replace their own entries, so they count as unsafe too.
func unsafeStat(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && st.Uid != 0 {
		return fmt.Sprintf("owned by uid %d", st.Uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Sprintf("writable by group or others (mode %04o)", fi.Mode().Perm())
	}
	return ""
}

// checkFileOwner refuses a configuration file that someone other than
// root could have written.
func checkFileOwner(path string) (service.Diag, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return service.Diag{Pos: service.Source{File: path}, Severity: service.SevError, Code: CodeFile, Fatal: true,
			Msg: fmt.Sprintf("cannot read inetd.conf: %v", err)}, true
	}
	if why := unsafeStat(fi); why != "" {
		return service.Diag{Pos: service.Source{File: path}, Severity: service.SevError, Code: CodeFilePerm, Fatal: true,
			Msg: fmt.Sprintf("refusing inetd.conf %s: it is %s, so it could name any program to run as root", path, why)}, true
	}
	return service.Diag{}, false
}

// checkServer returns a code and message when the server is missing, not
// executable, or replaceable by someone other than root (itself, a
// directory on its path, or the same for the target of a symlink).
func checkServer(server string) (string, string) {
	fi, err := os.Stat(server)
	if err != nil {
		return CodeServer, fmt.Sprintf("server %s: %v", server, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return CodeServer, fmt.Sprintf("server %s is not an executable file", server)
	}
	paths := []string{server}
	if real, err := filepath.EvalSymlinks(server); err == nil && real != server {
		paths = append(paths, real)
	}
	for _, p := range paths {
		for q, n := p, 0; n < 64; q, n = filepath.Dir(q), n+1 {
			fi, err := os.Stat(q)
			if err != nil {
				return CodeServer, fmt.Sprintf("server %s: %v", server, err)
			}
			if why := unsafeStat(fi); why != "" {
				return CodeServerPerm, fmt.Sprintf("server %s could be replaced by someone other than root: %s is %s", server, q, why)
			}
			if q == "/" || q == "." {
				break
			}
		}
	}
	return "", ""
}
