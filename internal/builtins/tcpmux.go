package builtins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// The replies tcpmux sends itself (RFC 1078: "+" accepts, "-" refuses,
// either followed by text and CRLF).
const (
	muxGo       = "+Go\r\n"
	muxNotFound = "-Service name not found\r\n"
	muxTooLong  = "-Service name too long\r\n"
	muxNoServe  = "-Service not available\r\n"
)

var errLineTooLong = errors.New("line too long")

// ReadLine reads one request line from r a byte at a time, so that
// nothing after the line is consumed: the bytes that follow belong to
// the server the connection is handed to. The line ends at LF (a CR
// before it is dropped) or at EOF after at least one byte. max bounds
// the line including its terminator; a longer line is an error wrapping
// ErrBadRequest. An empty stream gives io.EOF.
func ReadLine(r io.Reader, max int) ([]byte, error) {
	line := make([]byte, 0, 64)
	var b [1]byte
	for idle := 0; ; {
		n, err := r.Read(b[:])
		if n == 0 && err == nil {
			// A reader that neither delivers nor fails must not spin us.
			if idle++; idle > 100 {
				return line, io.ErrNoProgress
			}
			continue
		}
		if n == 1 {
			if b[0] == '\n' {
				return bytes.TrimSuffix(line, []byte{'\r'}), nil
			}
			if len(line)+1 >= max {
				return line, fmt.Errorf("%w: %w (more than %d bytes)", ErrBadRequest, errLineTooLong, max)
			}
			line = append(line, b[0])
			continue
		}
		if err == io.EOF && len(line) > 0 {
			return bytes.TrimSuffix(line, []byte{'\r'}), nil
		}
		if err != nil {
			return line, err
		}
	}
}

// ParseMuxName turns the tcpmux request line into a service name:
// surrounding blanks are ignored, and a name holding a control byte or
// nothing at all is refused.
func ParseMuxName(line []byte) (string, bool) {
	name := bytes.Trim(line, " \t")
	if len(name) == 0 {
		return "", false
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	return string(name), true
}

func tcpmuxStream(ctx context.Context, conn net.Conn, svc *service.Service, env *Env) error {
	timeout := env.readTimeout()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(longAgo) })
	handedOver := false
	defer func() {
		stop()
		if !handedOver {
			_ = conn.Close()
		}
	}()
	fail := func(reply string, err error) error {
		if reply != "" {
			_ = conn.SetDeadline(time.Now().Add(timeout))
			_, _ = io.WriteString(conn, reply)
		}
		return fmt.Errorf("builtins: tcpmux: %w", err)
	}

	// One deadline for the whole line: a client dribbling one byte at a
	// time cannot hold the connection longer than the read timeout.
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("builtins: tcpmux: %w", err)
	}
	line, err := ReadLine(conn, MaxMuxName)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("builtins: tcpmux: %w", ctx.Err())
	case errors.Is(err, errLineTooLong):
		return fail(muxTooLong, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fail("", fmt.Errorf("%w: no service name within %v", ErrBadRequest, timeout))
	case err == io.EOF:
		return fail("", fmt.Errorf("%w: connection closed before a service name", ErrBadRequest))
	case err != nil:
		return fail("", err)
	}

	name, ok := ParseMuxName(line)
	if ok && strings.EqualFold(name, "help") {
		var b strings.Builder
		if env != nil && env.TCPMuxNames != nil {
			for _, n := range env.TCPMuxNames() {
				b.WriteString(n)
				b.WriteString("\r\n")
			}
		}
		_ = conn.SetDeadline(time.Now().Add(timeout))
		if _, err := io.WriteString(conn, b.String()); err != nil && !peerGone(err) {
			return fmt.Errorf("builtins: tcpmux: help: %w", err)
		}
		return nil
	}
	var target *service.Service
	if ok && env != nil && env.TCPMux != nil {
		target, ok = env.TCPMux(name)
	} else {
		ok = false
	}
	// Only tcpmux clients are reachable this way, whatever the lookup
	// returns (CVE-2012-0862 was the opposite).
	if !ok || target == nil || !target.IsTCPMuxClient() {
		return fail(muxNotFound, fmt.Errorf("%q: %w", sanitize(line), ErrNoService))
	}
	if env.Serve == nil {
		return fail(muxNoServe, fmt.Errorf("%s: no server runner", target.ID))
	}
	if target.Type.Has(service.TypeTCPMuxPlus) {
		if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
			return fmt.Errorf("builtins: tcpmux: %w", err)
		}
		if _, err := io.WriteString(conn, muxGo); err != nil {
			if peerGone(err) {
				return nil
			}
			return fmt.Errorf("builtins: tcpmux: %s: %w", target.ID, err)
		}
	}
	// The server gets a clean connection: no deadline of ours, and no
	// cancellation hook that would later poke at a conn we do not own.
	stop()
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("builtins: tcpmux: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("builtins: tcpmux: %w", err)
	}
	handedOver = true
	return env.Serve(ctx, target, conn)
}

// sanitize makes client bytes safe to put in a log line.
func sanitize(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	var s strings.Builder
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			fmt.Fprintf(&s, "\\x%02x", c)
			continue
		}
		s.WriteByte(c)
	}
	return s.String()
}
