package spawn

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/seccomp"
	"github.com/gxinetd/gxinetd/internal/service"
)

// Sandbox is the part of a Spec that isolates the server from the host:
// a service's sandbox attributes made ready for the child (see
// docs/sandbox.md). The child applies it in this order, each step's
// failure failing the start with the step and its errno:
//
//  1. namespaces: a pid namespace comes from the clone itself (the child
//     is its PID 1 and becomes the reaper, the server its PID 2); the
//     others from unshare(2), a user namespace first when the daemon is
//     not root; loopback is brought up in a new network namespace;
//  2. mounts: the view stops propagating to the host, then
//     read_only_root, writable_paths, read_only_paths, the private /tmp
//     and a /proc of the new pid namespace, each path opened inside the
//     new root without following any symbolic link and mounted through
//     that descriptor (a link planted in a writable directory can never
//     aim a mount at the host);
//  3. the new root: pivot_root with a mount namespace, chroot without;
//  4. credentials (and nice, umask, limits, the working directory, as
//     without a sandbox);
//  5. no_new_privs;
//  6. the seccomp filter, last, so that none of the steps before it is
//     filtered; then execve, which the filter lets through once even
//     when the profile denies execve.
type Sandbox struct {
	// NewPID starts the child in a new pid namespace, with a reaper.
	NewPID bool
	// Unshare holds the CLONE_NEW* flags the child unshares itself
	// (CLONE_NEWUSER is handled apart: UserNS).
	Unshare int
	// UserNS adds a user namespace that maps the daemon's own uid and gid
	// to themselves: without root, it is what lets the child make the
	// other namespaces, mount and chroot. The server keeps the daemon's
	// identity and no capability.
	UserNS   bool
	UID, GID uint32
	// Root is the chroot directory ("" for none); Pivot says it is
	// entered with pivot_root (there is a mount namespace).
	Root         string
	Pivot        bool
	ReadOnlyRoot bool
	Mounts       []Mount
	NoNewPrivs   bool
	// Filter is the compiled seccomp profile (nil for none).
	Filter *seccomp.Program
	// Profile names it, for messages.
	Profile string
}

// MountKind is what a Mount does.
type MountKind uint8

const (
	// MountWritable makes Path writable (under a read-only root).
	MountWritable MountKind = iota + 1
	// MountReadOnly makes Path and everything below it read-only.
	MountReadOnly
	// MountTmpfs mounts an empty tmpfs of Size bytes (mode 1777).
	MountTmpfs
	// MountProc mounts a proc file system of the new pid namespace.
	MountProc
)

func (k MountKind) String() string {
	switch k {
	case MountWritable:
		return "writable_paths"
	case MountReadOnly:
		return "read_only_paths"
	case MountTmpfs:
		return "private_tmp"
	case MountProc:
		return "proc"
	}
	return "mount"
}

// Mount is one step of the server's file-system view. Path is as the
// server sees it (inside Root).
type Mount struct {
	Kind MountKind
	Path string
	// Optional skips a path that does not exist (a `-/path` entry,
	// /var/tmp, /proc) instead of failing the start.
	Optional bool
	Size     int64
}

// buildSandbox turns the service's sandbox attributes into t.spec.Sandbox.
func buildSandbox(sb *service.Sandbox, h hostEnv) (*Sandbox, error) {
	if sb.IsZero() {
		return nil, nil
	}
	if err := sandboxBuild(); err != nil {
		return nil, err
	}
	out := &Sandbox{NoNewPrivs: sb.NoNewPrivs, ReadOnlyRoot: sb.ReadOnlyRoot}
	ns := sb.EffectiveNamespaces()
	out.NewPID = ns.Has(service.NsPID)
	for _, f := range []struct {
		ns   service.Namespaces
		flag int
	}{{service.NsMount, unix.CLONE_NEWNS}, {service.NsIPC, unix.CLONE_NEWIPC}, {service.NsUTS, unix.CLONE_NEWUTS}, {service.NsNet, unix.CLONE_NEWNET}} {
		if ns.Has(f.ns) {
			out.Unshare |= f.flag
		}
	}
	if sb.Chroot != "" && sb.Chroot != "/" {
		out.Root = path.Clean(sb.Chroot)
		out.Pivot = ns.Has(service.NsMount)
	}
	if h.euid != 0 && (ns != 0 || out.Root != "") {
		out.UserNS, out.UID, out.GID = true, uint32(h.euid), uint32(h.egid)
	}
	for _, p := range sb.WritablePaths {
		out.Mounts = append(out.Mounts, pathMount(MountWritable, p))
	}
	for _, p := range sb.ReadOnlyPaths {
		out.Mounts = append(out.Mounts, pathMount(MountReadOnly, p))
	}
	if sb.PrivateTmp {
		size := sb.PrivateTmpSize
		if size <= 0 {
			size = service.DefaultPrivateTmpSize
		}
		out.Mounts = append(out.Mounts, Mount{Kind: MountTmpfs, Path: "/tmp", Size: size},
			Mount{Kind: MountTmpfs, Path: "/var/tmp", Size: size, Optional: true})
	}
	if out.NewPID && ns.Has(service.NsMount) {
		// The host's /proc would show the host's processes.
		out.Mounts = append(out.Mounts, Mount{Kind: MountProc, Path: "/proc", Optional: true})
	}
	if sb.Seccomp != nil {
		prof, err := loadProfile(sb.Seccomp)
		if err != nil {
			return nil, err
		}
		arch, err := seccomp.HostArch()
		if err != nil {
			return nil, err
		}
		prog, err := seccomp.Compile(prof, arch)
		if err != nil {
			return nil, err
		}
		out.Filter, out.Profile = prog, sb.Seccomp.Profile
		// Without CAP_SYS_ADMIN (the server's user is not root) the
		// kernel takes a filter only with no_new_privs; with it, a
		// setuid program could still shed the filter's intent.
		out.NoNewPrivs = true
	}
	return out, nil
}

func pathMount(k MountKind, p string) Mount {
	opt := strings.HasPrefix(p, "-")
	return Mount{Kind: k, Path: path.Clean(strings.TrimPrefix(p, "-")), Optional: opt}
}

// loadProfile parses the profile the model carries: a built-in one by
// name, a file's text as it was read when the configuration was loaded.
func loadProfile(s *service.Seccomp) (*seccomp.Profile, error) {
	if s.File == "" {
		p, ok := seccomp.Builtin(s.Profile)
		if !ok {
			return nil, fmt.Errorf("seccomp: no built-in profile %q", s.Profile)
		}
		return p, nil
	}
	p, errs := seccomp.Parse(s.File, []byte(s.Text))
	if len(errs) > 0 {
		return nil, fmt.Errorf("seccomp profile %s:%v", s.File, errs[0])
	}
	return p, nil
}
