//go:build linux && cgo && !asan && !msan && (amd64 || arm64)

package spawn

/*
#define _GNU_SOURCE
#include <stddef.h>

// The reaper: PID 1 of a sandboxed server's pid namespace. Its code is
// compiled into gxinetd, in a section of its own, and copied at run
// time into a sealed memfd as a tiny static executable (reaper_linux.go),
// so that it runs in an address space of its own, not the daemon's, for
// as long as the server runs. Where the server can never reach the
// daemon's memory (shareReaper), gx_init calls gx_reaper_main in place
// instead, on its clone stack in the daemon's address space: the same
// code, which then must not touch anything of the daemon's but that
// stack (the rules below keep it so). Everything in section gxreap must be
// self-contained: raw system calls only, no data outside the stack, no
// calls out of the section. The image is mapped at the very address the
// section has in the daemon, so even absolute references within the
// section hold.

#define GXR __attribute__((section("gxreap"), used, noinline, no_stack_protector, optimize("no-tree-loop-distribute-patterns", "no-jump-tables")))

#if defined(__x86_64__)
__asm__(".pushsection gxreap,\"ax\",@progbits\n"
	".globl gx_reaper_start\n"
	"gx_reaper_start:\n"
	"  xor %ebp, %ebp\n"
	"  and $-16, %rsp\n"
	"  call gx_reaper_main\n"
	"  hlt\n"
	".globl gx_reaper_restorer\n"
	"gx_reaper_restorer:\n"
	"  mov $15, %eax\n"
	"  syscall\n"
	".popsection\n");
enum { GXR_wait4 = 61, GXR_kill = 62, GXR_write = 1, GXR_exit_group = 231, GXR_rt_sigaction = 13,
	GXR_rt_sigtimedwait = 128, GXR_getpid = 39, GXR_prctl = 157 };
GXR static long gxr_sys(long n, long a, long b, long c, long d) {
	long r;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
	return r;
}
#elif defined(__aarch64__)
__asm__(".pushsection gxreap,\"ax\",%progbits\n"
	".globl gx_reaper_start\n"
	"gx_reaper_start:\n"
	"  mov x29, #0\n"
	"  mov x30, #0\n"
	"  bl gx_reaper_main\n"
	"  brk #0\n"
	".globl gx_reaper_restorer\n"
	"gx_reaper_restorer:\n"
	"  mov x8, #139\n"
	"  svc 0\n"
	".popsection\n");
enum { GXR_wait4 = 260, GXR_kill = 129, GXR_write = 64, GXR_exit_group = 94, GXR_rt_sigaction = 134,
	GXR_rt_sigtimedwait = 137, GXR_getpid = 172, GXR_prctl = 167 };
GXR static long gxr_sys(long n, long a, long b, long c, long d) {
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
	return x0;
}
#else
#error "spawn: the reaper knows amd64 and arm64 only; build with CGO_ENABLED=0"
#endif

extern char gx_reaper_start[], gx_reaper_restorer[];
extern char __start_gxreap[], __stop_gxreap[];

// gx_reaper_handler is installed for every signal: the init of a pid
// namespace receives only the signals it has a handler for, even from
// the daemon. It never runs: the signals stay blocked (the clone child
// blocked them all, and execve keeps the mask) and sigtimedwait takes
// them.
GXR static void gx_reaper_handler(int sig) { (void)sig; }

// gx_reaper_main: the server is pid 2 of the namespace, the init's only
// child. Forward every signal to it and its process group, reap every
// process that ends in the namespace, and when the server has ended,
// write its wait status to descriptor 3 (the daemon reads it there: an
// init cannot die of a signal to report one) and exit with its exit
// code, or 128 + its signal. The kernel then kills whatever the server
// left behind in the namespace.
GXR __attribute__((noreturn)) void gx_reaper_main(void) {
	// Only ever the init of a fresh pid namespace: anywhere else "pid 2"
	// and "process group 2" are somebody else.
	if (gxr_sys(GXR_getpid, 0, 0, 0, 0) != 1)
		gxr_sys(GXR_exit_group, 127, 0, 0, 0);
	// Its name in ps and /proc/1/comm (instead of "memfd:..."). Stored
	// word by word: a string constant would live outside the section.
	volatile unsigned long name[2];
	name[0] = 0x2d6474656e697867UL; // "gxinetd-"
	name[1] = 0x0000726570616572UL; // "reaper"
	gxr_sys(GXR_prctl, 15, (long)name, 0, 0); // PR_SET_NAME
	struct { void *handler; unsigned long flags; void *restorer; unsigned long mask; } sa;
	sa.handler = (void *)gx_reaper_handler;
	sa.flags = 0x04000000; // SA_RESTORER
	sa.restorer = (void *)gx_reaper_restorer;
	sa.mask = ~0UL;
	unsigned long set = ~0UL;
	int s;
	// The standard signals (the real-time ones are nobody's to send a
	// server from outside): one system call each.
	for (s = 1; s <= 31; s++)
		if (s != 9 && s != 19) // SIGKILL, SIGSTOP
			gxr_sys(GXR_rt_sigaction, s, (long)&sa, 0, 8);
	long sig = 17; // SIGCHLD: sweep once, the server may have ended already
	for (;;) {
		if (sig == 17) {
			for (;;) {
				int st = 0;
				long pid = gxr_sys(GXR_wait4, -1, (long)&st, 1, 0); // WNOHANG
				if (pid == -10) // ECHILD: nothing to serve (the -t probe)
					gxr_sys(GXR_exit_group, 0, 0, 0, 0);
				if (pid <= 0)
					break;
				if (pid == 2) {
					gxr_sys(GXR_write, 3, (long)&st, 4, 0);
					int code = (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f);
					gxr_sys(GXR_exit_group, code, 0, 0, 0);
				}
			}
		} else if (sig > 0) {
			gxr_sys(GXR_kill, -2, sig, 0, 0);
			gxr_sys(GXR_kill, 2, sig, 0, 0);
		}
		unsigned long info[16];
		sig = gxr_sys(GXR_rt_sigtimedwait, (long)&set, (long)info, 0, 8);
	}
}

static char *gx_reaper_section(size_t *size, size_t *entry) {
	*size = __stop_gxreap - __start_gxreap;
	*entry = gx_reaper_start - __start_gxreap;
	return __start_gxreap;
}
*/
import "C"

import "unsafe"

// reaperCode returns the reaper's code as it lies in this binary, its
// address, and the offset of its entry point.
func reaperCode() (code []byte, addr uintptr, entry uintptr) {
	var size, ent C.size_t
	p := C.gx_reaper_section(&size, &ent)
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(size)), uintptr(unsafe.Pointer(p)), uintptr(ent)
}
