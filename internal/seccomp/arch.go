package seccomp

import (
	"fmt"
	"runtime"
	"sort"
)

// sysEntry is one row of a system-call table.
type sysEntry struct {
	name string
	nr   int
}

// Arch is an architecture a filter can be built for: its audit
// identifier (what seccomp_data.arch holds) and its system-call numbers.
type Arch struct {
	Name  string
	Audit uint32
	table []sysEntry // sorted by name
	// x32 marks amd64, whose x32 ABI shares the audit identifier and
	// sets bit 30 of the number.
	x32 bool
}

const x32Bit = 0x40000000

var (
	// AMD64 is x86-64.
	AMD64 = &Arch{Name: "amd64", Audit: 0xc000003e, table: amd64Syscalls, x32: true}
	// ARM64 is AArch64.
	ARM64 = &Arch{Name: "arm64", Audit: 0xc00000b7, table: arm64Syscalls}
)

var arches = []*Arch{AMD64, ARM64}

// HostArch is the architecture this binary runs on, or an error on one
// whose system calls the package does not know.
func HostArch() (*Arch, error) {
	for _, a := range arches {
		if a.Name == runtime.GOARCH {
			return a, nil
		}
	}
	return nil, fmt.Errorf("seccomp: no system-call table for %s (amd64 and arm64 only)", runtime.GOARCH)
}

// Number returns the system call's number on a.
func (a *Arch) Number(name string) (int, bool) {
	i := sort.Search(len(a.table), func(i int) bool { return a.table[i].name >= name })
	if i < len(a.table) && a.table[i].name == name {
		return a.table[i].nr, true
	}
	return 0, false
}

// Known reports whether name is a system call on any architecture the
// package knows: a profile may name calls that exist elsewhere only
// (open, on arm64), and they are skipped where they do not exist.
func Known(name string) bool {
	for _, a := range arches {
		if _, ok := a.Number(name); ok {
			return true
		}
	}
	return false
}

// names lists every known system-call name, for suggestions.
func names() []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range arches {
		for _, e := range a.table {
			if !seen[e.name] {
				seen[e.name] = true
				out = append(out, e.name)
			}
		}
	}
	sort.Strings(out)
	return out
}
