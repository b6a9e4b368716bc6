package access

import "time"

// cpsWindow remembers the times of the last RATE admissions of a service,
// so that "more than RATE new connections within one second" is measured
// over any one-second span, not per calendar second.
type cpsWindow struct {
	ring   []int64
	pos    int
	filled int
	// sec and count are the fallback for rates above maxCPSRing: whole
	// calendar seconds, as xinetd counts them.
	sec   int64
	count int
}

// hit records a connection at t (ns) and reports whether it trips the limit.
func (w *cpsWindow) hit(t int64, rate int) bool {
	if rate > maxCPSRing {
		w.ring = nil
		s := t / int64(time.Second)
		if s != w.sec {
			w.sec, w.count = s, 0
		}
		w.count++
		return w.count > rate
	}
	if len(w.ring) != rate {
		w.ring, w.pos, w.filled = make([]int64, rate), 0, 0
	}
	trip := false
	if w.filled == rate {
		oldest := w.ring[w.pos]
		trip = t-oldest < int64(time.Second) && t >= oldest
	} else {
		w.filled++
	}
	w.ring[w.pos] = t
	w.pos = (w.pos + 1) % rate
	return trip
}

// admit is hit for a rate that refuses the excess instead of tripping:
// a request over the rate is not recorded, so the window admits RATE
// requests in any one second however many more arrive.
func (w *cpsWindow) admit(t int64, rate int) bool {
	if rate > maxCPSRing {
		w.ring = nil
		s := t / int64(time.Second)
		if s != w.sec {
			w.sec, w.count = s, 0
		}
		if w.count >= rate {
			return false
		}
		w.count++
		return true
	}
	if len(w.ring) != rate {
		w.ring, w.pos, w.filled = make([]int64, rate), 0, 0
	}
	if w.filled == rate {
		oldest := w.ring[w.pos]
		if t-oldest < int64(time.Second) && t >= oldest {
			return false
		}
	} else {
		w.filled++
	}
	w.ring[w.pos] = t
	w.pos = (w.pos + 1) % rate
	return true
}

// minuteWindow counts events over the last minute in six 10-second
// buckets, the granularity FreeBSD inetd uses for its per-minute limits.
type minuteWindow struct {
	base   int64 // index of the newest bucket, in 10 s units since the epoch
	counts [6]uint32
}

// add records one event at now and returns the count over the last minute.
func (w *minuteWindow) add(now time.Time) uint32 {
	b := now.Unix() / 10
	switch {
	case b-w.base >= 6:
		w.counts = [6]uint32{}
	case b > w.base:
		for k := w.base + 1; k <= b; k++ {
			w.counts[k%6] = 0
		}
	case b < w.base:
		b = w.base // the clock went back: count into the newest bucket
	}
	w.base = b
	w.counts[b%6]++
	var n uint32
	for _, c := range w.counts {
		n += c
	}
	return n
}
