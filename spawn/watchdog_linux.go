package spawn

import (
	"os"
	"sync"
	"time"
)

// The pre-exec bound is kept by one watchdog goroutine, not by a
// deadline per start: a deadline is a runtime timer, and adding one to
// an idle daemon wakes a thread (the network poller, or an idle P) on
// every start. The watchdog ticks only while starts are pending, and
// kills a child between execTimeout and execTimeout plus one tick after
// it was created.

// preExecWatch is one start waiting for its child's execve.
type preExecWatch struct {
	proc   *Process
	status *os.File // the read end the start waits on
	// The bounds as they were when the start began (tests change them).
	bound             time.Duration
	killAt, abandonAt time.Time
	// killed: the watchdog sent SIGKILL; abandoned: and gave up waiting
	// for the child to go (killTimeout later), waking the start with a
	// read deadline in the past. Both under watchdog.mu.
	killed, abandoned bool
}

var watchdog struct {
	mu      sync.Mutex
	pending map[*preExecWatch]struct{}
	running bool
}

// watchdogTick is how often the watchdog looks, while starts are
// pending; it stops after watchdogLinger ticks without any.
func watchdogTick() time.Duration { return min(time.Second, execTimeout/2) }

const watchdogLinger = 10

// watch puts a start under the watchdog until unwatch; bound, when not
// zero, replaces execTimeout (tests).
func watch(p *Process, status *os.File, bound time.Duration) *preExecWatch {
	if bound == 0 {
		bound = execTimeout
	}
	now := time.Now()
	w := &preExecWatch{proc: p, status: status, bound: bound, killAt: now.Add(bound),
		abandonAt: now.Add(bound + killTimeout)}
	watchdog.mu.Lock()
	if watchdog.pending == nil {
		watchdog.pending = map[*preExecWatch]struct{}{}
	}
	watchdog.pending[w] = struct{}{}
	if !watchdog.running {
		watchdog.running = true
		go runWatchdog(watchdogTick())
	}
	watchdog.mu.Unlock()
	return w
}

// unwatch ends the watch and reports whether the watchdog killed the
// child (the start has failed, whatever the status pipe said).
func unwatch(w *preExecWatch) bool {
	watchdog.mu.Lock()
	delete(watchdog.pending, w)
	killed := w.killed
	watchdog.mu.Unlock()
	return killed
}

func runWatchdog(tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	idle := 0
	for now := range t.C {
		watchdog.mu.Lock()
		if len(watchdog.pending) == 0 {
			if idle++; idle >= watchdogLinger {
				watchdog.running = false
				watchdog.mu.Unlock()
				return
			}
		} else {
			idle = 0
		}
		for w := range watchdog.pending {
			if !w.killed && !now.Before(w.killAt) {
				// Unreaped, so the pid is still the child's; neither call
				// blocks.
				w.killed = true
				_ = w.proc.Kill()
			}
			if w.killed && !w.abandoned && !now.Before(w.abandonAt) {
				w.abandoned = true
				_ = w.status.SetReadDeadline(now)
			}
		}
		watchdog.mu.Unlock()
	}
}
