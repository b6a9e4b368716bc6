package daemon

import (
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gxinetd/gxinetd/internal/service"
)

// minParallelOpen is the number of new sockets from which a configuration
// opens them on several threads. Creating, binding and listening cost the
// kernel about 10 µs a socket and scale with cores; below this it is not
// worth the goroutines.
const minParallelOpen = 64

// opened is one socket made ahead by preopenLocked, or why it could not be.
type opened struct {
	sk  *sock
	err error
}

// preopenLocked opens, on up to GOMAXPROCS threads, the TCP and UDP
// sockets that runs will need and that neither the previous
// configuration nor systemd provides. openRunLocked then takes them in
// configuration order, so which service gets a contested address and
// what a failure says are as if they had been opened one by one.
// Interface binds and AF_UNIX sockets (which remove their path first)
// stay sequential.
func (d *Daemon) preopenLocked(runs []*svcRun, pool map[sockKey]*sock) {
	if len(d.activated) > 0 {
		return
	}
	type job struct {
		s *service.Service
		k sockKey
	}
	type port struct{ sotype, port int }
	var jobs []job
	seen := map[sockKey]bool{}
	keysOn := map[port]int{}
	for _, r := range runs {
		s := r.svc.Load()
		if s.IsTCPMuxClient() || s.Bind.Interface != "" || s.Family == service.FamilyUnix {
			continue
		}
		for _, k := range d.wantedKeys(s) {
			if k.family == unix.AF_UNIX || seen[k] || pool[k] != nil {
				continue
			}
			seen[k] = true
			keysOn[port{k.sotype, k.port}]++
			jobs = append(jobs, job{s, k})
		}
	}
	// Two addresses on one port may exclude each other (a wildcard and a
	// specific address): which gets it must not depend on thread timing,
	// so those are left to openRunLocked, in order.
	kept := jobs[:0]
	for _, j := range jobs {
		if keysOn[port{j.k.sotype, j.k.port}] == 1 {
			kept = append(kept, j)
		}
	}
	jobs = kept
	workers := min(runtime.GOMAXPROCS(0), 4)
	if len(jobs) < minParallelOpen || workers < 2 {
		return
	}
	results := make([]opened, len(jobs))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(jobs); i += workers {
				j := jobs[i]
				sk, err := openSock(j.s, j.k, backlogFor(j.s, d.o))
				results[i] = opened{sk, err}
			}
		}(w)
	}
	wg.Wait()
	d.pre = make(map[sockKey]opened, len(jobs))
	for i, j := range jobs {
		d.pre[j.k] = results[i]
	}
}

// takePreopenedLocked hands over a socket made by preopenLocked.
func (d *Daemon) takePreopenedLocked(k sockKey) (opened, bool) {
	o, ok := d.pre[k]
	if ok {
		delete(d.pre, k)
	}
	return o, ok
}

// closePreopenedLocked closes what preopenLocked made and nobody took
// (a service that failed otherwise in between).
func (d *Daemon) closePreopenedLocked() {
	for _, o := range d.pre {
		if o.sk != nil {
			o.sk.Close()
		}
	}
	d.pre = nil
}
