// The sandbox steps of the clone child (issue 17, docs/sandbox.md).
//
// Included by clone_linux.go after gx_sys and GX_INLINE: the same rules
// hold here as for every step of the child (raw inline system calls
// only, nothing written but the child's own stack and its report, every
// helper always inlined; TestCloneChildMakesNoCalls checks gx_child and
// gx_init).
//
// The order, each step reported with its errno when it fails:
//
//   namespaces     a user namespace comes with the clone itself (the
//                  daemon is not root), and so does a pid namespace; the
//                  rest are unshared here; loopback is brought up in a
//                  new network namespace;
//   mounts         the view stops propagating to the host, the new root
//                  becomes a mount of its own, read_only_root, then each
//                  of writable_paths, read_only_paths, the private /tmp
//                  and /proc, every path opened inside the new root
//                  without following a symbolic link and mounted through
//                  that descriptor, so that no link planted in a
//                  directory the server can write ever aims a mount at
//                  the host;
//   new root       pivot_root (with a mount namespace) or chroot;
//   ...            nice, limits, umask, credentials, directory (the
//                  child's usual steps);
//   no_new_privs
//   seccomp        last before execve, so none of the steps is filtered.

#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

// Numbers of the newer system calls: the same on amd64 and arm64 (the
// generic table), and missing from old C libraries' headers.
enum {
	GX_SYS_open_tree = 428, GX_SYS_move_mount = 429, GX_SYS_fsopen = 430, GX_SYS_fsconfig = 431,
	GX_SYS_fsmount = 432, GX_SYS_openat2 = 437, GX_SYS_mount_setattr = 442,
};
#if defined(__x86_64__)
enum { GX_SYS_execveat = 322, GX_SYS_pivot_root = 155, GX_SYS_seccomp = 317 };
#elif defined(__aarch64__)
enum { GX_SYS_execveat = 281, GX_SYS_pivot_root = 41, GX_SYS_seccomp = 277 };
#endif

// The kernel's own constants, spelled out for the same reason.
enum {
	GX_OPEN_TREE_CLONE = 1, GX_OPEN_TREE_CLOEXEC = 02000000,
	GX_MOVE_MOUNT_F_EMPTY_PATH = 0x4, GX_MOVE_MOUNT_T_EMPTY_PATH = 0x40,
	GX_FSOPEN_CLOEXEC = 1, GX_FSMOUNT_CLOEXEC = 1,
	GX_FSCONFIG_SET_STRING = 1, GX_FSCONFIG_CMD_CREATE = 6,
	GX_MOUNT_ATTR_RDONLY = 0x1, GX_MOUNT_ATTR_NOSUID = 0x2, GX_MOUNT_ATTR_NODEV = 0x4, GX_MOUNT_ATTR_NOEXEC = 0x8,
	GX_RESOLVE_NO_MAGICLINKS = 0x02, GX_RESOLVE_NO_SYMLINKS = 0x04, GX_RESOLVE_IN_ROOT = 0x10,
	GX_MS_BIND = 4096, GX_MS_REC = 16384, GX_MS_SLAVE = 1 << 19, GX_MNT_DETACH = 2,
	GX_PR_SET_NO_NEW_PRIVS = 38, GX_SECCOMP_SET_MODE_FILTER = 1,
	GX_SIOCGIFFLAGS = 0x8913, GX_SIOCSIFFLAGS = 0x8914, GX_IFF_UP = 1,
};

// The sandbox's steps, after clone_linux.go's own (cloneError names
// them).
enum {
	GX_USERNS = 32, GX_NAMESPACES, GX_LOOPBACK, GX_PROPAGATION, GX_ROOT_BIND, GX_READ_ONLY_ROOT, GX_MOUNT,
	GX_NEW_ROOT, GX_NO_NEW_PRIVS, GX_SECCOMP, GX_REAPER_FORK, GX_REAPER_EXEC,
};

// Mount kinds (spawn.MountKind).
enum { GX_MNT_WRITABLE = 1, GX_MNT_READ_ONLY, GX_MNT_TMPFS, GX_MNT_PROC };

struct gx_mnt {
	int kind;
	int optional;     // a missing path is skipped
	const char *path; // inside the new root, without the leading '/'
	const char *size; // tmpfs size in bytes, as text
};

// gx_sbx is the sandbox of one start (spawn.Sandbox), in the request's
// C memory.
struct gx_sbx {
	int newpid;      // CLONE_NEWPID with the clone: gx_init is PID 1
	int newuser;     // CLONE_NEWUSER with the clone: write the maps
	int unshare;     // CLONE_NEWNS | NEWIPC | NEWUTS | NEWNET, here
	const char *uid_map, *gid_map; // "U U 1", the daemon's own ids
	int uid_map_len, gid_map_len;
	const char *root; // NULL: "/"
	int bind_root;    // make root a mount (a chroot with a mount namespace)
	int pivot;        // pivot_root into root; else chroot
	int ro_root;
	int nmnt;
	const struct gx_mnt *mnt;
	int nnp;
	unsigned short nfilter; // struct sock_filter entries
	const void *filter;     // already holding the execve path pointer
	int reaper_fd;          // the reaper image (a memfd), for gx_init
	int report_fd;          // its status pipe's write end
	char *stack2;           // the server child's stack, GX_STACK2 bytes (gx_init)
	int init_done;          // gx_init did the namespace-wide steps
	int share_reaper;       // gx_init reaps in the daemon's memory, no exec (shareReaper)
};

#define GX_STACK2 (64 * 1024)

// gx_sys6 is gx_sys with six arguments.
GX_INLINE long gx_sys6(long n, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
	return r;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
	return x0;
#endif
}

// gx_write_file writes text to an existing file (a /proc control file).
GX_INLINE long gx_write_file(const char *path, const char *text, long len) {
	long fd = gx_sys(SYS_openat, AT_FDCWD, (long)path, O_WRONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	long rc = gx_sys(SYS_write, fd, (long)text, len, 0);
	gx_sys(SYS_close, fd, 0, 0, 0);
	if (rc >= 0 && rc != len)
		rc = -EIO;
	return rc < 0 ? rc : 0;
}

// gx_userns maps the daemon's own uid and gid to themselves in the user
// namespace the clone made: the child keeps them, with every capability
// inside the namespace until its execve (a non-zero uid loses them there).
GX_INLINE long gx_userns(const struct gx_sbx *s) {
	static const char uid_map[] = "/proc/self/uid_map", gid_map[] = "/proc/self/gid_map",
		setgroups[] = "/proc/self/setgroups", deny[] = "deny";
	long rc;
	if ((rc = gx_write_file(uid_map, s->uid_map, s->uid_map_len)) < 0)
		return rc;
	// An unprivileged writer must give up setgroups before gid_map.
	if ((rc = gx_write_file(setgroups, deny, 4)) < 0)
		return rc;
	return gx_write_file(gid_map, s->gid_map, s->gid_map_len);
}

// gx_loopback_up brings up lo, the only interface of a new network
// namespace, which the kernel creates down.
GX_INLINE long gx_loopback_up(void) {
	long fd = gx_sys(SYS_socket, 2 /* AF_INET */, 2 /* SOCK_DGRAM */ | O_CLOEXEC, 0, 0);
	if (fd < 0)
		return fd;
	// struct ifreq: the name, then the flags in the union.
	union { struct { char name[16]; short flags; } f; unsigned long words[5]; } ifr;
	ifr.words[0] = ifr.words[1] = ifr.words[2] = ifr.words[3] = ifr.words[4] = 0;
	ifr.f.name[0] = 'l';
	ifr.f.name[1] = 'o';
	long rc = gx_sys(SYS_ioctl, fd, GX_SIOCGIFFLAGS, (long)&ifr, 0);
	if (rc >= 0) {
		ifr.f.flags |= GX_IFF_UP;
		rc = gx_sys(SYS_ioctl, fd, GX_SIOCSIFFLAGS, (long)&ifr, 0);
	}
	gx_sys(SYS_close, fd, 0, 0, 0);
	return rc;
}

// gx_namespaces unshares the namespaces the clone did not make.
GX_INLINE long gx_namespaces(const struct gx_sbx *s, int *step) {
	long rc;
	*step = GX_NAMESPACES;
	if (s->unshare && (rc = gx_sys(SYS_unshare, s->unshare, 0, 0, 0)) < 0)
		return rc;
	*step = GX_LOOPBACK;
	if (s->unshare & CLONE_NEWNET)
		return gx_loopback_up();
	return 0;
}

// struct mount_attr and struct open_how, as the kernel reads them.
struct gx_mount_attr { unsigned long long set, clr, propagation, userns_fd; };
struct gx_open_how { unsigned long long flags, mode, resolve; };

GX_INLINE long gx_setattr(long fd, unsigned long long set, unsigned long long clr) {
	struct gx_mount_attr a;
	a.set = set;
	a.clr = clr;
	a.propagation = 0;
	a.userns_fd = 0;
	static const char empty[] = "";
	return gx_sys6(GX_SYS_mount_setattr, fd, (long)empty, AT_EMPTY_PATH | AT_RECURSIVE, (long)&a, sizeof a, 0);
}

// gx_mount_one makes one step of the view on the directory (or file) at
// fd: a copy of its own subtree made writable or read-only, or a new
// tmpfs or proc.
GX_INLINE long gx_mount_one(const struct gx_mnt *m, long fd) {
	static const char empty[] = "", tmpfs[] = "tmpfs", proc[] = "proc", size[] = "size", mode[] = "mode", sticky[] = "1777";
	long rc, mnt;
	if (m->kind == GX_MNT_WRITABLE || m->kind == GX_MNT_READ_ONLY) {
		mnt = gx_sys(GX_SYS_open_tree, fd, (long)empty, GX_OPEN_TREE_CLONE | GX_OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE, 0);
		if (mnt < 0)
			return mnt;
		if (m->kind == GX_MNT_WRITABLE)
			rc = gx_setattr(mnt, 0, GX_MOUNT_ATTR_RDONLY);
		else
			rc = gx_setattr(mnt, GX_MOUNT_ATTR_RDONLY, 0);
	} else {
		long fs = gx_sys(GX_SYS_fsopen, (long)(m->kind == GX_MNT_TMPFS ? tmpfs : proc), GX_FSOPEN_CLOEXEC, 0, 0);
		if (fs < 0)
			return fs;
		rc = 0;
		if (m->kind == GX_MNT_TMPFS) {
			rc = gx_sys6(GX_SYS_fsconfig, fs, GX_FSCONFIG_SET_STRING, (long)size, (long)m->size, 0, 0);
			if (rc >= 0)
				rc = gx_sys6(GX_SYS_fsconfig, fs, GX_FSCONFIG_SET_STRING, (long)mode, (long)sticky, 0, 0);
		}
		if (rc >= 0)
			rc = gx_sys6(GX_SYS_fsconfig, fs, GX_FSCONFIG_CMD_CREATE, 0, 0, 0, 0);
		mnt = rc;
		if (rc >= 0) {
			long attrs = GX_MOUNT_ATTR_NOSUID | GX_MOUNT_ATTR_NODEV;
			if (m->kind == GX_MNT_PROC)
				attrs |= GX_MOUNT_ATTR_NOEXEC;
			mnt = gx_sys(GX_SYS_fsmount, fs, GX_FSMOUNT_CLOEXEC, attrs, 0);
		}
		gx_sys(SYS_close, fs, 0, 0, 0);
		if (mnt < 0)
			return mnt;
		rc = 0;
	}
	if (rc >= 0)
		rc = gx_sys6(GX_SYS_move_mount, mnt, (long)empty, fd, (long)empty, GX_MOVE_MOUNT_F_EMPTY_PATH | GX_MOVE_MOUNT_T_EMPTY_PATH, 0);
	gx_sys(SYS_close, mnt, 0, 0, 0);
	return rc;
}

// gx_mounts builds the server's view of the file system (see the top of
// this file) and enters its new root. *arg is the failing mount's index.
GX_INLINE long gx_mounts(const struct gx_sbx *s, int *step, int *arg) {
	static const char slash[] = "/", dot[] = ".", empty[] = "";
	long rc, rootfd = -1;
	const char *root = s->root ? s->root : slash;
	if (s->unshare & CLONE_NEWNS) {
		*step = GX_PROPAGATION;
		// Nothing mounted from here on reaches the host.
		if ((rc = gx_sys6(SYS_mount, 0, (long)slash, 0, GX_MS_REC | GX_MS_SLAVE, 0, 0)) < 0)
			return rc;
		if (s->bind_root) {
			*step = GX_ROOT_BIND;
			if ((rc = gx_sys6(SYS_mount, (long)root, (long)root, 0, GX_MS_BIND | GX_MS_REC, 0, 0)) < 0)
				return rc;
		}
		*step = GX_MOUNT;
		if ((rootfd = gx_sys(SYS_openat, AT_FDCWD, (long)root, O_PATH | O_DIRECTORY | O_CLOEXEC, 0)) < 0)
			return rootfd;
		if (s->ro_root) {
			*step = GX_READ_ONLY_ROOT;
			if ((rc = gx_setattr(rootfd, GX_MOUNT_ATTR_RDONLY, 0)) < 0)
				goto out;
		}
		*step = GX_MOUNT;
		for (*arg = 0; *arg < s->nmnt; (*arg)++) {
			const struct gx_mnt *m = &s->mnt[*arg];
			struct gx_open_how how;
			how.flags = O_PATH | O_CLOEXEC;
			if (m->kind == GX_MNT_TMPFS || m->kind == GX_MNT_PROC)
				how.flags |= O_DIRECTORY;
			how.mode = 0;
			how.resolve = GX_RESOLVE_IN_ROOT | GX_RESOLVE_NO_SYMLINKS | GX_RESOLVE_NO_MAGICLINKS;
			long fd = gx_sys(GX_SYS_openat2, rootfd, (long)m->path, (long)&how, sizeof how);
			if (fd == -ENOENT && m->optional)
				continue;
			if (fd < 0) {
				rc = fd;
				goto out;
			}
			rc = gx_mount_one(m, fd);
			gx_sys(SYS_close, fd, 0, 0, 0);
			if (rc < 0)
				goto out;
		}
		*arg = 0;
	}
	rc = 0;
	if (s->root) {
		*step = GX_NEW_ROOT;
		if (s->pivot) {
			// pivot_root(".", ".") stacks the old root on the new one;
			// detaching it leaves nothing of the host in the view.
			if ((rc = gx_sys(SYS_fchdir, rootfd, 0, 0, 0)) < 0 ||
			    (rc = gx_sys(GX_SYS_pivot_root, (long)dot, (long)dot, 0, 0)) < 0 ||
			    (rc = gx_sys(SYS_umount2, (long)dot, GX_MNT_DETACH, 0, 0)) < 0)
				goto out;
		} else if ((rc = gx_sys(SYS_chroot, (long)root, 0, 0, 0)) < 0) {
			goto out;
		}
		rc = gx_sys(SYS_chdir, (long)slash, 0, 0, 0);
	}
	(void)empty;
out:
	if (rootfd >= 0)
		gx_sys(SYS_close, rootfd, 0, 0, 0);
	return rc;
}

// gx_sandbox runs the namespace-wide steps: namespaces, mounts, root.
GX_INLINE long gx_sandbox(const struct gx_sbx *s, int *step, int *arg) {
	long rc;
	if (s->newuser) {
		*step = GX_USERNS;
		if ((rc = gx_userns(s)) < 0)
			return rc;
	}
	if ((rc = gx_namespaces(s, step)) < 0)
		return rc;
	return gx_mounts(s, step, arg);
}

// gx_close_keep4 closes every descriptor but the four given (which
// differ): the init of a pid namespace lives as long as the server, and
// must hold nothing of the daemon's but what it needs. It takes
// close_range (Linux 5.9), which SandboxSupport requires for a pid
// namespace.
GX_INLINE long gx_close_keep4(unsigned int a, unsigned int b, unsigned int c, unsigned int d) {
	unsigned int k[4] = {a, b, c, d}, t;
	// Sort the four (a network of five compare-swaps, no loop the
	// compiler could turn into a call).
#define GX_CSWAP(i, j) if (k[i] > k[j]) { t = k[i]; k[i] = k[j]; k[j] = t; }
	GX_CSWAP(0, 1) GX_CSWAP(2, 3) GX_CSWAP(0, 2) GX_CSWAP(1, 3) GX_CSWAP(1, 2)
#undef GX_CSWAP
	long rc;
	unsigned int lo = 0;
	for (int i = 0; i < 4; i++) {
		if (k[i] > lo && (rc = gx_sys(SYS_close_range, lo, k[i] - 1, 0, 0)) < 0)
			return rc;
		lo = k[i] + 1;
	}
	return gx_sys(SYS_close_range, lo, ~0U, 0, 0);
}

// gx_seccomp loads the filter; no_new_privs is already set.
GX_INLINE long gx_seccomp(const struct gx_sbx *s) {
	struct { unsigned short len; const void *filter; } prog;
	prog.len = s->nfilter;
	prog.filter = s->filter;
	return gx_sys(GX_SYS_seccomp, GX_SECCOMP_SET_MODE_FILTER, 0, (long)&prog, 0);
}
