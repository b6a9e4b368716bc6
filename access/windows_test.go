package access

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// TestCPSWindowOutOfOrder: requests decided out of the order they
// arrived in (many goroutines, a backlog drained after a stop) are
// counted by when they arrived. On the old ring, which compared a
// request with whatever was recorded RATE requests before it, a backlog
// of 40 a second decided in a shuffled order tripped a cps of 50.
func TestCPSWindowOutOfOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sec := int64(time.Second)
	for round := 0; round < 20; round++ {
		// 5 s of arrivals at 40 a second, decided in a shuffled order
		// (whole seconds apart at worst).
		times := make([]int64, 200)
		for i := range times {
			times[i] = 1000*sec + int64(i)*sec/40
		}
		rng.Shuffle(len(times), func(i, j int) { times[i], times[j] = times[j], times[i] })
		var w cpsWindow
		for k, at := range times {
			if w.hit(at, 50) {
				t.Fatalf("round %d: request %d (arrived at +%v) tripped cps 50 at 40 a second", round, k, time.Duration(at-1000*sec))
			}
		}
	}
	// 60 arrivals within half a second, shuffled: over the rate.
	times := make([]int64, 60)
	for i := range times {
		times[i] = 2000*sec + int64(i)*sec/120
	}
	rng.Shuffle(len(times), func(i, j int) { times[i], times[j] = times[j], times[i] })
	var w cpsWindow
	trips := 0
	for _, at := range times {
		if w.hit(at, 50) {
			trips++
		}
	}
	if trips == 0 {
		t.Error("60 requests within half a second, shuffled, did not trip cps 50")
	}
	// admit takes exactly the rate from a shuffled burst.
	var a cpsWindow
	admitted := 0
	for _, at := range times {
		if a.admit(at, 50) {
			admitted++
		}
	}
	if admitted != 50 {
		t.Errorf("admit took %d of a shuffled burst of 60 within half a second, want 50", admitted)
	}
}

// TestCPSWindowMatchesDefinition: for requests in arrival order, the
// window trips exactly when RATE others arrived within the second before.
func TestCPSWindowMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 200; round++ {
		rate := 1 + rng.IntN(5)
		var w cpsWindow
		var seen []int64
		now := int64(1000 * time.Second)
		for k := 0; k < 60; k++ {
			now += rng.Int64N(int64(600 * time.Millisecond))
			n := 0
			for _, s := range seen {
				if now-s < int64(time.Second) {
					n++
				}
			}
			want := n >= rate
			if got := w.hit(now, rate); got != want {
				t.Fatalf("round %d, rate %d, request %d: trip %v, want %v (%d within the second)", round, rate, k, got, want, n)
			}
			seen = append(seen, now)
		}
		if l := w.live(); !sort.SliceIsSorted(l, func(i, j int) bool { return l[i] < l[j] }) || len(l) > w.keep() {
			t.Fatalf("window %v: unsorted or beyond %d", l, w.keep())
		}
	}
}
