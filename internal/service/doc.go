// Package service is gxinetd's configuration model: plain data that both
// configuration languages (xinetd.conf and inetd.conf) fill and that every
// other package reads.
//
// It sits at the bottom of the dependency chain
//
//	cmd -> internal/daemon -> {parser, access, logging, spawn, builtins} -> internal/service
//
// and must import nothing from gxinetd and perform no I/O: no file reads, no
// name lookups, no clock reads. Values arrive here already parsed, validated
// and resolved (user names to uids, ports from /etc/services, addresses to
// netip prefixes) by the parser, together with the Source of every value so
// that later messages can say where a setting came from.
//
// Diagnostics (Diag, Diags) live here too: they are plain data produced by
// both parsers and printed by the check mode, so the model is where both
// sides can meet without depending on each other.
package service
