// Package inetd reads inetd.conf in the dialects of FreeBSD, OpenBSD,
// NetBSD and Linux (Debian's openbsd-inetd, which also covers what GNU
// inetutils and busybox accept) and turns every line into the same
// service.Service that the xinetd.conf parser produces.
//
// It owns the inetd.conf grammar: comments and continuation lines,
// FreeBSD quoting, listen-address prefixes and default-address lines,
// RPC and TCPMUX forms, unix-domain services, the limit suffixes of the
// wait field (FreeBSD /max-child/per-ip-per-minute/per-ip-children,
// OpenBSD and Linux .rate, NetBSD :rate), user:group/class, the
// internal services, and NetBSD's key=value notation and .include. Where
// two dialects read the same text differently (plain tcp, for instance)
// the dialect decides and the line gets an N-DIALECT notice naming the
// reading that was used, so that the check mode can show it. The dialect
// is Options.Dialect, or what Detect recognises in the file (detect.go:
// headers, limit forms, address prefixes, tcp/tcp6 pairs...), reported as
// N-DIALECT-CHOSEN with its reasons and W-DIALECT-SIGNALS when the
// evidence disagrees.
//
// The file is read in three steps, in the same style as package parser:
//
//   - lex.go: a hand-written lexer (a participle lexer.Definition) that
//     classifies each physical line (comment, #@ IPsec line, .include,
//     blank, indented comment, oversized, binary, addr: line, entry line,
//     continuation line) and splits entry lines into words, keeping each
//     word's line and column; it tracks NetBSD's key=value notation,
//     which runs to a ';' outside quotes and comments;
//   - grammar.go: the participle grammar over those tokens (Grammar
//     returns it as EBNF, docs/grammar-inetd.ebnf): which lines form an
//     entry, which word is which field, whether an addr: line is a
//     default address or starts an entry. It is total, so one bad line
//     never stops the file. walk builds the nodes of regular lines
//     (entries included) directly and runs participle only over the
//     irregular stretches, with the same result;
//   - fields.go, build.go: what each field means in each dialect, the
//     whole-entry checks, and the services (one per listen address);
//     kv.go reads a key=value definition character by character
//     (quotes, escapes, comments) into the same fields; include.go reads
//     .include files in place, with cycle detection.
//
// A bad line rejects that line only; every problem is reported as a
// service.Diag with file:line:col and a stable code (listed in
// docs/config.md). Nothing here panics on hostile input.
//
// Dependencies: internal/service (the model), internal/sysdb (services,
// protocols, rpc, passwd and group lookups), participle/v2 and the
// standard library; no participle type leaves the package. It
// must not import package parser (xinetd.conf), access, logging, spawn,
// builtins or the daemon: the daemon combines both parsers' output.
package inetd
