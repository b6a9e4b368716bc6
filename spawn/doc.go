// Package spawn starts the programs gxinetd serves requests with and runs
// the in-process redirect proxy.
//
// It sits below internal/daemon in the dependency chain
//
//	cmd -> internal/daemon -> {parser, access, logging, spawn, builtins} -> internal/service
//
// and imports only internal/service and internal/sysdb from gxinetd (and
// golang.org/x/sys/unix; the package is Linux-only: it relies on
// /proc/self, close_range, pidfds and splice); it
// must not import parser, access, logging, builtins or the daemon. It logs
// nothing: every failure is returned (as a *StartError where a step of the
// child's preparation failed) for the daemon to log and count.
//
// # What runs where
//
// BuildSpec, in the daemon, turns a service and one request into a Spec:
// argv, the environment of xinetd's §8.5 plus the connection variables,
// credentials, umask, nice and rlimits. It does every name lookup, so
// nothing in the child reads /etc/passwd or /etc/group.
//
// Start, in the daemon, runs a Spec. Go cannot run code between fork and
// exec, and os.StartProcess can only set the session, the credentials
// (groups, gid, uid) and the descriptors. A Spec asking for nothing more
// is started that way, directly. Anything else (a umask different from
// the daemon's, a nice value, a resource limit the child would not
// inherit as is, or signals the daemon ignores or blocks) goes through
// the exec helper: gxinetd re-executes itself through /proc/self/exe in
// an environment holding only a marker, reads the Spec (gob-encoded) from a
// pipe on descriptor 3 and then, on one locked thread:
//
//  1. applies nice relative to the inherited value, before dropping
//     privileges, so that negative values work;
//  2. sets the limits that raise a hard limit (only root may);
//  3. sets the umask;
//  4. sets groups (setgroups), gid and uid, in that order;
//  5. resets ignored signals to their defaults and clears the signal mask;
//  6. sets every remaining limit (lowering needs no privilege), last so
//     that a small address-space limit cannot stop the helper itself;
//  7. execs the server, which keeps the helper's pid: the pid Start
//     returns is the server's.
//
// A failure at any step is written to a close-on-exec status pipe on
// descriptor 4 before the helper exits; Start reads that pipe until EOF,
// so EOF without a message means execve succeeded. On failure Start reaps
// the helper and returns the error, leaving no zombie. The helper costs
// one extra execve of the gxinetd binary per start; HelperMain, which
// main calls first, makes that binary behave as the helper.
//
// The alternative, prlimit and setpriority on the child right after
// Start, races with the server's first instructions and cannot set a
// umask at all, so it was not taken.
//
// # Descriptors
//
// The server gets one descriptor three times, as 0, 1 and 2: the
// accepted connection, or for wait=yes services the listening or
// datagram socket. Go opens every descriptor close-on-exec, and the
// first Start marks those gxinetd inherited from whatever started it the
// same way (the helper does it again for itself), so nothing else reaches
// the server. Passing an *os.File to a child makes
// Go switch it to blocking mode, and for a wait=yes socket that mode is
// shared with the daemon's own listener: RestoreNonblock undoes it when
// the daemon takes the socket back.
//
// # Redirect
//
// Proxy (a net.Conn) and ProxyFD (a bare descriptor from the daemon's raw
// accept path) are xinetd's redirect done in the daemon instead of a
// forked child. Both drive the two sockets through their descriptors in
// the runtime's poller: read and write for the first 64 KiB of a
// direction, then splice(2) through a pipe, with half-close, a
// non-blocking connect with a timeout, an optional idle timeout (the time
// of the last read, checked by a ticker), an optional source address, and
// the byte counts for TRAFFIC records.
package spawn
