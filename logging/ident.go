package logging

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// IdentError is a failed ident lookup. Reason is xinetd's word for it,
// the text of a NOID record: "no server", "timeout", "system error",
// "error while receiving response" or "bad response".
type IdentError struct {
	Reason string
	// Line is the offending answer for "bad response" (xinetd logs
	// "Bad line received from identity server at ADDR: LINE").
	Line string
	Err  error
}

func (e *IdentError) Error() string {
	s := "logging: ident: " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *IdentError) Unwrap() error { return e.Err }

// Ident reason words.
const (
	IdentNoServer  = "no server"
	IdentTimeout   = "timeout"
	IdentSysError  = "system error"
	IdentRecvError = "error while receiving response"
	IdentBadResp   = "bad response"
)

// DefaultIdentTimeout bounds a lookup when the caller gives no timeout.
// xinetd waits 30 s (forever with IDONLY); every lookup delays a server's
// start, so gxinetd waits less.
const DefaultIdentTimeout = 5 * time.Second

const identPort = 113

// identMaxLine is xinetd's reply buffer: an answer without CRLF in the
// first 1024 bytes is an error.
const identMaxLine = 1024

// Ident asks the client's ident server (RFC 1413) who owns the
// connection local<->remote: it connects from local's address to
// remote's address port 113, sends "RPORT,LPORT\r\n", reads one
// CRLF-terminated line and returns the text after "USERID :", e.g.
// "UNIX : alice". Control characters in the answer are replaced by '?'.
// Failures are *IdentError. ctx cancels the lookup; timeout 0 means
// DefaultIdentTimeout.
func Ident(ctx context.Context, local, remote netip.AddrPort, timeout time.Duration) (string, error) {
	return identQuery(ctx, local, remote, identPort, timeout)
}

func identQuery(ctx context.Context, local, remote netip.AddrPort, port uint16, timeout time.Duration) (string, error) {
	if timeout <= 0 {
		timeout = DefaultIdentTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// A v4-mapped pair is an IPv4 connection on a dual-stack socket:
	// query over IPv4 (xinetd's attempt to bind an IPv6 socket to such an
	// address fails with EINVAL, openwrt/packages#205).
	laddr, raddr := local.Addr().Unmap(), remote.Addr().Unmap()
	if !raddr.IsValid() {
		return "", &IdentError{Reason: IdentSysError, Err: errors.New("unknown client address")}
	}
	d := net.Dialer{}
	if laddr.IsValid() && laddr.Is4() == raddr.Is4() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(laddr, 0))
	}
	conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(raddr, port).String())
	if err != nil {
		return "", &IdentError{Reason: dialReason(ctx, err), Err: err}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}

	q := strconv.AppendUint(nil, uint64(remote.Port()), 10)
	q = append(q, ',')
	q = strconv.AppendUint(q, uint64(local.Port()), 10)
	q = append(q, '\r', '\n')
	if _, err := conn.Write(q); err != nil {
		if ctx.Err() != nil {
			return "", &IdentError{Reason: IdentTimeout, Err: ctx.Err()}
		}
		return "", &IdentError{Reason: IdentSysError, Err: err}
	}

	line, err := readCRLFLine(conn, identMaxLine)
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return "", &IdentError{Reason: IdentTimeout, Err: err}
		}
		return "", &IdentError{Reason: IdentRecvError, Err: err}
	}
	text, ok := parseIdentReply(line, remote.Port(), local.Port())
	if !ok {
		return "", &IdentError{Reason: IdentBadResp, Line: string(appendSafe(nil, line)),
			Err: errors.New("malformed answer")}
	}
	return string(appendSafe(nil, text)), nil
}

func dialReason(ctx context.Context, err error) string {
	switch {
	case ctx.Err() != nil || isTimeout(err):
		return IdentTimeout
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EINVAL),
		errors.Is(err, syscall.EAFNOSUPPORT), errors.Is(err, syscall.EMFILE),
		errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.ENOBUFS):
		// The socket or its bind failed: nothing was asked yet.
		return IdentSysError
	}
	// Like xinetd, any failed connect (refused, unreachable) means no server.
	return IdentNoServer
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var errNoCRLF = errors.New("answer too long or not terminated by CR-LF")

// readCRLFLine reads until the first CR LF within max bytes, as xinetd's
// get_line does, and returns the text before it.
func readCRLFLine(c net.Conn, limit int) (string, error) {
	buf := make([]byte, limit)
	n := 0
	for n < limit {
		k, err := c.Read(buf[n:])
		from := max(n-1, 0) // a CR may end the previous read
		n += k
		if i := bytes.Index(buf[from:n], []byte("\r\n")); i >= 0 {
			return string(buf[:from+i]), nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", errNoCRLF
}

// parseIdentReply checks an ident answer the way xinetd's verify_line
// does and returns the text after "USERID :" (leading blanks skipped,
// trailing ones kept). The answer must be
//
//	RPORT , LPORT : USERID : rest
//
// with the two numbers equal to the ports of the query (blanks around
// them tolerated) and a non-empty rest. A NUL ends the line, as it does
// for C strings.
func parseIdentReply(line string, rport, lport uint16) (string, bool) {
	if i := indexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	comma := indexByte(line, ',')
	if comma < 0 {
		return "", false
	}
	if n, ok := parseBase10(line[:comma]); !ok || n != int64(rport) {
		return "", false
	}
	rest := line[comma+1:]
	colon := indexByte(rest, ':')
	if colon < 0 {
		return "", false
	}
	if n, ok := parseBase10(rest[:colon]); !ok || n != int64(lport) {
		return "", false
	}
	rest = skipSpace(rest[colon+1:])
	if len(rest) < 6 || rest[:6] != "USERID" {
		return "", false
	}
	rest = skipSpace(rest[6:])
	if rest == "" || rest[0] != ':' {
		return "", false
	}
	rest = skipSpace(rest[1:])
	if rest == "" {
		return "", false
	}
	return rest, true
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

func skipSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	return s
}

// parseBase10 accepts what xinetd's parse_base10 (strtol) does: leading
// and trailing blanks, an optional sign, decimal digits.
func parseBase10(s string) (int64, bool) {
	s = skipSpace(s)
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}
