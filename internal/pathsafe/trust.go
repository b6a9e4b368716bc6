package pathsafe

import (
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
)

// Trust says who besides root may be able to change a path. The zero
// value trusts root alone, which is right for everything the daemon reads
// itself (configuration, banners) and for servers that run as root.
type Trust struct {
	// UID is the server's run-as user, trusted because the server runs
	// with his rights anyway; 0 means nobody but root.
	UID int
}

func (t Trust) trusts(uid uint32) bool { return uid == 0 || t.UID > 0 && uid == uint32(t.UID) }

// RunAs is the Trust for a server that runs as uid with the group ids
// gids (primary and supplementary). The user is trusted only when the
// server gets nothing of root's: a server with gid 0 or group root among
// its groups would hand that group to whoever can replace it.
func RunAs(uid int, gids ...int) Trust {
	if uid <= 0 {
		return Trust{}
	}
	for _, g := range gids {
		if g == 0 {
			return Trust{}
		}
	}
	return Trust{UID: uid}
}

// ForUser is RunAs for a service's user and group as a configuration
// names them, resolved the way the spawner resolves them when it starts
// the server: group given, or else the same number for a numeric user and
// the passwd group for a named one; with initgroups the passwd entry's
// supplementary groups too. A nil user runs with the daemon's (root's)
// credentials. db nil means sysdb.System.
func ForUser(user, group *service.Cred, initgroups bool, db *sysdb.DB) Trust {
	if user == nil || user.ID <= 0 {
		return Trust{}
	}
	if db == nil {
		db = sysdb.System
	}
	gid := user.ID
	if group != nil {
		gid = group.ID
	} else if !numeric(user.Name) {
		if pw, ok := db.LookupUser(user.Name); ok {
			gid = pw.GID
		} else if pw, ok := db.LookupUID(user.ID); ok {
			gid = pw.GID
		}
	}
	gids := []int{gid}
	if initgroups {
		if pw, ok := db.LookupUID(user.ID); ok {
			gids = append(gids, db.GroupIDs(pw.Name, pw.GID)...)
		}
	}
	return RunAs(user.ID, gids...)
}

func numeric(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
