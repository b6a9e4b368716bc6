package daemon

import (
	"testing"

	"github.com/gxinetd/gxinetd/internal/pathsafe"
	"github.com/gxinetd/gxinetd/spawn"
)

// TestCredTrust: a server's own user is trusted with its file only when
// the server gets nothing of root's.
func TestCredTrust(t *testing.T) {
	tests := []struct {
		cred *spawn.Cred
		want pathsafe.Trust
	}{
		{nil, pathsafe.Trust{}},
		{&spawn.Cred{UID: 0, GID: 0}, pathsafe.Trust{}},
		{&spawn.Cred{UID: 65534, GID: 65534}, pathsafe.Trust{UID: 65534}},
		{&spawn.Cred{UID: 65534, GID: 0}, pathsafe.Trust{}},
		{&spawn.Cred{UID: 1002, GID: 1002, Groups: []uint32{1002, 100}}, pathsafe.Trust{UID: 1002}},
		{&spawn.Cred{UID: 1002, GID: 1002, Groups: []uint32{1002, 0}}, pathsafe.Trust{}},
	}
	for _, tc := range tests {
		if got := credTrust(tc.cred); got != tc.want {
			t.Errorf("credTrust(%+v) = %+v, want %+v", tc.cred, got, tc.want)
		}
	}
}
