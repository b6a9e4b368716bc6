// Package daemon is gxinetd's core: it loads the configuration (both
// languages), opens and keeps the listening sockets, runs every request
// through the access engine, hands it to a builtin, the redirect proxy or
// a spawned server, tracks and reaps the children, reacts to signals
// (reload, dump, consistency check, shutdown), and replaces itself with a
// fresh binary without closing a socket (-upgrade: upgrade.go,
// handover.go, control.go; systemd's fd store: fdstore.go).
//
// Dependencies point one way:
//
//	cmd/gxinetd -> internal/daemon -> {parser, parser/inetd, access, logging, spawn, internal/builtins, internal/rpcbind} -> internal/service
//
// Nothing below imports this package. The daemon owns all sockets and all
// processes; the packages it calls are given plain values (a
// *service.Service, a net.Conn, an *os.File) and return plain results, so
// each can be tested alone.
//
// Request path (stream, wait=no):
//
//	accept -> [PROXY header: proxy_from, then the header, in a worker]
//	       -> banner -> access.Decide (every check, before any process)
//	       -> refused: FAIL record, banner_fail, close
//	       -> allowed: banner_success, [ident], START, [USERID]
//	          -> builtin goroutine | redirect proxy | spawn.Start(exec)
//	          -> TRAFFIC/EXIT records when it ends, lease released
//
// The records keep xinetd's order in every format (records.go): USERID
// after START although the lookup comes first, and START and EXIT also
// for a server that was started but could not run.
//
// Start-up of a large configuration (docs/design.md, "Listeners and
// reload"): the descriptor table is grown before the Go runtime's threads
// exist (fdtable_cgo.go) or in the background (fdtable.go), and new
// sockets are opened on several threads, then taken in configuration
// order (preopen.go).
//
// wait=yes services hand the listening (stream) or datagram socket to one
// server at a time and resume watching it when that server exits; a
// refusal consumes exactly the one pending connection or datagram, so a
// refused wait service is never suspended forever and datagrams queued
// behind it are left for the next server.
package daemon
