package spawn

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// cpuClock reads this process's CPU time (user + system), which is what
// a daemon pays per start; the children's own CPU is not in it.
func cpuClock(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkStartTrue(b *testing.B) {
	truePath, err := findProgram("true")
	if err != nil {
		b.Skip(err)
	}
	null, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	var cur *testing.B
	inModes(func(name string, g func()) bool {
		return b.Run(name, func(b *testing.B) { cur = b; g() })
	}, func() {
		b := cur
		cpu := cpuClock(b)
		defer func() { b.ReportMetric(float64(cpuClock(b)-cpu)/float64(b.N), "cpu-ns/op") }()
		for b.Loop() {
			p, err := Start(Spec{Path: truePath, Umask: -1}, null)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Wait(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStartParallel starts and reaps servers from eight goroutines
// at once, as a busy daemon does: the start path's shared state (the
// pre-exec cap, the status pipes every child inherits) shows here and
// not in a loop of one.
func BenchmarkStartParallel(b *testing.B) {
	truePath, err := findProgram("true")
	if err != nil {
		b.Skip(err)
	}
	null, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	var cur *testing.B
	inModes(func(name string, g func()) bool {
		return b.Run(name, func(b *testing.B) { cur = b; g() })
	}, func() {
		b := cur
		b.SetParallelism(4) // 4 × GOMAXPROCS goroutines
		cpu := cpuClock(b)
		defer func() { b.ReportMetric(float64(cpuClock(b)-cpu)/float64(b.N), "cpu-ns/op") }()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p, err := Start(Spec{Path: truePath, Umask: -1}, null)
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := Wait(p); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
