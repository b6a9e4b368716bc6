package spawn

import (
	"bytes"
	"encoding/gob"
	"errors"
	"math"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The exec helper is gxinetd re-executed with helperEnv set to
// helperMagic in an otherwise empty environment. Its descriptors are the
// server's stdio on 0-2, the gob-encoded Spec on specFD and the status pipe on
// statusFD.
const (
	helperEnv   = "GXINETD_EXEC_HELPER"
	helperMagic = "spawn-v2"
	specFD      = 3
	statusFD    = 4
	maxSpec     = 16 << 20
)

// HelperMain must be the first call in main (and in TestMain of any test
// binary that starts servers through this package). In the exec helper
// it applies the Spec received from Start and execs the server, never
// returning; anywhere else it returns false after one environment lookup.
func HelperMain() bool {
	if os.Getenv(helperEnv) != helperMagic {
		return false
	}
	runHelper()
	return true // not reached: runHelper execs or exits
}

// runHelper mirrors the tail of xinetd's child (xinetd.md §8), in an
// order chosen so every step still has the privilege it needs: nice
// (negative values need root), limits that raise a hard limit, umask,
// groups, gid, uid, the remaining limits, signals, exec.
func runHelper() {
	// Niceness and the signal mask belong to a thread, not the process:
	// the thread that sets them must be the one that calls execve.
	runtime.LockOSThread()
	// Only 0-2 may survive the execve: the spec and status pipes, and
	// anything else that came along, are closed by it.
	if unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) != nil {
		cloexecInherited()
	}

	payload, err := readFD(specFD)
	if err != nil {
		helperFail("read spec", "", err)
	}
	var msg helperMsg
	if err := gob.NewDecoder(bytes.NewReader(payload)).Decode(&msg); err != nil {
		helperFail("decode spec", "", err)
	}
	s := msg.Spec
	unix.Close(specFD)
	if len(s.Argv) == 0 {
		s.Argv = []string{s.Path}
	}

	// Converted before any limit is lowered: with a small RLIMIT_AS or
	// RLIMIT_DATA the Go heap may be unable to grow afterwards.
	argv0p, err := syscall.BytePtrFromString(s.Path)
	if err != nil {
		helperFail("exec", s.Path, err)
	}
	argvp, err := syscall.SlicePtrFromStrings(s.Argv)
	if err != nil {
		helperFail("exec", s.Path, err)
	}
	envp, err := syscall.SlicePtrFromStrings(s.Env)
	if err != nil {
		helperFail("exec", s.Path, err)
	}

	if s.Nice != nil {
		// The raw getpriority value is 20 - nice.
		prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
		if err != nil {
			helperFail("nice", strconv.Itoa(*s.Nice), err)
		}
		n := min(max(20-prio+*s.Nice, -20), 19)
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, n); err != nil {
			helperFail("nice", strconv.Itoa(*s.Nice), err)
		}
	}

	// Raising a hard limit needs privilege, so those happen now; lowering
	// does not, so the rest waits until just before execve. InheritHard
	// is the hard limit this process inherited from the daemon.
	for i, r := range s.Rlimits {
		var cur unix.Rlimit
		if err := unix.Getrlimit(r.Resource, &cur); err != nil {
			helperFail("rlimit_"+rlimitName(r.Resource), formatLimit(r.Value), err)
		}
		switch {
		case r.Value == InheritHard:
			s.Rlimits[i].Value = cur.Max
		case r.Value <= cur.Max:
		case r.BestEffort:
			lim := unix.Rlimit{Cur: r.Value, Max: r.Value}
			if err := unix.Setrlimit(r.Resource, &lim); err == unix.EPERM {
				s.Rlimits[i].Value = cur.Max
			} else if err != nil {
				helperFail("rlimit_"+rlimitName(r.Resource), formatLimit(r.Value), err)
			}
		default:
			setLimit(r)
		}
	}

	if s.Umask >= 0 {
		syscall.Umask(s.Umask & 0o777)
	}

	if c := s.Cred; c != nil {
		groups := make([]int, len(c.Groups))
		for i, g := range c.Groups {
			groups[i] = int(g)
		}
		// The syscall package applies these to every thread of the
		// helper, so no thread keeps root by accident.
		if err := syscall.Setgroups(groups); err != nil {
			helperFail("setgroups", formatIDs(c.Groups), err)
		}
		if err := syscall.Setresgid(int(c.GID), int(c.GID), int(c.GID)); err != nil {
			helperFail("setgid", strconv.FormatUint(uint64(c.GID), 10), err)
		}
		if err := syscall.Setresuid(int(c.UID), int(c.UID), int(c.UID)); err != nil {
			helperFail("setuid", strconv.FormatUint(uint64(c.UID), 10), err)
		}
	}

	resetSignals()

	// Everything the exec failure report needs is prepared now: after
	// the last limit is lowered nothing may allocate.
	failMsg := make([]byte, 0, len(s.Path)+64)
	failMsg = append(failMsg, "exec\x00"...)
	failMsg = append(failMsg, s.Path...)
	failMsg = append(failMsg, 0)
	memLimited := false
	for _, r := range s.Rlimits {
		setLimit(r)
		if r.Resource == unix.RLIMIT_AS || r.Resource == unix.RLIMIT_DATA {
			memLimited = true
		}
	}

	if msg.Stop {
		// Tests: a process running as the service's user stops the
		// server between its setuid and its execve, for good (a SIGHUP
		// and SIGCONT that the kernel may send a stopped process of a
		// session of its own neither end nor resume it).
		signal.Ignore(syscall.SIGHUP)
		for {
			syscall.Kill(syscall.Getpid(), syscall.SIGSTOP)
		}
	}
	var errno syscall.Errno
	if !memLimited {
		// syscall.Exec gives the server the soft RLIMIT_NOFILE this
		// process started with when the Spec does not set one (Go
		// raised it for itself at start-up).
		err = syscall.Exec(s.Path, s.Argv, s.Env)
		if !errors.As(err, &errno) {
			helperFail("exec", s.Path, err)
		}
	} else {
		_, _, errno = syscall.RawSyscall(syscall.SYS_EXECVE,
			uintptr(unsafe.Pointer(argv0p)),
			uintptr(unsafe.Pointer(&argvp[0])),
			uintptr(unsafe.Pointer(&envp[0])))
	}
	runtime.KeepAlive(argvp)
	runtime.KeepAlive(envp)
	failMsg = strconv.AppendUint(failMsg, uint64(errno), 10)
	failMsg = append(failMsg, 0)
	writeStatus(failMsg)
	unix.Exit(127)
}

// setLimit applies soft = hard = value; syscall.Setrlimit (which unix
// uses) also tells the runtime not to restore its own RLIMIT_NOFILE
// at exec.
func setLimit(r Rlimit) {
	lim := unix.Rlimit{Cur: r.Value, Max: r.Value}
	if err := unix.Setrlimit(r.Resource, &lim); err != nil {
		helperFail("rlimit_"+rlimitName(r.Resource), formatLimit(r.Value), err)
	}
}

// resetSignals gives the server default dispositions and an empty mask.
// Handlers the runtime installed revert to the default at execve by
// themselves; ignored signals (the ones the Go runtime leaves alone, such
// as an inherited SIGHUP, SIGTSTP or signal 32) must be reset by hand.
func resetSignals() {
	if st, err := readProcStatus(); err == nil && st.sigIgn != 0 {
		// Zeroed memory is SIG_DFL, no flags, empty mask in every
		// layout of the kernel's struct sigaction; four words cover
		// the largest one.
		var dfl [4]uint64
		for sig := 1; sig <= 64; sig++ {
			if st.sigIgn&(1<<(sig-1)) == 0 || sig == int(syscall.SIGKILL) || sig == int(syscall.SIGSTOP) {
				continue
			}
			syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
		}
	}
	var empty unix.Sigset_t
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, &empty, nil)
}

// helperFail reports a failed step to Start and exits, without running
// deferred code or exit hooks. Exit status 127 is what a shell uses for
// "could not execute".
func helperFail(step, arg string, err error) {
	if err == nil {
		err = errors.New("failed")
	}
	writeStatus(encodeStatus(step, arg, err))
	unix.Exit(127)
}

func writeStatus(msg []byte) {
	for len(msg) > 0 {
		n, werr := unix.Write(statusFD, msg)
		if werr == unix.EINTR {
			continue
		}
		if werr != nil || n <= 0 {
			return
		}
		msg = msg[n:]
	}
}

// readFD reads a blocking descriptor to EOF without the os package, which
// would try to register it with the runtime's poller.
func readFD(fd int) ([]byte, error) {
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= maxSpec {
				return nil, errors.New("spec too large")
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

func formatLimit(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

func formatIDs(ids []uint32) string {
	if len(ids) == 0 {
		return "[]"
	}
	b := []byte{'['}
	for i, id := range ids {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendUint(b, uint64(id), 10)
	}
	return string(append(b, ']'))
}
