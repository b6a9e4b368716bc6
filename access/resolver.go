package access

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Resolver is the name service the engine uses for host-name and .domain
// entries and for tcp_wrappers' name patterns. LookupAddr returns the
// PTR names of addr; LookupHost the addresses of name. Either returns
// ErrNotFound (or a *net.DNSError with IsNotFound) when the name or
// address has no record; any other error counts as a temporary failure.
type Resolver interface {
	LookupAddr(ctx context.Context, addr netip.Addr) ([]string, error)
	LookupHost(ctx context.Context, name string) ([]netip.Addr, error)
}

// ErrNotFound is what a Resolver returns for "no such record".
var ErrNotFound = errors.New("access: name not found")

// netResolver is the default Resolver, backed by net.DefaultResolver.
type netResolver struct{}

func (netResolver) LookupAddr(ctx context.Context, a netip.Addr) ([]string, error) {
	return net.DefaultResolver.LookupAddr(ctx, a.String())
}

func (netResolver) LookupHost(ctx context.Context, name string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", name)
}

// nameState is what the engine learned about a client's name.
type nameState uint8

const (
	nameNone     nameState = iota // no PTR record
	nameOK                        // forward-confirmed name
	nameParanoid                  // PTR names that do not resolve back
	nameFail                      // timeout or temporary failure
)

type nameEntry struct {
	name    string
	state   nameState
	expires time.Time
	done    chan struct{} // closed when the lookup finished
}

// nameCache resolves client names once, shares concurrent lookups of the
// same address, and keeps answers for a while, within a fixed size.
type nameCache struct {
	res      Resolver
	timeout  time.Duration
	posTTL   time.Duration
	negTTL   time.Duration
	failTTL  time.Duration
	max      int
	onEvict  func(now time.Time)
	mu       sync.Mutex
	m        map[netip.Addr]*nameEntry
	fifo     fifo[netip.Addr]
	maxNames int // PTR names tried for forward confirmation
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.Is(err, ErrNotFound) || (errors.As(err, &de) && de.IsNotFound)
}

// lookup returns the forward-confirmed name of a (already unmapped, no zone).
func (c *nameCache) lookup(ctx context.Context, a netip.Addr, now time.Time) (string, nameState) {
	c.mu.Lock()
	e, ok := c.m[a]
	if ok {
		select {
		case <-e.done:
			if now.Before(e.expires) {
				c.mu.Unlock()
				return e.name, e.state
			}
		default:
			c.mu.Unlock()
			return c.wait(ctx, e)
		}
	} else {
		// Evict the oldest answers (even one still in flight: its
		// waiters hold the entry itself) to stay within the cap.
		for len(c.m) >= c.max {
			old, popped := c.fifo.pop()
			if !popped {
				break
			}
			delete(c.m, old)
			if c.onEvict != nil {
				c.onEvict(now)
			}
		}
		c.fifo.push(a)
	}
	// A stale entry keeps its place in the eviction order.
	e = &nameEntry{done: make(chan struct{})}
	c.m[a] = e
	c.mu.Unlock()

	lctx, cancel := context.WithTimeout(ctx, c.timeout)
	name, st := c.resolve(lctx, a)
	cancel()
	ttl := c.posTTL
	switch st {
	case nameNone, nameParanoid:
		ttl = c.negTTL
	case nameFail:
		ttl = c.failTTL
	}
	c.mu.Lock()
	e.name, e.state, e.expires = name, st, now.Add(ttl)
	close(e.done)
	c.mu.Unlock()
	return name, st
}

func (c *nameCache) wait(ctx context.Context, e *nameEntry) (string, nameState) {
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case <-e.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return e.name, e.state
	case <-ctx.Done():
	case <-t.C:
	}
	return "", nameFail
}

// resolve does the reverse lookup and the forward confirmation: a PTR
// name counts only if one of its addresses is the client's, so whoever
// controls the reverse zone cannot claim a name they do not own.
func (c *nameCache) resolve(ctx context.Context, a netip.Addr) (string, nameState) {
	names, err := c.res.LookupAddr(ctx, a)
	if err != nil {
		if isNotFound(err) {
			return "", nameNone
		}
		return "", nameFail
	}
	if len(names) == 0 {
		return "", nameNone
	}
	failed := false
	for i, n := range names {
		if i >= c.maxNames {
			break
		}
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if n == "" {
			continue
		}
		addrs, err := c.res.LookupHost(ctx, n)
		if err != nil {
			if !isNotFound(err) {
				failed = true
			}
			continue
		}
		for _, x := range addrs {
			if x.Unmap().WithZone("") == a {
				return n, nameOK
			}
		}
	}
	if failed {
		return "", nameFail
	}
	return "", nameParanoid
}

func (c *nameCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// fifo is a growable ring of keys in insertion order, used to evict the
// oldest entry of a bounded map.
type fifo[K comparable] struct {
	buf  []K
	head int
	n    int
}

func (f *fifo[K]) push(k K) {
	if f.n == len(f.buf) {
		nb := make([]K, max(16, 2*len(f.buf)))
		for i := 0; i < f.n; i++ {
			nb[i] = f.buf[(f.head+i)%len(f.buf)]
		}
		f.buf, f.head = nb, 0
	}
	f.buf[(f.head+f.n)%len(f.buf)] = k
	f.n++
}

// compactInPlace keeps only the entries keep accepts, in order, reusing
// the buffer so that steady churn does not allocate.
func (f *fifo[K]) compactInPlace(keep func(K) bool) {
	if f.n == 0 {
		f.head = 0
		return
	}
	// Rotate the ring so that it starts at index 0, then filter.
	if f.head != 0 {
		reverse(f.buf[:f.head])
		reverse(f.buf[f.head:])
		reverse(f.buf)
		f.head = 0
	}
	var zero K
	w := 0
	for i := 0; i < f.n; i++ {
		if keep(f.buf[i]) {
			f.buf[w] = f.buf[i]
			w++
		}
	}
	for i := w; i < len(f.buf); i++ {
		f.buf[i] = zero
	}
	f.n = w
}

func reverse[K any](s []K) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

func (f *fifo[K]) pop() (K, bool) {
	var zero K
	if f.n == 0 {
		return zero, false
	}
	k := f.buf[f.head]
	f.buf[f.head] = zero
	f.head = (f.head + 1) % len(f.buf)
	f.n--
	return k, true
}

func (f *fifo[K]) peek() (K, bool) {
	var zero K
	if f.n == 0 {
		return zero, false
	}
	return f.buf[f.head], true
}
