// Package parser reads xinetd.conf (xinetd 2.3.15's language plus
// gxinetd's own attributes) into the plain-data model of
// internal/service.
//
// It owns the whole path from bytes to a validated *service.Config:
//
//   - lexer.go: a hand-written lexer that makes one token per
//     significant line (a run of attribute lines becomes one token, a
//     well-formed `{ ... }` one Body token);
//   - grammar.go: the participle grammar over block structure, total so
//     that no input stops the parse, and walkAST, which builds the
//     grammar's nodes for regular entries directly and runs participle
//     only over the irregular stretches of a file (the result is the
//     same; a 10,000-service file then allocates about 44 MB in all
//     instead of 82 MB);
//   - parser.go, include.go: files, include/includedir, cycles, ownership;
//   - parallel.go: a large file's service blocks after its last defaults
//     and include lines, and the whole-entry step, shared out between
//     GOMAXPROCS goroutines, with exactly the serial result;
//   - entry.go, attrs.go, addr.go: attribute lines, operators, values;
//   - merge.go: the defaults block and the two moments at which it
//     reaches a service (FillFromDefaults);
//   - check.go: implied values and whole-entry rules, duplicate ports.
//
// Every problem becomes a service.Diag with a stable code and a
// file:line:col position; one bad service never hides the others.
//
// Position in the dependency chain:
//
//	cmd -> internal/daemon -> parser -> internal/service
//
// parser may import internal/service, internal/sysdb and internal/seccomp
// (to validate seccomp profiles, whose text then travels in the model).
// It must not import
// access, logging, spawn, internal/builtins or internal/daemon, and no
// participle type may leave the package (the model carries plain Sources).
// The subdirectory parser/inetd (inetd.conf) is a separate package.
package parser
