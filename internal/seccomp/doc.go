// Package seccomp turns a system-call profile into the classic BPF
// program that the kernel's seccomp filter mode runs on every system call
// of a sandboxed server (the `seccomp` attribute, see docs/sandbox.md).
//
// It owns three things and nothing else:
//
//   - the profile language: a small line-based text of allow/deny rules
//     (Parse), the built-in profiles (Builtin, "default") and the named
//     groups of system calls both use (@mount, @ptrace, ...);
//   - the system-call tables of the architectures the clone spawner
//     supports (amd64, arm64), generated from golang.org/x/sys by
//     mksyscalls.go, so a name means the same number the kernel uses;
//   - the assembly of a profile into a filter program for one
//     architecture (Compile), and loading one into the calling process
//     (Install, used by tests) or probing the host (Available).
//
// The program checks the architecture first: a system call made through
// another ABI (i386's int 0x80 on amd64, or x32's numbers) kills the
// process whatever the profile says, because the numbers of a deny list
// mean other calls there. Then a binary search over the system-call
// numbers the profile names leads to each one's rules; argument
// conditions compare the low 32 bits only (the arguments they look at are
// C ints or flags whose high bits the kernel ignores, so comparing all 64
// bits would let a caller slip past with garbage in the high half).
//
// Why not github.com/elastic/go-seccomp-bpf: it assembles filters in pure
// Go and carries syscall tables for many architectures, but a system call
// of a foreign architecture there falls through to the policy's default
// action, which for a deny list (default allow) lets every i386 call
// through; its argument conditions cannot test a masked value (the socket
// type without SOCK_CLOEXEC/SOCK_NONBLOCK), and it compares full 64-bit
// arguments. Fixing those around it would have cost more than the 300
// lines here, and it would have added golang.org/x/net to the build.
//
// Position in the dependency chain: a leaf (standard library and
// golang.org/x/sys/unix only). The parser uses it to validate profiles
// (with file:line:col errors), spawn to build the program a server is
// started with. The profile text itself travels in the model
// (service.Seccomp), so what `gxinetd -t` checked is what runs.
package seccomp
