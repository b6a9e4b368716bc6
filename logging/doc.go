// Package logging writes everything gxinetd logs: the per-connection
// records of xinetd (START, EXIT, FAIL, USERID, NOID, TRAFFIC) to syslog or
// to files, the daemon's own messages in xinetd's three layouts (syslog,
// -filelog, -d), the -d configuration dump and the SIGUSR1 state dump, the
// Prometheus metrics text and the handler that serves it, and the RFC 1413
// ident client used for USERID. It also bounds what an attacker can make
// the daemon write or look up: Limiter (refusal messages, per source and
// in total, with a count of what was held back), Episode (a recurring
// condition such as descriptors running out, once per interval) and
// IdentGate (ident lookups for refused connections).
//
// It sits in the middle of the dependency chain
//
//	cmd -> internal/daemon -> {parser, access, logging, spawn, builtins} -> internal/service
//
// and may import internal/service and internal/sysdb only. It must not
// import parser, access, spawn or internal/builtins: the daemon hands it
// plain data (Record, DumpState) instead.
//
// Two rules shape the code. Logging never blocks serving: Manager.Log
// formats the line on the caller's goroutine and hands it to a bounded
// queue with one writer goroutine per sink, counting a drop when the queue
// is full. And every log file has exactly one writer for the life of the
// process: lumberjack starts a goroutine per Logger that Close does not
// stop, so Loggers live in a package registry keyed by path that survives
// reloads and Managers.
package logging
