package daemon

import (
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
)

// TestAcceptGate: slots up to the limit; a paused listener is woken by
// the release of a slot, by a release that came before it registered,
// and by a reload that raises the limit or ends the queueing.
func TestAcceptGate(t *testing.T) {
	s := &service.Service{ID: "q", Language: service.LangInetd, SocketType: service.SockStream, Instances: 2}
	var r svcRun
	r.setGate(s)
	g := r.gate.Load()
	if g == nil {
		t.Fatal("an inetd.conf service with a child limit must queue")
	}
	if !g.take() || !g.take() || g.take() {
		t.Fatal("two slots, then none")
	}
	woken := 0
	g.pause(func() { woken++ })
	if woken != 0 {
		t.Fatal("woken with no slot free")
	}
	g.release()
	if woken != 1 || !g.take() {
		t.Fatalf("a release must wake the paused listener (woken %d)", woken)
	}
	// A release between a failed take and the registration.
	if g.take() {
		t.Fatal("at the limit again")
	}
	g.release()
	g.pause(func() { woken++ })
	if woken != 2 {
		t.Fatal("a slot freed before the pause must wake it at once")
	}
	g.take()
	// A reload that raises the limit lets the listener go on.
	g.pause(func() { woken++ })
	s3 := *s
	s3.Instances = 3
	r.setGate(&s3)
	if r.gate.Load() != g || woken != 3 || !g.take() {
		t.Fatalf("raised limit: same gate %v, woken %d", r.gate.Load() == g, woken)
	}
	// One that ends the limit drops the gate, and wakes its waiters.
	g.pause(func() { woken++ })
	s4 := *s
	s4.Instances = service.Unlimited
	r.setGate(&s4)
	if r.gate.Load() != nil || woken != 4 {
		t.Fatalf("no limit: gate %v, woken %d", r.gate.Load(), woken)
	}
	// xinetd's instances refuse instead (docs/access.md).
	x := *s
	x.Language = service.LangXinetd
	var rx svcRun
	rx.setGate(&x)
	if rx.gate.Load() != nil {
		t.Error("xinetd.conf instances must not queue")
	}
}
