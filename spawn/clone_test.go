//go:build linux && cgo

package spawn

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestStatusPipeAboveStdio: with descriptor 0 free, pipe2 hands it out;
// the status pipe must still end up above 2, or the child's dup of the
// connection onto 0 would close its end early (see statusPipe).
func TestStatusPipeAboveStdio(t *testing.T) {
	saved, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Skipf("no descriptor 0 to set aside: %v", err)
	}
	unix.Close(0)
	p, perr := statusPipe()
	// Put stdin back before anything can fail.
	if err := unix.Dup3(saved, 0, 0); err != nil {
		t.Fatalf("restore stdin: %v", err)
	}
	unix.Close(saved)
	if perr != nil {
		t.Fatal(perr)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	for i, fd := range p {
		if fd <= 2 {
			t.Errorf("status pipe end %d is descriptor %d", i, fd)
		}
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
			t.Errorf("status pipe end %d (fd %d) is not close-on-exec: %#x %v", i, fd, fl, err)
		}
	}
}
