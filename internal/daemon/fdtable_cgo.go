//go:build cgo && linux

package daemon

/*
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

// gxinetd_early_fdtable grows the descriptor table for a large
// configuration before the Go runtime starts its threads (see
// fdtable.go): in a process of one thread the kernel grows the table
// without waiting for an RCU grace period, which took 10-15 ms of every
// large start once the runtime's threads existed. It reads the command
// line from /proc/self/cmdline (constructors get no arguments on every
// libc), finds the file -f or -inetd names (default /etc/xinetd.conf)
// and sizes the table as fdTable.growAsync would; growAsync then finds
// the room there and does nothing the kernel has to wait for. The exec
// helper (same binary) and small files do nothing.
// gx_conf_path returns the file the command line in buf (n bytes, NUL
// separated, as /proc/self/cmdline) names with -f or -inetd, or the
// default.
static const char *gx_conf_path(const char *buf, size_t n) {
	const char *path = "/etc/xinetd.conf";
	const char *end = buf + n;
	const char *a = buf + strnlen(buf, n) + 1; // skip argv[0]
	while (a < end) {
		const char *next = a + strnlen(a, end - a) + 1;
		const char *name = a;
		if (strcmp(a, "--") == 0) {
			break;
		}
		if (name[0] == '-') {
			name++;
			if (name[0] == '-') {
				name++;
			}
			if (strcmp(name, "f") == 0 || strcmp(name, "inetd") == 0) {
				if (next < end) {
					path = next;
					next = next + strnlen(next, end - next) + 1;
				}
			} else if (strncmp(name, "f=", 2) == 0) {
				path = name + 2;
			} else if (strncmp(name, "inetd=", 6) == 0) {
				path = name + 6;
			}
		}
		a = next;
	}
	return path;
}

// gx_grow_for sizes the table for the file at path as fdTable.growAsync
// would (a slot per 100 bytes, within the soft limit).
static void gx_grow_for(const char *path) {
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		return;
	}
	long want = (long)(st.st_size / 100);
	if (want <= 64) {
		return;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		return;
	}
	if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)want > rl.rlim_cur) {
		want = (long)rl.rlim_cur;
	}
	int src = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (src < 0) {
		return;
	}
	if (want > src + 1) {
		int hi = fcntl(src, F_DUPFD_CLOEXEC, (int)want - 1);
		if (hi >= 0) {
			close(hi);
		}
	}
	close(src);
}

// gxinetd_early_fdtable grows the descriptor table for a large
// configuration before the Go runtime starts its threads (see
// fdtable.go): in a process of one thread the kernel grows the table
// without waiting for an RCU grace period, which took 10-15 ms of every
// large start once the runtime's threads existed. It reads the command
// line from /proc/self/cmdline (constructors get no arguments on every
// libc); fdTable.growAsync then finds the room there and has nothing
// the kernel must wait for. The exec helper (same binary) and small
// files do nothing.
__attribute__((constructor)) static void gxinetd_early_fdtable(void) {
	if (getenv("GXINETD_EXEC_HELPER") != NULL) {
		return;
	}
	static char buf[8192];
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return;
	}
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0 || n == (ssize_t)sizeof buf - 1) {
		return; // unreadable, or too long to be sure of
	}
	buf[n] = 0;
	gx_grow_for(gx_conf_path(buf, (size_t)n));
}

static char *gx_conf_path_copy(const char *buf, size_t n) { return strdup(gx_conf_path(buf, n)); }
*/
import "C"

import "unsafe"

// earlyConfPath is the file the process start-up (gxinetd_early_fdtable)
// finds in a command line given as /proc/self/cmdline gives it.
func earlyConfPath(cmdline []byte) string {
	b := append(append([]byte(nil), cmdline...), 0)
	p := C.gx_conf_path_copy((*C.char)(unsafe.Pointer(&b[0])), C.size_t(len(cmdline)))
	defer C.free(unsafe.Pointer(p))
	return C.GoString(p)
}

// earlyGrowFor is the start-up's growth of the table for path.
func earlyGrowFor(path string) {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	C.gx_grow_for(p)
}
