// Package spawn starts the programs gxinetd serves requests with and runs
// the in-process redirect proxy.
//
// It sits below internal/daemon in the dependency chain
//
//	cmd -> internal/daemon -> {parser, access, logging, spawn, builtins} -> internal/service
//
// and imports only internal/service and internal/sysdb from gxinetd (and
// golang.org/x/sys/unix; the package is Linux-only: it relies on
// /proc/self, close_range, pidfds, clone and splice); it
// must not import parser, access, logging, builtins or the daemon. It logs
// nothing: every failure is returned (as a *StartError where a step of the
// child's preparation failed) for the daemon to log and count.
//
// # What runs where
//
// BuildSpec, in the daemon, turns a service and one request into a Spec:
// argv, the environment of xinetd's §8.5 plus the connection variables
// (for unix-domain peers ucspi-unix's UNIXREMOTEEUID/EGID/PID), credentials,
// umask, nice and rlimits; a request's Overrides (the tcp_wrappers
// process options of the rule that allowed it) change the last four. It
// does every name lookup, so nothing in the child reads /etc/passwd or
// /etc/group.
//
// Start, in the daemon, runs a Spec. Go's own fork cannot run code
// between fork and exec: os.StartProcess can only set the session, the
// credentials (groups, gid, uid) and the descriptors, not a umask, a nice
// value or resource limits. gxinetd is built with cgo (it links libc for
// the name service anyway), and Start then uses a small C routine
// (clone_linux.go), much as posix_spawn works: a raw
// clone(CLONE_VM|CLONE_PIDFD) child on its own stack, with every signal
// blocked, which makes only inline raw system calls (not even libc's
// errno: it shares the daemon's memory and thread pointer; see "Rules
// for the child" there) and, in order:
//
//  1. closes every descriptor but the connection and its own status
//     pipe: it starts with all of the daemon's, among them the status
//     pipes of other starts under way;
//  2. resets every signal handler to the default (it shares the daemon's
//     memory: a handler of the daemon must never run in it);
//  3. starts a new session;
//  4. applies nice relative to the inherited value, before dropping
//     privileges, so that negative values work;
//  5. sets the limits that raise a hard limit (only root may);
//  6. sets the umask;
//  7. sets groups (setgroups), gid and uid, in that order, for itself
//     only (glibc's wrappers would change every thread of the daemon);
//  8. changes to the working directory;
//  9. sets every remaining limit (soft = hard), last so that nothing
//     before it runs under a small limit;
//  10. puts the connection on descriptors 0, 1 and 2, clears the signal
//     mask and execs the server.
//
// The clone returns at once; no thread of the daemon waits in the
// kernel for the child, as one does with Go's fork or posix_spawn
// (CLONE_VFORK). The goroutine waits in the runtime's poller on a status
// pipe whose write end the child's execve (close-on-exec) or exit
// closes; until then the child uses the request and its stack, and the
// daemon frees them only after. A failed step is written, with its
// errno, into the memory the two share; Start then reaps the child and
// returns a *StartError naming the step. Everything the child reads is
// in one C allocation, never in Go memory. Compared with Go's fork this
// blocks no thread (the runtime does not have to hand the thread's
// scheduler slot around), and does the steps os.StartProcess cannot
// without a second program.
//
// Between its setuid and its execve the child can be stopped by any
// process of the service's user. The wait is bounded (execTimeout, 10 s,
// kept by one watchdog goroutine rather than a timer per start; then
// SIGKILL, and the memory is freed only once the status pipe says the
// child is gone), the children that have not exec'd yet are capped
// (maxPreExec), and because the child closed every other descriptor
// first, a stopped child holds up no other start.
//
// # Processes
//
// Start returns a *Process: the pid and the pidfd the clone returned,
// the one descriptor a running server costs. Wait sleeps on it in the
// runtime's poller and reaps with waitid(P_PIDFD); Signal and Terminate
// go through it, so a recycled pid is never signalled. Without pidfds
// (kernels before 5.4) a Process works by pid, a mutex ordering signals
// before the reap.
//
// A build without the clone path (CGO_ENABLED=0, sanitizer builds,
// architectures other than amd64 and arm64) starts a Spec that asks for
// nothing more than Go's fork can do, as the daemon's own user, that
// way (syscall.StartProcess, with the pidfd taken at the clone), and
// anything else through the exec helper: gxinetd re-executes itself through
// /proc/self/exe in an environment holding only a marker, reads the Spec
// (gob-encoded) from a pipe on descriptor 3 and then, on one locked
// thread, carries out steps 3 to 8 above (and resets ignored signals),
// and execs the server, which keeps the helper's pid. A failure at any
// step is written to a close-on-exec status pipe on descriptor 4 before
// the helper exits; Start reads that pipe until EOF, for at most
// execTimeout, so EOF without a message means execve succeeded. Go's
// fork child holds the forking thread until its execve and cannot be
// bounded (its pid is known only afterwards), which is why it never
// takes the service's ids: the helper does that after its own execve. The helper costs one extra execve of
// the gxinetd binary per start (about 5 ms against under 1 ms);
// HelperMain, which main calls first, makes that binary behave as the
// helper. `make test` runs the package's tests in both builds.
//
// The alternative, prlimit and setpriority on the child right after
// Start, races with the server's first instructions and cannot set a
// umask at all, so it was not taken.
//
// # Descriptors
//
// The server gets one descriptor three times, as 0, 1 and 2: the
// accepted connection, or for wait=yes services the listening or
// datagram socket. The clone child closes everything else as its first
// step. Go opens every descriptor close-on-exec, and the first Start
// marks those gxinetd inherited from whatever started it the same way
// (the helper does it again for itself), so nothing else reaches a
// server started the other ways either. Passing an *os.File to a child makes
// Go switch it to blocking mode, and for a wait=yes socket that mode is
// shared with the daemon's own listener: RestoreNonblock undoes it when
// the daemon takes the socket back.
//
// # Redirect
//
// Proxy (a net.Conn) and ProxyFD (a bare descriptor from the daemon's raw
// accept path) are xinetd's redirect done in the daemon instead of a
// forked child; ProxyAsync and ProxyFDAsync return as soon as the upstream
// is connected and report the end through a callback, which is what the
// daemon uses. The connect is non-blocking, waits in the runtime's poller
// with a timeout, and may use a source address; a Preamble (the PROXY
// protocol header of redirect_proxy_protocol) goes out first. The session
// itself runs in the relay (relay.go): both sockets in an edge-triggered
// epoll set, one per core, whose goroutine (blocked in epoll_wait with its
// thread, outside the runtime's poller, not locked to the thread, and
// yielding before a wait every 5 ms, see relayLoop.run) moves every ready
// session's bytes itself (read and write through one buffer per set for
// the first 64 KiB of a direction, then splice(2) through a pipe), with
// half-close, an optional idle timeout (a heap of expiry times, the
// longest the thread waits) and the byte counts for TRAFFIC records. A
// session has no goroutine and no buffer of its own while it waits.
// RelayListeners puts a listening socket in every set, so that the daemon
// accepts a redirect's connections on the goroutine that will run their
// sessions (ProxyFDAsync called there with ProxyOptions.Relay naming the
// listener keeps the session in its set). A client without a descriptor
// (net.Pipe) is copied by two goroutines instead.
package spawn
