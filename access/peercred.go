package access

import (
	"strconv"

	"github.com/gxinetd/gxinetd/internal/service"
)

// checkPeerCred applies only_users and only_groups to the peer of a
// unix-domain connection: it is admitted when its uid is in only_users
// or its primary gid in only_groups. A peer whose credentials are not
// known is refused, so a restriction is never silently lifted.
func checkPeerCred(s *service.Service, p *service.PeerCred) (Decision, bool) {
	if len(s.OnlyUsers) == 0 && len(s.OnlyGroups) == 0 {
		return Decision{}, false
	}
	if p == nil {
		return Decision{Reason: ReasonAddress, Detail: "peer credentials unknown (only_users/only_groups)"}, true
	}
	for _, u := range s.OnlyUsers {
		if u.ID == p.UID {
			return Decision{}, false
		}
	}
	for _, g := range s.OnlyGroups {
		if g.ID == p.GID {
			return Decision{}, false
		}
	}
	return Decision{Reason: ReasonAddress, Detail: "peer uid " + strconv.Itoa(p.UID) + " gid " + strconv.Itoa(p.GID) +
		" pid " + strconv.Itoa(p.PID) + " not in only_users/only_groups"}, true
}
