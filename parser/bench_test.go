package parser

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/sysdb"
)

// genConfig writes a configuration of n services in the shape distributions
// ship: a defaults block and one block per service, each with the usual
// attributes and an access list.
func genConfig(n int) []byte {
	var b strings.Builder
	b.Grow(n * 220)
	b.WriteString("defaults\n{\n\tlog_type = SYSLOG daemon info\n\tlog_on_success = HOST PID\n\tlog_on_failure = HOST\n\tinstances = 50\n}\n\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "# service number %d\nservice svc%d\n{\n\ttype\t\t= UNLISTED\n\tsocket_type\t= stream\n\tprotocol\t= tcp\n\tport\t\t= %d\n\twait\t\t= no\n\tuser\t\t= nobody\n\tserver\t\t= /bin/cat\n\tserver_args\t= -u -n\n\tonly_from\t= 127.0.0.1 10.0.0.0/8\n\tbind\t\t= 127.0.%d.%d\n}\n\n",
			i, i, 1024+i%60000, i/250%256, i%250+1)
	}
	return []byte(b.String())
}

func benchParse(b *testing.B, n int) {
	data := genConfig(n)
	opt := testOptions()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	var cfg *service.Config
	for i := 0; i < b.N; i++ {
		cfg = Parse("bench.conf", data, opt)
		if len(cfg.Services) != n || len(cfg.Accepted()) != n {
			b.Fatalf("got %d services, %d accepted; diags:\n%v", len(cfg.Services), len(cfg.Accepted()), cfg.Diags)
		}
	}
	b.StopTimer()
	// What the daemon keeps: the heap held by one Config.
	var before, after runtime.MemStats
	cfg = nil
	runtime.GC()
	runtime.ReadMemStats(&before)
	cfg = Parse("bench.conf", data, opt)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "retained-MB")
	runtime.KeepAlive(cfg)
}

func BenchmarkParse1k(b *testing.B)  { benchParse(b, 1000) }
func BenchmarkParse10k(b *testing.B) { benchParse(b, 10000) }

// BenchmarkGrammar10k measures the lexer and the block-level walk, which
// hands participle only the irregular parts of a file (none here).
func BenchmarkGrammar10k(b *testing.B) {
	src := string(genConfig(10000))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		if _, err := walkAST("bench.conf", src, func(item) { n++ }); err != nil || n != 10001 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkParticiple10k is participle over the whole file, the cost the
// fast path avoids (and what a file of nothing but mistakes would pay).
func BenchmarkParticiple10k(b *testing.B) {
	src := string(genConfig(10000))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := grammarOnly("bench.conf", src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIncludeDir1k loads 1,000 one-service files from an includedir,
// with and without the ownership rule (root walks every file's path from
// /; the verdict on the shared server is computed once).
func BenchmarkIncludeDir1k(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the ownership rule refuses a non-root user's files")
	}
	dir := b.TempDir()
	d := filepath.Join(dir, "xinetd.d")
	if err := os.Mkdir(d, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		svc := fmt.Sprintf("service svc%d\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tprotocol = tcp\n\tport = %d\n\twait = no\n\tuser = nobody\n\tserver = /bin/cat\n}\n", i, 1024+i)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("svc%04d", i)), []byte(svc), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	main := filepath.Join(dir, "xinetd.conf")
	if err := os.WriteFile(main, []byte("includedir "+d+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, check := range []bool{false, true} {
		b.Run(fmt.Sprintf("ownership=%v", check), func(b *testing.B) {
			opt := testOptions()
			opt.CheckOwnership = check
			for b.Loop() {
				if cfg := Load(main, opt); len(cfg.Accepted()) != 1000 {
					b.Fatalf("%d accepted: %v", len(cfg.Accepted()), cfg.Diags)
				}
			}
		})
	}
}

// harnessConfig is the side-by-side harness's startup-N file (run.sh
// gen_many): a defaults block and n spawn services on 127.0.0.1.
func harnessConfig(n int, logFile string) string {
	var b strings.Builder
	b.Grow(n * 200)
	fmt.Fprintf(&b, "# scenario startup-%d\ndefaults\n{\n\tlog_type        = FILE %s\n\tlog_on_success  =\n\tlog_on_failure  = HOST\n\tcps             = 0 0\n\tinstances       = UNLIMITED\n\tper_source      = UNLIMITED\n}\n", n, logFile)
	for i := 0; i < n; i++ {
		p := 20000 + i
		fmt.Fprintf(&b, "\nservice svc%05d\n{\n\ttype        = UNLISTED\n\tsocket_type = stream\n\tprotocol    = tcp\n\twait        = no\n\tuser        = root\n\tbind        = 127.0.0.1\n\tport        = %d\n\tserver      = /bin/true\n}\n", p, p)
	}
	return b.String()
}

// BenchmarkLoadHarness1k is the parse of the daemon's start in the
// harness's startup-1000 scenario: Load of the file from disk, with the
// real system databases read afresh each time (as at every start).
func BenchmarkLoadHarness1k(b *testing.B) { benchLoadHarness(b, 0) }

func benchLoadHarness(b *testing.B, workers int) {
	dir := b.TempDir()
	path := filepath.Join(dir, "xinetd.conf")
	if err := os.WriteFile(path, []byte(harnessConfig(1000, filepath.Join(dir, "service.log"))), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		cfg := Load(path, Options{Sys: &sysdb.DB{}, workers: workers})
		if len(cfg.Accepted()) != 1000 {
			b.Fatalf("%d accepted: %v", len(cfg.Accepted()), cfg.Diags)
		}
	}
}

// BenchmarkLoadHarness1kSerial is BenchmarkLoadHarness1k read on one
// goroutine, as files below minParallelEntries are.
func BenchmarkLoadHarness1kSerial(b *testing.B) {
	benchLoadHarness(b, 1)
}

// BenchmarkPlanChunks is the pre-scan that finds where a file may be cut.
func BenchmarkPlanChunks(b *testing.B) {
	src := harnessConfig(1000, "/var/log/x")
	for b.Loop() {
		if planChunks(src, 2, minParallelEntries) == nil {
			b.Fatal("no plan")
		}
	}
}
