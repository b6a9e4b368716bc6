package daemon

import (
	"os"
	"runtime"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/spawn"
)

// Go's own fork (spawn without cgo) is a vfork-style clone that keeps
// the calling thread, and the scheduler slot (P) it holds, until the
// child has exec'd. With one P per core, a daemon busy starting servers
// that way had half its slots parked in forks while accepted connections
// waited to be scheduled, though the cores were not busy: two Ps per core
// gave 12 % more servers started per second. The clone path of a cgo
// build blocks no thread, and with it one P per core started as many
// servers at 7 % less CPU per connection, so the doubling is kept only
// for Go's fork (spawn.StartHoldsProc). Redirect sessions,
// each a few goroutines waiting on two sockets, gained 8 % connections
// per second from two Ps per core (all six paired runs); the builtins
// did not, and pay more CPU for idle Ps, so they keep one P per core.
// When the relay's sets ran on threads locked to them, each holding a P
// while it works, one P per core was measured again for redirects: 10 %
// fewer connections per second at 9 % more CPU each in a single pair
// (more of sysmon's retakes and futex wake-ups), so the doubling stayed.
// The sets' goroutines are no longer locked and yield before they wait
// (spawn/relay.go run), which took sysmon's retakes away; that relies on
// idle Ps being there to hand a yielded goroutine back at once, so the
// doubling stays for redirects; one P per core was not measured again.
// GOMAXPROCS in the environment overrides this.

// wantsMoreProcs reports whether services redirect, or start processes
// with a fork that holds its P.
func wantsMoreProcs(services []*service.Service) bool {
	for _, s := range services {
		if s.IsRedirect() || spawn.StartHoldsProc && !s.IsInternal() && s.Server != "" {
			return true
		}
	}
	return false
}

// defaultProcs is GOMAXPROCS as the runtime chose it, before tuneProcs;
// 0 when the environment sets it, which tuneProcs then leaves alone.
var defaultProcs = func() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return 0
	}
	return runtime.GOMAXPROCS(0)
}()

// tuneProcs sets GOMAXPROCS for a configuration that does or does not
// start servers or redirect. Once set, the runtime no longer follows a
// changed CPU quota of the daemon's cgroup; a restart does.
func tuneProcs(more bool) {
	if defaultProcs == 0 {
		return
	}
	want := defaultProcs
	if more {
		want *= 2
	}
	if runtime.GOMAXPROCS(0) != want {
		runtime.GOMAXPROCS(want)
	}
}
