package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gxinetd/gxinetd/internal/testnet"
)

// freeBlock finds n consecutive ports free on every local address, held
// for this test or benchmark alone until it ends (see internal/testnet).
func freeBlock(tb testing.TB, n int) int {
	tb.Helper()
	return testnet.Block(tb, n)
}

// BenchmarkStartup1k is start-up with the 1,000 spawn services of the
// side-by-side harness's startup-1000 scenario: parse, check, build the
// engines and open every listening socket, then close them again.
func BenchmarkStartup1k(b *testing.B) {
	const n = 1000
	dir := b.TempDir()
	base := freeBlock(b, n)
	var conf strings.Builder
	fmt.Fprintf(&conf, "defaults\n{\n\tlog_type = FILE %s\n\tlog_on_success =\n\tlog_on_failure = HOST\n\tcps = 0 0\n\tinstances = UNLIMITED\n}\n",
		filepath.Join(dir, "service.log"))
	for i := 0; i < n; i++ {
		fmt.Fprintf(&conf, "\nservice svc%05d\n{\n\ttype = UNLISTED\n\tsocket_type = stream\n\tprotocol = tcp\n\twait = no\n\tuser = root\n\tbind = 127.0.0.1\n\tport = %d\n\tserver = /bin/cat\n}\n",
			i, base+i)
	}
	path := filepath.Join(dir, "xinetd.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	o := &Options{ConfigFile: path, DontFork: true, FileLog: filepath.Join(dir, "daemon.log")}
	raiseNoFile()
	// The daemon tunes GOMAXPROCS for its services (see procs.go).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dl, err := newDaemonLog(o)
		if err != nil {
			b.Fatal(err)
		}
		d := newDaemon(o, dl)
		cfg := loadWith(o, d.db)
		if got := d.startServing(cfg); got != n {
			b.Logf("%v", cfg.Diags)
			b.Fatalf("%d services available, want %d", got, n)
		}
		d.shutdown(false)
		d.rec.Close()
		dl.Close()
	}
}
