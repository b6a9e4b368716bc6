package seccomp

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// data is struct seccomp_data.
type data struct {
	nr   int32
	arch uint32
	ip   uint64
	args [6]uint64
}

func (d data) bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], uint32(d.nr))
	binary.LittleEndian.PutUint32(b[4:], d.arch)
	binary.LittleEndian.PutUint64(b[8:], d.ip)
	for i, a := range d.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// run interprets a classic BPF seccomp program the way the kernel does
// (only the instructions Compile emits; anything else is an error), so
// that tests can check what a filter decides for any call, including
// calls no test process could make safely.
func run(prog []unix.SockFilter, d data) (uint32, error) {
	mem := d.bytes()
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case ldAbsW:
			if in.K%4 != 0 || int(in.K)+4 > len(mem) {
				return 0, fmt.Errorf("pc %d: load at %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(mem[in.K:])
		case andK:
			acc &= in.K
		case jeqK, jgeK, jsetK:
			var t bool
			switch in.Code {
			case jeqK:
				t = acc == in.K
			case jgeK:
				t = acc >= in.K
			default:
				t = acc&in.K != 0
			}
			if t {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case ja:
			pc += int(in.K)
		case retK:
			return in.K, nil
		default:
			return 0, fmt.Errorf("pc %d: opcode %#x", pc, in.Code)
		}
		if pc+1 > len(prog) {
			return 0, fmt.Errorf("pc %d: jumped past the end", pc)
		}
	}
	return 0, fmt.Errorf("fell off the end")
}
