package service

import (
	"fmt"
	"strings"
)

// Namespaces is the namespaces attribute: the Linux namespaces a server
// gets fresh copies of.
type Namespaces uint32

const (
	NsPID Namespaces = 1 << iota
	NsMount
	NsIPC
	NsUTS
	NsNet
)

var nsNames = []string{"pid", "mount", "ipc", "uts", "net"}

// NamespaceNames lists the words of the namespaces attribute.
func NamespaceNames() []string { return append([]string(nil), nsNames...) }

// ParseNamespace maps one word (case-insensitive) to its bit.
func ParseNamespace(w string) (Namespaces, bool) {
	for i, n := range nsNames {
		if strings.EqualFold(w, n) {
			return 1 << i, true
		}
	}
	return 0, false
}

// Has reports whether every bit of b is set.
func (n Namespaces) Has(b Namespaces) bool { return n&b == b }

func (n Namespaces) String() string {
	var out []string
	for i, name := range nsNames {
		if n&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	return strings.Join(out, " ")
}

func (n Namespaces) MarshalText() ([]byte, error) { return []byte(n.String()), nil }
func (n *Namespaces) UnmarshalText(b []byte) error {
	var v Namespaces
	for _, w := range strings.Fields(string(b)) {
		bit, ok := ParseNamespace(w)
		if !ok {
			return fmt.Errorf("service: unknown namespace %q", w)
		}
		v |= bit
	}
	*n = v
	return nil
}

// Seccomp is the seccomp attribute: a built-in profile, or a profile file
// and its text as read when the configuration was loaded (so that what
// the check mode validated is exactly what servers run under).
type Seccomp struct {
	Profile string `json:"profile"`        // as written
	File    string `json:"file,omitempty"` // the file, resolved; empty for a built-in profile
	Text    string `json:"text,omitempty"` // the file's text
}

// Sandbox is everything that isolates a server from the host
// (docs/sandbox.md). The spawner applies it in the server's own child
// before exec, in this order: namespaces, mounts, chroot, credentials,
// no_new_privs, seccomp.
type Sandbox struct {
	// Chroot is the directory the server's root is moved to; the server
	// path is resolved inside it. "" (or "/") means none.
	Chroot     string     `json:"chroot,omitempty"`
	NoNewPrivs bool       `json:"no_new_privs,omitempty"`
	Namespaces Namespaces `json:"namespaces,omitempty"`
	// PrivateTmp mounts an empty tmpfs of PrivateTmpSize bytes on /tmp
	// (and /var/tmp when it exists).
	PrivateTmp     bool  `json:"private_tmp,omitempty"`
	PrivateTmpSize int64 `json:"private_tmp_size,omitempty"`
	// ReadOnlyPaths and WritablePaths are paths as the server sees them
	// (inside the chroot). A leading '-' means "skip when missing".
	ReadOnlyPaths []string `json:"read_only_paths,omitempty"`
	WritablePaths []string `json:"writable_paths,omitempty"`
	ReadOnlyRoot  bool     `json:"read_only_root,omitempty"`
	Seccomp       *Seccomp `json:"seccomp,omitempty"`
}

// DefaultPrivateTmpSize bounds a private /tmp when no size is given: a
// server per connection must not be able to fill the host's memory.
const DefaultPrivateTmpSize = 64 << 20

// IsZero reports whether nothing is isolated.
func (s Sandbox) IsZero() bool {
	return s.Chroot == "" && !s.NoNewPrivs && s.Namespaces == 0 && !s.PrivateTmp &&
		len(s.ReadOnlyPaths) == 0 && len(s.WritablePaths) == 0 && !s.ReadOnlyRoot && s.Seccomp == nil
}

// MountView reports whether the attributes change the file-system view,
// which takes a mount namespace of the server's own.
func (s *Sandbox) MountView() bool {
	return s.PrivateTmp || len(s.ReadOnlyPaths) > 0 || len(s.WritablePaths) > 0 || s.ReadOnlyRoot
}

// EffectiveNamespaces are the namespaces the server gets: those asked
// for, plus a mount namespace whenever the file-system view changes.
func (s *Sandbox) EffectiveNamespaces() Namespaces {
	n := s.Namespaces
	if s.MountView() {
		n |= NsMount
	}
	return n
}

// SandboxAttrs are the attribute names that fill Sandbox (and
// max_duration), for messages and the defaults merge.
var SandboxAttrs = []string{"chroot", "no_new_privs", "namespaces", "private_tmp", "read_only_paths",
	"writable_paths", "read_only_root", "seccomp", "max_duration"}
