package builtins

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gxinetd/gxinetd/internal/service"
)

// streamChunk is the read and write size of the stream builtins: large
// enough that chargen is not syscall-bound, small enough to keep per
// connection memory modest.
const streamChunk = 32 << 10

// chunkPool recycles the read buffers of echo and discard: a fresh 32 KiB
// per connection was most of what the daemon allocated under a
// connection-rate load.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, streamChunk); return &b }}

func echoStream(ctx context.Context, conn net.Conn, svc *service.Service, env *Env) error {
	return readLoop("echo", ctx, conn, svc, env, true)
}

func discardStream(ctx context.Context, conn net.Conn, svc *service.Service, env *Env) error {
	return readLoop("discard", ctx, conn, svc, env, false)
}

// readLoop reads until EOF, the byte budget or the idle timeout, writing
// what it read back when echo is set (echo) or dropping it (discard).
func readLoop(name string, ctx context.Context, conn net.Conn, svc *service.Service, env *Env, echo bool) error {
	s := newSession(name, ctx, conn, svc, env)
	defer s.close()
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for {
		n, err := s.budget(len(buf))
		if err != nil {
			return err
		}
		if err := s.arm(); err != nil {
			return s.end(err)
		}
		n, rerr := conn.Read(buf[:n])
		s.moved += int64(n)
		if n > 0 && echo {
			if err := s.arm(); err != nil {
				return s.end(err)
			}
			if _, err := conn.Write(buf[:n]); err != nil {
				return s.end(err)
			}
		}
		if rerr != nil {
			return s.end(rerr)
		}
	}
}

func daytimeStream(ctx context.Context, conn net.Conn, svc *service.Service, env *Env) error {
	var b [64]byte
	return writeAndClose(ctx, conn, idleTimeout(svc, env), "daytime", AppendDaytime(b[:0], env.now()))
}

func timeStream(ctx context.Context, conn net.Conn, svc *service.Service, env *Env) error {
	var b [4]byte
	return writeAndClose(ctx, conn, idleTimeout(svc, env), "time", AppendTime(b[:0], env.now()))
}

func chargenStream(ctx context.Context, conn net.Conn, svc *service.Service, env *Env) error {
	s := newSession("chargen", ctx, conn, svc, env)
	defer s.close()
	// The client has nothing to say; like xinetd, stop reading so its
	// input cannot pile up in our buffers.
	if cr, ok := conn.(interface{ CloseRead() error }); ok {
		_ = cr.CloseRead()
	}
	// Like xinetd's forked child, start where the shared rotation stands
	// without moving it: only datagram replies advance it.
	off := int(chargenLine.Load()%chargenPeriod) * chargenLineLen
	ring := chargenRing()
	for {
		n, err := s.budget(streamChunk)
		if err != nil {
			return err
		}
		if err := s.arm(); err != nil {
			return s.end(err)
		}
		w, werr := conn.Write(ring[off : off+n])
		s.moved += int64(w)
		off = (off + w) % chargenPeriodBytes
		if werr != nil {
			return s.end(werr)
		}
	}
}

func echoDgram(pkt []byte, _ netip.AddrPort, _ *service.Service, _ *Env, reply []byte) []byte {
	if len(pkt) > MaxEchoDatagram {
		pkt = pkt[:MaxEchoDatagram]
	}
	out := append(reply[:0], pkt...)
	if out == nil {
		// An empty datagram deserves an empty answer, and nil would mean
		// "send nothing".
		out = []byte{}
	}
	return out
}

func discardDgram([]byte, netip.AddrPort, *service.Service, *Env, []byte) []byte { return nil }

func daytimeDgram(_ []byte, _ netip.AddrPort, _ *service.Service, env *Env, reply []byte) []byte {
	return AppendDaytime(reply[:0], env.now())
}

func timeDgram(_ []byte, _ netip.AddrPort, _ *service.Service, env *Env, reply []byte) []byte {
	return AppendTime(reply[:0], env.now())
}

func chargenDgram(_ []byte, _ netip.AddrPort, _ *service.Service, _ *Env, reply []byte) []byte {
	k := (chargenLine.Add(chargenDgramLines) - chargenDgramLines) % chargenPeriod
	return AppendChargenDgram(reply[:0], int(k))
}

// AppendDaytime appends the daytime line for t in t's location:
// `DD MON YYYY HH:MM:SS ZONE\r\n` with the month in upper case, as
// xinetd writes it.
func AppendDaytime(dst []byte, t time.Time) []byte {
	start := len(dst)
	dst = t.AppendFormat(dst, "02 Jan 2006 15:04:05 MST")
	for i := start + 3; i < start+6; i++ {
		if c := dst[i]; 'a' <= c && c <= 'z' {
			dst[i] = c - 'a' + 'A'
		}
	}
	return append(dst, '\r', '\n')
}

// rfc868Offset is the number of seconds from 1900-01-01 to 1970-01-01.
const rfc868Offset = 2208988800

// AppendTime appends the RFC 868 time for t: seconds since 1900 as four
// big-endian bytes, truncated to 32 bits.
func AppendTime(dst []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(t.Unix()+rfc868Offset))
}

// The chargen pattern: line k holds 72 characters from the 93 printable
// bytes '!'..'}' starting at offset k mod 95, so the text repeats every
// 95 lines (xinetd's rotation, measured).
const (
	chargenWidth       = 72
	chargenLineLen     = chargenWidth + 2
	chargenSet         = 93
	chargenPeriod      = 95
	chargenPeriodBytes = chargenPeriod * chargenLineLen
	// A datagram reply is 13 whole lines plus 60 characters of the 14th
	// and its CRLF: 1024 bytes; the next reply starts with the 15th line.
	chargenDgramLines = 14
	chargenDgramSize  = 1024
)

// chargenRing holds one full period followed by enough of the next that
// any stream write or datagram reply is a single contiguous slice. It is
// made on first use: most configurations have no chargen, and building
// it (40 KB) at package initialisation was part of every start.
var chargenRing = sync.OnceValue(func() []byte {
	b := make([]byte, 0, chargenPeriodBytes+streamChunk+chargenLineLen)
	for k := 0; len(b) < cap(b)-chargenLineLen; k++ {
		b = AppendChargenLine(b, k)
	}
	return b
})

// chargenLine is the process-wide rotation position (a line number),
// shared by every chargen service as xinetd shares its ring.
var chargenLine atomic.Uint64

// AppendChargenLine appends chargen line k, CRLF included.
func AppendChargenLine(dst []byte, k int) []byte {
	base := k % chargenPeriod
	for j := 0; j < chargenWidth; j++ {
		dst = append(dst, byte(0x21+(base+j)%chargenSet))
	}
	return append(dst, '\r', '\n')
}

// AppendChargenDgram appends the 1024-byte datagram reply that starts
// at line k.
func AppendChargenDgram(dst []byte, k int) []byte {
	off := (k % chargenPeriod) * chargenLineLen
	dst = append(dst, chargenRing()[off:off+chargenDgramSize-2]...)
	return append(dst, '\r', '\n')
}
