package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

// BenchmarkSandboxSpawn is the shared harness's spawn-hello (a static
// server that writes one line and exits; eight clients that connect and
// read to EOF) with the server isolated in each of the ways
// docs/sandbox.md describes, all served by one gxinetd, and the same
// server started per connection through bubblewrap (bwrap) with the
// equivalent options. Scenarios alternate round by round, so each ratio
// to "plain" compares figures from the same minutes on the same machine.
// It reports conn/s per scenario (median of the rounds) and that ratio.
//
//	go test -run '^$' -bench SandboxSpawn -benchtime 1x ./e2e      # as root
//	SANDBOX_BENCH_ROUNDS=5 SANDBOX_BENCH_SECONDS=3 go test ...     # longer
//	SANDBOX_BENCH_ONLY='only' go test ...                          # some scenarios
//
// It needs root and a C compiler (for the static server); the bwrap rows
// need the Debian package bubblewrap.
func BenchmarkSandboxSpawn(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (namespaces, chroot)")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		b.Skip("needs a C compiler for the static server")
	}
	rounds := envInt("SANDBOX_BENCH_ROUNDS", 3)
	secs := envInt("SANDBOX_BENCH_SECONDS", 2)
	dir := b.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	hello := filepath.Join(dir, "hello")
	if out, err := exec.Command(cc, "-O2", "-static", "-nostdlib", "-fno-stack-protector", "-o", hello, "testdata/hello/hello.c").CombinedOutput(); err != nil {
		b.Skipf("cannot build the static server: %v\n%s", err, out)
	}
	jail := filepath.Join(dir, "jail")
	for _, d := range []string{"bin", "proc", "tmp"} {
		os.MkdirAll(filepath.Join(jail, d), 0o755)
	}
	data, _ := os.ReadFile(hello)
	os.WriteFile(filepath.Join(jail, "bin", "hello"), data, 0o755)

	type scenario struct {
		name, attrs string
	}
	// A scenario named "nobody: ..." runs its server as nobody, every
	// other one as root.
	userOf := func(s scenario) string {
		if strings.HasPrefix(s.name, "nobody: ") {
			return "nobody"
		}
		return "root"
	}
	ns := "\tnamespaces = pid mount ipc uts\n"
	scenarios := []scenario{
		{"plain", "\tserver = " + hello + "\n"},
		{"nnp+seccomp+chroot", "\tserver = /bin/hello\n\tchroot = " + jail + "\n\tno_new_privs = yes\n\tseccomp = default\n"},
		{"ns pid mount ipc uts", "\tserver = " + hello + "\n" + ns},
		{"ns + net", "\tserver = " + hello + "\n\tnamespaces = pid mount ipc uts net\n"},
		{"ctf (chroot ns seccomp tmp)", "\tserver = /bin/hello\n\tchroot = " + jail + "\n" + ns +
			"\tno_new_privs = yes\n\tseccomp = default\n\tprivate_tmp = yes\n\tread_only_root = yes\n"},
	}
	// Each part of the first sandbox alone, for where its cost goes.
	scenarios = append(scenarios,
		scenario{"nnp only", "\tserver = " + hello + "\n\tno_new_privs = yes\n"},
		scenario{"seccomp only", "\tserver = " + hello + "\n\tseccomp = default\n"},
		scenario{"chroot only", "\tserver = /bin/hello\n\tchroot = " + jail + "\n"},
	)
	// Each namespace alone, for its own cost per start (pid brings the
	// reaper; pid without mount keeps the host's /proc).
	for _, n := range []string{"pid", "mount", "ipc", "uts", "net"} {
		scenarios = append(scenarios, scenario{"ns " + n + " only", "\tserver = " + hello + "\n\tnamespaces = " + n + "\n"})
	}
	// Sandboxed untrusted servers normally run as an unprivileged user,
	// and a pid namespace's reaper can then stay in the daemon's memory
	// instead of exec'ing an image of its own (docs/sandbox.md: only
	// with no_new_privs too). The same scenarios as nobody, with a plain
	// of their own to compare with.
	nnp := "\tno_new_privs = yes\n"
	scenarios = append(scenarios,
		scenario{"nobody: plain", "\tserver = " + hello + "\n"},
		scenario{"nobody: nnp+seccomp+chroot", "\tserver = /bin/hello\n\tchroot = " + jail + "\n" + nnp + "\tseccomp = default\n"},
		scenario{"nobody: ns pid mount ipc uts", "\tserver = " + hello + "\n" + ns},
		scenario{"nobody: ns pid mount ipc uts nnp", "\tserver = " + hello + "\n" + ns + nnp},
		scenario{"nobody: ns + net nnp", "\tserver = " + hello + "\n\tnamespaces = pid mount ipc uts net\n" + nnp},
		scenario{"nobody: ctf (chroot ns seccomp tmp)", "\tserver = /bin/hello\n\tchroot = " + jail + "\n" + ns +
			nnp + "\tseccomp = default\n\tprivate_tmp = yes\n\tread_only_root = yes\n"},
		scenario{"nobody: ns pid only", "\tserver = " + hello + "\n\tnamespaces = pid\n"},
		scenario{"nobody: ns pid only nnp", "\tserver = " + hello + "\n\tnamespaces = pid\n" + nnp},
	)
	if bwrap, err := exec.LookPath("bwrap"); err == nil {
		// bwrap always makes a mount namespace and sets no_new_privs.
		scenarios = append(scenarios,
			scenario{"bwrap ns pid mount ipc uts", "\tserver = " + bwrap + "\n\tserver_args = --bind / / --proc /proc --unshare-pid --unshare-ipc --unshare-uts -- " + hello + "\n"},
			scenario{"bwrap ns + net", "\tserver = " + bwrap + "\n\tserver_args = --bind / / --proc /proc --unshare-pid --unshare-ipc --unshare-uts --unshare-net -- " + hello + "\n"},
			scenario{"bwrap chroot", "\tserver = " + bwrap + "\n\tserver_args = --bind " + jail + " / -- /bin/hello\n"},
		)
	}
	// SANDBOX_BENCH_ONLY=REGEXP keeps the scenarios it matches (and the
	// plain ones, which the ratios need).
	if only := os.Getenv("SANDBOX_BENCH_ONLY"); only != "" {
		re, err := regexp.Compile(only)
		if err != nil {
			b.Fatal(err)
		}
		var kept []scenario
		for _, s := range scenarios {
			if strings.HasSuffix(s.name, "plain") || re.MatchString(s.name) {
				kept = append(kept, s)
			}
		}
		scenarios = kept
	}
	ports := testnet.Ports(b, len(scenarios))
	conf := "defaults\n{\n\tcps = 0 0\n\tinstances = UNLIMITED\n\tper_source = UNLIMITED\n\tbind = 127.0.0.1\n}\n"
	for i, s := range scenarios {
		user := userOf(s)
		conf += fmt.Sprintf("service s%d\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = %d\n\twait = no\n\tuser = %s\n%s}\n",
			i, ports[i], user, s.attrs)
	}
	path := filepath.Join(dir, "xinetd.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	d := startBench(b, dir, path)
	defer d.kill()

	rates := make([][]float64, len(scenarios))
	cpus := make([][]float64, len(scenarios))
	for r := 0; r < rounds; r++ {
		for i := range scenarios {
			load(b, ports[i], 500*time.Millisecond) // warm-up
			before := treeCPU(d.cmd.Process.Pid)
			n, errs := load(b, ports[i], time.Duration(secs)*time.Second)
			used := treeCPU(d.cmd.Process.Pid) - before
			if errs > n/100 {
				b.Errorf("%s: %d errors in %d connections", scenarios[i].name, errs, n)
			}
			rates[i] = append(rates[i], float64(n)/float64(secs))
			if n > 0 {
				cpus[i] = append(cpus[i], used.Seconds()*1e6/float64(n))
			}
			if strings.Contains(scenarios[i].attrs, " net\n") || strings.Contains(scenarios[i].attrs, "--unshare-net") {
				// The kernel tears network namespaces down afterwards,
				// in kworkers: let that end before the next scenario is
				// measured, or it slows whichever comes next.
				time.Sleep(3 * time.Second)
			}
		}
	}
	// Each ratio is against the plain scenario of the same user, round
	// by round, then the median (a round's load is shared by both).
	plainOf := map[string]int{}
	for i, s := range scenarios {
		if strings.HasSuffix(s.name, "plain") {
			plainOf[userOf(s)] = i
		}
	}
	// The table goes to standard output: the testing package keeps only
	// the first ten lines of a benchmark's log, and the bwrap rows are
	// last.
	var tab strings.Builder
	fmt.Fprintf(&tab, "BenchmarkSandboxSpawn: %d rounds of %d s per scenario (ratios: paired by round, of plain as the same user)\n", rounds, secs)
	for i, s := range scenarios {
		p := plainOf[userOf(s)]
		plain, plainCPU := pairedMedian(rates[i], rates[p]), pairedMedian(cpus[p], cpus[i])
		m, c := median(rates[i]), median(cpus[i])
		fmt.Fprintf(&tab, "  %-36s %7.0f conn/s %5.2f of plain | %6.0f µs CPU/conn %5.2f of plain | rounds %v | CPU %v\n", s.name, m, plain, c, plainCPU, rounds2(rates[i]), rounds2(cpus[i]))
		b.ReportMetric(m, strings.ReplaceAll(s.name, " ", "_")+"-conn/s")
	}
	fmt.Print(tab.String())
}

// treeCPU is the CPU time of the daemon and of every process it reaped,
// and they of theirs (the servers under a pid namespace's reaper): the
// user and system time of /proc/PID/stat with the reaped children's. It
// leaves out what the kernel does on its own threads (a network
// namespace's teardown runs in a kworker).
func treeCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime (fields 14-17)
		var v int64
		fmt.Sscan(f[i], &v)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// startBench is start() for a benchmark.
func startBench(b *testing.B, dir, conf string) *daemon {
	d := &daemon{dir: dir, conf: conf, logFile: filepath.Join(dir, "daemon.log"), svcLog: filepath.Join(dir, "services.log"),
		stderr: &syncBuf{}, exited: make(chan struct{})}
	bin := gxinetd
	// SANDBOX_BENCH_GXINETD: another build to measure (A/B runs of two
	// commits in one session).
	if alt := os.Getenv("SANDBOX_BENCH_GXINETD"); alt != "" {
		bin = alt
	}
	d.cmd = exec.Command(bin, "-f", conf, "-dontfork", "-filelog", d.logFile, "-pidfile", filepath.Join(dir, "pid"))
	d.cmd.Stderr, d.cmd.Stdout = d.stderr, d.stderr
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(d.daemonLog(), "Started working") {
		if time.Now().After(deadline) {
			b.Fatalf("gxinetd did not start:\n%s", d.daemonLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(d.daemonLog(), "rejected") {
		b.Fatalf("a scenario was rejected:\n%s", d.daemonLog())
	}
	return d
}

// load runs eight clients against port for dur (at most 200,000
// connections in all), each connecting from its own rotating 127.x
// address so that the server side's TIME_WAIT sockets never exhaust the
// client ports, and returns the connections served and the failures.
func load(b *testing.B, port int, dur time.Duration) (int, int) {
	var ok, bad atomic.Int64
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, 64)
			for i := 0; time.Now().Before(stop) && ok.Load()+bad.Load() < 200000; i++ {
				src := &net.TCPAddr{IP: net.IPv4(127, byte(1+w), byte(i>>8), byte(1+i%250))}
				dl := net.Dialer{LocalAddr: src, Timeout: 5 * time.Second}
				c, err := dl.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					bad.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				n := 0
				for {
					m, err := c.Read(buf[n:])
					n += m
					if err != nil {
						if errors.Is(err, io.EOF) && n > 0 {
							ok.Add(1)
						} else {
							bad.Add(1)
						}
						break
					}
					if n == len(buf) {
						n = 0
					}
				}
				c.Close()
			}
		}(w)
	}
	wg.Wait()
	return int(ok.Load()), int(bad.Load())
}

// pairedMedian is the median of a[i]/b[i] over the rounds.
func pairedMedian(a, b []float64) float64 {
	var r []float64
	for i := range a {
		if i < len(b) && b[i] > 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return median(r)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func rounds2(v []float64) string {
	var out []string
	for _, x := range v {
		out = append(out, fmt.Sprintf("%.0f", x))
	}
	return strings.Join(out, " ")
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}
