package proxyproto

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection; the listener is
// bound to an ephemeral port and stays open until the test ends.
func connPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func rawConn(t *testing.T, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func readHeader(t *testing.T, s *net.TCPConn, accept Versions, timeout time.Duration) (Header, error) {
	t.Helper()
	s.SetReadDeadline(time.Now().Add(timeout))
	defer s.SetReadDeadline(time.Time{})
	var buf [MaxLen]byte
	return Read(rawConn(t, s), &buf, accept)
}

// TestReadLeavesPayload: exactly the header is consumed; the client's
// bytes behind it, in the same segment, stay for the server.
func TestReadLeavesPayload(t *testing.T) {
	for _, hdr := range [][]byte{
		[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
		v2(0x21, 0x11, addr4("192.0.2.1", "198.51.100.2", 56324, 443), tlv(0x05, []byte("id-1"))),
	} {
		c, s := connPair(t)
		payload := "PROXY TCP4 this is the client's own data, not a header\r\n"
		if _, err := c.Write(append(append([]byte(nil), hdr...), payload...)); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		h, err := readHeader(t, s, V1|V2, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if h.Src != ap("192.0.2.1:56324") || h.Len != len(hdr) {
			t.Fatalf("header %+v", h)
		}
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		rest, err := io.ReadAll(s)
		if err != nil || string(rest) != payload {
			t.Fatalf("after the header: %q, %v", rest, err)
		}
	}
}

// TestReadPieces: a header cut into pieces, even one byte at a time, is
// put together; nothing is consumed before it is whole.
func TestReadPieces(t *testing.T) {
	hdr := []byte("PROXY TCP6 2001:db8::1 2001:db8::2 4000 22\r\nSSH-2.0-x\r\n")
	v2h := v2(0x21, 0x21, addr6("2001:db8::1", "2001:db8::2", 4000, 22))
	for _, tc := range []struct {
		name   string
		in     []byte
		pieces []int
	}{
		{"v1 in three", hdr, []int{3, 20, len(hdr) - 23}},
		{"v1 CR and LF apart", hdr, []int{42, 1, len(hdr) - 43}},
		{"v2 signature split", v2h, []int{5, 11, len(v2h) - 16}},
		{"v2 byte by byte", v2h, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := connPair(t)
			c.SetNoDelay(true)
			pieces := tc.pieces
			if pieces == nil {
				for range tc.in {
					pieces = append(pieces, 1)
				}
			}
			go func() {
				off := 0
				for _, n := range pieces {
					c.Write(tc.in[off : off+n])
					off += n
					time.Sleep(20 * time.Millisecond)
				}
			}()
			h, err := readHeader(t, s, V1|V2, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if h.Src != ap("[2001:db8::1]:4000") {
				t.Fatalf("header %+v", h)
			}
		})
	}
}

// TestReadSlowSender: a sender that trickles a byte a second is cut off
// by the deadline for the whole header, not given a second per byte.
func TestReadSlowSender(t *testing.T) {
	c, s := connPair(t)
	c.SetNoDelay(true)
	done := make(chan struct{})
	defer close(done)
	go func() {
		in := []byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n")
		for _, b := range in {
			c.Write([]byte{b})
			select {
			case <-done:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	start := time.Now()
	_, err := readHeader(t, s, V1, 2500*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("took %v", el)
	}
}

// TestReadTruncated: a connection that closes (or is reset) inside its
// header is reported as truncated at once, not after the deadline.
func TestReadTruncated(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    []byte
		reset bool
	}{
		{"nothing", nil, false},
		{"half a v1 line", []byte("PROXY TCP4 192.0.2.1 "), false},
		{"half a v2 header", v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2))[:20], false},
		{"reset after a piece", []byte("PROXY TCP4 "), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := connPair(t)
			if len(tc.in) > 0 {
				c.Write(tc.in)
			}
			if tc.reset {
				c.SetLinger(0)
				c.Close()
			} else {
				c.CloseWrite()
			}
			// The deadline is far away: the answer must not wait for it.
			_, err := readHeader(t, s, V1|V2, time.Minute)
			var pe *Error
			if !errors.As(err, &pe) || !pe.Truncated {
				t.Fatalf("err = %v, want a truncated header", err)
			}
		})
	}
}

// TestReadMalformed: bad input is refused at once and nothing of it is
// consumed.
func TestReadMalformed(t *testing.T) {
	for _, tc := range []struct {
		in     []byte
		accept Versions
		want   error
	}{
		{[]byte("GET / HTTP/1.0\r\n\r\n"), V1 | V2, errNotHeader},
		{[]byte("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n"), V1 | V2, errV1Port},
		{v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2)), V1, errV2Disabled},
		{v2(0x21, 0x12, addr4("1.2.3.4", "5.6.7.8", 1, 2)), V2, errDgram},
	} {
		c, s := connPair(t)
		c.Write(tc.in)
		c.CloseWrite()
		_, err := readHeader(t, s, tc.accept, time.Minute)
		if err != tc.want {
			t.Fatalf("%q: %v, want %v", tc.in, err, tc.want)
		}
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		rest, _ := io.ReadAll(s)
		if string(rest) != string(tc.in) {
			t.Fatalf("%q: left %q", tc.in, rest)
		}
	}
}

// TestTakeNoWait: with nothing or part of a header queued, Take returns
// at once and consumes nothing.
func TestTakeNoWait(t *testing.T) {
	c, s := connPair(t)
	rc := rawConn(t, s)
	var buf [MaxLen]byte
	take := func() (h Header, err error) {
		rc.Control(func(fd uintptr) { h, err = Take(int(fd), &buf, V1) })
		return
	}
	if _, err := take(); err != ErrIncomplete {
		t.Fatalf("empty: %v", err)
	}
	c.Write([]byte("PROXY TCP4 1.2.3.4 "))
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Wait (bounded) for the bytes to be queued at the receiver.
		var n int
		rc.Control(func(fd uintptr) { n, _ = recvRaw(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT) })
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := take(); err != ErrIncomplete {
		t.Fatalf("partial: %v", err)
	}
	c.Write([]byte("5.6.7.8 1 2\r\nx"))
	h, err := readHeader(t, s, V1, 10*time.Second)
	if err != nil || h.Src != ap("1.2.3.4:1") {
		t.Fatalf("%+v %v", h, err)
	}
}

func TestTakeAllocations(t *testing.T) {
	c, s := connPair(t)
	hdr := v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2))
	for i := 0; i < 101; i++ {
		c.Write(hdr)
	}
	rc := rawConn(t, s)
	var buf [MaxLen]byte
	// Wait (bounded) until all of it is queued.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		rc.Control(func(fd uintptr) {
			n, _ = recvRaw(int(fd), make([]byte, 101*len(hdr)), syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		})
		if n == 101*len(hdr) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var fd int
	rc.Control(func(f uintptr) { fd = int(f) })
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Take(fd, &buf, V2); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Take allocates %.1f times", allocs)
	}
}

func BenchmarkParseV1(b *testing.B) {
	in := []byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n")
	b.ReportAllocs()
	for b.Loop() {
		Parse(in, V1|V2)
	}
}

func BenchmarkParseV2(b *testing.B) {
	in := v2(0x21, 0x21, addr6("2001:db8::1", "2001:db8::2", 1, 65535))
	b.ReportAllocs()
	for b.Loop() {
		Parse(in, V1|V2)
	}
}

// TestTakeBufferNotEscaping: a caller's header buffer on its stack stays
// there. Parse handed the buffer to crc32.Update, through which it
// escaped, so every connection's 536-byte buffer was a heap allocation.
func TestTakeBufferNotEscaping(t *testing.T) {
	c, s := connPair(t)
	hdr := v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2))
	for i := 0; i < 202; i++ {
		c.Write(hdr)
	}
	rc := rawConn(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		rc.Control(func(fd uintptr) {
			n, _ = recvRaw(int(fd), make([]byte, 202*len(hdr)), syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		})
		if n == 202*len(hdr) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var fd int
	rc.Control(func(f uintptr) { fd = int(f) })
	if allocs := testing.AllocsPerRun(100, func() { takeOnStack(t, fd) }); allocs != 0 {
		t.Fatalf("Take with a buffer on the stack allocates %.1f times", allocs)
	}
}

//go:noinline
func takeOnStack(t *testing.T, fd int) {
	var buf [MaxLen]byte
	if _, err := Take(fd, &buf, V2); err != nil {
		t.Fatal(err)
	}
}

// TestTakeBuffered: one read takes the header and what came with it; the
// bytes after the header are the caller's, in buf[h.Len:n]. A header in
// pieces is put together across calls; a peer that closes early, a
// malformed header and a datagram one are refused.
func TestTakeBuffered(t *testing.T) {
	take := func(s *net.TCPConn, buf *[MaxLen]byte, n *int, accept Versions) (Header, error) {
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		defer s.SetReadDeadline(time.Time{})
		return ReadBuffered(rawConn(t, s), buf, n, accept)
	}
	t.Run("with payload", func(t *testing.T) {
		for _, hdr := range [][]byte{
			[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
			v2(0x21, 0x11, addr4("192.0.2.1", "198.51.100.2", 56324, 443), tlv(0x05, []byte("id-1"))),
		} {
			c, s := connPair(t)
			payload := "PROXY TCP4 the client's own data\r\n"
			c.Write(append(append([]byte(nil), hdr...), payload...))
			c.CloseWrite()
			var buf [MaxLen]byte
			n := 0
			h, err := take(s, &buf, &n, V1|V2)
			if err != nil || h.Src != ap("192.0.2.1:56324") || h.Len != len(hdr) {
				t.Fatalf("header %+v, %v", h, err)
			}
			// Whatever the one read got past the header, then the socket.
			s.SetReadDeadline(time.Now().Add(10 * time.Second))
			rest, err := io.ReadAll(s)
			if got := string(buf[h.Len:n]) + string(rest); err != nil || got != payload {
				t.Fatalf("after the header: %q, %v", got, err)
			}
		}
	})
	t.Run("pieces", func(t *testing.T) {
		c, s := connPair(t)
		c.SetNoDelay(true)
		in := append(v2(0x21, 0x21, addr6("2001:db8::1", "2001:db8::2", 4000, 22)), "SSH-2.0-x\r\n"...)
		go func() {
			for i := range in[:30] {
				c.Write(in[i : i+1])
				time.Sleep(5 * time.Millisecond)
			}
			c.Write(in[30:])
		}()
		var buf [MaxLen]byte
		n := 0
		h, err := take(s, &buf, &n, V2)
		if err != nil || h.Src != ap("[2001:db8::1]:4000") {
			t.Fatalf("header %+v, %v", h, err)
		}
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		rest := make([]byte, 0, 64)
		for len(buf[h.Len:n])+len(rest) < len("SSH-2.0-x\r\n") {
			var b [64]byte
			m, err := s.Read(b[:])
			if err != nil {
				t.Fatal(err)
			}
			rest = append(rest, b[:m]...)
		}
		if got := string(buf[h.Len:n]) + string(rest); got != "SSH-2.0-x\r\n" {
			t.Fatalf("after the header: %q", got)
		}
	})
	for _, tc := range []struct {
		name      string
		in        []byte
		truncated bool
	}{
		{"closed early", []byte("PROXY TCP4 1.2.3.4"), true},
		{"malformed", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"), false},
		{"not a header", []byte("GET / HTTP/1.0\r\n\r\n"), false},
		{"datagram", v2(0x21, 0x12, addr4("1.2.3.4", "5.6.7.8", 1, 2)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := connPair(t)
			c.Write(tc.in)
			c.CloseWrite()
			var buf [MaxLen]byte
			n := 0
			_, err := take(s, &buf, &n, V1|V2)
			var pe *Error
			if !errors.As(err, &pe) || pe.Truncated != tc.truncated {
				t.Fatalf("got %v, want an *Error with Truncated=%v", err, tc.truncated)
			}
		})
	}
}

func BenchmarkTake(b *testing.B)         { benchTake(b, false) }
func BenchmarkTakeBuffered(b *testing.B) { benchTake(b, true) }

// benchTake takes a v2 header followed by a short payload off a socket:
// the peek and the read of Take, or the one read of TakeBuffered.
func benchTake(b *testing.B, buffered bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	rc, _ := sc.(*net.TCPConn).SyscallConn()
	var fd int
	rc.Control(func(f uintptr) { fd = int(f) })
	msg := append(v2(0x21, 0x11, addr4("1.2.3.4", "5.6.7.8", 1, 2)), "hello\n"...)
	var buf [MaxLen]byte
	var drain [16]byte
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		c.Write(msg)
		for {
			// wait until the whole message is queued
			m, _ := recvRaw(fd, buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if m == len(msg) {
				break
			}
		}
		b.StartTimer()
		if buffered {
			n := 0
			if _, err := TakeBuffered(fd, &buf, &n, V2); err != nil {
				b.Fatal(err)
			}
		} else {
			if _, err := Take(fd, &buf, V2); err != nil {
				b.Fatal(err)
			}
			recvRaw(fd, drain[:6], syscall.MSG_DONTWAIT)
		}
	}
}
