package spawn

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestRelayEndsEachSessionOnce hands the relay sessions whose two
// sockets have already said everything (data, then EOF): the relay's
// goroutine can run and end such a session at once. It once did so
// between the two epoll registrations of add, which then failed on the
// closed second socket and reported the session a second time (and
// closed its sockets twice).
func TestRelayEndsEachSessionOnce(t *testing.T) {
	l, err := relaySet(nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	var wg sync.WaitGroup
	var calls [n]atomic.Int32
	var failed atomic.Int32
	pair := func() (int, int) {
		p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return p[0], p[1]
	}
	var peers []int
	defer func() {
		for _, fd := range peers {
			unix.Close(fd)
		}
	}()
	for i := 0; i < n; i++ {
		c, cpeer := pair()
		u, upeer := pair()
		peers = append(peers, cpeer, upeer)
		unix.Write(cpeer, []byte("to upstream"))
		unix.Shutdown(cpeer, unix.SHUT_WR)
		unix.Write(upeer, []byte("to client"))
		unix.Shutdown(upeer, unix.SHUT_WR)
		unix.SetNonblock(c, true)
		unix.SetNonblock(u, true)
		wg.Add(1)
		i := i
		s := newRelaySession(c, u, ProxyOptions{}, func() { unix.Close(c); unix.Close(u) }, func(in, out int64, err error) {
			if calls[i].Add(1) == 1 {
				if err != nil || in != 11 || out != 9 {
					t.Errorf("session %d: in %d out %d err %v", i, in, out, err)
					failed.Add(1)
				}
				wg.Done()
			}
		})
		s.start(context.Background(), l)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("sessions did not end")
	}
	time.Sleep(200 * time.Millisecond) // a second report would come now
	for i := range calls {
		if c := calls[i].Load(); c != 1 {
			t.Errorf("session %d reported %d times", i, c)
		}
	}
}

// tcpPair returns both ends of a loopback TCP connection as
// non-blocking descriptors.
func tcpPair(t *testing.T) (a, b int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	dup := func(c net.Conn) int {
		defer c.Close()
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		fd := -1
		rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	return dup(c), dup(s)
}

// TestRelayUrgentDataDrained: the relay takes a read shorter than its
// buffer as having emptied the socket and waits for the next edge rather
// than reading again to hear EAGAIN. A read stops short at TCP urgent
// data, though, with the bytes after it already queued and no edge to
// come for them: the relay must then read on (it asks for EPOLLPRI and
// drains a socket that reported it). The test makes the set's single
// poll see "abc", urgent "X" and "def" at once.
func TestRelayUrgentDataDrained(t *testing.T) {
	relayManual = true
	l, err := newRelayLoop()
	relayManual = false
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(l.epfd)
	client, relayClient := tcpPair(t)
	relayUp, backend := tcpPair(t)
	defer unix.Close(client)
	defer unix.Close(backend)
	done := make(chan error, 1)
	s := newRelaySession(relayClient, relayUp, ProxyOptions{}, func() { unix.Close(relayClient); unix.Close(relayUp) },
		func(in, out int64, err error) { done <- err })
	s.client.readable = false // as after a first pass that found nothing
	if err := l.add(s); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		b     string
		flags int
	}{{"abc", 0}, {"X", unix.MSG_OOB}, {"def", 0}} {
		if err := unix.Sendto(client, []byte(m.b), m.flags, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Everything has arrived: all 7 bytes, the urgent one among them
	// (SIOCINQ would count only up to the urgent mark).
	deadline := time.Now().Add(10 * time.Second)
	for {
		ti, err := unix.GetsockoptTCPInfo(relayClient, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			t.Fatal(err)
		}
		if ti.Bytes_received >= 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("data did not arrive: %d bytes received", ti.Bytes_received)
		}
		time.Sleep(time.Millisecond)
	}
	events := make([]unix.EpollEvent, 8)
	n, err := relayPoll(l.epfd, events)
	if err != nil {
		t.Fatal(err)
	}
	l.batch(events[:n])
	got := make([]byte, 16)
	k, err := unix.Read(backend, got)
	if err != nil {
		t.Fatalf("backend read: %v", err)
	}
	if string(got[:k]) != "abcdef" {
		t.Errorf("backend got %q after one poll, want %q", got[:k], "abcdef")
	}
	unix.Shutdown(client, unix.SHUT_WR)
	unix.Shutdown(backend, unix.SHUT_WR)
	for {
		n, err := relayPoll(l.epfd, events)
		if err != nil {
			t.Fatal(err)
		}
		l.batch(events[:n])
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("session did not end")
		}
		time.Sleep(time.Millisecond)
	}
}

// relayPoll polls a manual set without waiting.
func relayPoll(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
