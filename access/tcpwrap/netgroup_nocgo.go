//go:build !cgo

package tcpwrap

// Without cgo there is no way to ask NSS about netgroups.
var nssNetgroup func(group, host string) bool
