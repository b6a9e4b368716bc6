//go:build linux && cgo

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

// gx_sys makes a system call without touching errno: the child runs
// beside the daemon's thread and shares its thread pointer, so libc's
// errno there is the daemon thread's, in use.
static inline long gx_sys(long n, long a, long b, long c, long d) {
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
#error "spawn: the clone path knows system calls on amd64 and arm64 only; build with CGO_ENABLED=0"
#endif
}

enum {
	GX_NICE = 1, GX_RLIMIT, GX_SETSID, GX_SETGROUPS, GX_SETGID, GX_SETUID,
	GX_CHDIR, GX_DUP, GX_EXEC
};

struct gx_rlim { long resource; unsigned long long value; };

// gx_req is everything the child reads, in memory the Go collector never
// moves or frees while the child runs, and the child's report.
struct gx_req {
	const char *path;
	char *const *argv;
	char *const *envp;
	const char *dir;
	int fd;
	int has_cred;
	unsigned int uid, gid;
	int ngroups;
	const unsigned int *groups;
	int umask;
	int has_nice;
	int nice;
	int nrlim;
	const struct gx_rlim *rlim;
	int err, step, arg;
	void *stack;
};

// The kernel's rlimit64, used through prlimit64 so that 64-bit limits
// never pass through a libc conversion.
struct gx_rlimit64 { unsigned long long cur, max; };

// gx_child runs in the new process, which shares the daemon's memory
// until execve (while the daemon's threads go on running), on its own
// stack, with every signal blocked. It makes
// only raw system calls: nothing that takes a lock, allocates, or acts
// on the daemon's other threads (glibc's setuid would signal them all).
static int gx_child(void *p) {
	struct gx_req *r = p;
	int step = 0, arg = 0, s;
	long fd, rc;
	// Zeroed memory is SIG_DFL with no flags and an empty mask in the
	// kernel's struct sigaction. Every handler the daemon installed must
	// go before a signal can be unblocked here: it would run the daemon's
	// handler on the daemon's memory.
	unsigned long dfl[4] = {0, 0, 0, 0};
	for (s = 1; s <= 64; s++)
		if (s != SIGKILL && s != SIGSTOP)
			gx_sys(SYS_rt_sigaction, s, (long)dfl, 0, 8);

	step = GX_SETSID;
	if ((rc = gx_sys(SYS_setsid, 0, 0, 0, 0)) < 0)
		goto fail;
	if (r->has_nice) {
		// The raw getpriority value is 20 - nice; before any privilege
		// is dropped, so that a negative nice works.
		step = GX_NICE;
		long cur = gx_sys(SYS_getpriority, PRIO_PROCESS, 0, 0, 0);
		if ((rc = cur) < 0)
			goto fail;
		long n = 20 - cur + r->nice;
		if (n < -20) n = -20;
		if (n > 19) n = 19;
		if ((rc = gx_sys(SYS_setpriority, PRIO_PROCESS, 0, n, 0)) < 0)
			goto fail;
	}
	// Raising a hard limit needs privilege: those now, the rest last.
	step = GX_RLIMIT;
	for (arg = 0; arg < r->nrlim; arg++) {
		struct gx_rlimit64 cur, want = {r->rlim[arg].value, r->rlim[arg].value};
		if ((rc = gx_sys(SYS_prlimit64, 0, r->rlim[arg].resource, 0, (long)&cur)) < 0)
			goto fail;
		if (want.max > cur.max && (rc = gx_sys(SYS_prlimit64, 0, r->rlim[arg].resource, (long)&want, 0)) < 0)
			goto fail;
	}
	arg = 0;
	if (r->umask >= 0)
		gx_sys(SYS_umask, r->umask & 0777, 0, 0, 0);
	if (r->has_cred) {
		step = GX_SETGROUPS;
		if ((rc = gx_sys(SYS_setgroups, r->ngroups, (long)r->groups, 0, 0)) < 0)
			goto fail;
		step = GX_SETGID;
		if ((rc = gx_sys(SYS_setresgid, r->gid, r->gid, r->gid, 0)) < 0)
			goto fail;
		step = GX_SETUID;
		if ((rc = gx_sys(SYS_setresuid, r->uid, r->uid, r->uid, 0)) < 0)
			goto fail;
	}
	step = GX_CHDIR;
	if ((rc = gx_sys(SYS_chdir, (long)r->dir, 0, 0, 0)) < 0)
		goto fail;
	step = GX_RLIMIT;
	for (arg = 0; arg < r->nrlim; arg++) {
		struct gx_rlimit64 want = {r->rlim[arg].value, r->rlim[arg].value};
		if ((rc = gx_sys(SYS_prlimit64, 0, r->rlim[arg].resource, (long)&want, 0)) < 0)
			goto fail;
	}
	arg = 0;
	step = GX_DUP;
	fd = r->fd;
	if (fd < 3) {
		fd = gx_sys(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3, 0);
		if ((rc = fd) < 0)
			goto fail;
	}
	for (s = 0; s < 3; s++)
		if ((rc = gx_sys(SYS_dup3, fd, s, 0, 0)) < 0)
			goto fail;
	unsigned long none = 0;
	gx_sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, 8);
	step = GX_EXEC;
	rc = gx_sys(SYS_execve, (long)r->path, (long)r->argv, (long)r->envp, 0);
fail:
	r->err = (int)-rc;
	r->step = step;
	r->arg = arg;
	// The write above must be in memory before the exit that the daemon
	// waits for makes it look.
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	gx_sys(SYS_exit, 127, 0, 0, 0);
	return 0;
}

// gx_spawn starts the child and returns its pid, or -errno when clone
// failed. It returns at once: the child runs beside the daemon until its
// execve (or exit) closes the status pipe; only then may the daemon free
// r and r->stack, which the child uses until then.
static int gx_spawn(struct gx_req *r) {
	const size_t size = 64 * 1024;
	char *stack = malloc(size);
	if (stack == NULL)
		return -ENOMEM;
	unsigned long all = ~0UL, old;
	// Blocked on this thread, and so in the child from its first
	// instruction until it has reset every handler.
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);
	int pid = clone(gx_child, stack + size, CLONE_VM | SIGCHLD, r);
	int e = errno;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
	if (pid < 0) {
		free(stack);
		return -e;
	}
	r->stack = stack;
	return pid;
}
*/
import "C"

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// haveClone: this build can start servers with startClone.
const haveClone = true

// startClone starts spec with a small C routine instead of Go's fork: a
// clone(CLONE_VM) child on its own stack that does every step of the
// Spec itself (nice, limits, umask, credentials, session, directory,
// descriptors, signals) with raw system calls and then execs the server.
// Go's own fork cannot run code between fork and exec, which is why the
// exec helper exists; this needs no second execve. Unlike Go's fork and
// posix_spawn (CLONE_VFORK), no thread of the daemon waits in the kernel
// while the child gets ready: the clone returns at once, and the
// goroutine waits in the runtime's poller for the child's execve (or
// exit) to close the status pipe. A failed step comes back through the
// memory the child shares with the daemon until then.
func startClone(spec *Spec, stdio *os.File) (*os.Process, error) {
	if hasNUL(spec) {
		// C strings end at the first NUL: refuse, as Go's fork does,
		// rather than run the server with a truncated argument.
		return nil, &StartError{Step: "exec", Arg: spec.Path, Err: syscall.EINVAL}
	}
	// The status pipe: the child gets a copy of the write end, which its
	// execve closes (close-on-exec), as does its exit after a failed step.
	p, err := statusPipe()
	if err != nil {
		return nil, &StartError{Step: "fork", Arg: spec.Path, Err: err}
	}
	status := os.NewFile(uintptr(p[0]), "exec status")
	defer status.Close()
	b := newCBlock(spec)
	req := b.req
	// Fd switches the descriptor to blocking mode, which servers expect
	// of their standard input.
	req.fd = C.int(stdio.Fd())
	pid := int(C.gx_spawn(req))
	unix.Close(p[1])
	runtime.KeepAlive(stdio)
	if pid < 0 {
		C.free(b.base)
		return nil, &StartError{Step: "fork", Arg: spec.Path, Err: syscall.Errno(-pid)}
	}
	// Wait in the runtime's poller, not in a blocked thread, until the
	// child no longer uses the request and its stack.
	waitEOF(status)
	C.free(req.stack)
	defer C.free(b.base)
	if req.err != 0 {
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
		return nil, cloneError(spec, int(req.step), int(req.arg), syscall.Errno(req.err))
	}
	// The child is ours and unreaped, so its pid cannot have been reused:
	// FindProcess's pidfd names exactly this server.
	return os.FindProcess(pid)
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

// waitEOF reads the status pipe until end of file. Nothing is ever
// written to it; only the close of the child's copy matters.
func waitEOF(f *os.File) {
	rc, err := f.SyscallConn()
	if err == nil {
		var buf [16]byte
		err = rc.Read(func(fd uintptr) bool {
			n, err := unix.Read(int(fd), buf[:])
			return n == 0 || (err != nil && err != unix.EAGAIN && err != unix.EINTR)
		})
	}
	if err != nil {
		// No poller: wait the blocking way.
		var pfd [1]unix.PollFd
		pfd[0] = unix.PollFd{Fd: int32(f.Fd()), Events: unix.POLLIN}
		for {
			if n, err := unix.Poll(pfd[:], -1); n > 0 || (err != nil && err != unix.EINTR) {
				return
			}
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

func cloneError(spec *Spec, step, arg int, errno syscall.Errno) *StartError {
	e := &StartError{Err: errno}
	switch step {
	case C.GX_NICE:
		e.Step, e.Arg = "nice", strconv.Itoa(*spec.Nice)
	case C.GX_RLIMIT:
		r := spec.Rlimits[arg]
		e.Step, e.Arg = "rlimit_"+rlimitName(r.Resource), formatLimit(r.Value)
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
		e.Step, e.Arg = "exec", spec.Path
	}
	return e
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
	reqSize := (unsafe.Sizeof(C.struct_gx_req{}) + 15) &^ 15
	rlimSize := uintptr(len(spec.Rlimits)) * unsafe.Sizeof(C.struct_gx_rlim{})
	ptrSize := uintptr(len(spec.Argv)+len(spec.Env)+2) * ptr
	groupSize := (uintptr(ngroups)*4 + 7) &^ 7
	total := reqSize + rlimSize + ptrSize + groupSize + uintptr(nstr)
	base := C.calloc(1, C.size_t(total))
	if base == nil {
		panic("spawn: out of memory")
	}
	mem := unsafe.Slice((*byte)(base), total)
	req := (*C.struct_gx_req)(base)
	off := reqSize

	rl := unsafe.Slice((*C.struct_gx_rlim)(unsafe.Pointer(&mem[off])), len(spec.Rlimits))
	if len(spec.Rlimits) > 0 {
		req.rlim = &rl[0]
	}
	for i, r := range spec.Rlimits {
		rl[i].resource = C.long(r.Resource)
		rl[i].value = C.ulonglong(r.Value)
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
	return cBlock{base: base, req: req}
}
