//go:build linux && cgo && !asan && !msan && (amd64 || arm64)

package spawn

import (
	"fmt"
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
	problems, syscalls := childProblems(string(out))
	if syscalls == 0 {
		t.Fatalf("gx_child not found in %s:\n%s", bin, out)
	}
	for _, p := range problems {
		t.Error(p)
	}
	if syscalls < 10 {
		t.Errorf("only %d system calls in gx_child: is this the clone child?", syscalls)
	}
}

// armCond are arm64's conditional branches in Go's syntax (BL, a call,
// reads CALL there).
var armCond = map[string]bool{"BEQ": true, "BNE": true, "BCS": true, "BHS": true, "BCC": true, "BLO": true,
	"BMI": true, "BPL": true, "BVS": true, "BVC": true, "BHI": true, "BLS": true, "BGE": true, "BLT": true,
	"BGT": true, "BLE": true, "CBZ": true, "CBNZ": true, "CBZW": true, "CBNZW": true, "TBZ": true, "TBNZ": true}

// childProblems reads go tool objdump's listing of gx_child (amd64 or
// arm64) and returns every call, indirect jump and jump out of the
// function, and the number of system calls.
func childProblems(listing string) (problems []string, syscalls int) {
	// Lines read "  :0  0xADDR  BYTES  MNEMONIC ARGS".
	line := regexp.MustCompile(`^\s*\S+\s+0x([0-9a-f]+)\s+[0-9a-f]+\s+(.*)$`)
	rel := regexp.MustCompile(`^(-?\d+)\(PC\)$`)
	type insn struct {
		addr uint64
		text string
	}
	var insns []insn
	lo, hi := uint64(1<<64-1), uint64(0)
	for _, l := range strings.Split(listing, "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		addr, _ := strconv.ParseUint(m[1], 16, 64)
		lo, hi = min(lo, addr), max(hi, addr)
		insns = append(insns, insn{addr, strings.TrimSpace(m[2])})
	}
	for _, in := range insns {
		f := strings.Fields(in.text)
		op := f[0]
		switch {
		case op == "SYSCALL" || op == "SVC":
			syscalls++
		case strings.HasPrefix(op, "CALL"):
			problems = append(problems, fmt.Sprintf("gx_child makes a call at %#x: %s", in.addr, in.text))
		case strings.HasPrefix(op, "J") || armCond[op]:
			target := f[len(f)-1]
			var to uint64
			if m := rel.FindStringSubmatch(target); m != nil {
				n, _ := strconv.ParseInt(m[1], 10, 64)
				to = uint64(int64(in.addr) + 4*n) // arm64: 4-byte instructions
			} else if v, err := strconv.ParseUint(strings.TrimPrefix(target, "0x"), 16, 64); err == nil && strings.HasPrefix(target, "0x") {
				to = v
			} else {
				problems = append(problems, fmt.Sprintf("gx_child jumps indirectly at %#x: %s", in.addr, in.text))
				continue
			}
			if to < lo || to > hi {
				problems = append(problems, fmt.Sprintf("gx_child jumps out of itself at %#x: %s", in.addr, in.text))
			}
		}
	}
	return problems, syscalls
}

// TestChildProblems runs the checker itself on listings of both
// architectures with one of each fault.
func TestChildProblems(t *testing.T) {
	row := func(addr uint64, insn string) string {
		return fmt.Sprintf("  :0\t\t\t%#x\t\t00\t\t\t%s\t\t\n", addr, insn)
	}
	amd64 := "TEXT gx_child(SB) \n" + row(0x1000, "SYSCALL") + row(0x1002, "JNE 0x1000") + row(0x1004, "CALL memset(SB)") +
		row(0x1009, "JMP 0x2000") + row(0x100e, "JMP AX") + row(0x1010, "SYSCALL")
	arm64 := "TEXT gx_child(SB) \n" + row(0x2000, "SVC $0") + row(0x2004, "BEQ -1(PC)") + row(0x2008, "CALL (R1)") +
		row(0x200c, "TBZ $63, R5, 89(PC)") + row(0x2010, "JMP (R2)") + row(0x2014, "BIC R1, R2, R3") + row(0x2018, "SVC $0")
	for _, tc := range []struct {
		name, listing string
		want          []string
	}{
		{"amd64", amd64, []string{
			"gx_child makes a call at 0x1004: CALL memset(SB)",
			"gx_child jumps out of itself at 0x1009: JMP 0x2000",
			"gx_child jumps indirectly at 0x100e: JMP AX"}},
		{"arm64", arm64, []string{
			"gx_child makes a call at 0x2008: CALL (R1)",
			"gx_child jumps out of itself at 0x200c: TBZ $63, R5, 89(PC)",
			"gx_child jumps indirectly at 0x2010: JMP (R2)"}},
	} {
		got, syscalls := childProblems(tc.listing)
		if syscalls != 2 || strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: %d system calls, problems:\n%s\nwant 2 and:\n%s", tc.name, syscalls,
				strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}
