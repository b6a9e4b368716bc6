// Package inetd reads inetd.conf in the dialects of FreeBSD, OpenBSD,
// NetBSD and Linux (Debian's openbsd-inetd, which also covers what GNU
// inetutils and busybox accept) and turns every line into the same
// service.Service that the xinetd.conf parser produces.
//
// It owns the inetd.conf grammar: comments and continuation lines,
// FreeBSD quoting, listen-address prefixes and default-address lines,
// RPC and TCPMUX forms, unix-domain services, the limit suffixes of the
// wait field (FreeBSD /max-child/per-ip-per-minute/per-ip-children,
// OpenBSD and Linux .rate, NetBSD :rate), user:group/class and the
// internal services. Where two dialects read the same text differently
// (plain tcp, for instance) the Options.Dialect decides and the line gets
// an N-DIALECT notice naming the reading that was used, so that the check
// mode can show it.
//
// A bad line rejects that line only; every problem is reported as a
// service.Diag with file:line:col and a stable code (listed in
// docs/inetd.md). Nothing here panics on hostile input.
//
// Dependencies: internal/service (the model), internal/sysdb (services,
// protocols, rpc, passwd and group lookups) and the standard library. It
// must not import package parser (xinetd.conf), access, logging, spawn,
// builtins or the daemon: the daemon combines both parsers' output.
package inetd
