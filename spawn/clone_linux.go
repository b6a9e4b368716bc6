//go:build linux && cgo && !asan && !msan && (amd64 || arm64)

// The clone path is left out of sanitizer builds (go build -asan or
// -msan): their runtime would instrument the child, and instrumented
// code calls into that runtime, which the child must never do (see
// "Rules for the child" below). Such builds, and every other
// architecture, start servers the way CGO_ENABLED=0 builds do
// (clone_other.go).

package spawn

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

// Rules for the child (gx_child and everything it uses).
//
// The child shares the daemon's memory and, through the thread pointer,
// the TLS of the daemon thread that cloned it, while that thread and all
// the others go on running. So the child may make only inline, raw
// system calls: no libc function (which may take a lock, allocate, set
// the daemon thread's errno, or in glibc's setuid signal every thread
// of the daemon), no call the compiler emits on its own (memset for a
// large initialiser, a sanitizer's or profiler's hook), no static data
// written. Three guards hold this:
//
//  * every helper of the child is GX_INLINE (always_inline), and
//    TestCloneChildMakesNoCalls disassembles gx_child in the test binary
//    and fails on any call instruction, whatever the compiler emitted;
//  * sanitizer builds are refused here (and excluded by the Go build
//    tags: -asan, -msan);
//  * the clone itself is gx_clone below, a raw system call: glibc's
//    clone() wrapper runs code of its own in the child (before 2.25 it
//    wrote the pid cache in the daemon thread's TLS), which is libc code
//    in the child however old or new the libc is.
//
// The libc functions the child must never call are poisoned after the
// child's code, so using one by mistake in a new step fails the build.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(__SANITIZE_HWADDRESS__)
#error "spawn: the clone child cannot run under a sanitizer; build with go build -asan/-msan (which leaves the clone path out) or CGO_ENABLED=0"
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(hwaddress_sanitizer) || __has_feature(dataflow_sanitizer)
#error "spawn: the clone child cannot run under a sanitizer; build with go build -asan/-msan (which leaves the clone path out) or CGO_ENABLED=0"
#endif
#endif

#define GX_INLINE static inline __attribute__((always_inline, no_instrument_function))

// Old C libraries' headers may lack these; the numbers are the same on
// amd64 and arm64.
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

// gx_sys makes a system call without touching errno.
GX_INLINE long gx_sys(long n, long a, long b, long c, long d) {
#if defined(__x86_64__)
	long r;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
	return r;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
	return x0;
#else
#error "spawn: the clone path knows system calls on amd64 and arm64 only"
#endif
}

// gx_clone(fn, stack_top, flags, arg, pidfd) is clone(2) made raw: in
// the child it calls fn(arg) on the new stack and exits with its result
// (SYS_exit: this one task); in the parent it returns the child's pid or
// -errno. With CLONE_PIDFD the kernel stores the pidfd in *pidfd.
long gx_clone(int (*fn)(void *), void *stack, unsigned long flags, void *arg, int *pidfd)
	__attribute__((visibility("hidden")));
#if defined(__x86_64__)
__asm__(
	".text\n"
	".p2align 4\n"
	".globl gx_clone\n"
	".hidden gx_clone\n"
	".type gx_clone,@function\n"
	"gx_clone:\n"
	// fn and arg go on the child's stack, which must end 16-aligned.
	"	andq $-16, %rsi\n"
	"	subq $16, %rsi\n"
	"	movq %rdi, 0(%rsi)\n"
	"	movq %rcx, 8(%rsi)\n"
	// clone(flags, newsp, parent_tid = pidfd, child_tid = 0, tls = 0)
	"	movq %rdx, %rdi\n"
	"	movq %r8, %rdx\n"
	"	xorl %r10d, %r10d\n"
	"	xorl %r8d, %r8d\n"
	"	movl $56, %eax\n"
	"	syscall\n"
	"	testq %rax, %rax\n"
	"	jz 1f\n"
	"	ret\n"
	"1:	xorl %ebp, %ebp\n"
	"	popq %rax\n"
	"	popq %rdi\n"
	"	call *%rax\n"
	"	movl %eax, %edi\n"
	"	movl $60, %eax\n"
	"	syscall\n"
	"	hlt\n"
	".size gx_clone, .-gx_clone\n"
);
#elif defined(__aarch64__)
__asm__(
	".text\n"
	".p2align 2\n"
	".globl gx_clone\n"
	".hidden gx_clone\n"
	".type gx_clone,%function\n"
	"gx_clone:\n"
	"	and x1, x1, #-16\n"
	"	stp x0, x3, [x1, #-16]!\n"
	// clone(flags, newsp, parent_tid = pidfd, tls/child_tid = 0)
	"	mov x0, x2\n"
	"	mov x2, x4\n"
	"	mov x3, xzr\n"
	"	mov x4, xzr\n"
	"	mov x8, #220\n"
	"	svc #0\n"
	"	cbz x0, 1f\n"
	"	ret\n"
	"1:	mov x29, xzr\n"
	"	mov x30, xzr\n"
	"	ldp x1, x0, [sp], #16\n"
	"	blr x1\n"
	"	mov x8, #93\n"
	"	svc #0\n"
	"	brk #0\n"
	".size gx_clone, .-gx_clone\n"
);
#endif

// The steps of the child, in order; a failed step is reported as one of
// these with its errno (cloneError names it).
enum {
	GX_CLOSE = 1, GX_SIGNALS, GX_SETSID, GX_NICE, GX_RLIMIT, GX_SETGROUPS, GX_SETGID, GX_SETUID,
	GX_CHDIR, GX_DUP, GX_EXEC
};

// Test switches (gx_req.test): stop before execve; pretend close_range
// does not exist; and /proc too; keep every descriptor (what the child
// did before it closed them first).
enum { GX_TEST_STOP = 1, GX_TEST_NO_CLOSE_RANGE = 2, GX_TEST_NO_PROC = 4, GX_TEST_KEEP_FDS = 8 };

// GX_RLIM_HARD as a limit's value: the hard limit the child inherited
// (the daemon's own, as it is at this start).
#define GX_RLIM_HARD (~0ULL - 1)

// The clone child's stack.
#define GX_STACK (64 * 1024)

struct gx_rlim { long resource; unsigned long long value; int best_effort; };

#include "sandbox_linux.h"

// gx_req is everything the child reads, in memory the Go collector never
// moves or frees while the child runs, and the child's report.
struct gx_req {
	const char *path;
	char *const *argv;
	char *const *envp;
	const char *dir;
	int fd;         // the connection, to become 0, 1 and 2
	int status_fd;  // the write end of this child's status pipe
	int has_cred;
	unsigned int uid, gid;
	int ngroups;
	const unsigned int *groups;
	int umask;
	int has_nice;
	int nice;
	int nrlim;
	struct gx_rlim *rlim;  // GX_RLIM_HARD entries are resolved in place
	int test;
	int err, step, arg;
	void *stack;
	int pidfd;
	struct gx_sbx *sbx;    // the sandbox (sandbox_linux.h); NULL for none
};

// The kernel's rlimit64, used through prlimit64 so that 64-bit limits
// never pass through a libc conversion.
struct gx_rlimit64 { unsigned long long cur, max; };

struct gx_dirent64 {
	unsigned long long ino;
	long long off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

// gx_close_loop closes every descriptor below the hard RLIMIT_NOFILE
// but keep1 and keep2: the last resort, one system call per slot.
GX_INLINE long gx_close_loop(unsigned int keep1, unsigned int keep2) {
	struct gx_rlimit64 lim;
	long rc = gx_sys(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, (long)&lim);
	if (rc < 0)
		return rc;
	for (unsigned long long fd = 0; fd < lim.max; fd++)
		if (fd != keep1 && fd != keep2)
			gx_sys(SYS_close, (long)fd, 0, 0, 0);
	return 0;
}

// gx_close_walk closes what /proc/self/fd lists, but keep1 and keep2:
// for kernels before 5.9, which have no close_range.
GX_INLINE long gx_close_walk(unsigned int keep1, unsigned int keep2, int test) {
	static const char path[] = "/proc/self/fd";
	long dir = -ENOENT;
	if (!(test & GX_TEST_NO_PROC))
		dir = gx_sys(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dir < 0)
		return gx_close_loop(keep1, keep2);
	char buf[1024] __attribute__((aligned(8)));
	for (;;) {
		long n = gx_sys(SYS_getdents64, dir, (long)buf, sizeof buf, 0);
		if (n <= 0) {
			gx_sys(SYS_close, dir, 0, 0, 0);
			return n;
		}
		// The directory lists by descriptor number, so closing the
		// entries already read moves nothing.
		for (long off = 0; off < n;) {
			struct gx_dirent64 *e = (struct gx_dirent64 *)(buf + off);
			off += e->reclen;
			long fd = 0;
			const char *c = e->name;
			if (*c < '0' || *c > '9')
				continue;
			for (; *c >= '0' && *c <= '9'; c++)
				fd = fd * 10 + (*c - '0');
			if (fd != keep1 && fd != keep2 && fd != dir)
				gx_sys(SYS_close, fd, 0, 0, 0);
		}
	}
}

// gx_close_others closes every descriptor of the child but keep1 and
// keep2, which differ. The child starts with a copy of the daemon's whole
// table, including the status pipes of other starts under way: holding
// one of those would make that start wait for this child.
GX_INLINE long gx_close_others(unsigned int keep1, unsigned int keep2, int test) {
	unsigned int lo = keep1 < keep2 ? keep1 : keep2, hi = keep1 < keep2 ? keep2 : keep1;
	long rc = -ENOSYS;
	if (!(test & GX_TEST_NO_CLOSE_RANGE)) {
		rc = 0;
		if (lo > 0)
			rc = gx_sys(SYS_close_range, 0, lo - 1, 0, 0);
		if (rc == 0 && hi > lo + 1)
			rc = gx_sys(SYS_close_range, lo + 1, hi - 1, 0, 0);
		if (rc == 0)
			rc = gx_sys(SYS_close_range, hi + 1, ~0U, 0, 0);
	}
	if (rc == -ENOSYS)
		rc = gx_close_walk(keep1, keep2, test);
	return rc;
}

// gx_default_signals gives every signal its default disposition.
// Zeroed memory is SIG_DFL with no flags and an empty mask in the
// kernel's struct sigaction. Every handler the daemon installed must go
// before a signal can be unblocked here: it would run the daemon's
// handler on the daemon's memory.
GX_INLINE long gx_default_signals(void) {
	unsigned long dfl[4] = {0, 0, 0, 0};
	for (int s = 1; s <= 64; s++)
		if (s != SIGKILL && s != SIGSTOP)
			gx_sys(SYS_rt_sigaction, s, (long)dfl, 0, 8);
	return 0;
}

// gx_nice applies nice relative to the inherited value, before any
// privilege is dropped, so that a negative nice works. The raw
// getpriority value is 20 - nice.
GX_INLINE long gx_nice(int nice) {
	long cur = gx_sys(SYS_getpriority, PRIO_PROCESS, 0, 0, 0);
	if (cur < 0)
		return cur;
	long n = 20 - cur + nice;
	if (n < -20) n = -20;
	if (n > 19) n = 19;
	return gx_sys(SYS_setpriority, PRIO_PROCESS, 0, n, 0);
}

// gx_raise_limits sets the limits that raise a hard limit, which needs
// privilege, and resolves GX_RLIM_HARD to the inherited hard limit. A
// best-effort limit that may not be raised that far becomes the
// inherited hard limit.
GX_INLINE long gx_raise_limits(struct gx_req *r, int *arg) {
	long rc;
	for (*arg = 0; *arg < r->nrlim; (*arg)++) {
		struct gx_rlim *l = &r->rlim[*arg];
		struct gx_rlimit64 cur;
		if ((rc = gx_sys(SYS_prlimit64, 0, l->resource, 0, (long)&cur)) < 0)
			return rc;
		if (l->value == GX_RLIM_HARD)
			l->value = cur.max;
		struct gx_rlimit64 want = {l->value, l->value};
		if (want.max <= cur.max)
			continue;
		rc = gx_sys(SYS_prlimit64, 0, l->resource, (long)&want, 0);
		if (rc == -EPERM && l->best_effort)
			l->value = cur.max;
		else if (rc < 0)
			return rc;
	}
	*arg = 0;
	return 0;
}

// gx_set_limits sets every limit, soft = hard, last so that nothing
// before it runs under a small limit.
GX_INLINE long gx_set_limits(struct gx_req *r, int *arg) {
	long rc;
	for (*arg = 0; *arg < r->nrlim; (*arg)++) {
		struct gx_rlimit64 want = {r->rlim[*arg].value, r->rlim[*arg].value};
		if ((rc = gx_sys(SYS_prlimit64, 0, r->rlim[*arg].resource, (long)&want, 0)) < 0)
			return rc;
	}
	*arg = 0;
	return 0;
}

// gx_credentials sets the groups, the gid and the uid, in that order,
// for this process only (glibc's wrappers would change every thread of
// the daemon).
GX_INLINE long gx_credentials(struct gx_req *r, int *step) {
	long rc;
	*step = GX_SETGROUPS;
	if ((rc = gx_sys(SYS_setgroups, r->ngroups, (long)r->groups, 0, 0)) < 0)
		return rc;
	*step = GX_SETGID;
	if ((rc = gx_sys(SYS_setresgid, r->gid, r->gid, r->gid, 0)) < 0)
		return rc;
	*step = GX_SETUID;
	return gx_sys(SYS_setresuid, r->uid, r->uid, r->uid, 0);
}

// gx_stdio puts the connection on 0, 1 and 2.
GX_INLINE long gx_stdio(int conn) {
	long fd = conn, rc;
	if (fd < 3) {
		// Move it out of the way of the dup3s first.
		if ((fd = gx_sys(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3, 0)) < 0)
			return fd;
	}
	for (int s = 0; s < 3; s++)
		if ((rc = gx_sys(SYS_dup3, fd, s, 0, 0)) < 0)
			return rc;
	return 0;
}

// GX_STEP runs one step; a failure goes to the report with its errno.
#define GX_STEP(s, call) do { step = (s); if ((rc = (call)) < 0) goto fail; } while (0)

// gx_child runs in the new process, on its own stack, with every signal
// blocked. The steps are in order; a new one (a namespace, a mount, a
// chroot, no_new_privs, a seccomp filter) is one more GX_* value, one
// GX_INLINE function returning 0 or -errno, one GX_STEP line where it
// belongs between "descriptors closed" and "execve", and one case in
// cloneError.
static int gx_child(void *p) __attribute__((no_instrument_function));
static int gx_child(void *p) {
	struct gx_req *r = p;
	int step = 0, arg = 0;
	long rc = 0;

	// First of all: until this step the child holds every descriptor
	// of the daemon.
	if (!(r->test & GX_TEST_KEEP_FDS))
		GX_STEP(GX_CLOSE, gx_close_others(r->fd, r->status_fd, r->test));
	// The child of a pid namespace's init has its dispositions, which
	// the init reset already.
	if (!(r->sbx && r->sbx->init_done))
		GX_STEP(GX_SIGNALS, gx_default_signals());
	GX_STEP(GX_SETSID, gx_sys(SYS_setsid, 0, 0, 0, 0));
	// The sandbox's namespaces, mounts and new root, unless the init of
	// its pid namespace (gx_init) made them for this child already.
	if (r->sbx && !r->sbx->init_done)
		GX_STEP(GX_NAMESPACES, gx_sandbox(r->sbx, &step, &arg));
	if (r->has_nice)
		GX_STEP(GX_NICE, gx_nice(r->nice));
	GX_STEP(GX_RLIMIT, gx_raise_limits(r, &arg));
	if (r->umask >= 0)
		gx_sys(SYS_umask, r->umask & 0777, 0, 0, 0);
	if (r->has_cred)
		GX_STEP(GX_SETGROUPS, gx_credentials(r, &step));
	GX_STEP(GX_CHDIR, gx_sys(SYS_chdir, (long)r->dir, 0, 0, 0));
	GX_STEP(GX_RLIMIT, gx_set_limits(r, &arg));
	if (r->sbx && r->sbx->nnp)
		GX_STEP(GX_NO_NEW_PRIVS, gx_sys6(SYS_prctl, GX_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0));
	GX_STEP(GX_DUP, gx_stdio(r->fd));
	// Tests: stopped here by a process of the service's user, and kept
	// stopped until killed (every signal still blocked, so a SIGHUP and
	// SIGCONT that the kernel may send a stopped child of a session of
	// its own cannot end or resume it).
	while (r->test & GX_TEST_STOP)
		gx_sys(SYS_kill, gx_sys(SYS_getpid, 0, 0, 0, 0), SIGSTOP, 0, 0);
	// The filter last: it lets through the rest, rt_sigprocmask and
	// this execve (its path pointer is patched into the filter).
	if (r->sbx && r->sbx->nfilter)
		GX_STEP(GX_SECCOMP, gx_seccomp(r->sbx));
	unsigned long none = 0;
	gx_sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, 8);
	// Reached execve: a child that is gone from here on either exec'd or
	// failed it (and says so below), not died on the way.
	step = GX_EXEC;
	r->step = GX_EXEC;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	rc = gx_sys(SYS_execve, (long)r->path, (long)r->argv, (long)r->envp, 0);
fail:
	r->err = (int)-rc;
	r->step = step;
	r->arg = arg;
	// The report must be in memory before the exit that the daemon
	// waits for makes it look.
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	gx_sys(SYS_exit, 127, 0, 0, 0);
	return 0;
}

// The reaper's loop (reaper_cgo_linux.go): raw system calls on its own
// stack, nothing else of the daemon's memory read or written.
void gx_reaper_main(void) __attribute__((noreturn));

// gx_init is the child of a server with a pid namespace: the clone made
// it the namespace's PID 1. It makes the namespace-wide steps (the other
// namespaces, the mounts, the new root), forks the server's own child
// (gx_child, which inherits all that and does the rest) with
// CLONE_VFORK, and once that child has exec'd the server, becomes the
// reaper, with the reaper's status pipe on descriptor 3: it execs the
// reaper image (reaper_cgo_linux.go), or, when the server can never
// reach its memory (share_reaper, docs/sandbox.md), runs the reaper's
// loop itself on this stack, which the daemon then keeps until it has
// reaped this process. The only calls it makes are gx_clone's raw
// system call and gx_reaper_main, which never returns.
static int gx_init(void *p) __attribute__((no_instrument_function, no_stack_protector));
static int gx_init(void *p) {
	struct gx_req *r = p;
	struct gx_sbx *s = r->sbx;
	int step = 0, arg = 0;
	long rc = 0;

	GX_STEP(GX_CLOSE, gx_close_keep4(r->fd, r->status_fd, s->reaper_fd, s->report_fd));
	GX_STEP(GX_SIGNALS, gx_default_signals());
	// A process group of its own, out of the daemon's (a terminal's
	// job-control signals to the daemon's group must not reach the
	// reaper; Terminate signals this group). Not a session: the server
	// makes its own, and a session per start costs the kernel a
	// scheduler autogroup, made and destroyed, here about 8 us.
	GX_STEP(GX_SETSID, gx_sys(SYS_setpgid, 0, 0, 0, 0));
	GX_STEP(GX_NAMESPACES, gx_sandbox(s, &step, &arg));
	s->init_done = 1;
	// The server's child runs while this one waits (CLONE_VFORK) until
	// its execve or exit; a failed step is in *r then.
	GX_STEP(GX_REAPER_FORK, gx_clone(gx_child, s->stack2 + GX_STACK2, CLONE_VM | CLONE_VFORK | SIGCHLD, r, 0));
	if (r->err)
		gx_sys(SYS_exit, 127, 0, 0, 0);
	step = GX_REAPER_EXEC;
	if (s->share_reaper) {
		if (s->report_fd != 3 && (rc = gx_sys(SYS_dup3, s->report_fd, 3, 0, 0)) < 0)
			goto fail;
		// Closing the status pipe (among the rest) tells the daemon that
		// *r, *s and the server child's stack are free: nothing below
		// reads them again. 0-2 are the daemon's, 3 the report.
		gx_sys(SYS_close_range, 0, 2, 0, 0);
		gx_sys(SYS_close_range, 4, ~0U, 0, 0);
		gx_reaper_main();
	}
	if (s->report_fd != 3)
		rc = gx_sys(SYS_dup3, s->report_fd, 3, 0, 0);
	else
		rc = gx_sys(SYS_fcntl, 3, F_SETFD, 0, 0);
	if (rc < 0)
		goto fail;
	// Every other descriptor is close-on-exec; 0-2 are the daemon's.
	gx_sys(SYS_close_range, 0, 2, 0, 0);
	{
		static const char empty[] = "", name[] = "gxinetd-reaper";
		const char *argv[2], *envp[1];
		argv[0] = name;
		argv[1] = 0;
		envp[0] = 0;
		rc = gx_sys6(GX_SYS_execveat, s->reaper_fd, (long)empty, (long)argv, (long)envp, AT_EMPTY_PATH, 0);
	}
fail:
	r->err = (int)-rc;
	r->step = step;
	r->arg = arg;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	gx_sys(SYS_exit, 127, 0, 0, 0);
	return 0;
}

// Nothing below runs in the child; nothing above may use these.
#pragma GCC poison setuid setgid setgroups setresuid setresgid seteuid setegid initgroups
#pragma GCC poison setsid setpriority nice setrlimit prlimit umask chdir dup dup2 dup3 execve execv execvp
#pragma GCC poison close_range closefrom opendir readdir sigaction signal sigprocmask pthread_sigmask
#pragma GCC poison mount umount2 chroot pivot_root unshare setns prctl

// gx_spawn starts the child and returns its pid, or -errno when clone
// failed. It returns at once: the child runs beside the daemon until its
// execve (or exit) closes the status pipe; only then may the daemon free
// r and r->stack, which the child uses until then. r->pidfd is the
// child's pidfd, non-blocking, or -1 on a kernel without CLONE_PIDFD
// (which ignores the flag).
//
// r->stack (GX_STACK bytes) and, with a pid namespace, r->sbx->stack2
// (GX_STACK2) are the caller's: it takes them from its pool and puts them
// back when the children are done with them.
static long gx_spawn(struct gx_req *r) {
	char *stack = r->stack;
	if (stack == NULL || (r->sbx && r->sbx->newpid && r->sbx->stack2 == NULL))
		return -ENOMEM; // getStack: malloc failed
	unsigned long all = ~0UL, old;
	int pidfd = -1;
	// Blocked on this thread, and so in the child from its first
	// instruction until it has reset every handler.
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);
	int (*fn)(void *) = gx_child;
	unsigned long flags = CLONE_VM | CLONE_PIDFD | SIGCHLD;
	if (r->sbx && r->sbx->newpid) {
		fn = gx_init;
		flags |= CLONE_NEWPID;
	}
	if (r->sbx && r->sbx->newuser)
		flags |= CLONE_NEWUSER;
	long pid = gx_clone(fn, stack + GX_STACK, flags, r, &pidfd);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
	if (pid < 0)
		return pid;
	r->pidfd = pidfd;
	// A pidfd has no other file status flag to keep: F_SETFL alone.
	if (pidfd >= 0 && fcntl(pidfd, F_SETFL, O_NONBLOCK) < 0) {
		close(pidfd);
		r->pidfd = -1;
	}
	return pid;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// haveClone: this build can start servers with startClone.
const haveClone = true

// Test switches for the child (GX_TEST_*).
const (
	cloneTestStop         = C.GX_TEST_STOP
	cloneTestNoCloseRange = C.GX_TEST_NO_CLOSE_RANGE
	cloneTestNoProc       = C.GX_TEST_NO_PROC
	cloneTestKeepFDs      = C.GX_TEST_KEEP_FDS
)

// cloneTest is or'ed into every request's test switches; tests only.
var cloneTest int

// startClone starts spec with a small C routine instead of Go's fork: a
// clone(CLONE_VM) child on its own stack that does every step of the
// Spec itself (descriptors, signals, session, nice, limits, umask,
// credentials, directory) with raw system calls and then execs the
// server. Go's own fork cannot run code between fork and exec, which is
// why the exec helper exists; this needs no second execve. Unlike Go's
// fork and posix_spawn (CLONE_VFORK), no thread of the daemon waits in
// the kernel while the child gets ready: the clone returns at once, and
// the goroutine waits in the runtime's poller for the child's execve (or
// exit) to close the status pipe, under the watchdog (execTimeout). A failed
// step comes back through the memory the child shares with the daemon
// until then.
func startClone(spec *Spec, stdio *os.File, test int) (*Process, error) {
	if hasNUL(spec) {
		// C strings end at the first NUL: refuse, as Go's fork does,
		// rather than run the server with a truncated argument.
		return nil, &StartError{Step: "exec", Arg: spec.Path, Err: syscall.EINVAL}
	}
	sl, err := acquireSlot(spec)
	if err != nil {
		return nil, err
	}
	// The status pipe: the child keeps its copy of the write end, which
	// its execve closes (close-on-exec), as does its exit after a failed
	// step; it closes every other descriptor first.
	p, err := statusPipe()
	if err != nil {
		sl.release()
		return nil, &StartError{Step: "fork", Arg: spec.Path, Err: err}
	}
	status := os.NewFile(uintptr(p[0]), "exec status")
	b := newCBlock(spec)
	req := b.req
	// A pid namespace's reaper reports the server's wait status on a
	// pipe of its own (reaper_cgo_linux.go).
	report := -1
	if req.sbx != nil && req.sbx.newpid != 0 {
		var rerr error
		if shareReaper(spec) {
			req.sbx.share_reaper = 1
		}
		if report, rerr = reaperSetup(req.sbx); rerr != nil {
			unix.Close(p[1])
			status.Close()
			C.free(b.base)
			sl.release()
			return nil, &StartError{Step: "fork", Arg: "reaper", Err: rerr}
		}
	}
	// Fd switches the descriptor to blocking mode, which servers expect
	// of their standard input.
	req.fd = C.int(stdio.Fd())
	req.status_fd = C.int(p[1])
	req.test = C.int(test | cloneTest)
	if beforeFork != nil {
		beforeFork(spec)
	}
	req.stack = getStack()
	if req.sbx != nil && req.sbx.newpid != 0 {
		req.sbx.stack2 = (*C.char)(getStack())
	}
	pid := int(C.gx_spawn(req))
	unix.Close(p[1])
	if report >= 0 {
		unix.Close(int(req.sbx.report_fd))
	}
	runtime.KeepAlive(stdio)
	if pid < 0 {
		status.Close()
		if report >= 0 {
			unix.Close(report)
		}
		putStack(req.stack)
		freeStack2(req)
		C.free(b.base)
		sl.release()
		step := "fork"
		if req.sbx != nil && (req.sbx.newpid != 0 || req.sbx.newuser != 0) {
			step = "clone namespaces"
		}
		return nil, &StartError{Step: step, Arg: spec.Path, Err: syscall.Errno(-pid)}
	}
	proc := newProcess(pid, int(req.pidfd), true)
	proc.report = report
	if onStart != nil {
		onStart(spec, pid)
	}
	// Wait in the runtime's poller, not in a blocked thread, until the
	// child no longer uses the request and its stack. The watchdog kills
	// a child that has not exec'd after execTimeout (its pipe then closes
	// too), and wakes this wait if not even that ends it.
	w := watch(proc, status, spec.testBound)
	eof := waitEOF(status)
	if killed := unwatch(w); killed || !eof {
		free := func() {
			// The child shares the request and its stack until it is
			// gone, which its status pipe says; a reaper in the
			// daemon's memory runs on that stack until it is reaped.
			_ = status.SetReadDeadline(time.Time{})
			waitEOF(status)
			status.Close()
			stack := req.stack
			freeStack2(req)
			C.free(b.base)
			sl.release()
			reapThenFree(proc, stack)
		}
		if eof {
			free()
		} else {
			// Not even SIGKILL ended it (uninterruptible sleep): leave
			// the memory, the slot and the reap to a goroutine.
			go free()
		}
		return nil, &StartError{Step: "exec", Arg: spec.Path, Err: &execTimeoutError{w.bound}}
	}
	status.Close()
	// A pid namespace's init that reaps in the daemon's memory runs on
	// its clone stack for as long as the server does: that stack is
	// freed once the init is reaped, never before.
	stack := req.stack
	if req.sbx == nil || req.sbx.share_reaper == 0 {
		putStack(stack)
		stack = nil
	}
	freeStack2(req)
	defer C.free(b.base)
	sl.release()
	switch {
	case req.err != 0:
		reapThenFree(proc, stack)
		return nil, cloneError(spec, req, syscall.Errno(req.err))
	case req.step != C.GX_EXEC:
		// Gone before its execve, with no step failed: killed by a
		// signal (a process running as the service's user may send
		// SIGKILL once the child has that user's ids).
		ws := reapThenFree(proc, stack)
		return nil, &StartError{Step: "exec", Arg: spec.Path, Err: &preExecDeathError{ws}}
	}
	if stack != nil {
		proc.onReaped = func() { putStack(stack) }
	}
	return proc, nil
}

// reapThenFree reaps proc (if not reaped already) and then frees stack,
// the clone stack it may still be running on; if the wait fails, the
// stack is left allocated rather than freed under a live process.
func reapThenFree(proc *Process, stack unsafe.Pointer) syscall.WaitStatus {
	if stack != nil {
		proc.onReaped = func() { putStack(stack) }
	}
	ws, _ := proc.Wait()
	return ws
}

// statusPipe makes the status pipe, both ends above 2: a daemon started
// with 0, 1 or 2 closed would otherwise get them, and the child's dup of
// the connection onto 0-2 would close its copy of the write end early,
// telling the daemon the child was done with its memory while it was not.
func statusPipe() ([2]int, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return p, err
	}
	for i, fd := range p {
		if fd > 2 {
			continue
		}
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		unix.Close(fd)
		if err != nil {
			unix.Close(p[1-i])
			return p, err
		}
		p[i] = nfd
	}
	return p, nil
}

// waitEOF reads the status pipe until end of file and reports whether
// it got there (false: a read deadline, the watchdog's, stopped it).
// Nothing is ever written to the pipe; only the close of the child's
// copy matters.
func waitEOF(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err == nil {
		var buf [16]byte
		eof := false
		err = rc.Read(func(fd uintptr) bool {
			n, err := unix.Read(int(fd), buf[:])
			eof = n == 0 && err == nil
			return eof || (err != nil && err != unix.EAGAIN && err != unix.EINTR)
		})
		if err == nil {
			return eof
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
	}
	// No poller: wait the blocking way.
	pfd := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, -1)
		if n > 0 {
			return true
		}
		if err != nil && err != unix.EINTR {
			return false
		}
	}
}

func hasNUL(spec *Spec) bool {
	if strings.IndexByte(spec.Path, 0) >= 0 || strings.IndexByte(spec.Dir, 0) >= 0 {
		return true
	}
	for _, l := range [][]string{spec.Argv, spec.Env} {
		for _, s := range l {
			if strings.IndexByte(s, 0) >= 0 {
				return true
			}
		}
	}
	return false
}

func cloneError(spec *Spec, req *C.struct_gx_req, errno syscall.Errno) *StartError {
	e := &StartError{Err: errno}
	switch req.step {
	case C.GX_CLOSE:
		e.Step = "close descriptors"
	case C.GX_SIGNALS:
		e.Step = "signals"
	case C.GX_NICE:
		e.Step, e.Arg = "nice", strconv.Itoa(*spec.Nice)
	case C.GX_RLIMIT:
		// The value the child tried: InheritHard resolved.
		l := unsafe.Slice(req.rlim, req.nrlim)[req.arg]
		e.Step, e.Arg = "rlimit_"+rlimitName(int(l.resource)), formatLimit(uint64(l.value))
	case C.GX_SETSID:
		e.Step = "setsid"
	case C.GX_SETGROUPS:
		e.Step, e.Arg = "setgroups", formatIDs(spec.Cred.Groups)
	case C.GX_SETGID:
		e.Step, e.Arg = "setgid", strconv.FormatUint(uint64(spec.Cred.GID), 10)
	case C.GX_SETUID:
		e.Step, e.Arg = "setuid", strconv.FormatUint(uint64(spec.Cred.UID), 10)
	case C.GX_CHDIR:
		e.Step, e.Arg = "chdir", spec.Dir
	case C.GX_DUP:
		e.Step = "dup2"
	default:
		if sandboxError(e, spec, int(req.step), int(req.arg)) {
			return e
		}
		e.Step, e.Arg = "exec", spec.Path
	}
	return e
}

// sandboxError names a failed sandbox step (sandbox_linux.h).
func sandboxError(e *StartError, spec *Spec, step, arg int) bool {
	sb := spec.Sandbox
	if sb == nil {
		return false
	}
	switch step {
	case C.GX_USERNS:
		e.Step, e.Arg = "user namespace", fmt.Sprintf("uid %d gid %d", sb.UID, sb.GID)
	case C.GX_NAMESPACES:
		e.Step, e.Arg = "unshare", unshareNames(sb.Unshare)
	case C.GX_LOOPBACK:
		e.Step, e.Arg = "loopback", "lo"
	case C.GX_PROPAGATION:
		e.Step, e.Arg = "mount", "/ (stop propagation)"
	case C.GX_ROOT_BIND:
		e.Step, e.Arg = "chroot", sb.Root+" (bind)"
	case C.GX_READ_ONLY_ROOT:
		e.Step, e.Arg = "read_only_root", rootName(sb)
	case C.GX_MOUNT:
		if arg < len(sb.Mounts) {
			e.Step, e.Arg = sb.Mounts[arg].Kind.String(), sb.Mounts[arg].Path
		} else {
			e.Step, e.Arg = "mount", rootName(sb)
		}
	case C.GX_NEW_ROOT:
		e.Step, e.Arg = "chroot", sb.Root
		if sb.Pivot {
			e.Step = "pivot_root"
		}
	case C.GX_NO_NEW_PRIVS:
		e.Step = "no_new_privs"
	case C.GX_SECCOMP:
		e.Step, e.Arg = "seccomp", sb.Profile
	case C.GX_REAPER_FORK:
		e.Step, e.Arg = "fork", "server in pid namespace"
	case C.GX_REAPER_EXEC:
		e.Step, e.Arg = "exec", "reaper"
	default:
		return false
	}
	return true
}

func rootName(sb *Sandbox) string {
	if sb.Root == "" {
		return "/"
	}
	return sb.Root
}

func unshareNames(flags int) string {
	var out []string
	for _, f := range []struct {
		flag int
		name string
	}{{unix.CLONE_NEWNS, "mount"}, {unix.CLONE_NEWIPC, "ipc"}, {unix.CLONE_NEWUTS, "uts"}, {unix.CLONE_NEWNET, "net"}} {
		if flags&f.flag != 0 {
			out = append(out, f.name)
		}
	}
	return strings.Join(out, " ")
}

// cBlock is one C allocation holding the request and everything it
// points to: the child must not read memory the Go collector manages.
type cBlock struct {
	base unsafe.Pointer
	req  *C.struct_gx_req
}

func newCBlock(spec *Spec) cBlock {
	const ptr = unsafe.Sizeof(uintptr(0))
	nstr := len(spec.Path) + len(spec.Dir) + 2
	for _, s := range spec.Argv {
		nstr += len(s) + 1
	}
	for _, s := range spec.Env {
		nstr += len(s) + 1
	}
	var ngroups int
	if spec.Cred != nil {
		ngroups = len(spec.Cred.Groups)
	}
	sbxSize := uintptr(0)
	if sb := spec.Sandbox; sb != nil {
		sbxSize = sandboxCSize(sb)
	}
	reqSize := (unsafe.Sizeof(C.struct_gx_req{}) + 15) &^ 15
	rlimSize := uintptr(len(spec.Rlimits)) * unsafe.Sizeof(C.struct_gx_rlim{})
	ptrSize := uintptr(len(spec.Argv)+len(spec.Env)+2) * ptr
	groupSize := (uintptr(ngroups)*4 + 7) &^ 7
	total := reqSize + sbxSize + rlimSize + ptrSize + groupSize + uintptr(nstr)
	base := C.calloc(1, C.size_t(total))
	if base == nil {
		panic("spawn: out of memory")
	}
	mem := unsafe.Slice((*byte)(base), total)
	req := (*C.struct_gx_req)(base)
	req.pidfd = -1
	off := reqSize + sbxSize

	rl := unsafe.Slice((*C.struct_gx_rlim)(unsafe.Pointer(&mem[off])), len(spec.Rlimits))
	if len(spec.Rlimits) > 0 {
		req.rlim = &rl[0]
	}
	for i, r := range spec.Rlimits {
		rl[i].resource = C.long(r.Resource)
		rl[i].value = C.ulonglong(r.Value)
		if r.BestEffort {
			rl[i].best_effort = 1
		}
	}
	req.nrlim = C.int(len(spec.Rlimits))
	off += rlimSize

	ptrs := unsafe.Slice((**C.char)(unsafe.Pointer(&mem[off])), len(spec.Argv)+len(spec.Env)+2)
	off += ptrSize

	if spec.Cred != nil {
		req.has_cred = 1
		req.uid, req.gid = C.uint(spec.Cred.UID), C.uint(spec.Cred.GID)
		req.ngroups = C.int(ngroups)
		groups := unsafe.Slice((*C.uint)(unsafe.Pointer(&mem[off])), ngroups)
		for i, g := range spec.Cred.Groups {
			groups[i] = C.uint(g)
		}
		if ngroups > 0 {
			req.groups = &groups[0]
		}
	}
	off += groupSize

	str := func(s string) *C.char {
		p := (*C.char)(unsafe.Pointer(&mem[off]))
		copy(mem[off:], s)
		off += uintptr(len(s)) + 1 // calloc'd: the NUL is there
		return p
	}
	req.path = str(spec.Path)
	req.dir = str(spec.Dir)
	for i, s := range spec.Argv {
		ptrs[i] = str(s)
	}
	req.argv = &ptrs[0]
	env := ptrs[len(spec.Argv)+1:]
	for i, s := range spec.Env {
		env[i] = str(s)
	}
	req.envp = &env[0]
	req.umask = C.int(spec.Umask)
	if spec.Nice != nil {
		req.has_nice = 1
		req.nice = C.int(*spec.Nice)
	}
	if spec.Sandbox != nil {
		req.sbx = fillSandboxC(spec.Sandbox, mem[reqSize:reqSize+sbxSize], req.path)
	}
	return cBlock{base: base, req: req}
}

// freeStack2 gives back the stack of a pid namespace's server child,
// once both children are done with the request.
func freeStack2(req *C.struct_gx_req) {
	if req.sbx != nil && req.sbx.stack2 != nil {
		putStack(unsafe.Pointer(req.sbx.stack2))
		req.sbx.stack2 = nil
	}
}

// The clone children's stacks (GX_STACK and GX_STACK2 bytes: the same
// size) are kept for the next starts instead of going back to malloc: a
// 64 KB block freed and taken again per start made glibc trim and grow
// the arena each time (madvise, then page faults in the next child),
// about 12 us of a start with a pid namespace, which takes two stacks.
const cloneStackSize = C.GX_STACK

var _ = [1]struct{}{}[C.GX_STACK-C.GX_STACK2] // one pool serves both

// maxPooledStacks bounds the pool: 4 MB of address space, of which only
// the pages the children touched are resident.
const maxPooledStacks = 64

var stackPool struct {
	sync.Mutex
	free []unsafe.Pointer
}

func getStack() unsafe.Pointer {
	stackPool.Lock()
	if n := len(stackPool.free); n > 0 {
		p := stackPool.free[n-1]
		stackPool.free = stackPool.free[:n-1]
		stackPool.Unlock()
		return p
	}
	stackPool.Unlock()
	// nil when malloc fails: gx_spawn then refuses the start (ENOMEM)
	// and the daemon goes on.
	return mallocStack()
}

// mallocStack allocates one clone stack (tests: one that fails).
var mallocStack = func() unsafe.Pointer { return C.malloc(cloneStackSize) }

// putStack takes back a stack no child runs on any more.
func putStack(p unsafe.Pointer) {
	if p == nil {
		return
	}
	stackPool.Lock()
	if len(stackPool.free) < maxPooledStacks {
		stackPool.free = append(stackPool.free, p)
		p = nil
	}
	stackPool.Unlock()
	if p != nil {
		C.free(p)
	}
}

// reaperSetup gives the init of a pid namespace the reaper image and
// the write end of the pipe on which the reaper reports the server's
// wait status; it returns the read end, for Process.Wait.
func reaperSetup(s *C.struct_gx_sbx) (int, error) {
	fd, err := reaperFD()
	if err != nil {
		return -1, err
	}
	p, err := statusPipe() // both ends above 2, close-on-exec, non-blocking
	if err != nil {
		return -1, err
	}
	s.reaper_fd, s.report_fd = C.int(fd), C.int(p[1])
	return p[0], nil
}

// sandboxCSize is the C memory the sandbox of a request takes: its
// struct, the mounts, the filter and the strings, each 16-aligned.
func sandboxCSize(sb *Sandbox) uintptr {
	al := func(n uintptr) uintptr { return (n + 15) &^ 15 }
	n := al(unsafe.Sizeof(C.struct_gx_sbx{})) + al(uintptr(len(sb.Mounts))*unsafe.Sizeof(C.struct_gx_mnt{}))
	if sb.Filter != nil {
		n += al(uintptr(sb.Filter.Len()) * unsafe.Sizeof(unix.SockFilter{}))
	}
	strs := len(sb.Root) + 1 + 2*32
	for _, m := range sb.Mounts {
		strs += len(m.Path) + 1 + 24
	}
	return n + al(uintptr(strs))
}

// fillSandboxC writes sb into mem (sandboxCSize bytes, zeroed) for the
// child. The seccomp filter gets the address of the path the child will
// pass to execve, which is the one execve it lets through.
func fillSandboxC(sb *Sandbox, mem []byte, execPath *C.char) *C.struct_gx_sbx {
	al := func(n uintptr) uintptr { return (n + 15) &^ 15 }
	s := (*C.struct_gx_sbx)(unsafe.Pointer(&mem[0]))
	off := al(unsafe.Sizeof(C.struct_gx_sbx{}))
	mnts := unsafe.Slice((*C.struct_gx_mnt)(unsafe.Pointer(&mem[off])), len(sb.Mounts))
	off += al(uintptr(len(sb.Mounts)) * unsafe.Sizeof(C.struct_gx_mnt{}))
	if sb.Filter != nil {
		f := unsafe.Slice((*unix.SockFilter)(unsafe.Pointer(&mem[off])), sb.Filter.Len())
		sb.Filter.ForExec(f, uintptr(unsafe.Pointer(execPath)))
		s.filter = unsafe.Pointer(&f[0])
		s.nfilter = C.ushort(len(f))
		off += al(uintptr(len(f)) * unsafe.Sizeof(unix.SockFilter{}))
	}
	str := func(v string) *C.char {
		p := (*C.char)(unsafe.Pointer(&mem[off]))
		copy(mem[off:], v)
		off += uintptr(len(v)) + 1
		return p
	}
	if sb.NewPID {
		s.newpid = 1
	}
	if sb.UserNS {
		s.newuser = 1
		um, gm := fmt.Sprintf("%d %d 1\n", sb.UID, sb.UID), fmt.Sprintf("%d %d 1\n", sb.GID, sb.GID)
		s.uid_map, s.uid_map_len = str(um), C.int(len(um))
		s.gid_map, s.gid_map_len = str(gm), C.int(len(gm))
	}
	s.unshare = C.int(sb.Unshare)
	if sb.Root != "" {
		s.root = str(sb.Root)
		if sb.Pivot {
			s.bind_root, s.pivot = 1, 1
		}
	}
	if sb.ReadOnlyRoot {
		s.ro_root = 1
	}
	for i, m := range sb.Mounts {
		mnts[i].kind = C.int(m.Kind)
		if m.Optional {
			mnts[i].optional = 1
		}
		rel := strings.TrimPrefix(m.Path, "/")
		if rel == "" {
			rel = "."
		}
		mnts[i].path = str(rel)
		if m.Kind == MountTmpfs {
			mnts[i].size = str(strconv.FormatInt(m.Size, 10))
		}
	}
	if len(mnts) > 0 {
		s.mnt, s.nmnt = &mnts[0], C.int(len(mnts))
	}
	if sb.NoNewPrivs {
		s.nnp = 1
	}
	s.reaper_fd, s.report_fd = -1, -1
	return s
}

// The Go constant must be the C one.
var _ = [1]struct{}{}[InheritHard-uint64(C.GX_RLIM_HARD)]
