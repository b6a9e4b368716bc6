// Command xconv converts an inetd.conf (and optionally the tcp_wrappers
// rules of hosts.allow and hosts.deny) into xinetd.conf that gxinetd and
// xinetd both read, either as one file on standard output or as one
// drop-in per service for an xinetd.d directory.
//
// It reads inetd.conf with package parser/inetd, so every dialect that
// gxinetd runs is converted the same way it would be run; it only adds
// the printing and the tcp_wrappers translation (hosts.go, a small reader
// that is not the access package's matcher). It must not import the
// daemon; its tests import package parser to prove the output reads back
// to the same services.
//
// The exit status says how faithful the result is: 0 lossless, 1 when
// something could not be carried over (each case is reported on standard
// error with its line), 2 when nothing could be converted.
package main
