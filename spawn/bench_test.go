package spawn

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// BenchmarkProxySessions is the redirect-conn scenario in one process:
// eight clients at a time connect to a listener whose connections go to
// ProxyFDAsync (accepted non-blocking, as the daemon's raw path does),
// write a line, read it back from an echo backend through the relay and
// close. cpu-ns/op is the process's CPU per session (client, backend and
// relay together, the kernel's work included), steadier than ns/op on a
// loaded machine.
func BenchmarkProxySessions(b *testing.B) {
	be := newBackend(b, "127.0.0.1:0", echoHandler)
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		b.Fatal(err)
	}
	if err := unix.Listen(lfd, 1024); err != nil {
		b.Fatal(err)
	}
	sa, _ := unix.Getsockname(lfd)
	front := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	var wg sync.WaitGroup
	var failed atomic.Int64
	stop := make(chan struct{})
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
			select {
			case <-stop:
				if err == nil {
					unix.Close(fd)
				}
				return
			default:
			}
			if err != nil {
				continue
			}
			wg.Add(1)
			ProxyFDAsync(context.Background(), fd, "127.0.0.1", be.port, ProxyOptions{NoDelay: true, Nonblocking: true},
				func(in, out int64, err error) {
					if err != nil || in != 6 || out != 6 {
						failed.Add(1)
					}
					wg.Done()
				})
		}
	}()
	b.SetParallelism(4) // 8 clients on 2 cores, as the harness runs
	cpu := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 16)
		for pb.Next() {
			c, err := net.Dial("tcp", front)
			if err != nil {
				b.Error(err)
				return
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write([]byte("hello\n")); err != nil {
				b.Error(err)
			}
			if _, err := io.ReadFull(c, buf[:6]); err != nil {
				b.Error(err)
			}
			c.Close()
		}
	})
	b.StopTimer()
	wg.Wait()
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
	close(stop)
	if c, err := net.Dial("tcp", front); err == nil { // unblocks the accept
		c.Close()
	}
	<-acceptDone
	unix.Close(lfd)
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d sessions failed", n)
	}
}

// processCPU is the process's user and system CPU time in nanoseconds.
func processCPU() int64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
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
