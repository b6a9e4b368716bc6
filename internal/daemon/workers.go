package daemon

import (
	"net/netip"
	"time"
)

// workers run the requests the acceptor takes on goroutines that outlive
// one request. A goroutine started per connection begins with a small
// stack, and starting a server needs a deep one: every connection paid
// for growing and copying it again. A worker keeps its grown stack; the
// ones a burst created and that then sit idle for workerIdle exit.
type workers struct {
	jobs chan rawJob // unbuffered: a send succeeds only into an idle worker
}

type rawJob struct {
	r             *svcRun
	fd            int
	nonblock      bool // accepted with SOCK_NONBLOCK (a redirect's)
	remote, local netip.AddrPort
	gate          *acceptGate
	at            time.Time // when the connection arrived (arrivalClock)
}

const workerIdle = 10 * time.Second

func (w *workers) run(j rawJob) {
	select {
	case w.jobs <- j:
	default:
		go w.loop(j)
	}
}

func (w *workers) loop(j rawJob) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		j.r.handleRawCounted(j.fd, j.nonblock, j.remote, j.local, j.gate, j.at, nil)
		j = rawJob{}
		t.Reset(workerIdle)
		select {
		case j = <-w.jobs:
		case <-t.C:
			return
		}
	}
}
