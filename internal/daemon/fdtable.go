package daemon

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// The kernel grows a process's descriptor table by copying it, and in a
// process with more than one thread (every Go process) each growth first
// waits for an RCU grace period: 10 to 20 ms apiece on a busy machine.
// A configuration with 1,000 services grows the table from 64 slots to
// 1,024 in three steps while it opens its sockets, which made start-up
// mostly waiting. fdTable grows it once, early, in the background while
// the configuration is parsed, and at most once more, to the exact need,
// before the sockets are opened.
type fdTable struct {
	mu   sync.Mutex
	have int // slots known to exist
}

// growAsync starts growing the table for a configuration of about
// confBytes bytes: a service takes at least a hundred bytes, so this
// errs on the large side, by a few KiB of kernel memory. A small file
// (or one that only includes others) starts nothing: its sockets fit in
// the first 64 slots, or reserve does it at once before opening them.
func (t *fdTable) growAsync(confBytes int64) {
	if n := int(confBytes / 100); n > kernelFDTable {
		go t.reserve(n)
	}
}

// kernelFDTable is the size of the table every process starts with.
const kernelFDTable = 64

// reserve makes the table hold extra more descriptors than are open now
// (counting from the lowest free one). It duplicates a descriptor to the
// lowest free number at or above the target, which never replaces an
// open one, and closes the copy: the table keeps its size.
func (t *fdTable) reserve(extra int) {
	src, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(src)
	n := src + 1 + extra
	if n <= kernelFDTable {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && uint64(n) > rl.Cur {
		n = int(rl.Cur)
	}
	if n <= t.have {
		return
	}
	if fd, err := unix.FcntlInt(uintptr(src), unix.F_DUPFD_CLOEXEC, n-1); err == nil {
		unix.Close(fd)
		t.have = n
	}
}

// configSize is the size of the file the daemon will read first, for
// growAsync's estimate; drop-in directories are not walked for it.
func configSize(o *Options) int64 {
	path := o.ConfigFile
	if o.InetdFile != "" {
		path = o.InetdFile
	}
	if fi, err := os.Stat(path); err == nil {
		return fi.Size()
	}
	return 0
}
