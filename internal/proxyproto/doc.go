// Package proxyproto reads and writes the PROXY protocol header (haproxy's
// proxy-protocol specification, version 1 text and version 2 binary) that
// a load balancer puts in front of a relayed TCP connection to tell the
// server who the client really is.
//
// It owns the wire format and nothing else: Parse decides on a byte slice,
// Take and Read take exactly one header off a stream socket (never a byte
// more, so a server started on the socket afterwards sees exactly the
// client's bytes), TakeBuffered and ReadBuffered take it with what follows
// it, and Append writes a header for an outgoing connection.
// Who may send a header, what a refusal is called and what happens to the
// connection afterwards are the daemon's business.
//
// Position in the dependency chain: a leaf. It imports the standard
// library and golang.org/x/sys/unix only; internal/daemon imports it (and
// hands spawn's redirect the header it builds as plain bytes).
//
// # Parsing rules
//
// The receiver must know in advance which versions may come (the service's
// proxy_protocol attribute) and never guess; a connection whose first
// bytes are not a complete, valid header of an accepted version is
// refused. Parse is strict where the specification is:
//
//   - v1: "PROXY" and single spaces, TCP4 or TCP6 with canonical decimal
//     addresses of the announced family and ports 0-65535 without leading
//     zeros, or UNKNOWN (the rest of the line is ignored), ended by CRLF
//     within 107 bytes; a lone CR or LF ends nothing and is an error.
//   - v2: the 12-byte signature, version 2, command LOCAL or PROXY, a known
//     family and transport, and an address block at least as long as the
//     family needs. Type-length-value records after the addresses must
//     exactly fill the rest of the header; a CRC32C record, when present,
//     is verified; every other type is skipped.
//   - Both: at most MaxLen (536) bytes, the size the specification says
//     every header fits in ("the smallest TCP segment any host must
//     accept"). A v2 header announcing more is refused before it is read.
//
// A LOCAL command (v2) or UNKNOWN (v1), and a v2 PROXY header of the
// unspecified or the unix family, carry no usable client: Header.Src is
// then invalid and the connection's own addresses stay in force, which is
// what the specification asks for health checks.
//
// # Reading
//
// Take peeks (MSG_PEEK) at what has arrived, without waiting, and consumes
// the header only once it is complete and valid: a header that arrives in
// pieces is simply peeked at again when more bytes come. Read does the
// same inside the runtime's poller (syscall.RawConn), so a slow sender
// costs a parked goroutine, not a thread, until the caller's deadline.
// Neither allocates, and a caller's buffer on its stack stays there.
//
// TakeBuffered and ReadBuffered are the same for a reader that serves
// the connection itself (the daemon's builtins): one read of whatever has
// arrived instead of a peek and a read, the bytes past the header left
// in the buffer for the caller to deliver first. Never for a descriptor
// handed to a server afterwards.
package proxyproto
