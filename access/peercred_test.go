package access

import (
	"context"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestPeerCredentials: only_users and only_groups admit a unix-domain
// peer by uid or primary gid, refuse everyone else (FAIL reason
// address), and refuse a peer whose credentials are unknown.
func TestPeerCredentials(t *testing.T) {
	s := svc("ctl")
	s.Family, s.Protocol, s.UnixPath = service.FamilyUnix, "unix", "/run/ctl.sock"
	s.OnlyUsers = []service.Cred{{Name: "root", ID: 0}, {Name: "1234", ID: 1234}}
	s.OnlyGroups = []service.Cred{{Name: "svc", ID: 1001}}
	open := svc("open")
	open.Family, open.Protocol, open.UnixPath = service.FamilyUnix, "unix", "/run/open.sock"
	e, _ := newEngine(t, Global{}, s, open)
	cases := []struct {
		svc  *service.Service
		peer *service.PeerCred
		ok   bool
	}{
		{s, &service.PeerCred{PID: 10, UID: 0, GID: 0}, true},
		{s, &service.PeerCred{PID: 10, UID: 1234, GID: 5}, true},
		{s, &service.PeerCred{PID: 10, UID: 5000, GID: 1001}, true},
		{s, &service.PeerCred{PID: 10, UID: 5000, GID: 5000}, false},
		{s, nil, false},
		{open, &service.PeerCred{UID: 5000, GID: 5000}, true},
		{open, nil, true},
	}
	for i, c := range cases {
		d := e.Decide(context.Background(), Request{Service: c.svc, Now: t0, PeerCred: c.peer})
		if d.Allow != c.ok {
			t.Errorf("case %d (%s, %+v): allow %v, want %v (%s)", i, c.svc.ID, c.peer, d.Allow, c.ok, d.Detail)
		}
		if !d.Allow && d.Reason != ReasonAddress {
			t.Errorf("case %d: reason %v, want address", i, d.Reason)
		}
		if d.Lease != nil {
			d.Lease.Release()
		}
	}
}
