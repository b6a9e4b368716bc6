package access

import "time"

// cpsWindow remembers the times of a service's most recent requests,
// so that "more than RATE new connections within one second" is measured
// over any one-second span, not per calendar second.
//
// The times are when the requests arrived, and they are not decided in
// that order: the daemon decides on many goroutines at once, and after a
// stop it drains a backlog whose connections carry the times they waited
// since (see the daemon's arrivalClock). So the window is kept sorted,
// and a request trips the limit when any RATE+1 requests within one
// second include it. Requests arriving in order cost O(1); one that is
// decided late is put in its place (O(RATE)).
type cpsWindow struct {
	buf   []int64 // times, ascending; the live part is buf[start:]
	start int
	rate  int
	// sec and count are the fallback for rates above maxCPSRing: whole
	// calendar seconds, as xinetd counts them.
	sec   int64
	count int
}

// keep is how many times the window remembers: the last RATE, and as
// many again for requests decided late.
func (w *cpsWindow) keep() int { return w.rate + min(w.rate, 1024) }

func (w *cpsWindow) live() []int64 { return w.buf[w.start:] }

// place finds where t goes among the times remembered, and reports
// whether it is older than all of them in a full window: it is then
// outside what the window can judge, and counts as long ago.
func (w *cpsWindow) place(t int64, rate int) (int, bool) {
	if w.rate != rate {
		w.buf, w.start, w.rate = w.buf[:0], 0, rate
	}
	l := w.live()
	i := len(l)
	if i > 0 && t < l[i-1] {
		lo, hi := 0, i
		for lo < hi {
			m := (lo + hi) / 2
			if l[m] <= t {
				lo = m + 1
			} else {
				hi = m
			}
		}
		i = lo
	}
	return i, i == 0 && len(l) >= w.keep()
}

// trips reports whether t, placed at index i, would make RATE+1 requests
// within one second with those remembered.
func (w *cpsWindow) trips(t int64, i int) bool {
	l := w.live()
	// The candidate spans of RATE+1 times that include t: t and RATE of
	// the others, consecutive in time.
	at := func(k int) int64 {
		switch {
		case k < i:
			return l[k]
		case k == i:
			return t
		}
		return l[k-1]
	}
	n := len(l) + 1
	for j := max(0, i-w.rate); j <= i && j+w.rate < n; j++ {
		if at(j+w.rate)-at(j) < int64(time.Second) {
			return true
		}
	}
	return false
}

// record puts t at index i and forgets the oldest time beyond keep.
func (w *cpsWindow) record(t int64, i int) {
	w.buf = append(w.buf, 0)
	l := w.buf[w.start:]
	copy(l[i+1:], l[i:len(l)-1])
	l[i] = t
	if len(l) > w.keep() {
		w.start++
		if w.start >= w.keep() {
			n := copy(w.buf, w.buf[w.start:])
			w.buf, w.start = w.buf[:n], 0
		}
	}
}

// hit records a connection that arrived at t (ns) and reports whether it
// trips the limit.
func (w *cpsWindow) hit(t int64, rate int) bool {
	if rate > maxCPSRing {
		w.buf = nil
		s := t / int64(time.Second)
		if s != w.sec {
			w.sec, w.count = s, 0
		}
		w.count++
		return w.count > rate
	}
	i, tooOld := w.place(t, rate)
	if tooOld {
		return false
	}
	trip := w.trips(t, i)
	w.record(t, i)
	return trip
}

// admit is hit for a rate that refuses the excess instead of tripping:
// a request over the rate is not recorded, so the window admits RATE
// requests in any one second however many more arrive.
func (w *cpsWindow) admit(t int64, rate int) bool {
	if rate > maxCPSRing {
		w.buf = nil
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
	i, tooOld := w.place(t, rate)
	if tooOld {
		return true
	}
	if w.trips(t, i) {
		return false
	}
	w.record(t, i)
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
