// Package builtins implements the services gxinetd answers inside the
// daemon instead of spawning a server: echo (RFC 862), discard (RFC 863),
// daytime (RFC 867), chargen (RFC 864), time (RFC 868), the tcpmux
// multiplexer (RFC 1078), FreeBSD inetd's auth (RFC 1413 ident server) and
// the sensor no-op, together with the reflection guard for the datagram
// variants.
//
// It sits below the daemon in the dependency chain
//
//	cmd -> internal/daemon -> {parser, access, logging, spawn, builtins} -> internal/service
//
// and imports only internal/service (the model) and internal/sysdb (user
// names for auth). It must not import the daemon or any of its siblings
// (parser, access, logging, spawn): whatever it needs from them — looking
// up a tcpmux client service, running one, the clock, logging — arrives
// through Env as functions the daemon fills in.
//
// Nothing here forks. A stream builtin runs in the goroutine the daemon
// gives the accepted connection, bounded by an idle timeout, a byte budget
// and the daemon's context; a datagram builtin is a pure function from
// one received datagram to one reply, so the daemon keeps the socket, the
// guard decision and the sending, and can answer without allocating.
package builtins
