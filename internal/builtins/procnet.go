package builtins

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNoConn: no TCP connection with the asked-for addresses exists.
var ErrNoConn = errors.New("no such connection")

// TCP states in /proc/net/tcp that cannot own a live connection: a
// listener has no remote end, and a TIME_WAIT entry reports uid 0
// whoever owned the socket.
const (
	tcpTimeWait = 0x06
	tcpListen   = 0x0A
)

// ProcNetEntry is one row of /proc/net/tcp or tcp6.
type ProcNetEntry struct {
	Local, Remote netip.AddrPort
	State         int
	UID           int
}

// connUID finds the owner of the TCP connection between local and remote:
// through sock_diag (one exact lookup in the kernel), or, when the
// kernel offers no sock_diag, by reading /proc/net/tcp and tcp6. An Env
// whose ProcNet names a directory (tests) reads that directory instead.
func (e *Env) connUID(local, remote netip.AddrPort) (int, error) {
	if e == nil || e.ProcNet == "" {
		uid, err := lookupSockDiag(unmapAP(local), unmapAP(remote))
		if !errors.Is(err, errNoSockDiag) {
			return uid, err
		}
	}
	return LookupConnUID(e.procNet(), local, remote)
}

// LookupConnUID finds the owner of the TCP connection between local
// (an address of this host) and remote in dir/tcp and dir/tcp6.
// Addresses are compared with v4-mapped IPv6 unmapped, so a query that
// arrived over a dual-stack socket finds an IPv4 connection and the
// other way round. It returns ErrNoConn when neither file has it.
func LookupConnUID(dir string, local, remote netip.AddrPort) (int, error) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	var firstErr error
	read := 0
	for _, name := range []string{"tcp", "tcp6"} {
		uid, err := scanProcNet(filepath.Join(dir, name), local, remote)
		switch {
		case err == nil:
			return uid, nil
		case errors.Is(err, ErrNoConn):
			read++
		case errors.Is(err, os.ErrNotExist):
			// A kernel without IPv6 has no tcp6.
		case firstErr == nil:
			firstErr = err
		}
	}
	if firstErr != nil {
		return -1, firstErr
	}
	if read == 0 {
		return -1, fmt.Errorf("builtins: auth: neither %s nor %s: %w", filepath.Join(dir, "tcp"), filepath.Join(dir, "tcp6"), os.ErrNotExist)
	}
	return -1, ErrNoConn
}

func scanProcNet(path string, local, remote netip.AddrPort) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return -1, fmt.Errorf("builtins: auth: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 512), 64<<10)
	for sc.Scan() {
		e, ok := ParseProcNetLine(sc.Text())
		if !ok || e.State == tcpListen || e.State == tcpTimeWait {
			continue
		}
		if unmapAP(e.Local) == local && unmapAP(e.Remote) == remote {
			return e.UID, nil
		}
	}
	if err := sc.Err(); err != nil {
		return -1, fmt.Errorf("builtins: auth: reading %s: %w", path, err)
	}
	return -1, ErrNoConn
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// ParseProcNetLine parses one row of /proc/net/tcp or tcp6
// ("sl local rem st queues timer retransmits uid ..."). The header and
// anything malformed give ok false.
func ParseProcNetLine(line string) (ProcNetEntry, bool) {
	f := strings.Fields(line)
	if len(f) < 8 || !strings.HasSuffix(f[0], ":") {
		return ProcNetEntry{}, false
	}
	local, ok1 := parseProcAddr(f[1])
	remote, ok2 := parseProcAddr(f[2])
	st, err1 := strconv.ParseUint(f[3], 16, 8)
	uid, err2 := strconv.ParseUint(f[7], 10, 32)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return ProcNetEntry{}, false
	}
	return ProcNetEntry{Local: local, Remote: remote, State: int(st), UID: int(uid)}, true
}

// parseProcAddr decodes "HEX:PORT". The kernel prints the address as
// 32-bit words in host byte order and the port as a plain number.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok || len(hexPort) != 4 || (len(hexAddr) != 8 && len(hexAddr) != 32) {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	var b [16]byte
	for w := 0; w < len(hexAddr)/8; w++ {
		v, err := strconv.ParseUint(hexAddr[w*8:w*8+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, false
		}
		binary.NativeEndian.PutUint32(b[w*4:], uint32(v))
	}
	var a netip.Addr
	if len(hexAddr) == 8 {
		a = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		a = netip.AddrFrom16(b)
	}
	return netip.AddrPortFrom(a, uint16(port)), true
}
