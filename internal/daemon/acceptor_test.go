package daemon

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRemovedListenerAcceptsNothing: a reload that removes a service
// while the acceptor is between its check that the listener is still
// watched and its accept. The old acceptor then accepted on whatever the
// descriptor had become: a closed socket ("accept failed ... bad file
// descriptor" in the daemon's log) or, once the number was reused, another
// socket, whose connection it took and served as the removed service.
// Here the number is reused at once by a listener of the test's own (as a
// reload that opens a socket may do), with a client waiting on it.
func TestRemovedListenerAcceptsNothing(t *testing.T) {
	port := freeBlock(t, 3)
	keep := fmt.Sprintf("service daytime\n{\n\ttype = INTERNAL UNLISTED\n\tid = keep\n\tsocket_type = stream\n\tprotocol = tcp\n"+
		"\twait = no\n\tbind = 127.0.0.1\n\tport = %d\n}\n", port+1)
	// The listener that takes the removed one's number, and its client.
	other, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+2))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherFile, err := other.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer otherFile.Close()
	var otherClient net.Conn
	defer func() {
		if otherClient != nil {
			otherClient.Close()
		}
	}()

	// Between the check and the accept of the first connection to
	// "gone": remove the service by a reload, put the other listener on
	// its number, connect to that one; then accept. With the fix the
	// reload waits for the accept, so this waits in vain (up to 3 s) and
	// the accept takes the connection that woke it, as it should.
	//
	// The hook is in place before the acceptor's goroutine starts; what
	// it needs of the daemon is published by the store to goneFD.
	removed := make(chan struct{})
	var once sync.Once
	var goneFD atomic.Int64
	var placed atomic.Bool // the other listener took the removed one's number
	goneFD.Store(-1)
	var d *Daemon
	var o *Options
	old := acceptConn
	t.Cleanup(func() { acceptConn = old })
	acceptConn = func(fd int, nonblock bool) (int, netip.AddrPort, error) {
		first := false
		if int64(fd) == goneFD.Load() {
			once.Do(func() { first = true })
		}
		if first {
			go func() {
				defer close(removed)
				b, _ := os.ReadFile(o.ConfigFile)
				text := string(b)
				os.WriteFile(o.ConfigFile, []byte(text[:strings.Index(text, "service daytime")]+keep), 0o644)
				d.reload()
				// Other threads of this process open files too: the
				// number may be half-allocated (EBUSY) or taken by then.
				// Take it only while free, never clobbering another's.
				for try := 0; ; try++ {
					if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil || try == 100 {
						t.Logf("descriptor %d was reused by the process first: only the removed listener's log is checked", fd)
						return
					}
					err := unix.Dup3(int(otherFile.Fd()), fd, unix.O_CLOEXEC)
					if err == nil {
						break
					}
					if err != unix.EBUSY {
						t.Errorf("dup3: %v", err)
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
				placed.Store(true)
				c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port+2))
				if err != nil {
					t.Errorf("dial the other listener: %v", err)
					return
				}
				otherClient = c
			}()
			select {
			case <-removed:
			case <-time.After(3 * time.Second):
			}
		}
		return old(fd, nonblock)
	}
	d, o = testDaemon(t, "service daytime\n{\n\ttype = INTERNAL UNLISTED\n\tid = gone\n\tsocket_type = stream\n\tprotocol = tcp\n"+
		"\twait = no\n\tbind = 127.0.0.1\n\tport = %d\n}\n%s", port, keep)
	defer d.shutdown(false)
	for _, sr := range d.byID["gone"].socks.all() {
		goneFD.Store(int64(sr.s.fd()))
	}

	// This client's handshake is done by the kernel; the old code then
	// closed its socket before it was accepted, so it may see a reset.
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		defer c.Close()
	}
	select {
	case <-removed:
	case <-time.After(30 * time.Second):
		t.Fatalf("the reload did not finish:\n%s", readLog(o))
	}
	if t.Failed() {
		return
	}
	if !placed.Load() {
		if log := readLog(o); strings.Contains(log, "accept failed") {
			t.Errorf("an accept on the removed listener was logged:\n%s", log)
		}
		return
	}
	// The other listener's client must still be waiting there, untouched.
	otherClient.SetReadDeadline(time.Now().Add(time.Second))
	if line, err := bufio.NewReader(otherClient).ReadString('\n'); err == nil {
		t.Errorf("a client of another socket was answered %q as the removed service", line)
	}
	other2 := int(goneFD.Load()) // the other listener's copy now
	defer unix.Close(other2)
	unix.SetNonblock(other2, true)
	if nfd, _, err := unix.Accept4(other2, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK); err != nil {
		t.Errorf("the other listener's connection was taken from it (accept: %v)", err)
	} else {
		unix.Close(nfd)
	}
	if log := readLog(o); strings.Contains(log, "accept failed") {
		t.Errorf("an accept on the removed listener was logged:\n%s", log)
	}
}
