// Package access is gxinetd's access engine: for one incoming request it
// decides, before any process is started, whether the service may be
// served, and why not.
//
// It applies, in xinetd's order, the parent-side limits (cps, max_load,
// access_times, instances, per_source, the global process limit, then the
// inetd.conf per-minute rates), the address checks (SENSOR, the global
// deny list, only_from / no_access with a most-specific-entry rule, and
// for unix-domain peers only_users / only_groups on their SO_PEERCRED
// credentials) and finally tcp_wrappers' hosts.allow / hosts.deny
// (subpackage tcpwrap, which also reads /path pattern files and asks NSS
// about @netgroups). It
// keeps the counters these checks need (running servers through Leases,
// rate windows, per-source tables, the sensor deny list), all bounded in
// size, and reports decisions as data: the daemon writes the log records,
// closes listeners and runs tcp_wrappers actions.
//
// access imports only internal/service, internal/pathsafe (the ownership
// rule for the two tables) and its own tcpwrap subpackage (the load
// average comes from syscall.Sysinfo); it must not import the
// daemon, the parser, logging, spawn or builtins. It opens no sockets; its
// only I/O is reading the two tcp_wrappers files (and the pattern files
// they name) in Configure, the load
// average, and name lookups through the injectable Resolver. The clock is
// the caller's (Request.Now), so every time-dependent rule is testable.
//
// docs/access.md describes every check, the reason words and codes and the
// bounds on state for users; docs/design.md ("The access engine") how this
// package implements them; the differences from xinetd 2.3.15 are rows of
// the table in docs/migration.md.
package access
