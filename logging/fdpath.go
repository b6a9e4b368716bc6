package logging

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// stdioFD reports whether a log path names one of the process's own
// descriptors (/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N)
// and which one. Such a path is a link to whatever the descriptor is:
// re-opening it fails for a socket (systemd's journal stream), and
// renaming it (a rotation) would move the link itself, so the
// descriptor is written directly instead.
func stdioFD(p string) (int, bool) {
	switch p = filepath.Clean(p); p {
	case "/dev/stdin":
		return 0, true
	case "/dev/stdout":
		return 1, true
	case "/dev/stderr":
		return 2, true
	}
	for _, dir := range []string{"/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/", "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/"} {
		if rest, ok := strings.CutPrefix(p, dir); ok {
			n, err := strconv.Atoi(rest)
			if err == nil && n >= 0 && strconv.Itoa(n) == rest {
				return n, true
			}
		}
	}
	return 0, false
}

// dupFD returns a close-on-exec copy of descriptor fd, so that closing
// the log never closes the process's standard output.
func dupFD(fd int, name string) (*os.File, error) {
	n, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("%s: descriptor %d: %w", name, fd, err)
	}
	return os.NewFile(uintptr(n), name), nil
}

// specialPath reports whether a log path is written as it is, never
// sized, rotated or renamed: a link to one of the process's descriptors,
// or anything that exists and is not a regular file (a pipe, a FIFO, a
// character device such as /dev/console or a terminal).
func specialPath(p string) bool {
	if _, ok := stdioFD(p); ok {
		return true
	}
	fi, err := os.Stat(p)
	return err == nil && !fi.Mode().IsRegular()
}

// openSpecial opens a special log path for appending. A FIFO's open
// waits for a reader; only the sink's own goroutine calls this.
func openSpecial(p string) (*os.File, error) {
	if fd, ok := stdioFD(p); ok {
		return dupFD(fd, p)
	}
	return os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
}
