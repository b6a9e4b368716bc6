package tcpwrap

// Netgroup answers whether host is a member of an NIS netgroup. The
// default asks the C library (innetgr(3), through NSS: files, nis, ldap,
// sss as /etc/nsswitch.conf says) in builds with cgo; without cgo it is
// nil, and a @group pattern matches nothing, with a warning when the
// tables are read. Tests replace it.
var Netgroup func(group, host string) bool = nssNetgroup

// NetgroupSupported reports whether @group patterns can be checked.
func NetgroupSupported() bool { return Netgroup != nil }
