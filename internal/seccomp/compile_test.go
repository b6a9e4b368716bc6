package seccomp

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retKill  = unix.SECCOMP_RET_KILL_PROCESS
	retLog   = unix.SECCOMP_RET_LOG
)

func retErrno(e unix.Errno) uint32 { return unix.SECCOMP_RET_ERRNO | uint32(e) }

func mustParse(t *testing.T, text string) *Profile {
	t.Helper()
	p, errs := Parse("test", []byte(text))
	if len(errs) > 0 {
		t.Fatalf("parse %q: %v", text, errs)
	}
	return p
}

func mustCompile(t *testing.T, p *Profile, a *Arch) *Program {
	t.Helper()
	prog, err := Compile(p, a)
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

func nr(t *testing.T, a *Arch, name string) int32 {
	t.Helper()
	n, ok := a.Number(name)
	if !ok {
		t.Fatalf("%s has no %s", a.Name, name)
	}
	return int32(n)
}

// TestDefaultProfileDecisions runs the built-in default profile, as
// compiled for both architectures, over the calls it must kill and the
// ones a normal server makes.
func TestDefaultProfileDecisions(t *testing.T) {
	def, _ := Builtin("default")
	for _, a := range arches {
		prog := mustCompile(t, def, a).Instructions()
		call := func(name string, args ...uint64) data {
			d := data{nr: nr(t, a, name), arch: a.Audit}
			copy(d.args[:], args)
			return d
		}
		cases := []struct {
			what string
			d    data
			want uint32
		}{
			{"read", call("read", 0, 0, 10), retAllow},
			{"write", call("write", 1), retAllow},
			{"execve", call("execve"), retAllow},
			{"ptrace", call("ptrace", unix.PTRACE_ATTACH, 1), retKill},
			{"mount", call("mount"), retKill},
			{"umount2", call("umount2"), retKill},
			{"bpf", call("bpf"), retKill},
			{"keyctl", call("keyctl"), retKill},
			{"kexec_load", call("kexec_load"), retKill},
			{"finit_module", call("finit_module"), retKill},
			{"unshare", call("unshare", 0), retKill},
			{"setns", call("setns"), retKill},
			{"clone thread", call("clone", unix.CLONE_VM|unix.CLONE_FS|unix.CLONE_FILES|unix.CLONE_SIGHAND|unix.CLONE_THREAD), retAllow},
			{"clone fork", call("clone", uint64(unix.SIGCHLD)), retAllow},
			{"clone newuser", call("clone", unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), retKill},
			{"clone newnet", call("clone", unix.CLONE_NEWNET), retKill},
			{"clone newns", call("clone", unix.CLONE_NEWNS), retKill},
			{"clone3", call("clone3"), retErrno(unix.ENOSYS)},
			{"tcp socket", call("socket", unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC), retAllow},
			{"udp6 socket", call("socket", unix.AF_INET6, unix.SOCK_DGRAM), retAllow},
			{"netlink raw (getaddrinfo)", call("socket", unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC), retAllow},
			{"unix socket", call("socket", unix.AF_UNIX, unix.SOCK_STREAM), retAllow},
			{"raw ipv4", call("socket", unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP), retKill},
			{"raw ipv4 cloexec nonblock", call("socket", unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK), retKill},
			{"raw ipv6", call("socket", unix.AF_INET6, unix.SOCK_RAW), retKill},
			{"packet dgram", call("socket", unix.AF_PACKET, unix.SOCK_DGRAM), retKill},
			// The kernel reads an int: garbage in the high half must not hide the value.
			{"packet with high bits", call("socket", 1<<32|unix.AF_PACKET, unix.SOCK_RAW), retKill},
			{"raw with high bits", call("socket", 7<<32|unix.AF_INET, 1<<40|unix.SOCK_RAW), retKill},
			{"perf_event_open", call("perf_event_open"), retKill},
			{"io_uring_setup", call("io_uring_setup"), retKill},
			{"open_by_handle_at", call("open_by_handle_at"), retKill},
			{"settimeofday", call("settimeofday"), retKill},
			{"reboot", call("reboot"), retKill},
			{"swapon", call("swapon"), retKill},
			{"foreign arch", data{nr: 0, arch: 0x40000003 /* i386 */}, retKill},
			{"arm on amd64 and back", data{nr: 0, arch: otherArch(a).Audit}, retKill},
		}
		if a.x32 {
			cases = append(cases, struct {
				what string
				d    data
				want uint32
			}{"x32 read", data{nr: x32Bit | 0, arch: a.Audit}, retKill})
		}
		for _, c := range cases {
			got, err := run(prog, c.d)
			if err != nil {
				t.Fatalf("%s %s: %v", a.Name, c.what, err)
			}
			if got != c.want {
				t.Errorf("%s %s: got %#x, want %#x", a.Name, c.what, got, c.want)
			}
		}
	}
}

func otherArch(a *Arch) *Arch {
	if a == AMD64 {
		return ARM64
	}
	return AMD64
}

// TestEveryCallReachesItsBlock compiles a profile naming every system
// call of the architecture with alternating actions: the binary search
// must lead each number to its own rule, whatever the table's size.
func TestEveryCallReachesItsBlock(t *testing.T) {
	for _, a := range arches {
		var b strings.Builder
		b.WriteString("default errno:EPERM\n")
		want := map[int32]uint32{}
		for i, e := range a.table {
			if isAlwaysAllowed(e.name) {
				want[int32(e.nr)] = retAllow
				continue
			}
			act, ret := "allow", uint32(retAllow)
			switch i % 3 {
			case 1:
				act, ret = "deny", retKill
			case 2:
				act, ret = "log", retLog
			}
			b.WriteString(act + " " + e.name + "\n")
			want[int32(e.nr)] = ret
		}
		prog := mustCompile(t, mustParse(t, b.String()), a)
		ins := prog.Instructions()
		for n, w := range want {
			if prog.NeedsExecPointer() && n == nr(t, a, "execve") {
				continue
			}
			got, err := run(ins, data{nr: n, arch: a.Audit})
			if err != nil {
				t.Fatal(err)
			}
			if got != w {
				t.Errorf("%s nr %d: got %#x, want %#x", a.Name, n, got, w)
			}
		}
		// A number no table has gets the default.
		if got, _ := run(ins, data{nr: 5000, arch: a.Audit}); got != retErrno(unix.EPERM) {
			t.Errorf("%s unknown number: got %#x", a.Name, got)
		}
	}
}

// TestOverrides: a later rule replaces an earlier one for the same call,
// an unconditional allow after a group lifts its argument test, and a
// conditional deny after an allow narrows it again.
func TestOverrides(t *testing.T) {
	a := AMD64
	cases := []struct {
		name, text string
		d          data
		want       uint32
	}{
		{"later allow wins", "include default\nallow ptrace\n", data{nr: nr(t, a, "ptrace"), arch: a.Audit}, retAllow},
		{"later deny wins", "allow ptrace\ndeny ptrace\n", data{nr: nr(t, a, "ptrace"), arch: a.Audit}, retKill},
		{"allow socket lifts @raw-sockets", "include default\nallow socket\n",
			data{nr: nr(t, a, "socket"), arch: a.Audit, args: [6]uint64{unix.AF_PACKET}}, retAllow},
		{"@raw-sockets after allow socket", "allow socket\ndeny @raw-sockets\n",
			data{nr: nr(t, a, "socket"), arch: a.Audit, args: [6]uint64{unix.AF_PACKET}}, retKill},
		{"@raw-sockets keeps tcp", "default deny\nallow socket\ndeny @raw-sockets\n",
			data{nr: nr(t, a, "socket"), arch: a.Audit, args: [6]uint64{unix.AF_INET, unix.SOCK_STREAM}}, retAllow},
		{"errno action", "errno:EACCES open openat\n", data{nr: nr(t, a, "openat"), arch: a.Audit}, retErrno(unix.EACCES)},
		{"errno number", "errno:13 openat\n", data{nr: nr(t, a, "openat"), arch: a.Audit}, retErrno(unix.EACCES)},
		{"allowlist keeps exit", "default deny\nallow read\n", data{nr: nr(t, a, "exit_group"), arch: a.Audit}, retAllow},
		{"allowlist kills write", "default deny\nallow read\n", data{nr: nr(t, a, "write"), arch: a.Audit}, retKill},
	}
	for _, c := range cases {
		got, err := run(mustCompile(t, mustParse(t, c.text), a).Instructions(), c.d)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: got %#x, want %#x", c.name, got, c.want)
		}
	}
}

// TestExecPointer: a profile that denies execve still lets through the
// one execve whose path argument is the pointer gxinetd patches in, and
// only that one (both halves of the pointer are compared).
func TestExecPointer(t *testing.T) {
	for _, text := range []string{"deny execve\n", "default deny\nallow read write\n"} {
		for _, a := range arches {
			prog := mustCompile(t, mustParse(t, text), a)
			if !prog.NeedsExecPointer() {
				t.Fatalf("%q: execve denied but no exec pointer slot", text)
			}
			const ptr = 0x00007f12_3456_7890
			ins := make([]unix.SockFilter, prog.Len())
			prog.ForExec(ins, ptr)
			e := nr(t, a, "execve")
			for _, c := range []struct {
				arg  uint64
				want uint32
			}{{ptr, retAllow}, {ptr + 8, retKill}, {ptr & 0xffffffff, retKill}, {ptr ^ 1<<40, retKill}, {0, retKill}} {
				got, err := run(ins, data{nr: e, arch: a.Audit, args: [6]uint64{c.arg}})
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					t.Errorf("%s %q execve(%#x): got %#x, want %#x", a.Name, text, c.arg, got, c.want)
				}
			}
		}
	}
	if mustCompile(t, mustParse(t, "include default\n"), AMD64).NeedsExecPointer() {
		t.Error("the default profile allows execve: no pointer needed")
	}
}

// TestCallsMissingOnArch: a profile naming a call one architecture lacks
// compiles there, without it.
func TestCallsMissingOnArch(t *testing.T) {
	p := mustParse(t, "deny open iopl\n")
	if _, err := Compile(p, ARM64); err != nil {
		t.Fatal(err)
	}
	prog := mustCompile(t, p, AMD64).Instructions()
	if got, _ := run(prog, data{nr: nr(t, AMD64, "open"), arch: AMD64.Audit}); got != retKill {
		t.Errorf("amd64 open: %#x", got)
	}
}

// TestDefaultProfileSize: the kernel converts and JIT-compiles a filter
// for every process that installs it, once per connection here, so the
// default profile must stay small: each unconditional call costs its
// comparison and its return (inline), not a jump to a block of its own
// (293 instructions on amd64 before, 234 now).
func TestDefaultProfileSize(t *testing.T) {
	def, _ := Builtin("default")
	for _, c := range []struct {
		a   *Arch
		max int
	}{{AMD64, 240}, {ARM64, 200}} {
		if n := mustCompile(t, def, c.a).Len(); n > c.max {
			t.Errorf("%s: the default profile compiles to %d instructions, more than %d", c.a.Name, n, c.max)
		}
	}
}
