package daemon

import (
	"net"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
)

// peerCred asks the kernel who is at the other end of a unix-domain
// connection (SO_PEERCRED); nil for other connections or on failure.
func peerCred(c net.Conn) *service.PeerCred {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil || cred == nil {
		return nil
	}
	return &service.PeerCred{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}
}
