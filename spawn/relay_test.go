package spawn

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRelayEndsEachSessionOnce hands the relay sessions whose two
// sockets have already said everything (data, then EOF): the relay's
// goroutine can run and end such a session at once. It once did so
// between the two epoll registrations of add, which then failed on the
// closed second socket and reported the session a second time (and
// closed its sockets twice).
func TestRelayEndsEachSessionOnce(t *testing.T) {
	l, err := relaySet()
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
