package seccomp

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Install sets no_new_privs and loads insns into every thread of the
// calling process (SECCOMP_FILTER_FLAG_TSYNC). The spawner loads filters
// in the server's own child; this is for tests and tools.
func Install(insns []unix.SockFilter) error {
	if len(insns) == 0 {
		return errors.New("seccomp: empty program")
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: no_new_privs: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(insns)), Filter: &insns[0]}
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return fmt.Errorf("seccomp: load filter: %w", e)
	}
	return nil
}

// Available reports whether this kernel can run the filters Compile makes:
// filter mode with the kill-process and log actions (Linux 4.14). It
// changes nothing.
func Available() error {
	for _, act := range []struct {
		v    uint32
		name string
	}{{unix.SECCOMP_RET_KILL_PROCESS, "kill-process"}, {unix.SECCOMP_RET_LOG, "log"}} {
		v := act.v
		_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&v)))
		switch e {
		case 0:
		case unix.ENOSYS, unix.EINVAL:
			return fmt.Errorf("seccomp filters are not available on this host (the kernel lacks CONFIG_SECCOMP_FILTER or is older than Linux 4.14): %w", e)
		case unix.EOPNOTSUPP:
			return fmt.Errorf("this kernel's seccomp has no %s action (Linux 4.14 or newer needed)", act.name)
		default:
			return fmt.Errorf("seccomp: probing the %s action: %w", act.name, e)
		}
	}
	if _, err := HostArch(); err != nil {
		return err
	}
	return nil
}
