//go:build !cgo || osusergo

package sysdb

import "errors"

// NSS is false in a build without cgo: users and groups come from
// /etc/passwd and /etc/group alone, so accounts that only LDAP, SSSD or
// extrausers know are unknown. gxinetd -version and -h say so.
const NSS = false

var errNotFound = errors.New("sysdb: not found")

var errNoNSS = errors.New("sysdb: built without cgo: no NSS")

func nssUser(string) (*User, error)          { return nil, errNoNSS }
func nssUID(int) (*User, error)              { return nil, errNoNSS }
func nssGroup(string) (*Group, error)        { return nil, errNoNSS }
func nssGID(int) (*Group, error)             { return nil, errNoNSS }
func nssGroupIDs(string, int) ([]int, error) { return nil, errNoNSS }
