package access

// boundedMap is a map with a size cap that evicts its oldest key (by
// first insertion) when full. It is what keeps per-source tables, rate
// windows and duplicate-suppression tables from growing without bound
// under a flood of distinct (possibly spoofed) source addresses.
// Not safe for concurrent use; callers hold their own lock.
type boundedMap[K comparable, V any] struct {
	m   map[K]bmVal[V]
	q   fifo[bmKey[K]]
	seq uint64
	max int
}

type bmVal[V any] struct {
	v   V
	seq uint64
}

type bmKey[K comparable] struct {
	k   K
	seq uint64
}

func newBoundedMap[K comparable, V any](max int) *boundedMap[K, V] {
	return &boundedMap[K, V]{m: make(map[K]bmVal[V]), max: max}
}

func (b *boundedMap[K, V]) len() int { return len(b.m) }

func (b *boundedMap[K, V]) get(k K) (V, bool) {
	e, ok := b.m[k]
	return e.v, ok
}

// put stores v under k and reports how many old keys it evicted to make room.
func (b *boundedMap[K, V]) put(k K, v V) (evicted int) {
	if e, ok := b.m[k]; ok {
		e.v = v
		b.m[k] = e
		return 0
	}
	for len(b.m) >= b.max && b.evictOldest() {
		evicted++
	}
	b.seq++
	b.m[k] = bmVal[V]{v: v, seq: b.seq}
	b.q.push(bmKey[K]{k: k, seq: b.seq})
	b.compact()
	return evicted
}

func (b *boundedMap[K, V]) del(k K) {
	delete(b.m, k)
	b.compact()
}

// live reports whether a queue entry still names the current incarnation of its key.
func (b *boundedMap[K, V]) live(e bmKey[K]) bool {
	v, ok := b.m[e.k]
	return ok && v.seq == e.seq
}

func (b *boundedMap[K, V]) evictOldest() bool {
	for {
		e, ok := b.q.pop()
		if !ok {
			return false
		}
		if b.live(e) {
			delete(b.m, e.k)
			return true
		}
	}
}

// pruneHead drops up to n of the oldest keys while stale says they are
// useless, so idle entries leave without waiting for the cap.
func (b *boundedMap[K, V]) pruneHead(n int, stale func(V) bool) {
	for ; n > 0; n-- {
		e, ok := b.q.peek()
		if !ok {
			return
		}
		if !b.live(e) {
			b.q.pop()
			continue
		}
		if !stale(b.m[e.k].v) {
			return
		}
		b.q.pop()
		delete(b.m, e.k)
	}
}

// compact rebuilds the queue when dead entries (keys deleted or
// re-inserted) outnumber live ones, keeping it proportional to the map.
func (b *boundedMap[K, V]) compact() {
	if b.q.n <= 2*len(b.m)+32 {
		return
	}
	b.q.compactInPlace(b.live)
	if len(b.q.buf) > 4*b.q.n+64 {
		// After a flood, give the memory back.
		var nq fifo[bmKey[K]]
		for {
			e, ok := b.q.pop()
			if !ok {
				break
			}
			nq.push(e)
		}
		b.q = nq
	}
}
