//go:build linux && cgo && !asan && !msan && (amd64 || arm64)

package spawn

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// reaperImage wraps the reaper's code (reaper_cgo_linux.go) in the
// smallest static ELF executable the kernel runs: a header, a loadable
// read-and-execute segment holding the code at the address it has in
// this process, and a non-executable stack. No interpreter, no
// relocations: exec costs a few pages.
func reaperImage() []byte {
	code, addr, entry := reaperCode()
	const page = 4096
	base := addr &^ (page - 1)
	lead := addr - base // the code's offset within its first page
	img := make([]byte, page+int(lead)+len(code))
	copy(img[page+lead:], code)

	le := binary.LittleEndian
	copy(img, elf.ELFMAG)
	img[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	img[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	img[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	machine := elf.EM_X86_64
	if runtime.GOARCH == "arm64" {
		machine = elf.EM_AARCH64
	}
	le.PutUint16(img[16:], uint16(elf.ET_EXEC))
	le.PutUint16(img[18:], uint16(machine))
	le.PutUint32(img[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(img[24:], uint64(addr+entry)) // e_entry
	le.PutUint64(img[32:], 64)                 // e_phoff
	le.PutUint16(img[52:], 64)                 // e_ehsize
	le.PutUint16(img[54:], 56)                 // e_phentsize
	le.PutUint16(img[56:], 2)                  // e_phnum
	ph := img[64:]
	le.PutUint32(ph[0:], uint32(elf.PT_LOAD))
	le.PutUint32(ph[4:], uint32(elf.PF_R|elf.PF_X))
	le.PutUint64(ph[8:], page)                            // p_offset
	le.PutUint64(ph[16:], uint64(base))                   // p_vaddr
	le.PutUint64(ph[24:], uint64(base))                   // p_paddr
	le.PutUint64(ph[32:], uint64(lead)+uint64(len(code))) // p_filesz
	le.PutUint64(ph[40:], uint64(lead)+uint64(len(code))) // p_memsz
	le.PutUint64(ph[48:], page)                           // p_align
	ph = img[64+56:]
	le.PutUint32(ph[0:], uint32(elf.PT_GNU_STACK))
	le.PutUint32(ph[4:], uint32(elf.PF_R|elf.PF_W))
	return img
}

var (
	reaperOnce sync.Once
	reaperFd   = -1
	reaperErr  error
)

// reaperFD is a sealed, close-on-exec memfd holding reaperImage, made
// once per process: the clone child of a server with a pid namespace
// execs it with execveat after it has forked the server.
func reaperFD() (int, error) {
	reaperOnce.Do(func() {
		reaperFd, reaperErr = makeReaperFD(reaperImage())
	})
	return reaperFd, reaperErr
}

func makeReaperFD(img []byte) (int, error) {
	const mfdExec = 0x10 // MFD_EXEC (Linux 6.3): executable even where vm.memfd_noexec says otherwise by default
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate("gxinetd-reaper", flags|mfdExec)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate("gxinetd-reaper", flags) // before 6.3 every memfd may be executed
	}
	if err != nil {
		return -1, fmt.Errorf("spawn: reaper image: memfd_create: %w", err)
	}
	for off := 0; off < len(img); {
		n, err := unix.Pwrite(fd, img[off:], int64(off))
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("spawn: reaper image: %w", err)
		}
		off += n
	}
	// Nobody, not even a bug in the daemon, changes it afterwards.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("spawn: reaper image: sealing: %w", err)
	}
	// Above 2, and never 3: the child puts the reaper's status pipe on
	// descriptor 3 just before it execs the image.
	if fd <= 3 {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 4)
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("spawn: reaper image: %w", err)
		}
		fd = nfd
	}
	return fd, nil
}

// shareReaper says whether the init of spec's pid namespace may stay in
// the daemon's address space as the reaper, instead of exec'ing the
// reaper image (which costs a new address space per start). A process
// sharing the root daemon's memory for as long as the server runs is
// safe only if the server can never pass ptrace_may_access on it (which
// guards ptrace, /proc/1/mem, process_vm_writev, pidfd_getfd): the
// reaper keeps the daemon's credentials, so that holds when
//
//   - the daemon is root with every uid 0 (not a sandbox with a user
//     namespace, where the server keeps the daemon's own uid), and its
//     securebits let a uid change drop every capability
//     (no SECBIT_NO_SETUID_FIXUP, no SECBIT_KEEP_CAPS);
//   - the server runs as a uid other than 0 (setresuid of all three ids
//     in the child), so it holds no capability and matches no uid of the
//     reaper's;
//   - no_new_privs is set, so no setuid or file-capability program it can
//     reach (inside a chroot or not) ever gives it uid 0 or
//     CAP_SYS_PTRACE back.
//
// Everything else keeps the exec'd reaper. docs/sandbox.md gives the
// reasoning and what sharing changes (ps, the OOM killer).
func shareReaper(spec *Spec) bool {
	sb := spec.Sandbox
	if forceExecReaper || sb == nil || !sb.NewPID || sb.UserNS || !sb.NoNewPrivs || spec.Cred == nil || spec.Cred.UID == 0 {
		return false
	}
	return daemonMayShareReaper()
}

// daemonMayShareReaper: this process is root in every uid, and a uid
// change in its children drops every capability. Neither changes while
// the daemon runs (it never changes its own credentials).
var daemonMayShareReaper = sync.OnceValue(func() bool {
	r, e, s := unix.Getresuid()
	if r != 0 || e != 0 || s != 0 {
		return false
	}
	const secbitNoSetuidFixup, secbitKeepCaps = 1 << 2, 1 << 4
	bits, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)
	return err == nil && bits&(secbitNoSetuidFixup|secbitKeepCaps) == 0
})

// forceExecReaper makes every pid namespace exec the reaper image:
// tests only, to run the same checks on both kinds of reaper.
var forceExecReaper bool
