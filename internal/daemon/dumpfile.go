package daemon

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// envStartDir carries the directory a detached daemon was started in:
// it moves to / (detachedChdir), and `gxinetd -dump` needs the directory
// to read a relative -dumpfile the way the daemon resolved it.
const envStartDir = "GXINETD_START_DIR"

// DumpFileOf returns the file the running daemon with this pid appends
// its SIGUSR1 dumps to, read from its own command line (/proc/PID/cmdline):
// its -dumpfile, made absolute against the directory it was started in,
// or DefaultDumpFile. `gxinetd -dump` reads that file, so the two agree
// whatever -dumpfile the client was given.
func DumpFileOf(pid int) (string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "", err
	}
	args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	path, ok := flagValue(args, "dumpfile")
	if !ok || path == "" {
		return DefaultDumpFile, nil
	}
	if filepath.IsAbs(path) {
		return filepath.Clean(path), nil
	}
	dir := ""
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte(envStartDir+"=")); ok {
				dir = string(v)
			}
		}
	}
	if dir == "" {
		if dir, err = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil {
			return "", fmt.Errorf("the daemon's -dumpfile %s is relative and its directory is unknown: %w", path, err)
		}
	}
	return filepath.Join(dir, path), nil
}

// flagValue finds the last -name VALUE, -name=VALUE, --name... in args
// (the flag package's forms), stopping at "--".
func flagValue(args []string, name string) (string, bool) {
	val, found := "", false
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		n := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if k, v, eq := strings.Cut(n, "="); eq && k == name {
			val, found = v, true
		} else if n == name && i+1 < len(args) {
			val, found = args[i+1], true
			i++
		}
	}
	return val, found
}
