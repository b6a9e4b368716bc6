// Package rpcbind registers the daemon's ONC RPC services with the local
// rpcbind (RFC 1833), or with a portmapper that only speaks version 2,
// and withdraws them again. A client that wants program P version V asks
// rpcbind where it is; an RPC service listens on a port the kernel chose,
// so without this nobody can find it.
//
// It owns the wire format of the two calls it makes (SET and UNSET, RFC
// 5531 call and reply headers in XDR, RFC 4506) and nothing else: which
// mappings the daemon wants is internal/daemon's business.
//
// Transports, in order: rpcbind's local stream socket (/run/rpcbind.sock,
// where rpcbind takes the caller's uid from the socket, so root's
// registrations are root's and no other user can remove them), then
// version 2 over UDP to 127.0.0.1:111 for an old portmapper, which knows
// only IPv4 tcp and udp.
package rpcbind
