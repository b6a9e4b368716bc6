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
};

// The kernel's rlimit64, used through prlimit64 so that 64-bit limits
// never pass through a libc conversion.
struct gx_rlimit64 { unsigned long long cur, max; };

// gx_child runs in the new process, which shares the daemon's memory
// until execve, on its own stack, with every signal blocked. It makes
// only raw system calls: nothing that takes a lock, allocates, or acts
// on the daemon's other threads (glibc's setuid would signal them all).
static int gx_child(void *p) {
	struct gx_req *r = p;
	int step = 0, arg = 0, s, fd;
	// Zeroed memory is SIG_DFL with no flags and an empty mask in the
	// kernel's struct sigaction. Every handler the daemon installed must
	// go before a signal can be unblocked here: it would run the daemon's
	// handler on the daemon's memory.
	unsigned long dfl[4] = {0, 0, 0, 0};
	for (s = 1; s <= 64; s++)
		if (s != SIGKILL && s != SIGSTOP)
			syscall(SYS_rt_sigaction, s, dfl, NULL, 8);

	step = GX_SETSID;
	if (syscall(SYS_setsid) < 0)
		goto fail;
	if (r->has_nice) {
		// The raw getpriority value is 20 - nice; before any privilege
		// is dropped, so that a negative nice works.
		long cur;
		step = GX_NICE;
		errno = 0;
		cur = syscall(SYS_getpriority, PRIO_PROCESS, 0);
		if (cur < 0)
			goto fail;
		long n = 20 - cur + r->nice;
		if (n < -20) n = -20;
		if (n > 19) n = 19;
		if (syscall(SYS_setpriority, PRIO_PROCESS, 0, n) < 0)
			goto fail;
	}
	// Raising a hard limit needs privilege: those now, the rest last.
	step = GX_RLIMIT;
	for (arg = 0; arg < r->nrlim; arg++) {
		struct gx_rlimit64 cur, want = {r->rlim[arg].value, r->rlim[arg].value};
		if (syscall(SYS_prlimit64, 0, r->rlim[arg].resource, NULL, &cur) < 0)
			goto fail;
		if (want.max > cur.max && syscall(SYS_prlimit64, 0, r->rlim[arg].resource, &want, NULL) < 0)
			goto fail;
	}
	arg = 0;
	if (r->umask >= 0)
		syscall(SYS_umask, r->umask & 0777);
	if (r->has_cred) {
		step = GX_SETGROUPS;
		if (syscall(SYS_setgroups, r->ngroups, r->groups) < 0)
			goto fail;
		step = GX_SETGID;
		if (syscall(SYS_setresgid, r->gid, r->gid, r->gid) < 0)
			goto fail;
		step = GX_SETUID;
		if (syscall(SYS_setresuid, r->uid, r->uid, r->uid) < 0)
			goto fail;
	}
	step = GX_CHDIR;
	if (syscall(SYS_chdir, r->dir) < 0)
		goto fail;
	step = GX_RLIMIT;
	for (arg = 0; arg < r->nrlim; arg++) {
		struct gx_rlimit64 want = {r->rlim[arg].value, r->rlim[arg].value};
		if (syscall(SYS_prlimit64, 0, r->rlim[arg].resource, &want, NULL) < 0)
			goto fail;
	}
	arg = 0;
	step = GX_DUP;
	fd = r->fd;
	if (fd < 3) {
		fd = syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			goto fail;
	}
	for (s = 0; s < 3; s++)
		if (syscall(SYS_dup3, fd, s, 0) < 0)
			goto fail;
	unsigned long none = 0;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, 8);
	step = GX_EXEC;
	syscall(SYS_execve, r->path, r->argv, r->envp);
fail:
	// errno is the daemon thread's, which is waiting in clone: reading it
	// here is safe, and the daemon ignores it.
	r->err = errno;
	r->step = step;
	r->arg = arg;
	syscall(SYS_exit, 127);
	return 0;
}

// gx_spawn starts the child and returns its pid (the child has called
// execve or exited when it returns) or -errno when clone failed.
static int gx_spawn(struct gx_req *r) {
	const size_t size = 64 * 1024;
	char *stack = malloc(size);
	if (stack == NULL)
		return -ENOMEM;
	unsigned long all = ~0UL, old;
	// Blocked on this thread, and so in the child from its first
	// instruction until it has reset every handler.
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);
	int pid = clone(gx_child, stack + size, CLONE_VM | CLONE_VFORK | SIGCHLD, r);
	int e = errno;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
	free(stack);
	return pid < 0 ? -e : pid;
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
// clone(CLONE_VM|CLONE_VFORK) child, as posix_spawn makes, that does
// every step of the Spec itself (nice, limits, umask, credentials,
// session, directory, descriptors, signals) with raw system calls and
// then execs the server. Go's own fork cannot run code between fork and
// exec, which is why the exec helper exists; this needs neither the
// helper's second execve nor Go's error pipe, and a failed step comes
// back through the memory the child shares with the daemon.
func startClone(spec *Spec, stdio *os.File) (*os.Process, error) {
	if hasNUL(spec) {
		// C strings end at the first NUL: refuse, as Go's fork does,
		// rather than run the server with a truncated argument.
		return nil, &StartError{Step: "exec", Arg: spec.Path, Err: syscall.EINVAL}
	}
	b := newCBlock(spec)
	defer C.free(b.base)
	req := b.req
	// Fd switches the descriptor to blocking mode, which servers expect
	// of their standard input.
	req.fd = C.int(stdio.Fd())
	pid := int(C.gx_spawn(req))
	runtime.KeepAlive(stdio)
	if pid < 0 {
		return nil, &StartError{Step: "fork", Arg: spec.Path, Err: syscall.Errno(-pid)}
	}
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
