//go:build cgo && !osusergo

package sysdb

import (
	"errors"
	"os/user"
	"strconv"
)

// NSS reports whether users and groups of the real system are resolved
// through the C library's name service switch (getpwnam_r, getgrgid_r,
// getgrouplist ... through os/user's cgo implementation), so that LDAP,
// SSSD, systemd's dynamic users and extrausers work as they do for every
// other program. A build without cgo reads /etc/passwd and /etc/group only.
const NSS = true

// errNotFound is a lookup that NSS answered with "no such entry".
var errNotFound = errors.New("sysdb: not found")

func notFound(err error) bool {
	var uu user.UnknownUserError
	var ui user.UnknownUserIdError
	var gg user.UnknownGroupError
	var gi user.UnknownGroupIdError
	return errors.As(err, &uu) || errors.As(err, &ui) || errors.As(err, &gg) || errors.As(err, &gi)
}

func fromUser(u *user.User, err error) (*User, error) {
	if err != nil {
		if notFound(err) {
			return nil, errNotFound
		}
		return nil, err
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, errNotFound
	}
	return &User{Name: u.Username, UID: uid, GID: gid, Home: u.HomeDir}, nil
}

func fromGroup(g *user.Group, err error) (*Group, error) {
	if err != nil {
		if notFound(err) {
			return nil, errNotFound
		}
		return nil, err
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return nil, errNotFound
	}
	return &Group{Name: g.Name, GID: gid}, nil
}

func nssUser(name string) (*User, error) { return fromUser(user.Lookup(name)) }
func nssUID(uid int) (*User, error)      { return fromUser(user.LookupId(strconv.Itoa(uid))) }
func nssGroup(name string) (*Group, error) {
	return fromGroup(user.LookupGroup(name))
}
func nssGID(gid int) (*Group, error) { return fromGroup(user.LookupGroupId(strconv.Itoa(gid))) }

// nssGroupIDs is getgrouplist(3): the groups initgroups(3) would give.
func nssGroupIDs(name string, primary int) ([]int, error) {
	ids, err := (&user.User{Username: name, Gid: strconv.Itoa(primary)}).GroupIds()
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(ids))
	for _, s := range ids {
		n, err := strconv.Atoi(s)
		if err != nil {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}
