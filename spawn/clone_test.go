//go:build linux && cgo && !asan && !msan && (amd64 || arm64)

package spawn

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStatusPipeAboveStdio: with descriptor 0 free, pipe2 hands it out;
// the status pipe must still end up above 2, or the child's dup of the
// connection onto 0 would close its end early (see statusPipe).
func TestStatusPipeAboveStdio(t *testing.T) {
	saved, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Skipf("no descriptor 0 to set aside: %v", err)
	}
	unix.Close(0)
	p, perr := statusPipe()
	// Put stdin back before anything can fail.
	if err := unix.Dup3(saved, 0, 0); err != nil {
		t.Fatalf("restore stdin: %v", err)
	}
	unix.Close(saved)
	if perr != nil {
		t.Fatal(perr)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	for i, fd := range p {
		if fd <= 2 {
			t.Errorf("status pipe end %d is descriptor %d", i, fd)
		}
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
			t.Errorf("status pipe end %d (fd %d) is not close-on-exec: %#x %v", i, fd, fl, err)
		}
	}
}

// TestCloneChildMakesNoCalls disassembles the clone child (gx_child) as
// the C compiler built it into this test binary and fails on any call,
// and on any jump out of the function: the child shares the daemon's
// memory and thread pointer, so everything it runs must be inline raw
// system calls (see "Rules for the child" in clone_linux.go). This
// catches what no source check can: memset for an initialiser, a
// sanitizer's or profiler's hook, a step helper the compiler did not
// inline.
func TestCloneChildMakesNoCalls(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	if _, err := os.Stat(goTool); err != nil {
		t.Skipf("no go command to disassemble with: %v", err)
	}
	bin := os.Args[0]
	out, err := exec.Command(goTool, "tool", "objdump", "-s", "^gx_child$", bin).CombinedOutput()
	if err != nil && strings.Contains(string(out), "no symbol section") {
		// go test strips the binary it runs; the same build with -c keeps
		// the symbols (and the C objects come from the same cache).
		bin = filepath.Join(t.TempDir(), "spawn.test")
		if out, err := exec.Command(goTool, "test", "-c", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("go test -c: %v\n%s", err, out)
		}
		out, err = exec.Command(goTool, "tool", "objdump", "-s", "^gx_child$", bin).CombinedOutput()
	}
	if err != nil {
		t.Fatalf("go tool objdump: %v\n%s", err, out)
	}
	// Lines read "  :0  0xADDR  BYTES  MNEMONIC ARGS".
	line := regexp.MustCompile(`^\s*\S+\s+0x([0-9a-f]+)\s+[0-9a-f]+\s+(.*)$`)
	var insns [][2]string
	lo, hi := uint64(1<<64-1), uint64(0)
	for _, l := range strings.Split(string(out), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		addr, _ := strconv.ParseUint(m[1], 16, 64)
		lo, hi = min(lo, addr), max(hi, addr)
		insns = append(insns, [2]string{m[1], strings.TrimSpace(m[2])})
	}
	if len(insns) < 20 {
		t.Fatalf("gx_child not found in %s:\n%s", bin, out)
	}
	syscalls := 0
	for _, in := range insns {
		f := strings.Fields(in[1])
		op := f[0]
		switch {
		case op == "SYSCALL" || op == "SVC":
			syscalls++
		case strings.HasPrefix(op, "CALL") || op == "BL" || op == "BLR":
			t.Errorf("gx_child makes a call at 0x%s: %s", in[0], in[1])
		case strings.HasPrefix(op, "J") || op == "B" || strings.HasPrefix(op, "B.") || op == "BR" ||
			op == "CBZ" || op == "CBNZ" || op == "TBZ" || op == "TBNZ":
			target := f[len(f)-1]
			addr, err := strconv.ParseUint(strings.TrimPrefix(target, "0x"), 16, 64)
			if err != nil || !strings.HasPrefix(target, "0x") {
				t.Errorf("gx_child jumps indirectly at 0x%s: %s", in[0], in[1])
			} else if addr < lo || addr > hi {
				t.Errorf("gx_child jumps out of itself at 0x%s: %s", in[0], in[1])
			}
		}
	}
	if syscalls < 10 {
		t.Errorf("only %d system calls in gx_child: is this the clone child?", syscalls)
	}
}
