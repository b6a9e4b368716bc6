package builtins

import (
	"net/netip"
	"time"
)

// nfsPort is refused like a privileged port: NFS servers answer from it
// without being privileged, and OpenBSD inetd refuses it for that reason.
const nfsPort = 2049

// maxLogged bounds the guard's per-source memory; a flood from many
// spoofed sources can only make it forget, not grow.
const maxLogged = 4096

// Guard is the UDP reflection guard, to be asked before a datagram
// builtin answers. It refuses datagrams that can only be spoofed or that
// would start a loop: source port 0, privileged source ports (< 1024)
// and the NFS port, sources that cannot send (unspecified, 0.0.0.0/8,
// 255.0.0.0/8 including the limited broadcast, IPv4 and IPv6
// multicast, with v4-mapped IPv6 judged as IPv4), and datagrams from one
// of the daemon's own builtin UDP ports (env.OwnPorts), which is how two
// super-servers would otherwise ping-pong chargen forever. Loopback
// sources are answered. A subnet-directed broadcast source cannot be
// recognised without the interface's netmask; the kernel drops such
// martians before they reach us.
//
// A refusal is reported through env.Logf at most once per source
// address per env.LogInterval, and then as env.AllowLog decides; why is
// the reason in a few words.
func Guard(from netip.AddrPort, env *Env) (ok bool, why string) {
	why = refusal(from, env)
	if why == "" {
		return true, ""
	}
	if env != nil && env.Logf != nil && env.mayLog(from.Addr()) {
		env.Logf("builtins: udp reflection guard: refused datagram from %s: %s", from, why)
	}
	return false, why
}

func refusal(from netip.AddrPort, env *Env) string {
	a := from.Addr().Unmap()
	port := from.Port()
	switch {
	case !a.IsValid():
		return "no source address"
	case a.IsUnspecified():
		return "unspecified source address"
	case a.IsMulticast():
		return "multicast source address"
	case a.Is4() && a.As4()[0] == 0:
		return "source address in 0.0.0.0/8"
	case a.Is4() && a.As4()[0] == 255:
		return "broadcast source address"
	case port == 0:
		return "source port 0"
	case port < 1024:
		return "privileged source port"
	case port == nfsPort:
		return "source port 2049 (nfs)"
	case env != nil && env.OwnPorts != nil && env.OwnPorts(port):
		return "source port is one of our own builtin ports (loop)"
	}
	return ""
}

func (e *Env) mayLog(a netip.Addr) bool {
	first := e.shouldLog(a, time.Now())
	if e.AllowLog != nil {
		return e.AllowLog(a, !first) && first
	}
	return first
}

// shouldLog reports whether a refusal from a may be logged now, and
// records that it was.
func (e *Env) shouldLog(a netip.Addr, now time.Time) bool {
	every := e.LogInterval
	if every <= 0 {
		every = DefaultLogInterval
	}
	e.logMu.Lock()
	defer e.logMu.Unlock()
	if last, seen := e.logged[a]; seen && now.Sub(last) < every {
		return false
	}
	if e.logged == nil {
		e.logged = make(map[netip.Addr]time.Time)
	}
	if len(e.logged) >= maxLogged {
		for k, t := range e.logged {
			if now.Sub(t) >= every {
				delete(e.logged, k)
			}
		}
		if len(e.logged) >= maxLogged {
			clear(e.logged)
		}
	}
	e.logged[a] = now
	return true
}
