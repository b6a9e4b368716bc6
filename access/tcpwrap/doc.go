// Package tcpwrap is gxinetd's own reading of tcp_wrappers' host access
// tables, /etc/hosts.allow and /etc/hosts.deny (hosts_access(5) with the
// hosts_options(5) extension), without linking libwrap.
//
// It parses the files into Rules, matches a daemon name and a Client
// against them (first match in hosts.allow grants, then first match in
// hosts.deny refuses, else grant), and turns the options of the deciding
// rule into an Action (severity, banners, spawn, twist) with the
// %-expansions already applied, dangerous characters replaced by '_' as
// tcp_wrappers does. It runs no commands and sends no banners: the daemon
// carries out an Action.
//
// A rule that cannot be read is never silently dropped: it is kept as a
// broken rule that matches and denies, so a typo can never let in a client
// the rest of the rule would have kept out.
//
// tcpwrap sits below package access and imports nothing from gxinetd; it
// must not import the daemon, the parser, logging or spawn. It performs no
// name lookups itself: the caller supplies the client's host name lazily
// through Client.Lookup.
package tcpwrap
