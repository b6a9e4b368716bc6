package daemon

import (
	"bytes"
	"net/netip"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// The kernel's socket(2) is half of what opening a listening socket
// costs (the rest is setsockopt, bind and listen), and a large
// configuration is parsed on one thread while the machine's other cores
// wait. sockStock makes unbound TCP sockets on another thread while the
// configuration is read, and openSock takes them instead of calling
// socket(2): a socket made ahead is indistinguishable from one made
// later (same family, type, CLOEXEC and NONBLOCK; every option, the
// bind and the listen are still applied in order by openSock), so which
// service gets an address and what a failure says do not change. Only
// the first start of a large main file (stockMinBytes) uses it; what is
// not taken is closed once the daemon serves.
type sockStock struct {
	mu     sync.Mutex
	fds    map[stockKind][]int
	closed bool
	made   int // for tests: sockets made
	taken  int // for tests: sockets handed to openSock
	done   chan struct{}
}

// stockKind is what a stocked socket can serve.
type stockKind struct{ family, sotype int }

// stockMinBytes: below about 64 services (a service block takes at least
// a hundred bytes, the benchmark's 200) the parse is short and the
// sockets few; opening them as before costs less than a thread.
const stockMinBytes = 16 << 10

// stockMax bounds the sockets made ahead, whatever the file says.
const stockMax = 8192

// startStock begins stocking sockets for the configuration file at path
// on its own goroutine; it returns nil (no stock) when the file is small
// or unreadable. room is how many descriptors the stock may hold at
// most (a quarter of what the limit leaves, so that a wrong guess can
// never starve the real sockets).
func startStock(path string, size int64, t *fdTable) *sockStock {
	if size < stockMinBytes || path == "" {
		return nil
	}
	st := &sockStock{fds: map[stockKind][]int{}, done: make(chan struct{})}
	go st.fill(path, t)
	return st
}

// fill reads the file, guesses how many stream sockets of each family
// the configuration will open (stockPlan) and makes them.
func (st *sockStock) fill(path string, t *fdTable) {
	defer close(st.done)
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	plan := stockPlan(data)
	total := 0
	for _, p := range plan {
		total += p.n
	}
	if total == 0 {
		return
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
		total = min(total, int(rl.Cur/4))
	}
	total = min(total, stockMax)
	// One growth of the descriptor table for the stock and the sockets
	// that will replace it, before any is made (see fdTable).
	t.reserve(total + 64)
	for _, p := range plan {
		for i := 0; i < p.n && total > 0; i++ {
			fd, err := unix.Socket(p.kind.family, p.kind.sotype|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				break // EAFNOSUPPORT (no IPv6), EMFILE: stop this kind
			}
			st.mu.Lock()
			if st.closed {
				st.mu.Unlock()
				unix.Close(fd)
				return
			}
			st.fds[p.kind] = append(st.fds[p.kind], fd)
			st.made++
			st.mu.Unlock()
			total--
		}
	}
}

// stockPart is how many sockets of one kind to make.
type stockPart struct {
	kind stockKind
	n    int
}

// stockPlan counts the file's service blocks and the IPv4 addresses
// among its bind lines: services bound to an IPv4 address listen on
// AF_INET sockets, the others (no bind, or an IPv6 one) on AF_INET6
// (keyFor). Datagram services and includes are not counted: a guess
// that is wrong only leaves sockets unused. The family more services
// need is made first.
func stockPlan(data []byte) []stockPart {
	var services, v4, dgram int
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimLeft(line, " \t")
		if len(line) < 4 {
			continue
		}
		switch line[0] {
		case 's':
			if bytes.HasPrefix(line, []byte("service")) && len(line) > 7 && (line[7] == ' ' || line[7] == '\t') {
				services++
			} else if v, ok := attrValue(line, "socket_type"); ok && string(v) == "dgram" {
				dgram++
			}
		case 'b':
			if v, ok := attrValue(line, "bind"); ok {
				if a, err := netip.ParseAddr(string(v)); err == nil && a.Is4() {
					v4++
				}
			}
		}
	}
	stream := max(services-dgram, 0)
	v4 = min(v4, stream)
	in4 := stockPart{stockKind{unix.AF_INET, unix.SOCK_STREAM}, v4}
	in6 := stockPart{stockKind{unix.AF_INET6, unix.SOCK_STREAM}, stream - v4}
	if in6.n > in4.n {
		return []stockPart{in6, in4}
	}
	return []stockPart{in4, in6}
}

// attrValue returns the single value of an `name = value` line.
func attrValue(line []byte, name string) ([]byte, bool) {
	if !bytes.HasPrefix(line, []byte(name)) {
		return nil, false
	}
	rest := bytes.TrimLeft(line[len(name):], " \t")
	if len(rest) == 0 || rest[0] != '=' {
		return nil, false
	}
	return bytes.TrimSpace(rest[1:]), true
}

// take hands over a stocked socket of the kind, or -1.
func (st *sockStock) take(family, sotype int) int {
	if st == nil {
		return -1
	}
	k := stockKind{family, sotype}
	st.mu.Lock()
	defer st.mu.Unlock()
	l := st.fds[k]
	if len(l) == 0 {
		return -1
	}
	fd := l[0]
	st.fds[k] = l[1:]
	st.taken++
	return fd
}

// release stops the filling and closes every socket not taken. With
// wait it also waits for the filler to end (tests).
func (st *sockStock) release(wait bool) {
	if st == nil {
		return
	}
	st.mu.Lock()
	st.closed = true
	var left []int
	for k, l := range st.fds {
		left = append(left, l...)
		delete(st.fds, k)
	}
	st.mu.Unlock()
	for _, fd := range left {
		unix.Close(fd)
	}
	if wait {
		<-st.done
	}
}
