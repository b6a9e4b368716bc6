package seccomp

import (
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// Classic BPF opcodes the filter uses.
const (
	ldAbsW = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	jeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	jgeK   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	jsetK  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	ja     = unix.BPF_JMP | unix.BPF_JA
	andK   = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	retK   = unix.BPF_RET | unix.BPF_K
)

// Offsets in struct seccomp_data: nr, arch, instruction_pointer, args[6].
// Both supported architectures are little-endian: an argument's low half
// comes first.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// maxInsns is the kernel's limit on one filter (BPF_MAXINSNS).
const maxInsns = 4096

// Program is a compiled filter for one architecture.
type Program struct {
	Arch  *Arch
	insns []unix.SockFilter
	// execSlot is the index of the instruction comparing execve's first
	// argument with gxinetd's own path pointer (low half; the high half
	// is two further), or -1 when the profile allows execve anyway.
	execSlot int
}

// Len is the number of instructions.
func (p *Program) Len() int { return len(p.insns) }

// NeedsExecPointer reports whether the profile denies execve, so that
// the program must be completed with the address of the path the server
// is executed with (ForExec).
func (p *Program) NeedsExecPointer() bool { return p.execSlot >= 0 }

// ForExec copies the program into dst (len(dst) >= Len()) with the
// address of the execve path argument patched in: the one execve whose
// first argument is that exact pointer (gxinetd's own, made right after
// the filter is loaded) is let through, every other one gets the
// profile's action. dst may be C memory.
func (p *Program) ForExec(dst []unix.SockFilter, path uintptr) {
	copy(dst, p.insns)
	if p.execSlot >= 0 {
		dst[p.execSlot].K = uint32(uint64(path))
		dst[p.execSlot+2].K = uint32(uint64(path) >> 32)
	}
}

// Instructions returns a copy of the program (with a zero exec pointer
// when one is needed): for tests and Install.
func (p *Program) Instructions() []unix.SockFilter {
	out := make([]unix.SockFilter, len(p.insns))
	p.ForExec(out, 0)
	return out
}

// label is a forward jump target of the assembler.
type label int

type asm struct {
	ins    []unix.SockFilter
	fixups map[int]label // ja instructions whose K is a label
	at     []int         // label -> instruction index; -1 until placed
}

func (a *asm) emit(code uint16, jt, jf uint8, k uint32) int {
	a.ins = append(a.ins, unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k})
	return len(a.ins) - 1
}

func (a *asm) newLabel() label {
	a.at = append(a.at, -1)
	return label(len(a.at) - 1)
}

func (a *asm) place(l label) { a.at[l] = len(a.ins) }

// jump emits an unconditional jump to l; only ja reaches beyond 255
// instructions, so every long jump is one.
func (a *asm) jump(l label) {
	i := a.emit(ja, 0, 0, 0)
	a.fixups[i] = l
}

func (a *asm) resolve() error {
	for i, l := range a.fixups {
		t := a.at[l]
		if t <= i {
			return fmt.Errorf("seccomp: internal error: label %d not placed after its jump", l)
		}
		a.ins[i].K = uint32(t - i - 1)
	}
	return nil
}

// callRules are one system call's rules after overriding: the action
// when no conditional rule matches, and the conditional rules, latest
// first.
type callRules struct {
	nr    int
	name  string
	base  Action
	conds []Rule
}

// Compile assembles p for arch. Calls the architecture does not have are
// skipped (a profile may be shared between architectures).
func Compile(p *Profile, arch *Arch) (*Program, error) {
	byNr := map[int]*callRules{}
	get := func(name string) *callRules {
		nr, ok := arch.Number(name)
		if !ok {
			return nil
		}
		c := byNr[nr]
		if c == nil {
			c = &callRules{nr: nr, name: name, base: p.Default}
			byNr[nr] = c
		}
		return c
	}
	for _, r := range p.Rules {
		c := get(r.Syscall)
		if c == nil {
			continue
		}
		if r.when == nil {
			// An unconditional rule replaces everything before it.
			c.base, c.conds = r.Action, nil
			continue
		}
		c.conds = append([]Rule{r}, c.conds...)
	}
	for _, n := range alwaysAllowed {
		if c := get(n); c != nil {
			c.base, c.conds = Action{Kind: Allow}, nil
		}
	}
	execNr, hasExec := arch.Number("execve")
	needExec := false
	if hasExec {
		c := byNr[execNr]
		needExec = (c == nil && p.Default.Kind != Allow) || (c != nil && (c.base.Kind != Allow || len(c.conds) > 0))
		if needExec {
			get("execve")
		}
	}
	// Calls whose rules say nothing but the default need no branch.
	var calls []*callRules
	for _, c := range byNr {
		if c.base == p.Default && len(c.conds) == 0 && !(needExec && c.nr == execNr) {
			continue
		}
		calls = append(calls, c)
	}
	sort.Slice(calls, func(i, j int) bool { return calls[i].nr < calls[j].nr })

	a := &asm{fixups: map[int]label{}}
	kill := unix.SECCOMP_RET_KILL_PROCESS
	a.emit(ldAbsW, 0, 0, offArch)
	a.emit(jeqK, 1, 0, arch.Audit)
	a.emit(retK, 0, 0, uint32(kill))
	a.emit(ldAbsW, 0, 0, offNr)
	if arch.x32 {
		a.emit(jgeK, 0, 1, x32Bit)
		a.emit(retK, 0, 0, uint32(kill))
	}
	dflt := a.newLabel()
	blocks := make([]label, len(calls))
	// A call with one unconditional action (most of a deny list) has its
	// return right after its comparison in the search instead of a jump
	// to a block of its own: the kernel converts and JIT-compiles the
	// program for every server it starts, so every instruction saved is
	// saved per connection.
	inline := make([]bool, len(calls))
	for i, c := range calls {
		blocks[i] = a.newLabel()
		inline[i] = len(c.conds) == 0 && !(needExec && c.nr == execNr)
	}
	a.search(calls, blocks, inline, 0, len(calls), dflt)
	a.place(dflt)
	a.emit(retK, 0, 0, p.Default.ret())
	prog := &Program{Arch: arch, execSlot: -1}
	for i, c := range calls {
		if inline[i] {
			continue
		}
		a.place(blocks[i])
		if needExec && c.nr == execNr {
			// execve(path, ...) with path == gxinetd's own pointer.
			a.emit(ldAbsW, 0, 0, offArgs)
			prog.execSlot = a.emit(jeqK, 0, 3, 0)
			a.emit(ldAbsW, 0, 0, offArgs+4)
			a.emit(jeqK, 0, 1, 0)
			a.emit(retK, 0, 0, unix.SECCOMP_RET_ALLOW)
		}
		for _, r := range c.conds {
			for _, cs := range r.when {
				a.condSet(cs, r.Action)
			}
		}
		a.emit(retK, 0, 0, c.base.ret())
	}
	if err := a.resolve(); err != nil {
		return nil, err
	}
	if len(a.ins) > maxInsns {
		return nil, fmt.Errorf("seccomp: profile %s needs %d instructions; the kernel takes at most %d", p.Name, len(a.ins), maxInsns)
	}
	prog.insns = a.ins
	return prog, nil
}

// search emits a binary search over calls[lo:hi] (sorted by number) with
// the number in the accumulator, returning a call's action at once when
// it is inline, else jumping to its block; or to dflt. Conditional jumps only ever skip one instruction; the jumps that
// go far are ja.
func (a *asm) search(calls []*callRules, blocks []label, inline []bool, lo, hi int, dflt label) {
	if hi-lo <= 3 {
		for i := lo; i < hi; i++ {
			a.emit(jeqK, 0, 1, uint32(calls[i].nr))
			if inline[i] {
				a.emit(retK, 0, 0, calls[i].base.ret())
			} else {
				a.jump(blocks[i])
			}
		}
		a.jump(dflt)
		return
	}
	mid := (lo + hi) / 2
	right := a.newLabel()
	a.emit(jgeK, 0, 1, uint32(calls[mid].nr))
	a.jump(right)
	a.search(calls, blocks, inline, lo, mid, dflt)
	a.place(right)
	a.search(calls, blocks, inline, mid, hi, dflt)
}

// condSet emits: if every condition of cs holds, return act; otherwise
// fall through to what follows.
func (a *asm) condSet(cs condSet, act Action) {
	// Each condition is a load, an optional mask and a test; a failed
	// test skips the rest of the set and its return.
	size := 1 // the return
	for _, c := range cs {
		size += 2
		if !c.anySet && c.mask != ^uint32(0) {
			size++
		}
	}
	for _, c := range cs {
		a.emit(ldAbsW, 0, 0, uint32(offArgs+8*c.arg))
		size--
		if c.anySet {
			size--
			a.emit(jsetK, 0, uint8(size), c.mask)
			continue
		}
		if c.mask != ^uint32(0) {
			a.emit(andK, 0, 0, c.mask)
			size--
		}
		size--
		a.emit(jeqK, 0, uint8(size), c.value)
	}
	a.emit(retK, 0, 0, act.ret())
}
