package spawn

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/seccomp"
	"github.com/gxinetd/gxinetd/internal/service"
)

// SupportError says which sandbox attribute this build on this host
// cannot provide, and why.
type SupportError struct {
	Attr string // the attribute at fault: "namespaces", "seccomp", ...
	Err  error
}

func (e *SupportError) Error() string { return e.Attr + ": " + e.Err.Error() }
func (e *SupportError) Unwrap() error { return e.Err }

// SandboxSupport reports whether servers with sb can be started by this
// build, on this host, with this process's privileges: the check mode
// says so for each service (E-SANDBOX-HOST) and the daemon refuses such a
// service rather than run it less isolated than configured. Kernel
// features are probed for real (a throwaway process in the namespaces
// asked for); results are cached for the life of the process.
func SandboxSupport(sb *service.Sandbox) *SupportError {
	if sb.IsZero() {
		return nil
	}
	if err := sandboxBuild(); err != nil {
		return &SupportError{Attr: firstSandboxAttr(sb), Err: err}
	}
	ns := sb.EffectiveNamespaces()
	root := os.Geteuid() == 0
	needUserNS := !root && (ns != 0 || sb.Chroot != "")
	if needUserNS {
		if err := probeClone(syscall.CLONE_NEWUSER); err != nil {
			return &SupportError{Attr: firstSandboxAttr(sb), Err: fmt.Errorf("gxinetd runs as uid %d and this host does not let it make a user namespace (%w); run it as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces)", os.Geteuid(), err)}
		}
	}
	for _, f := range []struct {
		ns   service.Namespaces
		flag uintptr
		name string
	}{{service.NsPID, syscall.CLONE_NEWPID, "pid"}, {service.NsMount, syscall.CLONE_NEWNS, "mount"},
		{service.NsIPC, syscall.CLONE_NEWIPC, "ipc"}, {service.NsUTS, syscall.CLONE_NEWUTS, "uts"}, {service.NsNet, syscall.CLONE_NEWNET, "net"}} {
		if !ns.Has(f.ns) {
			continue
		}
		flags := f.flag
		if needUserNS {
			flags |= syscall.CLONE_NEWUSER
		}
		if err := probeClone(flags); err != nil {
			attr := "namespaces"
			if !sb.Namespaces.Has(f.ns) {
				attr = firstMountAttr(sb)
			}
			return &SupportError{Attr: attr, Err: fmt.Errorf("this host cannot make %s namespaces: %w", f.name, err)}
		}
	}
	if ns.Has(service.NsMount) {
		if err := probeMountAPI(); err != nil {
			return &SupportError{Attr: firstMountAttr(sb), Err: err}
		}
	}
	if ns.Has(service.NsPID) {
		if err := probeReaper(needUserNS); err != nil {
			return &SupportError{Attr: "namespaces", Err: fmt.Errorf("the pid namespace's reaper cannot run: %w", err)}
		}
	}
	if sb.Seccomp != nil {
		if err := seccomp.Available(); err != nil {
			return &SupportError{Attr: "seccomp", Err: err}
		}
	}
	return nil
}

// firstSandboxAttr names the attribute to blame when the whole sandbox is
// out of reach.
func firstSandboxAttr(sb *service.Sandbox) string {
	switch {
	case sb.Chroot != "":
		return "chroot"
	case sb.Namespaces != 0:
		return "namespaces"
	case sb.MountView():
		return firstMountAttr(sb)
	case sb.Seccomp != nil:
		return "seccomp"
	}
	return "no_new_privs"
}

func firstMountAttr(sb *service.Sandbox) string {
	switch {
	case sb.ReadOnlyRoot:
		return "read_only_root"
	case len(sb.ReadOnlyPaths) > 0:
		return "read_only_paths"
	case len(sb.WritablePaths) > 0:
		return "writable_paths"
	case sb.PrivateTmp:
		return "private_tmp"
	}
	return "namespaces"
}

var probeCache sync.Map // string -> error (nil stored as errNone)

var errNone = errors.New("")

func cached(key string, probe func() error) error {
	if v, ok := probeCache.Load(key); ok {
		if v.(error) == errNone {
			return nil
		}
		return v.(error)
	}
	err := probe()
	if err == nil {
		probeCache.Store(key, errNone)
	} else {
		probeCache.Store(key, err)
	}
	return err
}

// probeClone starts a throwaway process with the clone flags: the reaper
// image where this build has one (it exits at once), else /bin/true. A
// user namespace maps the daemon's ids, as the spawner's does.
func probeClone(flags uintptr) error {
	return cached("clone:"+strconv.FormatUint(uint64(flags), 16), func() error {
		exe, err := probeExe()
		if err != nil {
			return err
		}
		sys := &syscall.SysProcAttr{Cloneflags: flags}
		if flags&syscall.CLONE_NEWUSER != 0 {
			sys.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}}
			sys.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}}
		}
		p, err := os.StartProcess(exe, []string{"gxinetd-probe"}, &os.ProcAttr{Env: []string{}, Sys: sys})
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return err
		}
		reapProbe(p)
		return nil
	})
}

// reapProbe waits for a probe process, which exits at once; one that
// does not (it cannot: nothing in it waits) is killed after a bound.
func reapProbe(p *os.Process) {
	t := time.AfterFunc(5*time.Second, func() { _ = p.Kill() })
	_, _ = p.Wait()
	t.Stop()
}

// probeExe is what probeClone starts.
func probeExe() (string, error) {
	if fd, err := reaperFDIfAny(); err == nil && fd >= 0 {
		return "/proc/self/fd/" + strconv.Itoa(fd), nil
	}
	for _, p := range []string{"/bin/true", "/usr/bin/true"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("nothing to start for the probe (no /bin/true)")
}

// probeMountAPI checks for the mount system calls the file-system view
// is made with: open_tree and move_mount (Linux 5.2), openat2 (5.6) and
// mount_setattr (5.12). Each is called with a descriptor that cannot be
// valid: EBADF or EINVAL means the kernel knows it, ENOSYS that it does
// not.
func probeMountAPI() error {
	return cached("mountapi", func() error {
		var attr [4]uint64
		for _, c := range []struct {
			name string
			nr   uintptr
			args [5]uintptr
		}{
			{"open_tree (Linux 5.2)", unix.SYS_OPEN_TREE, [5]uintptr{^uintptr(0), 0, 0}},
			{"openat2 (Linux 5.6)", unix.SYS_OPENAT2, [5]uintptr{^uintptr(0), 0, 0, 0}},
			{"mount_setattr (Linux 5.12)", unix.SYS_MOUNT_SETATTR, [5]uintptr{^uintptr(0), 0, 0, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr)}},
		} {
			_, _, e := unix.Syscall6(c.nr, c.args[0], c.args[1], c.args[2], c.args[3], c.args[4], 0)
			if e == unix.ENOSYS {
				return fmt.Errorf("this kernel has no %s, which the file-system view needs", c.name)
			}
		}
		return nil
	})
}

// probeReaper runs the reaper image as the init of a new pid namespace.
func probeReaper(userNS bool) error {
	fd, err := reaperFDIfAny()
	if err != nil {
		return err
	}
	if fd < 0 {
		return errors.New("this build has no reaper")
	}
	// The init closes the daemon's descriptors with close_range (5.9):
	// first > last cannot be valid, ENOSYS says there is no such call.
	if _, _, e := unix.Syscall(unix.SYS_CLOSE_RANGE, 1, 0, 0); e == unix.ENOSYS {
		return errors.New("this kernel has no close_range (Linux 5.9)")
	}
	flags := uintptr(syscall.CLONE_NEWPID)
	if userNS {
		flags |= syscall.CLONE_NEWUSER
	}
	return probeClone(flags)
}
