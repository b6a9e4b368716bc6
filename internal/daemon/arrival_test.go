package daemon

import (
	"net"
	"testing"
	"time"
)

// TestArrivalClock: connections that waited in the backlog while the
// daemon did not accept carry the time they arrived, and once a fresh
// one comes the clock stops asking the kernel.
func TestArrivalClock(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tl := ln.(*net.TCPListener)
	dial := func() net.Conn {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	accept := func() int {
		c, err := tl.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		f, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return int(f.Fd())
	}
	var a arrivalClock
	a.last = time.Now()
	dial()
	dial()
	time.Sleep(2 * time.Second) // the "stop": nobody accepts
	for i := 0; i < 2; i++ {
		now := time.Now()
		at := a.arrived(accept(), now)
		if age := now.Sub(at); age < time.Second {
			t.Errorf("backlogged connection %d: age %v, want about 2 s", i, age)
		}
		if !a.catchUp {
			t.Errorf("connection %d: not catching up", i)
		}
	}
	// A fresh connection ends the catch-up; the next is not looked at.
	dial()
	now := time.Now()
	if at := a.arrived(accept(), now); now.Sub(at) >= lateAfter {
		t.Errorf("fresh connection aged %v", now.Sub(at))
	}
	if a.catchUp {
		t.Error("still catching up after a fresh connection")
	}
	if at := a.arrived(-1, now.Add(time.Millisecond)); !at.Equal(now.Add(time.Millisecond)) {
		t.Error("without a gap the clock asked the kernel (fd -1 would have failed)")
	}
}
