package access

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// TestLeaseOnRelease: the function set with OnRelease runs exactly once,
// when the lease is first released, even after ReleaseAll gave its counts
// up (the daemon frees an accept-queue slot with it).
func TestLeaseOnRelease(t *testing.T) {
	s := svc("q")
	e, _ := newEngine(t, Global{}, s)
	decide := func() Decision {
		t.Helper()
		d := e.Decide(context.Background(), Request{Service: s, Peer: netip.MustParseAddrPort("127.0.0.1:4000"), Now: time.Now()})
		if !d.Allow {
			t.Fatalf("refused: %v", d.Reason)
		}
		return d
	}
	n := 0
	d := decide()
	d.Lease.OnRelease(func() { n++ })
	d.Lease.Release()
	d.Lease.Release()
	if n != 1 {
		t.Errorf("ran %d times, want once", n)
	}
	d = decide()
	d.Lease.OnRelease(func() { n++ })
	e.ReleaseAll("q")
	d.Lease.Release()
	if n != 2 {
		t.Errorf("after ReleaseAll: ran %d times in all, want 2", n)
	}
	var nilLease *Lease
	nilLease.OnRelease(func() {}) // must not panic
}
